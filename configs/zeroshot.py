"""Zero-shot (or supervised) top-1/top-5 of models on ImageNet-style sets.

    python -m jaxbench.main --config=configs/zeroshot.py --workdir=runs/zs \
      --config.models="('clip_vit_b32',)" \
      --config.datasets="(\"imagenet(root='~/data/imagenet/val')\",)"
"""
import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.suite = "zeroshot"
  c.seed = 0
  # Sequences are tuples: ml_collections overrides tuples from the command line
  # (--config.models="('clip_vit_b32', 'clip_vit_b16')"), not lists.
  c.models = ("clip_vit_b32",)
  c.zeroshot = ml_collections.ConfigDict(dict(classnames="imagenet", templates="clip80",
                                              head="imagenet", logit_scale="model"))
  c.preprocess = ""
  c.datasets = ("imagenet",)
  c.data_root = "~/data"   # sets are looked up under their official folder names here
  c.transforms = ("clean",)
  c.batch_size = 128
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  c.param_sharding = "replicate"
  c.checkpoint_every = 50
  c.log_every = 10
  c.num_workers = 8
  c.precision = "float32"
  c.max_examples = -1
  c.report = False
  c.workdir_policy = "strict"
  if arg == "roz":   # RoZ: fixed logit scale 100, CLIP preprocessing for every model
    c.zeroshot.logit_scale = "100"
    c.preprocess = "clip"
  return c
