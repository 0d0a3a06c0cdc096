"""The offline demo: every suite on held-out handwritten digits, models trained here.

    python -m jaxbench.main --config=configs/demo.py --workdir=runs/demo
    python -m jaxbench.demo --workdir=runs/demo          # same, one workdir per suite

Needs no network: the images are scikit-learn's digits (shipped in its wheel),
the models are trained on first use and cached under runs/demo/models
(``JAXBENCH_DEMO_CACHE`` moves it): ``demo_clip`` (a small CLIP trained
contrastively with the real CLIP tokenizer, evaluated zero-shot) and three
``demo_cnn`` supervised baselines trained for different numbers of steps (the
effective-robustness baseline needs at least three supervised models).

What runs on the 547 held-out digits (``digits``, label space 'digits10'):
  zeroshot     clean top-1; CLIP zero-shot with digit templates
  synthetic    3 CIFAR-10-C corruptions x 5 severities, generated on the fly
  typographic  ``digits_t``: another digit's word or numeral written on each image
  adv          BIM (white-box) at 5 epsilons, Square (score-based, 100 queries) at 2
and the report (``report/report.md``, effective robustness against the CNNs).

``get_config(arg)``: no arg, one config with every pass (each row's suite is
derived from its pass, ``suite='auto'``); ``zeroshot``, ``synthetic``,
``typographic`` or ``adv``: that suite only (what the driver runs, one workdir
each). Built from ``jaxbench.configs.base``: sequences are tuples and the
command line overrides ``models``, ``datasets``, ``transforms`` and ``data_root``
as for every suite.
"""
import ml_collections

from jaxbench import configs

PARTS = ("zeroshot", "synthetic", "typographic", "adv")

MODELS = ("demo_clip", "demo_cnn(steps=100)", "demo_cnn(steps=200)", "demo_cnn")
TEMPLATES = ("a photo of the number {}.", "a handwritten digit {}.",
             "a picture of the number {}.", "a small handwritten {}.")
CORRUPTIONS = ("impulse_noise", "contrast", "fog")
BIM_EPS = (1, 2, 4, 8, 16)         # / 255, L-inf, pixel space
SQUARE_EPS = (8, 16)               # / 255
SQUARE_QUERIES = 100


def _transforms(part):
  if part == "zeroshot":
    return ("clean",)
  if part == "synthetic":
    return tuple(f"shift:cifar10_c(corruption='{c}', severity={s})"
                 for c in CORRUPTIONS for s in range(1, 6))
  if part == "adv":
    return (tuple(f"attack:bim(eps={e}/255)" for e in BIM_EPS)
            + tuple(f"attack:square(eps={e}/255, n_queries={SQUARE_QUERIES})"
                    for e in SQUARE_EPS))
  raise ValueError(part)


def get_config(arg=None):
  part = configs.parse_args(arg, "configs/demo.py", presets=PARTS + ("all",),
                            default_preset="all").preset
  c = configs.base("auto", models=MODELS, templates=TEMPLATES)
  # The engine imports this first: it registers demo_clip/demo_cnn and digits/digits_t.
  c.plugins = ("jaxbench.demo",)
  c.batch_size = 256
  c.num_workers = 2
  if part == "all":
    c.datasets = ("digits", "digits_t")
    c.transforms = _transforms("zeroshot") + _transforms("synthetic") + _transforms("adv")
    # One config, every suite: each row's suite is derived from its pass, and the
    # typographic set is evaluated clean only.
    c.dataset_transforms = ml_collections.ConfigDict({"digits_t": ("clean",)})
    c.report = True
  else:
    c.suite = part
    c.datasets = ("digits_t",) if part == "typographic" else ("digits",)
    c.transforms = ("clean",) if part == "typographic" else _transforms(part)
    c.report = False
  return c
