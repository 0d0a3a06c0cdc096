"""Data overlap: near-duplicates of evaluation images in a pretraining corpus.

    python -m jaxbench.overlap --config=configs/overlap.py --workdir=runs/overlap \
      --config.overlap.corpus='/data/laion400m/{00000..00099}.tar' \
      --config.datasets="('imagenet_r', 'imagenet_sketch')"

(or ``python -m jaxbench.main`` once it dispatches ``suite == 'overlap'`` to
``jaxbench.overlap.run.run``). The corpus is img2dataset/webdataset tar shards, a folder
of images, or embedding files (``.npy`` + ids, or a store this suite wrote before under
WORKDIR/overlap/embeddings/). Every model in ``config.models`` is scored on the clean sets;
the overlap detector is ``config.overlap.detector`` (default: the first model).

Config args (``--config=configs/overlap.py:ARGS``, comma-separated):
  roz      RoZ's zero-shot protocol (logit scale 100, CLIP preprocessing).
  natural  the seven natural-shift sets of configs/natural.py as evaluation sets.
"""
import importlib.util
import os

import ml_collections

from jaxbench import configs
from ml_collections import config_dict


def _natural_sets() -> tuple:
  """configs/natural.py's seven sets (loaded by path: configs/ is not a package)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "natural.py")
  spec = importlib.util.spec_from_file_location("_jaxbench_natural_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return tuple(mod.NATURAL)


def get_config(arg=None):
  args = configs.parse_args(arg, "configs/overlap.py", options=("roz", "natural")).options
  datasets = ("imagenet_r", "imagenet_sketch", "imagenet_a",
              "imagenet_v2(variant='matched-frequency')")
  if "natural" in args:
    datasets = _natural_sets()
  c = configs.base("overlap", datasets=datasets)
  c.suite_keys = ("overlap",)
  c.overlap = ml_collections.ConfigDict(dict(
      # Tar shards (a dir, 'dir/{00000..00099}.tar', 'dir/*.tar'), an image folder, a .npy
      # embedding file (+ NAME.ids.txt) or an embedding store directory.
      corpus="~/data/pretraining/{00000..00009}.tar",
      k=10,                     # neighbours kept per evaluation image
      # Cosine threshold; None = calibrate on synthetic near-duplicates of eval images.
      threshold=config_dict.placeholder(float),
      chunk=8192,               # corpus rows per search step per process
      detector="",              # model spec of the duplicate detector; '' = models[0]
      mode="auto",              # 'image' (encode_image), 'features' (apply), 'auto'
      hashes=("phash", "dhash"),
      hash_radius=config_dict.placeholder(dict),  # {'phash': 4, ...}; None = calibrate
      block=64,                 # rows per candidate block in the search (speed knob)
      query_block=512,          # queries per search tile (CPU cache; raise on GPU/TPU)
      store_chunk=65536,        # rows per embedding file
      store_dtype="float32",
      calibration=ml_collections.ConfigDict(dict(
          num=256, fpr=0.0, max_hash_distance=12,
          transforms=("resize", "jpeg", "crop", "jitter"))),
      gallery=200,              # pairs shown in the HTML review page (0 = none)
      workers=4,                # host threads decoding corpus images
  ))
  if "roz" in args:
    configs.roz(c)
  return c
