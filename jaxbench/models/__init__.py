"""Model loading: ``jaxbench.models.load(spec)``.

A spec names a checkpoint in one of the supported layouts:

* ``hf:REPO`` or a local directory holding ``config.json`` (transformers layout:
  CLIP, SigLIP, ViT, ResNet);
* ``openclip:REPO`` or a directory with ``open_clip_config.json`` (OpenCLIP layout);
* ``timm:REPO`` or a directory whose ``config.json`` has ``pretrained_cfg`` (timm);
* a registry name (``clip_vit_b32``) mapped to one of the above with a revision;
* ``probe:PATH`` or a ``.safetensors`` head file path: a trained head on the backbone
  the file names (the layout :mod:`jaxbench.heads.model` registers when imported; the
  engine always imports it, see :mod:`jaxbench.engine.plugins`).

Options ride along as spec arguments: ``hf:openai/clip-vit-base-patch32`` takes
``revision=``, ``precision='bfloat16'``. Layout loaders register themselves in
:data:`LAYOUTS`; each is ``load(ref, revision=None, **options) -> Model`` plus a
``detect(files) -> bool`` used for local directories.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Callable, Optional

import jaxbench
from jaxbench import registry
from jaxbench.models.api import Model, Preprocess  # noqa: F401  (public)
from jaxbench.models.hub import WeightsError  # noqa: F401  (public)


@dataclasses.dataclass(frozen=True)
class Layout:
  name: str
  prefix: str                           # 'hf', 'openclip', 'timm'
  detect: Callable[[list[str], str], bool]   # (file names, local dir) -> is this layout
  load: Callable[..., Model]            # (ref, revision=None, **options) -> Model
  priority: int = 0                     # higher is tried first for local dirs


LAYOUTS: dict[str, Layout] = {}
# Registry names (clip_vit_b32, resnet50_tv, ...): name -> full spec string.
NAMES = registry.Registry("model name")

# This package's modules that register layouts and names when imported. Modules of
# higher floors register themselves when imported: built-in ones (trained heads) are
# listed in the package root's table ``jaxbench.PLUGINS['models']``, optional ones
# (the demo) are named by a config's ``plugins`` (jaxbench.engine.plugins).
_PLUGINS = ("jaxbench.models.clip", "jaxbench.models.zoo")


def register_layout(layout: Layout):
  LAYOUTS[layout.name] = layout
  return layout


def _load_plugins():
  for mod in _PLUGINS:
    try:
      importlib.import_module(mod)
    except ModuleNotFoundError as e:
      if e.name != mod:
        raise
  jaxbench.load_plugins("models")   # higher floors' layouts (trained heads)


def known() -> list[str]:
  """Registry names of known models."""
  _load_plugins()
  return NAMES.names()


def load(spec: str, *, revision: Optional[str] = None, **options) -> Model:
  """Loads a model from a spec string (see module docstring).

  Raises:
    jaxbench.registry.SpecError: unknown name or prefix (lists what is known).
    WeightsError: files missing, offline without cache, pickle-only repos.
  """
  _load_plugins()
  name, args, kwargs = registry.parse(spec)
  kwargs.update(options)
  if revision is not None:
    kwargs["revision"] = revision
  if args:
    raise registry.SpecError(f"model spec {spec!r}: use keyword arguments only")
  if name in NAMES:
    target = NAMES.factory(name)()
    tname, _, tkwargs = registry.parse(target)
    return _load_ref(tname, {**tkwargs, **kwargs}, spec)
  return _load_ref(name, kwargs, spec)


def check(spec: str) -> None:
  """Checks that a spec names a loadable model, without reading any weights.

  Registry names, ``prefix:REPO`` forms with a known prefix and local directories
  in a known layout pass (hub repos are not contacted: that happens at load time).

  Raises:
    jaxbench.registry.SpecError: unknown name (with the closest registry names and
      the known list), unknown prefix, positional arguments, or a directory in no
      known layout.
  """
  import difflib
  _load_plugins()
  name, args, _ = registry.parse(spec)
  if args:
    raise registry.SpecError(f"model spec {spec!r}: use keyword arguments only")
  if name in NAMES:
    return
  prefix, sep, _ = name.partition(":")
  prefixes = {l.prefix for l in LAYOUTS.values()}
  if sep and prefix in prefixes:
    return
  path = os.path.expanduser(name)
  if name.endswith(".safetensors") and os.path.isfile(path) and "probe" in LAYOUTS:
    return   # a trained head file (it names its own backbone)
  if os.path.isdir(path):
    files = _files(name, None)
    if any(l.detect(files, name) for l in LAYOUTS.values()):
      return
    raise registry.SpecError(
        f"directory {name!r} is in no known checkpoint layout: expected config.json "
        "(transformers or timm) or open_clip_config.json with safetensors weights; "
        f"found {files[:20]}")
  close = difflib.get_close_matches(name, NAMES.names(), n=3, cutoff=0.6)
  hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
  where = (f"no such directory {path!r}; " if os.sep in name or name.startswith(("~", "."))
           else "")
  raise registry.SpecError(
      f"unknown model {name!r}: {where}{hint}use a registry name "
      f"({', '.join(NAMES.names())}), one of {sorted(p + ':REPO' for p in prefixes)}, "
      "or a local checkpoint directory")


def _load_ref(name: str, kwargs: dict, spec: str) -> Model:
  revision = kwargs.pop("revision", None)
  prefix, sep, ref = name.partition(":")
  if sep and prefix in {l.prefix for l in LAYOUTS.values()}:
    candidates = [l for l in LAYOUTS.values() if l.prefix == prefix]
    if len(candidates) == 1:
      return candidates[0].load(ref, revision=revision, spec=spec, **kwargs)
    files = _files(ref, revision)
    for layout in sorted(candidates, key=lambda l: -l.priority):
      if layout.detect(files, ref):
        return layout.load(ref, revision=revision, spec=spec, **kwargs)
    raise registry.SpecError(f"{ref!r} is not in any {prefix!r} layout "
                             f"({[l.name for l in candidates]}); files: {files}")
  if name.endswith(".safetensors") and os.path.isfile(os.path.expanduser(name)) \
      and "probe" in LAYOUTS:   # a trained head file names its own backbone
    return LAYOUTS["probe"].load(name, revision=revision, spec=spec, **kwargs)
  if os.path.isdir(os.path.expanduser(name)):
    files = _files(name, None)
    for layout in sorted(LAYOUTS.values(), key=lambda l: -l.priority):
      if layout.detect(files, name):
        return layout.load(name, revision=revision, spec=spec, **kwargs)
    raise registry.SpecError(
        f"directory {name!r} is in no known checkpoint layout: expected config.json "
        "(transformers or timm) or open_clip_config.json with safetensors weights; "
        f"found {files}")
  prefixes = sorted({l.prefix + ':REPO' for l in LAYOUTS.values()})
  raise registry.SpecError(
      f"unknown model {name!r}: use a registry name ({', '.join(NAMES.names())}), "
      f"one of {prefixes}, or a local checkpoint directory")


def _files(ref: str, revision):
  from jaxbench.models import hub
  return hub.list_files(ref, revision)
