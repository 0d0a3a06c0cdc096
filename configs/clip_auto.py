"""CLIP-Auto: learn prompts on a k-shot ImageNet train split, then evaluate with them.

    python -m jaxbench.main --config=configs/clip_auto.py --workdir=runs/auto \
      --config.data_root=/data \
      --config.clip_auto.train="image_folder(root='/data/imagenet/train')"
    python -m jaxbench.main --config=configs/clip_auto.py:coop --workdir=runs/coop

The training set is any labelled dataset spec of ``jaxbench.data.catalog``: an
ImageNet train tree (``image_folder(root=...)``, wnid folders) or a prepared TFDS
copy (``tfds(name='imagenet2012', split='train', data_dir=...)``). The learning
step (``jaxbench.zeroshot.learned.clip_auto.learn``) writes
``WORKDIR/clip_auto/<model>.json`` (and the k-shot split, by ids); evaluation reads
it through ``zeroshot.templates='learned:auto'``. The learning step alone:

    python -m jaxbench.zeroshot.learned.clip_auto --config=configs/clip_auto.py --workdir=runs/auto

Any suite evaluates learned prompts the same way, e.g.
``--config.zeroshot.templates=learned:runs/auto/clip_auto/clip_vit_b32.json`` on
configs/adv.py, or RoZ's published prompts with
``--config.zeroshot.templates=learned:/path/RoZ/scripts/.../Prompts/ViT-B_32.log``
(append ``:N`` to ensemble the N most frequent).

Config args (``configs/clip_auto.py:ARG``): 'autoprompt' (default; RoZ's
CLIP-Auto: 4 discrete tokens, RoZ's protocol of logits x100 and CLIP
preprocessing), 'coop' (CoOp, shared context), 'coop_csc' (class-specific).
"""
from jaxbench import configs

DATASETS = ("imagenet", "imagenet_v2(variant='matched-frequency')", "imagenet_r",
            "imagenet_sketch", "imagenet_a", "objectnet")


def get_config(arg=None):
  arg = configs.parse_args(arg, "configs/clip_auto.py",
                           presets=("autoprompt", "coop", "coop_csc"),
                           default_preset="autoprompt").preset
  c = configs.base("clip_auto", datasets=DATASETS, templates="learned:auto")
  if arg == "autoprompt":
    configs.roz(c)
  # The section's keys and defaults: jaxbench.suites.clip_auto (AutoPrompt's with
  # RoZ's 4 tokens and 40 candidates; CoOp's SGD 0.002, cosine, batch 32).
  c.clip_auto = configs.section("clip_auto", "clip_auto")
  c.clip_auto.method = "coop" if arg.startswith("coop") else "autoprompt"
  c.clip_auto.coop.class_specific = arg == "coop_csc"
  return c
