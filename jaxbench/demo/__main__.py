"""The demo driver: trains (or reuses) the demo models, runs each suite, writes the report.

    python -m jaxbench.demo --workdir=runs/demo [--parts=zeroshot,synthetic,typographic,adv]
                            [--max_examples=-1] [--cache=runs/demo/models]

Each part of ``configs/demo.py`` is one suite, run by the ordinary runner into
``WORKDIR/<part>`` (one config per workdir, so a rerun resumes and a changed
config is refused); the report over all of them goes to ``WORKDIR/report``.
``python -m jaxbench.main --config=configs/demo.py --workdir=DIR`` runs the same
passes as one config.
"""
from __future__ import annotations

import os
import sys
import time

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "output directory")
_PARTS = flags.DEFINE_list("parts", ["zeroshot", "synthetic", "typographic", "adv"],
                           "suites to run (configs/demo.py parts)")
_MAX = flags.DEFINE_integer("max_examples", -1, "evaluate at most this many digits per pass")
_CACHE = flags.DEFINE_string("cache", None, "trained-model cache (default: "
                             "$JAXBENCH_DEMO_CACHE or runs/demo/models)")
_REPORT = flags.DEFINE_bool("report", True, "write WORKDIR/report")


def load_demo_config(part: str):
  """``configs/demo.py``'s config for one part (the file is found next to the package)."""
  import importlib.util
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  path = os.path.join(root, "configs", "demo.py")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: run the demo from a clone of the repository")
  spec = importlib.util.spec_from_file_location("jaxbench_configs_demo", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(part)


def run(workdir: str, parts, *, max_examples: int = -1, report: bool = True,
        overrides: dict | None = None, print_fn=print) -> dict:
  """Runs the demo parts; returns {part: rows written}.

  Args:
    workdir: output root; part ``p`` goes to ``workdir/p``.
    parts: names from ``configs/demo.py``'s PARTS.
    max_examples: examples per pass (-1: all 547 test digits).
    report: write ``workdir/report`` over every part's workdir.
    overrides: config fields to set in every part (tests: smaller models, fewer passes).
  """
  from jaxbench import suites
  done = {}
  for part in parts:
    config = load_demo_config(part)
    config.max_examples = max_examples
    for k, v in (overrides or {}).items():
      if k in config:
        setattr(config, k, v)
      else:
        config[k] = v
    t0 = time.perf_counter()
    rows = suites.run(config, os.path.join(workdir, part))
    print_fn(f"demo: {part}: {len(rows)} new rows in {time.perf_counter() - t0:.0f}s")
    done[part] = rows
  if report:
    from jaxbench import report as report_lib
    dirs = [os.path.join(workdir, p) for p in parts]
    rep = report_lib.write_report([d for d in dirs if os.path.exists(d)],
                                  os.path.join(workdir, "report"))
    print_fn(f"demo: report in {os.path.join(workdir, 'report')} "
             f"({', '.join(sorted(rep.files))})")
  return done


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  if _CACHE.value:
    os.environ["JAXBENCH_DEMO_CACHE"] = _CACHE.value
  t0 = time.perf_counter()
  try:
    run(_WORKDIR.value, _PARTS.value, max_examples=_MAX.value, report=_REPORT.value)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"demo: done in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
  app.run(main)
