"""Data overlap: near-duplicates of evaluation images in a pretraining corpus.

    python -m jaxbench.overlap --config=configs/overlap.py --workdir=runs/overlap \
      --config.overlap.corpus='/data/laion400m/{00000..00099}.tar' \
      --config.datasets="('imagenet_r', 'imagenet_sketch')"

(or ``python -m jaxbench.main``: both run the overlap suite, :mod:`jaxbench.suites.overlap`,
which declares the ``overlap`` section's keys and defaults). The corpus is
img2dataset/webdataset tar shards, a folder of images, or embedding files (``.npy`` + ids, or a store this suite wrote before under
WORKDIR/overlap/embeddings/). Every model in ``config.models`` is scored on the clean sets;
the overlap detector is ``config.overlap.detector`` (default: the first model).

Config args (``--config=configs/overlap.py:ARGS``, comma-separated):
  roz      RoZ's zero-shot protocol (logit scale 100, CLIP preprocessing).
  natural  the seven natural-shift sets of configs/natural.py as evaluation sets.
"""
import importlib.util
import os

from jaxbench import configs


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
  c.overlap = configs.section("overlap", "overlap")
  if "roz" in args:
    configs.roz(c)
  return c
