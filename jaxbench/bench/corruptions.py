"""ImageNet-C generation throughput: jaxbench corruptions vs the reference code.

    python -m jaxbench.bench corruptions [--severity=3] [--batch=32] [--names=fog,snow]

For each corruption, images/s of:
  * ours: device-side ones as one jitted ``device_fn`` over a batch of 224x224
    images (compile excluded, result blocked on); host-side ones as
    ``host_fn`` per image in one Python thread (the input pipeline runs them
    in its worker threads/processes);
  * the reference: the ``imagecorruptions`` package (hendrycks' create_c port),
    one image at a time as create_c runs it, if installed.
The target is >= 10x for device-side corruptions. The machine may be shared
with other jobs: figures are noisy, compare the ratio within one run.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import sys
import time
import types

import numpy as np

from jaxbench.bench import common


def _reference_module():
  """imagecorruptions.corruptions run on today's stack (see the fixture script in
  tests/shifts for the shims: pkg_resources, skimage's multichannel, np.float_)."""
  spec = importlib.util.find_spec("imagecorruptions")
  if spec is None:
    return None
  if not hasattr(np, "float_"):
    np.float_ = np.float64
  if "pkg_resources" not in sys.modules:
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda package, path: os.path.join(
        os.path.dirname(spec.origin), path)
    sys.modules["pkg_resources"] = shim
  import skimage.filters
  if not getattr(skimage.filters.gaussian, "_shimmed", False):
    original = skimage.filters.gaussian

    def gaussian(image, sigma=1, multichannel=None, **kwargs):
      if multichannel:
        kwargs["channel_axis"] = -1
      return original(image, sigma, **kwargs)
    gaussian._shimmed = True
    skimage.filters.gaussian = gaussian
  path = os.path.join(os.path.dirname(spec.origin), "corruptions.py")
  with open(path) as f:
    tree = ast.parse(f.read())
  module = types.ModuleType("imagecorruptions_reference")
  module.__dict__["__name__"] = "imagecorruptions.corruptions"
  exec(compile(tree, path, "exec"), module.__dict__)
  return module


def _images(n: int, size: int = 224) -> np.ndarray:
  """Smooth random pictures (noise on gradients), uint8 (n, size, size, 3)."""
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:size, 0:size] / size
  base = np.stack([xx, yy, (xx + yy) / 2], -1)
  return np.stack([np.uint8(np.clip(255 * (base * rng.random(3) + 0.1 * rng.random(
      (size, size, 3))), 0, 255)) for _ in range(n)])


def main(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxbench.bench corruptions")
  parser.add_argument("--severity", type=int, default=3)
  parser.add_argument("--batch", type=int, default=32, help="device batch (images)")
  parser.add_argument("--names", default="", help="comma list (default: all 19)")
  parser.add_argument("--res", default="imagenet", choices=("imagenet", "cifar"))
  parser.add_argument("--min_seconds", type=float, default=0.5)
  parser.add_argument("--out", default="bench_results.jsonl")
  args = parser.parse_args(argv[1:])

  import jax
  from PIL import Image
  from jaxbench.shifts import corruptions as C

  names = [n for n in args.names.split(",") if n] or list(C.ALL)
  size = 224 if args.res == "imagenet" else 32
  images = _images(args.batch, size)
  x = jax.device_put(images.astype(np.float32) / 255)
  keys = jax.random.split(jax.random.key(0), args.batch)
  ref = _reference_module()
  frost = None
  try:
    frost = C.frost_dir()
  except FileNotFoundError:
    pass
  print(f"devices: {jax.devices()}; batch {args.batch} x {size}x{size}, severity "
        f"{args.severity}, params '{args.res}'. Shared machine: figures are noisy.")
  rows = []
  header = "| corruption | kind | ours img/s | reference img/s | speedup |"
  print(header)
  print("|---|---|---:|---:|---:|")
  for name in names:
    if name == "frost" and frost is None:
      print(f"| {name} | host | (no frost pictures) | | |")
      continue
    shift = C.make(name, args.severity, args.res)
    if shift.kind == "device":
      fn = jax.jit(shift.device_fn)
      t0 = time.perf_counter()
      fn(keys, x).block_until_ready()
      compile_s = time.perf_counter() - t0
      sec = common.time_fn(lambda: fn(keys, x).block_until_ready(), warmup=0, repeats=3,
                           min_seconds=args.min_seconds)
      ours = args.batch / sec
    else:
      compile_s = 0.0
      rng = np.random.default_rng(0)
      i = [0]

      def one():
        shift.host_fn(images[i[0] % len(images)], rng)
        i[0] += 1
      sec = common.time_fn(one, warmup=1, repeats=3, min_seconds=args.min_seconds)
      ours = 1 / sec
    reference = None
    if ref is not None and args.res == "imagenet":
      pil = [Image.fromarray(im) for im in images[:4]]
      j = [0]

      def ref_one():
        np.asarray(getattr(ref, name)(pil[j[0] % len(pil)], args.severity))
        j[0] += 1
      reference = 1 / common.time_fn(ref_one, warmup=1, repeats=1,
                                     min_seconds=args.min_seconds)
    speed = ours / reference if reference else None
    print(f"| {name} | {shift.kind} | {ours:,.1f} | "
          f"{'n/a' if reference is None else f'{reference:,.1f}'} | "
          f"{'n/a' if speed is None else f'{speed:,.1f}x'} |", flush=True)
    rows.append({"corruption": name, "kind": shift.kind, "ours_images_per_s": ours,
                 "reference_images_per_s": reference, "speedup": speed,
                 "compile_s": round(compile_s, 2)})
  device = [r["speedup"] for r in rows if r["kind"] == "device" and r["speedup"]]
  if device:
    print(f"device-side: median speedup {np.median(device):.1f}x, min {min(device):.1f}x "
          "(target >= 10x)")
  if ref is None:
    print("reference not measured: `pip install imagecorruptions` (a test dependency)")
  common.record(args.out, "corruptions", {"severity": args.severity, "batch": args.batch,
                                          "res": args.res, "rows": rows})
