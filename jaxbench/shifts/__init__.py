"""Shifts: transforms applied to clean images (ImageNet-C corruptions, typographic text, ...).

One registry, ``SHIFTS``, maps spec strings to shift objects:

    jaxbench.shifts.get("imagenet_c(corruption='fog', severity=3)")
    jaxbench.shifts.get("corrupt(name='fog', severity=3, res='cifar')")

A shift object has either a device-side ``device_fn(keys, images) -> images``
(jittable; keys (N,) per-example keys, images float32 [0, 1] NHWC) or a
host-side ``host_fn(image_uint8_HWC, rng) -> uint8 HWC`` (``rng`` a
``np.random.Generator`` seeded from (seed, example id)), plus ``spec`` (its
canonical spec string) and ``provenance`` (a dict recorded with result rows).

This module stays import-light (no JAX): the modules that define shifts register
themselves when first needed. Other modules add entries with
``jaxbench.shifts.SHIFTS.register(name)``; those above this floor (the typographic
shift) are found through the package root's plugin table, ``jaxbench.PLUGINS['shifts']``.
"""
from __future__ import annotations

import importlib
from typing import Any

import jaxbench
from jaxbench.registry import Registry, parse

SHIFTS = Registry("shift")

# Modules whose import registers shifts; loaded lazily by get()/names().
_BUILTIN_MODULES = (
    "jaxbench.shifts.corruptions",
)


def _load_builtin() -> None:
  for module in _BUILTIN_MODULES:
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      # An optional module that does not exist yet; a missing dependency
      # inside an existing module is a real error.
      if e.name != module:
        raise
  jaxbench.load_plugins("shifts")


def get(spec: str, **overrides) -> Any:
  """Builds the shift a spec string names (e.g. ``imagenet_c(corruption='fog', severity=3)``)."""
  name = parse(spec)[0]
  if name not in SHIFTS:
    _load_builtin()
  return SHIFTS.get(spec, **overrides)


def names() -> list[str]:
  """All registered shift names (loads the built-in shift modules)."""
  _load_builtin()
  return SHIFTS.names()
