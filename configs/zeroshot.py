"""Zero-shot (or supervised) top-1/top-5 of models on ImageNet-style sets.

    python -m jaxbench.main --config=configs/zeroshot.py --workdir=runs/zs \
      --config.models="('clip_vit_b32',)" \
      --config.datasets="(\"imagenet(root='~/data/imagenet/val')\",)"

``--config=configs/zeroshot.py:roz`` uses RoZ's protocol (logit scale 100, CLIP
preprocessing for every model).
"""
from jaxbench import configs


def get_config(arg=None):
  args = configs.parse_args(arg, "configs/zeroshot.py", options=("roz",))
  c = configs.base("zeroshot")
  if "roz" in args.options:
    configs.roz(c)
  return c
