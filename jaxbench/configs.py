"""The settings every suite config shares (configs/*.py start from :func:`base`).

Sequence fields are tuples: ml_collections overrides tuples from the command line
(``--config.models="('clip_vit_b32', 'clip_vit_b16')"``) but not lists.
"""
import ml_collections


def base(suite: str, *, models=("clip_vit_b32",), datasets=("imagenet",),
         transforms=("clean",), templates: str = "clip80") -> ml_collections.ConfigDict:
  """A config with every runner key at its default; suites override what they need.

  Args:
    suite: the rows' suite name ('zeroshot', 'natural', 'synthetic', 'typographic',
      'adv', 'overlap', 'clip_auto'), or 'auto' (derived per transform).
  """
  c = ml_collections.ConfigDict()
  c.suite = suite
  c.seed = 0
  c.models = tuple(models)
  c.zeroshot = ml_collections.ConfigDict(dict(classnames="imagenet", templates=templates,
                                              head="imagenet", logit_scale="model"))
  c.preprocess = ""            # '' each model's own; 'clip' CLIP's for every model (RoZ)
  c.data_root = "~/data"       # sets are found here under their official folder names
  c.tfds_dir = ""              # fallback TFDS data_dir
  c.datasets = tuple(datasets)
  c.transforms = tuple(transforms)
  c.batch_size = 128           # global; rounded up to a multiple of the data-parallel size
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  c.param_sharding = "replicate"   # or 'fsdp' over the mesh's model axis
  c.checkpoint_every = 50      # batches between progress checkpoints
  c.log_every = 10
  c.num_workers = 8            # grain reader threads per process
  c.precision = "float32"
  c.max_examples = -1
  c.report = False
  c.workdir_policy = "strict"
  return c


def roz(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """RoZ's zero-shot protocol: fixed logit scale 100, CLIP preprocessing for every model."""
  c.zeroshot.logit_scale = "100"
  c.preprocess = "clip"
  return c
