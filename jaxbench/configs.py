"""The settings every suite config shares (configs/*.py start from :func:`base`).

Sequence fields are tuples: ml_collections overrides tuples from the command line
(``--config.models="('clip_vit_b32', 'clip_vit_b16')"``) but not lists. Every
suite takes the same overrides: ``--config.models``, ``--config.datasets``,
``--config.transforms`` (tuples of spec strings) and ``--config.data_root``.

Config-file arguments (``--config=configs/adv.py:min_eps,models=roz``) are read by
one parser, :func:`parse_args`: comma-separated tokens, each a preset name (first
token only), an option flag, or ``key=value``.
"""
import dataclasses
from typing import Mapping, Optional, Sequence

import ml_collections


@dataclasses.dataclass(frozen=True)
class Args:
  """A parsed config-file argument string.

  Attributes:
    preset: the preset named (or the default preset).
    options: the option flags given.
    values: every key's value, typed like its default (int or str).
  """
  preset: Optional[str]
  options: frozenset
  values: dict


def parse_args(arg: Optional[str], where: str, *, presets: Sequence[str] = (),
               default_preset: Optional[str] = None, options: Sequence[str] = (),
               values: Optional[Mapping[str, object]] = None) -> Args:
  """Parses a config file's argument string (the part after ``file.py:``).

  Args:
    arg: the argument string, or None.
    where: the config file, for messages (``configs/adv.py``).
    presets: names one of which may be the first token.
    default_preset: the preset when none is named.
    options: flag names that may appear anywhere (``roz``, ``no_controls``).
    values: ``key=value`` keys with their defaults; a value is converted to the
      default's type (int defaults take ints).

  Returns:
    The parsed :class:`Args`.

  Raises:
    ValueError: a token that is neither a preset, an option nor a known key, a
      repeated key, or a value of the wrong type -- naming what is accepted.
  """
  defaults = dict(values or {})
  tokens = [t.strip() for t in (arg or "").split(",") if t.strip()]
  preset = default_preset
  if tokens and presets and "=" not in tokens[0] and tokens[0] not in options:
    preset = tokens.pop(0)
    if preset not in presets:
      raise ValueError(f"{where}:{arg}: unknown preset {preset!r}; expected one of "
                       f"{list(presets)}")
  accepted = []
  if presets:
    accepted.append(f"a preset first ({', '.join(presets)})")
  if options:
    accepted.append(f"options {list(options)}")
  if defaults:
    accepted.append(f"key=value with key one of {sorted(defaults)}")
  accepted_text = "; ".join(accepted) or "no arguments"
  given_options, given = set(), {}
  for token in tokens:
    key, sep, value = token.partition("=")
    key = key.strip()
    if not sep and key in options:
      given_options.add(key)
      continue
    if not sep:   # a word that is no preset/option
      raise ValueError(f"{where}:{arg}: unknown config args [{token!r}]; accepted: "
                       f"{accepted_text}")
    if key not in defaults:
      raise ValueError(f"{where}:{arg}: bad argument {token!r}; accepted: {accepted_text}")
    if key in given:
      raise ValueError(f"{where}:{arg}: {key!r} given twice")
    default = defaults[key]
    if isinstance(default, int) and not isinstance(default, bool):
      try:
        given[key] = int(value)
      except ValueError:
        raise ValueError(f"{where}:{arg}: {key}={value!r} is not an integer") from None
    else:
      given[key] = value
  return Args(preset, frozenset(given_options), {**defaults, **given})


def split_models(text: str, roz_models: Sequence[str] = ()) -> tuple:
  """'+'-separated model specs from a config argument; 'roz' = ``roz_models``."""
  models = tuple(m for m in text.split("+") if m)
  return tuple(roz_models) if roz_models and models == ("roz",) else models


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
  c.decode_processes = 0       # >0: decode in this many worker processes (grain mp_prefetch)
  c.prepared_cache = ""        # dir of decoded+cropped pixels (jaxbench.data.prepared); '' off
  c.jpeg_draft = False         # opt-in faster JPEG decoding at reduced DCT scale: NOT
                               # pixel-exact; recorded in each row's provenance
  c.precision = "float32"
  c.max_examples = -1
  c.report = False
  c.workdir_policy = "strict"
  c.on_data_change = "error"   # or 'restart': a pass whose data changed starts over
  return c


def roz(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """RoZ's zero-shot protocol: fixed logit scale 100, CLIP preprocessing for every model."""
  c.zeroshot.logit_scale = "100"
  c.preprocess = "clip"
  return c
