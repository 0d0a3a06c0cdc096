"""The SIGTERM stop flag, importable before anything heavy (jax, models, data).

``jaxbench.main`` installs :func:`request_stop` as the SIGTERM handler as its very
first statement, so a preemption notice that arrives while jax and the models are
still being imported, or while zero-shot heads are built, is remembered; the runner
checks :func:`requested` between phases and between head-building batches and at
every step boundary (``jaxbench.engine.loop``), checkpoints and exits with status 75.
"""
from __future__ import annotations

# Mutable so that modules holding a reference see updates.
_STOP = {"requested": False}


class Preempted(Exception):
  """SIGTERM arrived; every host stopped at the same safe point (exit status 75)."""


def request_stop(*unused) -> None:
  """Signal handler: remember the request; work stops at the next safe point."""
  _STOP["requested"] = True


def requested() -> bool:
  return _STOP["requested"]


def agreed() -> bool:
  """True on every host when any host was asked to stop (one tiny all-gather).

  Every host must call it at the same point; with one process it is a flag read.
  """
  flag = _STOP["requested"]
  import jax   # here, not at import time: this module must stay importable first
  if jax.process_count() == 1:
    return flag
  import numpy as np
  from jax.experimental import multihost_utils
  return bool(np.asarray(multihost_utils.process_allgather(np.asarray([flag]))).any())


def check(where: str) -> None:
  """Raises :class:`Preempted` naming ``where`` when any host was asked to stop."""
  if agreed():
    raise Preempted(f"stopped by SIGTERM {where}; rerun the same command to resume")


def check_local(where: str) -> None:
  """:func:`check` for code that hosts may not all run (a head another host found in
  the cache): with one process it stops at once; with several it does nothing, and
  the runner's agreed check after the phase stops every host together."""
  if not _STOP["requested"]:
    return
  import jax
  if jax.process_count() == 1:
    raise Preempted(f"stopped by SIGTERM {where}; rerun the same command to resume")
