"""Named class-name lists and prompt templates.

Resources (``jaxbench/resources``):
  * ``clip_imagenet.json``: the 1000 CLIP-curated ImageNet class names and the
    80 CLIP templates (``clip80``), the 7-template forward-selected subset
    (``clip7``) and ``photo`` ('a photo of a {}.'), from OpenAI's prompt
    engineering notebook.
  * other JSON files with ``classnames`` / ``templates`` keys registered by
    suites (CIFAR-10 prompts for the typographic suite, ...).

Specs: ``classnames='imagenet'`` or a list; ``templates='clip80'|'clip7'|'photo'``
or a list of strings with one ``{}``.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Sequence, Union

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")

# name -> (resource file, key inside 'templates' or None for classnames)
_CLASSNAME_SETS = {"imagenet": "clip_imagenet.json", "cifar10": "cifar10_prompts.json"}
_TEMPLATE_SETS = {"clip80": ("clip_imagenet.json", "clip80"),
                  "clip7": ("clip_imagenet.json", "clip7"),
                  "photo": ("clip_imagenet.json", "photo"),
                  "cifar10": ("cifar10_prompts.json", "cifar10")}


@functools.lru_cache(maxsize=None)
def _resource(name: str) -> dict:
  path = os.path.join(RESOURCES, name)
  with open(path) as f:
    return json.load(f)


def classnames(spec: Union[str, Sequence[str]]) -> tuple[str, ...]:
  """Class names for a named set or an explicit list."""
  if not isinstance(spec, str):
    return tuple(spec)
  if spec not in _CLASSNAME_SETS:
    raise ValueError(f"unknown class-name set {spec!r}; known: {sorted(_CLASSNAME_SETS)} "
                     "or an explicit list")
  return tuple(_resource(_CLASSNAME_SETS[spec])["classnames"])


def templates(spec: Union[str, Sequence[str]]) -> tuple[str, ...]:
  """Prompt templates for a named set or an explicit list (each with one '{}')."""
  if isinstance(spec, str):
    if spec not in _TEMPLATE_SETS:
      raise ValueError(f"unknown template set {spec!r}; known: {sorted(_TEMPLATE_SETS)} "
                       "or an explicit list")
    file, key = _TEMPLATE_SETS[spec]
    out = tuple(_resource(file)["templates"][key])
  else:
    out = tuple(spec)
  bad = [t for t in out if t.count("{}") != 1]
  if bad:
    raise ValueError(f"templates must contain exactly one '{{}}': {bad}")
  return out


def prompts(names: Sequence[str], temps: Sequence[str]) -> list[str]:
  """All class x template prompts, class-major: [c0t0, c0t1, ..., c1t0, ...]."""
  return [t.format(c) for c in names for t in temps]
