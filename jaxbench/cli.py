"""The command line's run step: validate, run, print the results table, map errors
to exit codes (kept out of ``jaxbench.main`` so it can be called without absl flags).

Exit codes: 0 done (or nothing left to do), 2 a bad config/spec/path or an
unwritable workdir (one line per problem on stderr, no traceback), 75 stopped
by SIGTERM (rerun the same command to resume).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Optional, TextIO

from absl import logging

from jaxbench import console, registry, store as store_lib, stopping, suites
from jaxbench.engine.run import ValidationError
from jaxbench.model_setup import ConfigError

# Exit status after a SIGTERM checkpoint (EX_TEMPFAIL): rerun the command to resume.
PREEMPTED_EXIT_CODE = 75
USAGE_EXIT_CODE = 2


def one_line(message: object) -> str:
  """A message on one line (reader errors may list files over several lines)."""
  return " ".join(str(message).split())


def execute(config, workdir: Optional[str], *, dry_run: bool = False,
            out: Optional[TextIO] = None, err: Optional[TextIO] = None,
            is_lead: Callable[[], bool] = lambda: True) -> int:
  """Runs (or with ``dry_run`` validates and plans) ``config`` into ``workdir``.

  Args:
    config: the run's ConfigDict.
    workdir: the output directory (may be None with ``dry_run``).
    dry_run: validate everything and print the plan; no work, nothing written.
    out, err: streams for the table/plan and for errors (default stdout/stderr).
    is_lead: whether this process prints the table (process 0 of a multi-host run).

  Returns:
    The exit code.
  """
  out = out or sys.stdout
  err = err or sys.stderr
  from jaxbench.models import hub
  try:
    written = suites.run(config, workdir, dry_run=dry_run,
                         print_fn=lambda s: print(s, file=out))
    rows = [] if dry_run else suites.results(config, workdir, written)
  except stopping.Preempted as e:
    logging.warning("%s", e)
    print(f"preempted: {one_line(e)}", file=err)
    return PREEMPTED_EXIT_CODE
  except ValidationError as e:
    for problem in e.problems:   # one line each (not logged too: no duplicates)
      print(f"error: {one_line(problem)}", file=err)
    return USAGE_EXIT_CODE
  except (ConfigError, registry.SpecError, hub.WeightsError, store_lib.WorkdirLocked,
          ValueError, OSError) as e:
    print(f"error: {one_line(e)}", file=err)
    return USAGE_EXIT_CODE
  if rows and is_lead():
    for line in console.table_lines(rows):
      print(line, file=out)
    results = os.path.join(os.path.abspath(os.path.expanduser(workdir)), "results.jsonl")
    for line in console.bad_file_lines(rows, results):
      print(line, file=out)
  return 0
