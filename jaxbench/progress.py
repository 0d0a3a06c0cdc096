"""Console progress: phase lines before the first batch and a live bar per pass.

In a terminal (stderr is a TTY) a pass shows one line rewritten in place::

    pass 3/12 clip_vit_b32 | imagenet | clean  [#########.........]  4608/10000  812.4 img/s  ETA 0:07

with images/s counted from the end of the first batch (which includes
compilation) and the ETA from that rate. Elsewhere (log files, CI, pipes) the
same facts go to the log every ``log_every`` batches, as plain lines. Phases
before the first batch (model load, head building, compilation) log one line
each with their seconds, so a slow start is never silent.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from absl import logging

# Passes of the current run: set by the runner once it knows the plan.
_RUN = {"done": 0, "total": 0}


def start_run(total_passes: int) -> None:
  """Resets the pass counter (``pass i of P``) for a run of ``total_passes``."""
  _RUN.update(done=0, total=int(total_passes))


def next_pass() -> tuple[int, int]:
  """(i, P) for the pass starting now (P = 0 when no run announced its plan)."""
  _RUN["done"] += 1
  return _RUN["done"], max(_RUN["total"], _RUN["done"]) if _RUN["total"] else 0


def fmt_seconds(s: float) -> str:
  """Seconds as H:MM:SS or M:SS (``?`` when unknown)."""
  if not s == s or s in (float("inf"), float("-inf")) or s < 0:
    return "?"
  s = int(round(s))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Phase:
  """Times one start-up phase and logs ``<what> took N s`` when it ends.

  Usage: ``with progress.Phase("loading model clip_vit_b32"): ...``
  """

  def __init__(self, what: str):
    self.what = what

  def __enter__(self):
    logging.info("%s ...", self.what)
    self.t0 = time.perf_counter()
    return self

  def __exit__(self, exc_type, *unused):
    if exc_type is None:
      self.seconds = time.perf_counter() - self.t0
      logging.info("%s: done in %.1f s", self.what, self.seconds)
    return False


class PassBar:
  """Progress of one pass: a live line on a TTY, periodic log lines elsewhere.

  Args:
    label: 'model | dataset | transform'.
    total_images: examples this pass evaluates.
    total_batches: batches in the plan.
    log_every: batches between log lines when not on a TTY.
    stream: where the live line goes (default stderr); ``live`` forces the mode.
  """

  def __init__(self, label: str, total_images: int, total_batches: int, *,
               log_every: int = 10, stream: Optional[TextIO] = None,
               live: Optional[bool] = None):
    self.label = label
    self.total_images = max(0, int(total_images))
    self.total_batches = int(total_batches)
    self.log_every = max(1, int(log_every))
    self.stream = stream if stream is not None else sys.stderr
    if live is None:
      isatty = getattr(self.stream, "isatty", None)
      live = bool(isatty and isatty())
    self.live = live
    i, p = next_pass()
    self.prefix = f"pass {i}/{p} " if p else ""
    self.t_start = time.perf_counter()
    self.t_first: Optional[float] = None   # end of the first (compiling) batch
    self.seen_first = 0
    self.seen = 0
    self._last_draw = 0.0

  def rate(self) -> float:
    """Images/s since the end of the first batch (0 until a second batch ends)."""
    if self.t_first is None:
      return 0.0
    dt = time.perf_counter() - self.t_first
    n = self.seen - self.seen_first
    return n / dt if dt > 0 and n > 0 else 0.0

  def eta(self) -> float:
    r = self.rate()
    return (self.total_images - self.seen) / r if r > 0 else float("nan")

  def first_batch(self, seen: int, seconds: float, compiled: bool) -> None:
    """Records the first batch: its time includes compilation when ``compiled``."""
    self.t_first = time.perf_counter()
    self.seen = self.seen_first = int(seen)
    what = "compiled the step and ran the first batch" if compiled else \
        "ran the first batch (step already compiled)"
    logging.info("%s%s: %s in %.1f s", self.prefix, self.label, what, seconds)

  def update(self, batch: int, seen: int) -> None:
    """After batch ``batch`` (1-based) with ``seen`` images done in total."""
    self.seen = int(seen)
    last = batch == self.total_batches
    if self.live:
      now = time.perf_counter()
      if last or now - self._last_draw >= 0.1:
        self._last_draw = now
        self.stream.write("\r" + self.line() + "\033[K")
        self.stream.flush()
    elif batch % self.log_every == 0 or last:
      logging.info("%s%s: batch %d/%d, %.1f images/s, ETA %s", self.prefix, self.label,
                   batch, self.total_batches, self.rate(), fmt_seconds(self.eta()))

  def line(self, width: int = 24) -> str:
    frac = self.seen / self.total_images if self.total_images else 1.0
    fill = int(round(width * min(1.0, frac)))
    return (f"{self.prefix}{self.label} [{'#' * fill}{'.' * (width - fill)}] "
            f"{self.seen}/{self.total_images} {self.rate():.1f} img/s "
            f"ETA {fmt_seconds(self.eta())}")

  def close(self) -> None:
    """Ends the live line and logs the pass's throughput."""
    if self.live:
      self.stream.write("\n")
      self.stream.flush()
    elapsed = time.perf_counter() - self.t_start
    logging.info("%s%s: %d images in %.1f s (%.1f images/s after the first batch)",
                 self.prefix, self.label, self.seen, elapsed, self.rate())
