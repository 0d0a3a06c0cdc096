"""Shared timing helpers for benchmarks (never used in unit tests)."""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Callable

import numpy as np


def time_fn(fn: Callable[[], object], *, warmup: int = 1, repeats: int = 3,
            min_seconds: float = 1.0) -> float:
  """Median seconds per call of ``fn`` (which must block until done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    n, t0 = 0, time.perf_counter()
    while True:
      fn()
      n += 1
      dt = time.perf_counter() - t0
      if dt >= min_seconds:
        break
    times.append(dt / n)
  return float(np.median(times))


def gemm_ceiling_flops(n: int = 2048, dtype="float32") -> float:
  """This machine's measured fp32 GEMM throughput in FLOP/s (NumPy/BLAS and XLA, best)."""
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t = time_fn(lambda: f(a).block_until_ready())
  an = np.ones((n, n), np.float32)
  tn = time_fn(lambda: an @ an)
  return 2 * n**3 / min(t, tn)


def record(out: str, name: str, figures: dict):
  """Appends one JSON line of figures with machine facts."""
  import jax
  row = {"bench": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
         "machine": platform.machine(), "cpus": os.cpu_count(),
         "devices": [str(d) for d in jax.devices()], **figures}
  with open(out, "a") as f:
    f.write(json.dumps(row) + "\n")
