"""ImageNet-T generation throughput (images/s) on ImageNet-size JPEGs.

    python -m jaxbench.bench typographic [--n=600] [--workers=0,1,2] [--out=bench_results.jsonl]

Figures, side by side, on the same synthetic 500x375 JPEGs (ImageNet val's
typical size, quality 90, 4 wnid folders):
  * reference: RoZ's builder loop as its script runs it: one process,
    cv2.imread, label draw with the fit check, 8 corner-checked putText calls,
    cv2.imwrite (re-implemented here from protocol.md §1.4);
  * ``jaxbench.typographic.generate.generate`` with 0 (in process) and k grain worker
    processes (the pipeline's workers), manifest and header included; the wall
    rate includes grain's worker start-up (seconds: workers re-import the
    package), the steady rate counts from the first finished image;
  * the on-the-fly host shift (PIL decode + ``host_fn``, no encode, no write).
The machine is shared with other jobs, so figures are noisy; compare columns of
one run, not runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import cv2
import numpy as np

from jaxbench.bench import common


def _make_jpegs(root: str, n: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  wnids = ["n01440764", "n01443537", "n01484850", "n01491361"]
  yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
  for i in range(n):
    # Smooth content plus noise: JPEG sizes close to natural photos (~100 KB).
    f = rng.uniform(0.005, 0.05, 4)
    img = np.stack([127 + 100 * np.sin(f[c] * xx + f[3] * yy + c) for c in range(3)], -1)
    img += rng.normal(0, 20, img.shape)
    folder = os.path.join(root, wnids[i % 4])
    os.makedirs(folder, exist_ok=True)
    cv2.imwrite(os.path.join(folder, f"ILSVRC2012_val_{i:08d}.JPEG"),
                np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _roz_reference(src: str, dst: str, eligible, words, wnids) -> int:
  """RoZ's sequential loop (semantics of build_imgNet_dataset.py)."""
  font = cv2.FONT_HERSHEY_DUPLEX
  rng = np.random.default_rng(0)
  done = 0
  for folder in sorted(os.listdir(src)):
    label = wnids.index(folder)
    os.makedirs(os.path.join(dst, folder), exist_ok=True)
    for name in sorted(os.listdir(os.path.join(src, folder))):
      image = cv2.imread(os.path.join(src, folder, name))
      cands = [c for c in eligible if c != label]
      text = words[cands[rng.integers(len(cands))]]
      (w, h), _ = cv2.getTextSize(text, font, 0.8, 2)
      height, width = image.shape[:2]
      if width - w <= 0 or h >= height:
        continue
      pts = []

      def inside(x, y):
        return any(p[0] < x < p[0] + w and p[1] - h < y < p[1] for p in pts)

      for _ in range(8):
        while True:
          x, y = int(rng.integers(0, width - w)), int(rng.integers(h, height))
          if not (inside(x, y) or inside(x + w, y) or inside(x, y - h) or inside(x + w, y - h)):
            break
        pts.append((x, y))
        cv2.putText(image, text, (x, y), font, 0.8, (255, 255, 255), 1)
      cv2.imwrite(os.path.join(dst, folder, name), image)
      done += 1
  return done


def main(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxbench.bench typographic")
  parser.add_argument("--n", type=int, default=600, help="number of source JPEGs")
  parser.add_argument("--workers", default="0,1,2", help="grain worker counts to time")
  parser.add_argument("--out", default="bench_results.jsonl")
  args = parser.parse_args(argv[1:])

  # pylint: disable=g-import-not-at-top
  from jaxbench.typographic import codec, generate, shift, text, vocabulary
  # pylint: enable=g-import-not-at-top

  tmp = tempfile.mkdtemp(prefix="bench_typo_")
  try:
    src = os.path.join(tmp, "src")
    _make_jpegs(src, args.n)
    vocab = vocabulary.vocabulary("imagenet_t")
    rows = []

    t0 = time.perf_counter()
    done = _roz_reference(src, os.path.join(tmp, "roz"), vocab.eligible, vocab.words, vocab.wnids)
    dt = time.perf_counter() - t0
    rows.append(("RoZ loop (reference)", 1, done / dt, done / dt, dt))

    for k in [int(w) for w in args.workers.split(",")]:
      dst = os.path.join(tmp, f"ours{k}")
      t0 = time.perf_counter()
      header = generate.generate(src, dst, "imagenet_t", seed=0, workers=k, log=None)
      dt = time.perf_counter() - t0
      n_out, tm = header["counts"]["written"], header["timing"]
      steady = (n_out - 1) / max(tm["total_s"] - tm["first_s"], 1e-9)
      rows.append((f"jaxbench generate, workers={k}", max(k, 1), n_out / dt, steady, dt))

    shift_fn = shift.TypographicShift.create("imagenet_t", "random_class")
    files = [os.path.join(dp, f) for dp, _, fs in sorted(os.walk(src)) for f in sorted(fs)]
    datas = [open(p, "rb").read() for p in files]
    t0 = time.perf_counter()
    for i, data in enumerate(datas):
      image, _ = codec.decode_rgb(data)
      shift_fn.host_fn(image, text.example_rng(0, str(i)))
    dt = time.perf_counter() - t0
    rows.append(("on-the-fly host_fn (decode+draw)", 1, len(datas) / dt, len(datas) / dt, dt))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)

  print(f"ImageNet-T generation, {args.n} JPEGs 500x375 ({os.cpu_count()} CPUs, shared machine)")
  print("| method | processes | images/s (wall) | images/s (after first image) | wall s |")
  print("|---|---|---|---|---|")
  for name, procs, rate, steady, dt in rows:
    print(f"| {name} | {procs} | {rate:.1f} | {steady:.1f} | {dt:.2f} |")
  common.record(args.out, "typographic",
                {"n": args.n, "rows": [dict(method=r[0], processes=r[1], images_per_s=r[2],
                                            steady_images_per_s=r[3], wall_s=r[4])
                                       for r in rows]})
