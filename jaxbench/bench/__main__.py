"""``python -m jaxbench.bench NAME [flags]`` runs one benchmark; ``all`` runs every one.

``all`` runs each benchmark module (``jaxbench/bench/*.py``) in its own process
with its default (short) settings, prints each one's side-by-side table as it
goes, and ends with a summary: wall time and peak resident memory per
benchmark. ``--only=a,b`` restricts the set; all figures are appended to
``bench_results.jsonl`` by the benchmarks themselves.
"""
import importlib
import os
import pkgutil
import subprocess
import sys
import time

import jaxbench.bench as _pkg


def _names():
  return sorted(m.name for m in pkgutil.iter_modules(_pkg.__path__)
                if not m.name.startswith("_") and m.name != "common")


def run_all(argv):
  only = [a.split("=", 1)[1].split(",") for a in argv if a.startswith("--only=")]
  names = only[0] if only else _names()
  summary = []
  for name in names:
    print(f"\n===== {name} =====", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jaxbench.bench", name])
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    summary.append((name, code, time.perf_counter() - t0, usage.ru_maxrss / 1024))
  print("\n| benchmark | status | wall s | peak RSS MiB |\n|---|---|---|---|")
  for name, code, wall, rss in summary:
    print(f"| {name} | {'ok' if code == 0 else f'exit {code}'} | {wall:.0f} | {rss:.0f} |")
  return max((c for _, c, _, _ in summary), default=0)


def main():
  if len(sys.argv) >= 2 and sys.argv[1] == "all":
    sys.exit(run_all(sys.argv[2:]))
  if len(sys.argv) < 2 or sys.argv[1] not in _names():
    print(f"usage: python -m jaxbench.bench NAME [flags]; NAME one of {_names() + ['all']}")
    sys.exit(2)
  name = sys.argv.pop(1)
  module = importlib.import_module(f"jaxbench.bench.{name}")
  module.main(sys.argv)


if __name__ == "__main__":
  main()
