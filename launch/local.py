#!/usr/bin/env python3
"""Local multi-process launcher: N JAX processes on this machine, for development.

Each process is one simulated host with ``--devices_per_process`` CPU devices;
they meet at a coordinator on 127.0.0.1 and use gloo CPU collectives, exactly
the code path of a multi-host TPU or GPU run.

    python launch/local.py --num_processes=2 --devices_per_process=2 -- \
        --config=configs/zeroshot.py --workdir=runs/mh

``--dry_run`` prints the commands (one per process) and exits. The launcher
waits for all processes; if one fails it stops the others (as a cluster
scheduler would) and exits with that process's status.
"""
import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def commands(num_processes: int, devices: int, port: int, main_args: list[str],
             python: str = sys.executable) -> list[tuple[dict, list[str]]]:
  out = []
  for pid in range(num_processes):
    env = {"JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    cmd = [python, "-m", "jaxbench.main", f"--coordinator=127.0.0.1:{port}",
           f"--num_processes={num_processes}", f"--process_id={pid}", *main_args]
    out.append((env, cmd))
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--num_processes", type=int, default=2)
  p.add_argument("--devices_per_process", type=int, default=2)
  p.add_argument("--port", type=int, default=0, help="coordinator port (0: pick a free one)")
  p.add_argument("--dry_run", action="store_true", help="print the commands and exit")
  p.add_argument("main_args", nargs=argparse.REMAINDER,
                 help="arguments for jaxbench.main, after --")
  args = p.parse_args(argv)
  main_args = [a for a in args.main_args if a != "--"]
  port = args.port or (12345 if args.dry_run else free_port())
  cmds = commands(args.num_processes, args.devices_per_process, port, main_args,
                  "python" if args.dry_run else sys.executable)
  if args.dry_run:
    for env, cmd in cmds:
      print(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(cmd))
    return 0
  procs = [subprocess.Popen(cmd, env={**os.environ, **env}) for env, cmd in cmds]

  def forward(signum, _):   # pass SIGTERM/SIGINT on to every process
    for pr in procs:
      if pr.poll() is None:
        pr.send_signal(signum)
  signal.signal(signal.SIGTERM, forward)
  signal.signal(signal.SIGINT, forward)
  status = 0
  while any(pr.poll() is None for pr in procs):
    failed = [pr for pr in procs if pr.poll() not in (None, 0)]
    if failed:
      status = failed[0].returncode
      time.sleep(2)   # let a coordinated exit (preemption) finish on the others
      for pr in procs:
        if pr.poll() is None:
          pr.kill()
      break
    time.sleep(0.2)
  for pr in procs:
    pr.wait()
  codes = [pr.returncode for pr in procs]
  return status or next((c for c in codes if c), 0)


if __name__ == "__main__":
  sys.exit(main())
