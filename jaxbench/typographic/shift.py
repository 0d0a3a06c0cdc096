"""The on-the-fly typographic shift: ``shift:typographic(...)`` in a config.

Registered in :data:`jaxbench.shifts.SHIFTS` as ``typographic`` when this
module is imported; ``jaxbench.shifts`` imports it when a spec names a shift it
does not know yet, through the package root's plugin table
(``jaxbench.PLUGINS['shifts']``; see :mod:`jaxbench.typographic`), so the shift
floor never names this package.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import cv2
import numpy as np

from jaxbench import registry as registry_lib
from jaxbench.typographic.errors import TextDoesNotFit, TypographicError
from jaxbench.typographic.render import Rendered, render
from jaxbench.typographic.variants import Variant, parse_variant
from jaxbench.typographic.vocabulary import vocabulary


class _HostFn:
  """The pipeline's host-shift callable; ``stage`` tells it where to apply it."""

  def __init__(self, shift: "TypographicShift"):
    self._shift = shift
    self.stage = shift.stage

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rend = self._shift.apply(np.asarray(image), None, rng)
    return image if rend.skipped else rend.image


@dataclasses.dataclass(frozen=True)
class TypographicShift:
  """Host-side shift: ``host_fn(image_uint8, rng) -> image_uint8``.

  The pipeline seeds ``rng`` from (run seed, example id). ``host_fn`` knows no
  label, so it needs a label-free text mode; the default writes a random
  eligible class (which may be the true class, with probability 1/309 on
  ImageNet). ``host_fn_record(record, rng)`` sees the record's 'label', writes
  another class (RoZ's attack) and adds 'written_label' / 'typographic_text'
  metadata, so attack success can be scored on the fly by a caller that keeps
  records (the generated sets do this offline).

  Attributes:
    kind: vocabulary ('imagenet_t' or 'cifar10_t').
    variant: the rendering (opencv renderer only: the output keeps the size).
    on_skip: 'raise' (TextDoesNotFit: the pipeline marks the example bad and
      records it) or 'keep' (return the image unchanged; host_fn_record also
      sets 'typographic_skipped').
    stage: 'raw' (write on the decoded original-resolution image, as RoZ) or
      'model_input' (write on the resized/cropped model input).
    spec: canonical spec string (results key).
  """
  kind: str = "imagenet_t"
  variant: Variant = Variant(text="random_class")
  on_skip: str = "raise"
  stage: str = "raw"
  spec: str = "typographic"

  def __post_init__(self):
    vocabulary(self.kind)
    if self.variant.renderer != "opencv":
      raise TypographicError("the on-the-fly shift supports renderer='opencv' only "
                             f"(got {self.variant.renderer!r}): it must keep the image size")
    if self.on_skip not in ("raise", "keep"):
      raise TypographicError(f"on_skip={self.on_skip!r}, expected 'raise' or 'keep'")
    if self.stage not in ("raw", "model_input"):
      raise TypographicError(f"stage={self.stage!r}, expected 'raw' or 'model_input'")

  @classmethod
  def create(cls, kind: str = "imagenet_t", variant: str = "random_class",
             on_skip: str = "raise", stage: str = "raw", **fields) -> "TypographicShift":
    """Registry factory, e.g. ``typographic(kind='cifar10_t', variant='random_word', count=2)``.

    ``variant`` is a variant spec (preset or ``typo(...)``); further keyword
    arguments override Variant fields.
    """
    _, v = parse_variant(variant, kind)
    if fields:
      try:
        v = v.replace(**fields)
      except TypeError as e:
        raise TypographicError(f"typographic shift: {e}") from e
    if v.renderer == "roz_matplotlib" and "renderer" not in fields and \
        "roz_matplotlib" not in variant:
      v = v.replace(renderer="opencv")   # the kind default; on the fly: on the image
    kwargs = {"kind": kind, "variant": variant, **fields}
    if on_skip != "raise":
      kwargs["on_skip"] = on_skip
    if stage != "raw":
      kwargs["stage"] = stage
    return cls(kind, v, on_skip, stage, registry_lib.format_spec("typographic", (), kwargs))

  @property
  def provenance(self) -> dict:
    return {"kind": self.kind, "variant": dataclasses.asdict(self.variant),
            "on_skip": self.on_skip, "stage": self.stage, "opencv": cv2.__version__}

  def apply(self, image: np.ndarray, label: Optional[int],
            rng: np.random.Generator) -> Rendered:
    """Renders with one rng for both streams; raises TextDoesNotFit per on_skip."""
    rend = render(image, self.variant, vocabulary(self.kind), label, rng, rng)
    if rend.skipped and self.on_skip == "raise":
      raise TextDoesNotFit(f"typographic shift: {rend.text!r} cannot be placed on a "
                           f"{image.shape[1]}x{image.shape[0]} image ({rend.skipped})")
    return rend

  @property
  def host_fn(self) -> _HostFn:
    """``(uint8 (H, W, 3), rng) -> uint8 (H, W, 3)`` with the text written."""
    return _HostFn(self)

  def host_fn_record(self, record: dict, rng: np.random.Generator) -> dict:
    """A record with 'image' (uint8 RGB) and 'label' -> the record with the text
    written and 'written_label', 'typographic_text' (and 'typographic_skipped')."""
    if "image" not in record:
      raise TypographicError("host_fn_record needs a decoded 'image' (uint8 HWC RGB) record")
    label = int(record["label"]) if self.variant.text in ("other_class", "true_class") else None
    rend = self.apply(np.asarray(record["image"]), label, rng)
    out = dict(record, written_label=rend.written_label, typographic_text=rend.text)
    if rend.skipped:
      out["typographic_skipped"] = rend.skipped
    else:
      out["image"] = rend.image
    return out


def register(registry=None) -> None:
  """Registers ``typographic(...)`` in the shift registry (idempotent).

  Runs when this module is imported (``jaxbench.shifts`` imports it lazily
  through ``jaxbench.PLUGINS['shifts']``); ``registry`` is for tests.
  """
  if registry is None:
    from jaxbench import shifts  # pylint: disable=g-import-not-at-top
    registry = shifts.SHIFTS
  if "typographic" not in registry:
    registry.register("typographic", TypographicShift.create)


register()
