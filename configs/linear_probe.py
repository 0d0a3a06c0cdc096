"""Trained heads: learn a head on frozen features of each backbone, then evaluate it.

    python -m jaxbench.main --config=configs/linear_probe.py --workdir=runs/lp \
      --config.data_root=~/data
    python -m jaxbench.main --config=configs/linear_probe.py:roz --workdir=runs/roz_sup
    python -m jaxbench.main --config=configs/linear_probe.py --workdir=runs/lp --dry_run

The learning phase (:mod:`jaxbench.heads.learn`) computes each backbone's features
of ``linear_probe.train`` once (``WORKDIR/features/``, resumable), fits the head and
writes ``WORKDIR/heads/<backbone>.safetensors``; the passes then evaluate the
models ``probe:WORKDIR/heads/<backbone>.safetensors`` on ``datasets`` (any suite's
sets and transforms; attacks differentiate through backbone + head). A head file
is a model spec on its own: ``--config.models=probe:runs/lp/heads/clip_vit_b32.safetensors``
on configs/adv.py attacks it.

Config args (``configs/linear_probe.py:ARG``):
* 'clip' (default): RoZ's CLIP_LP: the CLIP paper's linear probe (L-BFGS logistic
  regression, C swept on a validation split, refit on train + val) on CLIP
  image embeddings of CIFAR-10 train (``clip_rn50``, ``clip_rn101``,
  ``clip_rn50x4``, ``clip_vit_b32``), evaluated on CIFAR-10, CIFAR-10.1, CIFAR-10-C.
* 'roz': RoZ's CIFAR-10 supervised baselines: a new 10-way head on frozen ImageNet
  backbones, AdamW lr 0.02, batch 32, 50 epochs, lr/1.5 on a rising epoch loss,
  epoch chosen on the test set (recorded), BatchNorm in train mode (batch statistics,
  running averages updated and saved with the head; the training images are held in
  memory: 7.5 GB for CIFAR-10 at 224 px), CLIP preprocessing for every model.
* 'clean': the same optimiser, epoch chosen on a validation split, BatchNorm frozen
  (features computed once).
"""
from jaxbench import configs
from jaxbench.data.cifar import CIFAR10_C_CORRUPTIONS

CLIP_BACKBONES = ("clip_rn50", "clip_rn101", "clip_rn50x4", "clip_vit_b32")
SUPERVISED_BACKBONES = ("resnet50_tv", "resnet101_tv", "resnet152_tv")
DATASETS = ("cifar10", "cifar10_1") + tuple(
    f"cifar10_c(corruption='{c}', severity={s})" for c in CIFAR10_C_CORRUPTIONS
    for s in range(1, 6))


def get_config(arg=None):
  arg = configs.parse_args(arg, "configs/linear_probe.py", presets=("clip", "roz", "clean"),
                           default_preset="clip").preset
  models = CLIP_BACKBONES if arg == "clip" else SUPERVISED_BACKBONES
  # The linear_probe suite learns the heads first; its rows carry suite "synthetic":
  # the report reads CIFAR-10-C rows (and the clean cifar10 row) there.
  c = configs.base("linear_probe", models=models, datasets=DATASETS)
  c.preprocess = "clip"          # RoZ feeds every model CLIP's preprocessing
  # The section's keys and defaults: jaxbench.suites.linear_probe.
  c.linear_probe = configs.section("linear_probe", "linear_probe")
  c.linear_probe.method = "logreg" if arg == "clip" else "head"
  c.linear_probe.preset = "clean" if arg != "roz" else "roz"
  return c
