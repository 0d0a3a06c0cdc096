"""The offline demo: a small CLIP and CNN baselines trained here on scikit-learn's digits.

``python -m jaxbench.main --config=configs/demo.py --workdir=runs/demo`` (or the
driver ``python -m jaxbench.demo --workdir=runs/demo``) trains the models on
first use (cached), then runs the benchmark's suites on the held-out digits and
writes the report. Modules:

  digits.py   the image set: ids, fixed split, upscaling, captions, written text
  sources.py  evaluation sets ``digits`` and ``digits_t`` (typographic attack)
  train.py    optax training of the CLIP (contrastive) and the CNN baseline
  export.py   Flax CLIP params -> transformers-layout checkpoint
  cnn.py      the CNN and its ``jaxbench-cnn`` checkpoint layout
  cache.py    complete / half-written checkpoints, resumable training state
  models.py   the ``demo_clip`` / ``demo_cnn`` model specs (``demo:`` layout)

Importing this package registers the model specs and the datasets.
"""
from jaxbench.demo import models as _models  # noqa: F401  (registers demo_clip, demo_cnn)
from jaxbench.demo import sources as _sources  # noqa: F401  (registers digits, digits_t)
