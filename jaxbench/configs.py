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
  """A config with every engine key at its default; suites override what they need.

  The keys, their defaults and what they do are declared once, in
  :data:`jaxbench.engine.keys.ENGINE`.

  Args:
    suite: the suite that runs the config (``jaxbench.suites.SUITES``: 'zeroshot',
      'natural', 'synthetic', 'typographic', 'adv', 'overlap', 'clip_auto',
      'linear_probe'), or 'auto' (each row's suite derived from its pass).
  """
  from jaxbench.engine import keys
  c = keys.base_config()
  c.suite = suite
  c.models = tuple(models)
  # A new section: templates may be a tuple of template strings, not only a set name.
  c.zeroshot = ml_collections.ConfigDict({**c.zeroshot.to_dict(), "templates": templates})
  c.datasets = tuple(datasets)
  c.transforms = tuple(transforms)
  return c


def section(suite: str, name: str) -> ml_collections.ConfigDict:
  """The config section ``name`` that ``suite`` declares, at its defaults.

  Config files start from it and set what their presets change; the keys and
  defaults live in the suite's module (``jaxbench.suites.<suite>.SECTIONS``).
  """
  from jaxbench import suites
  from jaxbench.engine import keys
  return keys.to_config({name: suites.SUITES.get(suite).sections[name]})[name]


def roz(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """RoZ's zero-shot protocol: fixed logit scale 100, CLIP preprocessing for every model."""
  c.zeroshot.logit_scale = "100"
  c.preprocess = "clip"
  return c
