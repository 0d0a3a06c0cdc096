r"""Adversarial attacks: RoZ's eleven (default) or a pixel-space suite.

    python -m jaxbench.main --config=configs/adv.py --workdir=runs/adv
    python -m jaxbench.main --config=configs/adv.py:pixel --workdir=runs/adv_pixel
    python -m jaxbench.main --config=configs/adv.py:min_eps,models=roz --workdir=runs/adv_v2

Presets (first config argument):
  roz (default): RoZ's 11 attacks exactly as its code runs them (protocol.md
    §1.3): 5 white-box (FGSM, BIM, MIM, DIM, DeepFool), 2 score-based (NES,
    SPSA; q = 100 antithetic directions, sigma = 0.001) and 4 transfer
    (FGSM/BIM/MIM/DIM crafted on torchvision ResNet-152). eps = 8/255 as an
    L-inf radius in CLIP-*normalised* units with the clamp [-1.8, 2.15]; step
    0.15*eps; BIM/NES/SPSA iterations int(min(eps*255 + 4, 1.25*eps*255)) = 10;
    MIM/DIM 19 updates (9 in transfer); per-example early stop on the victim
    (white-box and score-based; transfer checks only at the end); DeepFool
    over all 1000 classes, overshoot 0.02, <= 50 iterations. Every model,
    supervised baselines included, gets CLIP's preprocessing, and zero-shot
    logits use RoZ's fixed scale 100.
  min_eps: RoZ's second mode: per-example binary search for the minimal eps,
    reported as the median (grids {1..9}/1000 white-box with 20 steps,
    {1..600}/1000 transfer ({1..100}/1000 FGSM), {1..10}/1000 NES,
    {1..30}/1000 SPSA, all 20 steps); DeepFool's minimal ||r||_inf comes with
    every DeepFool row (``median_min_eps``).
  pixel: modern pixel-space threat models, each model with its own
    preprocessing: L-inf eps in {1, 2, 4}/255 (PGD-20 and AutoAttack-style
    APGD-CE + APGD-T + Square) and L2 eps in {0.1, 0.5} (PGD-20, APGD-CE).

Further arguments (comma-separated key=value): models ('+'-separated specs,
'roz' = RoZ's six CLIP backbones and its supervised baselines; default
clip_vit_b32), max_examples, batch_size, seed.

Like every suite, the config takes ``--config.models``, ``--config.datasets``,
``--config.transforms`` (tuples of spec strings) and ``--config.data_root``
overrides; ImageNet val is found under data_root (``imagenet`` in
data_root/imagenet/val), or name it: ``--config.datasets="(\"imagenet(root='/x/val')\",)"``.

Attacks that stop per example (iterative attacks: BIM/MIM/DIM/PGD with early
stop, NES/SPSA, Square, DeepFool, APGD, transfer, min_eps) can run with survivor
refill (``--config.attack.refill=True``, ``config.attack.chunk_steps`` iterations
between refills, declared by :mod:`jaxbench.suites.adv`; jaxbench/engine/refill.py):
per-example outputs as the fixed per-batch loop's, each row's ``details.refill``
says whether it ran and how full the batch stayed (``occupancy``); ensembles and
C&W run the fixed loop (the row says why). Off by default: 1.5-1.6x the fixed
loop on loaded CPU cores, not yet re-measured on a quiet machine. Results rows: clean_acc, robust_acc,
success_rate, norms and queries per attack (jaxbench.attacks.metrics), with
the sanity checks (jaxbench.attacks.checks) in each row's details.
"""
from jaxbench import configs

ROZ_MODELS = ("clip_rn50", "clip_rn101", "clip_rn50x4", "clip_rn50x16", "clip_vit_b32",
              "clip_vit_b16", "resnet50_tv", "resnet101_tv", "vgg16_tv", "vgg19_tv",
              "effnet_b3", "vit_b32_384")
PRESETS = ("roz", "min_eps", "pixel")
_DEFAULTS = dict(models="clip_vit_b32", max_examples=-1, batch_size=64, seed=0)

# RoZ: eps = 8/255 in CLIP-normalised units, bounds [-1.8, 2.15] (the default
# bounds of space='normalized').
_N = "eps=8/255, space='normalized'"
_SURROGATE = "resnet152_tv"


def roz_transforms():
  """RoZ's 11 attacks as transform specs (5 white-box, 2 score-based, 4 transfer)."""
  white = [f"fgsm({_N})", f"bim({_N})", f"mim({_N})", f"dim({_N})", f"deepfool({_N})"]
  score = [f"nes({_N}, q=100, sigma=0.001)", f"spsa({_N}, q=100, sigma=0.001)"]
  transfer = [f"transfer(attack={a!r}, surrogate={_SURROGATE!r}, {_N})"
              for a in ("fgsm", "bim", "mim(steps=9)", "dim(steps=9)")]
  return tuple("attack:" + s for s in white + score + transfer)


def _grid(k):
  return "(" + ", ".join(f"{i}/1000" for i in range(1, k + 1)) + ")"


def min_eps_transforms():
  """RoZ's minimal-eps ("V2") searches."""
  sp = "space='normalized'"
  specs = [f"min_eps(attack={a!r}, grid={_grid(9)}, {sp})"
           for a in ("fgsm", "bim(steps=20)", "mim", "dim")]
  specs += [f"min_eps(attack=\"transfer(attack='fgsm', surrogate='{_SURROGATE}')\", "
            f"grid={_grid(100)}, {sp})"]
  specs += [f"min_eps(attack=\"transfer(attack={a!r}, surrogate='{_SURROGATE}')\", "
            f"grid={_grid(600)}, {sp})"
            # RoZ's search runs BIM with 20 steps at every radius, not the eps rule.
            for a in ("bim(steps=20)", "mim(steps=9)", "dim(steps=9)")]
  specs += [f"min_eps(attack='nes(steps=20, q=100, sigma=0.001)', grid={_grid(10)}, {sp})",
            f"min_eps(attack='spsa(steps=20, q=100, sigma=0.001)', grid={_grid(30)}, {sp})",
            f"deepfool({_N})"]
  return tuple("attack:" + s for s in specs)


def pixel_transforms():
  """Pixel-space L-inf {1, 2, 4}/255 and L2 {0.1, 0.5}."""
  specs = []
  for e in (1, 2, 4):
    specs += [f"pgd(eps={e}/255, steps=20)", f"autoattack(eps={e}/255)"]
  for e in (0.1, 0.5):
    specs += [f"pgd(eps={e}, norm='l2', steps=20)", f"apgd_ce(eps={e}, norm='l2')"]
  return tuple("attack:" + s for s in specs)


def get_config(arg=None):
  args = configs.parse_args(arg, "configs/adv.py", presets=PRESETS, default_preset="roz",
                            values=_DEFAULTS)
  preset, a = args.preset, args.values
  pixel = preset == "pixel"
  transforms = {"roz": roz_transforms, "min_eps": min_eps_transforms,
                "pixel": pixel_transforms}[preset]()
  config = configs.base("adv", models=configs.split_models(a["models"], ROZ_MODELS),
                        datasets=("imagenet",), transforms=transforms)
  if not pixel:
    configs.roz(config)   # logit scale 100, CLIP preprocessing for every model
  config.seed = a["seed"]
  config.batch_size = a["batch_size"]
  config.max_examples = a["max_examples"]

  # Per-example early-stopping attacks keep the compiled batch full of unfinished
  # examples (config.attack.refill, chunk_steps: jaxbench.attacks.refill).
  config.attack = configs.section("adv", "attack")
  config.attack.preset = preset
  # RoZ settings, recorded with the config (the specs above carry them).
  config.attack.roz = dict(
      eps=8 / 255, space="normalized", bounds=(-1.8, 2.15), step_ratio=0.15,
      steps_rule="int(min(eps*255 + 4, 1.25*eps*255))", mim_updates=19,
      transfer_mim_updates=9, q=100, sigma=0.001, deepfool_overshoot=0.02,
      deepfool_max_iters=50, surrogate=_SURROGATE, surrogate_preprocess="victim")
  return config
