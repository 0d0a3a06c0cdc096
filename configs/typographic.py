r"""Typographic attacks (RoZ ImageNet-T and CIFAR-10-T): generate if absent, then evaluate.

    python -m jaxbench.main --workdir=runs/typographic \
      --config=configs/typographic.py:imagenet_src=~/data/imagenet/val,cifar_src=~/data/cifar-10-batches-bin,root=~/data/typographic

The dataset specs carry ``src``: resolving one generates the set under
``root/<kind>_seed<seed>`` when it is not there yet (deterministic from the
seed and each image id; a folder holding another seed's set is refused), then
reads it back. Metrics: 'top1' (prediction = true class) and 'success_rate'
(prediction = written class), plus per-variant 'top1/<v>' and
'success_rate/<v>' when several variants are evaluated.

RoZ's protocol (protocol.md §1.4): CLIP's own preprocessing for every model,
supervised baselines included (``preprocess='clip'``), logit scale 100, and
zero-shot heads with the 80 ImageNet templates on both sets (CLIP's ImageNet
names on ImageNet-T, the CIFAR-10 names on CIFAR-10-T). Beyond RoZ, run again
with ``templates=cifar10`` for CLIP's 18 CIFAR-10 templates (the templates are
part of the model's results key, so both runs share a workdir with
``--config.workdir_policy=extend``). Supervised ImageNet models have no
CIFAR-10 head: give them ``cifar_src=none``.

Config argument (comma-separated key=value, all optional):
  imagenet_src, cifar_src: sources to generate from ('' = the set must already
    exist under root; 'none' = leave that set out).
  root: parent folder of the generated sets (default ~/data/typographic).
  variants: '+'-separated variant presets, e.g. roz+true_class+random_word
    (default roz; see jaxbench.typographic.variants.PRESETS).
  models: '+'-separated model specs (default clip_vit_b32).
  templates: 'clip80' (default, RoZ) or 'cifar10' (CLIP's CIFAR-10 templates).
  seed, max_examples, batch_size, workers: ints (workers: generation processes).
"""

from jaxbench import configs

_DEFAULTS = dict(imagenet_src="", cifar_src="", root="~/data/typographic", variants="roz",
                 models="clip_vit_b32", templates="clip80", seed=0, max_examples=-1,
                 batch_size=128, workers=0)


def _dataset_spec(kind, root, src, seed, variants, workers, max_examples):
  args = [f"root={root + '/' + kind + '_seed' + str(seed)!r}"]
  if src:
    args.append(f"src={src!r}")
  args += [f"seed={seed}", f"variants={tuple(variants)!r}"]
  if workers:
    args.append(f"workers={workers}")
  if max_examples >= 0:
    args.append(f"max_examples={max_examples}")
  return f"{kind}({', '.join(args)})"


def get_config(arg=None):
  a = configs.parse_args(arg, "configs/typographic.py", values=_DEFAULTS).values
  seed, max_examples = a["seed"], a["max_examples"]
  variants = [v for v in a["variants"].split("+") if v]
  if a["templates"] not in ("clip80", "cifar10"):
    raise ValueError(f"configs/typographic.py: templates={a['templates']!r}, expected "
                     "'clip80' or 'cifar10'")
  datasets = []
  for kind, src in (("imagenet_t", a["imagenet_src"]), ("cifar10_t", a["cifar_src"])):
    if src == "none":
      continue
    spec = _dataset_spec(kind, a["root"], src, seed, variants, int(a["workers"]), max_examples)
    datasets.append(spec)
  if not datasets:
    raise ValueError("configs/typographic.py: both sets are 'none'")
  # ImageNet-T: the ImageNet head; CIFAR-10-T: a head over the set's class names.
  config = configs.roz(configs.base("typographic", models=configs.split_models(a["models"]),
                                    datasets=datasets, templates=a["templates"]))
  config.seed = seed
  config.batch_size = int(a["batch_size"])
  config.max_examples = max_examples
  # No suite section: the dataset specs above carry the sets and their variants, and
  # the metrics come from each set's sequence_metric_fn.
  return config
