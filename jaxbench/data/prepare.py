"""Fill the prepared-set cache ahead of time, several sizes from one decode.

    python -m jaxbench.data.prepare --cache=~/prepared \\
        --datasets="imagenet_r(root='/data/imagenet-r')" --sizes=224,288,384 \\
        [--interpolation=bicubic] [--crop=center] [--resize_ratio=1.0] [--verify]

Each size S gets the spec ``Preprocess(size=S, resize=round(S * resize_ratio),
interpolation, crop)``; a pass whose model preprocessing has the same spec then
reads the cache when run with ``--config.prepared_cache=<same dir>``. With
``--verify``, every entry's files are checked against their CRC32 afterwards.
"""
from __future__ import annotations

import sys
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("cache", None, "cache root directory")
flags.DEFINE_list("datasets", [], "dataset specs (as in config.datasets)")
flags.DEFINE_list("sizes", ["224"], "crop sizes to prepare")
flags.DEFINE_string("interpolation", "bicubic", "resize filter")
flags.DEFINE_string("crop", "center", "'center' or 'squash'")
flags.DEFINE_float("resize_ratio", 1.0, "short side before the crop = size * ratio")
flags.DEFINE_string("data_root", "~/data", "where named sets are found")
flags.DEFINE_integer("num_workers", 8, "decode threads")
flags.DEFINE_bool("verify", False, "check every file's CRC32 after building")


def main(argv):
  del argv
  from jaxbench.data import catalog, prepared
  from jaxbench.models.api import Preprocess
  if not FLAGS.cache or not FLAGS.datasets:
    raise app.UsageError("--cache and --datasets are required")
  pps = [Preprocess(size=int(s), resize=int(round(int(s) * FLAGS.resize_ratio)),
                    interpolation=FLAGS.interpolation, crop=FLAGS.crop) for s in FLAGS.sizes]
  for spec in FLAGS.datasets:
    evalset = catalog.get(spec, data_root=FLAGS.data_root or None)
    t0 = time.perf_counter()
    paths = prepared.build(FLAGS.cache, evalset, pps, num_threads=FLAGS.num_workers)
    dt = time.perf_counter() - t0
    for pp, path in zip(pps, paths):
      if FLAGS.verify:
        prepared.verify(path)
      print(f"{evalset.name}: {len(evalset)} examples, {pp.size}px -> {path}")
    logging.info("%s prepared in %.1fs (%.1f images/s)", evalset.name, dt,
                 len(evalset) / max(dt, 1e-9))


if __name__ == "__main__":
  app.run(main, argv=sys.argv)
