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
  return float(np.median([_seconds_per_call(fn, min_seconds) for _ in range(repeats)]))


def _seconds_per_call(fn: Callable[[], object], min_seconds: float) -> float:
  """Calls ``fn`` until ``min_seconds`` have passed; the mean seconds per call."""
  n, t0 = 0, time.perf_counter()
  while True:
    fn()
    n += 1
    dt = time.perf_counter() - t0
    if dt >= min_seconds:
      return dt / n


def gemm_ceiling_flops(n: int = 0, dtype="float32", precision: str = "float32") -> float:
  """This machine's measured GEMM throughput in FLOP/s under a jaxbench precision
  policy (XLA, and NumPy/BLAS for float32 on CPU; the best).

  Args:
    n: matrix side; 0 = 2048 on CPU, 8192 on an accelerator (launch-bound below).
    precision: 'float32' (true fp32), 'tf32' or 'bfloat16' (bf16 operands).
  """
  import jax
  import jax.numpy as jnp
  from jaxbench import precision as precision_lib
  cpu = jax.default_backend() == "cpu"
  n = n or (2048 if cpu else 8192)
  policy = precision_lib.get(precision)
  a = jnp.ones((n, n), policy.dtype if precision == "bfloat16" else dtype)
  with precision_lib.scope(precision):
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
  t = time_fn(lambda: f(a).block_until_ready())
  if cpu and policy.dtype == jnp.float32:
    an = np.ones((n, n), np.float32)
    t = min(t, time_fn(lambda: an @ an))
  return 2 * n**3 / t


def interleaved(fns: dict, *, rounds: int = 3, min_seconds: float = 1.0,
                warmup: bool = True, pause: float = 0.3) -> dict:
  """Median seconds per call of each blocking ``fn``, timed in turn round by round.

  Interleaving (a, b, c, a, b, c, ...) instead of (a, a, a, b, b, b) makes load
  from other jobs, clocks and thermals hit every implementation alike. ``pause``
  seconds of sleep before each timing let the previous implementation's thread
  pools (OpenMP, Eigen) stop spin-waiting: on a 2-core CPU their spinning
  otherwise slows the next one several-fold.
  """
  for fn in fns.values() if warmup else ():
    fn()                                        # warm-up (compile, autotune)
  times = {k: [] for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      time.sleep(pause)
      times[k].append(_seconds_per_call(fn, min_seconds))
  return {k: float(np.median(v)) for k, v in times.items()}


# Random-weight CLIP sizes (transformers CLIPConfig fields) for the benchmarks.
CLIP_ARCHS = {
    "b32": dict(vision=(768, 12, 12, 3072, 32), text=(512, 12, 8, 2048), proj=512),
    "b16": dict(vision=(768, 12, 12, 3072, 16), text=(512, 12, 8, 2048), proj=512),
    "l14": dict(vision=(1024, 24, 16, 4096, 14), text=(768, 12, 12, 3072), proj=768),
}


def random_clip(out_dir: str, arch: str = "b32", *, device: str = "cpu",
                vision_layers: int = -1, text_layers: int = -1, seed: int = 0):
  """Saves a random transformers CLIPModel of size ``arch`` (+ tokenizer files) to
  ``out_dir`` and returns it in eval mode on ``device`` (initialised there: fast on GPU).

  Args:
    vision_layers, text_layers: override the depth (-1: the architecture's).
  """
  import torch
  from transformers import CLIPConfig
  from transformers import CLIPModel
  from jaxbench.zeroshot import tokenizer
  a = CLIP_ARCHS[arch]
  vw, vl, vh, vm, patch = a["vision"]
  tw, tl, th, tm = a["text"]
  cfg = CLIPConfig(
      vision_config=dict(hidden_size=vw, num_hidden_layers=vl if vision_layers < 0
                         else vision_layers, num_attention_heads=vh, intermediate_size=vm,
                         patch_size=patch, image_size=224),
      text_config=dict(hidden_size=tw, num_hidden_layers=tl if text_layers < 0 else text_layers,
                       num_attention_heads=th, intermediate_size=tm),
      projection_dim=a["proj"])
  torch.manual_seed(seed)
  with torch.device(device):
    ref = CLIPModel(cfg).eval()
  ref.save_pretrained(out_dir)
  tokenizer.write_transformers_files(out_dir)
  for p in ref.parameters():
    p.requires_grad_(False)
  return ref


def torch_dtype(precision: str):
  import torch
  return torch.bfloat16 if precision == "bfloat16" else torch.float32


def torch_sync(device: str) -> None:
  """Waits for queued CUDA work (PyTorch launches asynchronously)."""
  if str(device).startswith("cuda"):
    import torch
    torch.cuda.synchronize()


class torch_precision:
  """PyTorch's TF32 switches for a jaxbench policy: off under 'float32' (true fp32
  matmuls and convolutions, as jaxbench runs them), on under 'tf32'."""

  def __init__(self, precision: str):
    self.allow = precision == "tf32"

  def __enter__(self):
    import torch
    self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = self.allow
    torch.backends.cudnn.allow_tf32 = self.allow
    return self

  def __exit__(self, *unused):
    import torch
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved
    return False


def share_device_with_torch(torch_device: str, fraction: str = "0.45") -> None:
  """Before JAX starts: with a CUDA PyTorch in the same process, let XLA take only
  ``fraction`` of device memory (it preallocates 75% by default) so both fit.
  An explicit ``XLA_PYTHON_CLIENT_MEM_FRACTION`` wins."""
  if str(torch_device).startswith("cuda"):
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", fraction)


def record(out: str, name: str, figures: dict):
  """Appends one JSON line of figures with machine facts to ``out`` ('' records nothing)."""
  if not out:
    return
  import jax
  row = {"bench": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
         "machine": platform.machine(), "cpus": os.cpu_count(),
         "devices": [str(d) for d in jax.devices()], **figures}
  with open(out, "a") as f:
    f.write(json.dumps(row) + "\n")
