"""Where the text goes: RoZ's rejection-sampled placements, stacks, the fit test.

RoZ's ImageNet-T placement (defaults): 8 placements on the original-resolution
image, bottom-left origin x ~ U[0, W - w), y ~ U[h, H), each rejection-sampled,
as coded, until none of its 4 box corners lies *strictly* inside an earlier box
(``overlap='corners'``; boxes that share an x or a y may overlap), retrying
without limit (``max_tries=0``; the loop ends with probability 1, since the
first box's own position always passes). An image is skipped (and counted) when
``W - w <= 0 or h >= H`` (:func:`fits`). The box (w, h) is measured with
``getTextSize(..., thickness=2)``, baseline not included.

RoZ's CIFAR-10-T placement is in matplotlib data coordinates
(:func:`roz_matplotlib_origins`).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.hershey import text_size
from jaxbench.typographic.variants import Variant

# max_tries=0 (RoZ: retry forever) stops with an error after this many draws.
UNBOUNDED_STOP = 10_000_000


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where a word goes, in canvas pixels.

  Attributes:
    origins: ((x, y), ...) bottom-left text origins (y is the baseline).
    size: (w, h, baseline) from getTextSize with the measure thickness.
    scale: font scale used (differs from the variant's for policy 'large').
    thickness: stroke thickness used.
  """
  origins: tuple[tuple[int, int], ...]
  size: tuple[int, int, int]
  scale: float
  thickness: int

  def boxes(self) -> list[tuple[int, int, int, int]]:
    """Half-open (x0, y0, x1, y1) sampling boxes: [x, x+w) x [y-h, y)."""
    w, h, _ = self.size
    return [(x, y - h, x + w, y) for x, y in self.origins]


def _measure(text: str, font: str, scale: float, thickness: int) -> tuple[int, int, int]:
  return text_size(text, font, scale, thickness)


def _overlaps(a, b) -> bool:
  return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def corners_free(x, y, w, h, points) -> bool:
  """RoZ's check_point: no corner of the box at origin (x, y) lies strictly inside
  the box of an earlier origin (boxes [p0, p0 + w] x [p1 - h, p1])."""
  for cx, cy in ((x, y), (x + w, y), (x, y - h), (x + w, y - h)):
    for p0, p1 in points:
      if p0 < cx < p0 + w and p1 - h < cy < p1:
        return False
  return True


def _tries(max_tries: int, what: str):
  """range(max_tries), or RoZ's unbounded loop with a safety stop."""
  if max_tries:
    yield from range(max_tries)
    return
  yield from range(UNBOUNDED_STOP)
  raise TypographicError(f"{what}: no free position after {UNBOUNDED_STOP} draws "
                         "(max_tries=0, RoZ's unbounded retry)")


def sample_random(rng: np.random.Generator, height: int, width: int, w: int, h: int,
                  count: int, max_tries: int, overlap: str = "boxes"
                  ) -> Optional[list[tuple[int, int]]]:
  """RoZ's placement: x ~ U[0, W-w), y ~ U[h, H), rejection-sampled per ``overlap``.

  Args:
    overlap: 'corners' (RoZ's test, :func:`corners_free`) or 'boxes' (no two
      half-open boxes intersect).
    max_tries: draws per placement before giving up; 0 = no limit (RoZ).

  Returns:
    ``count`` (x, y) origins, or None when some placement found no free spot in
    ``max_tries`` draws.
  """
  origins, boxes = [], []
  for _ in range(count):
    for _ in _tries(max_tries, f"placing a {w}x{h} box on {width}x{height}"):
      x = int(rng.integers(0, width - w))
      y = int(rng.integers(h, height))
      box = (x, y - h, x + w, y)
      if overlap == "corners":
        if corners_free(x, y, w, h, origins):
          break
      elif not any(_overlaps(box, b) for b in boxes):
        break
    else:
      return None
    origins.append((x, y))
    boxes.append(box)
  return origins


def fits(text: str, variant: Variant, height: int, width: int) -> bool:
  """RoZ's fit test ``not (W - w <= 0 or h >= H)`` with the variant's measure."""
  if variant.renderer == "roz_matplotlib" or variant.policy != "random":
    return True      # RoZ's CIFAR builder never skips; other policies scale or stack
  w, h, _ = _measure(text, variant.font, variant.scale,
                     variant.measure_thickness + 2 * variant.outline)
  return not (width - w <= 0 or h >= height)


def layout(variant: Variant, text: str, height: int, width: int,
           rng: np.random.Generator) -> tuple[Optional[Layout], str]:
  """Places ``variant.count`` copies of ``text`` on a (height, width) canvas.

  Returns:
    (layout, '') or (None, reason) with reason 'text_does_not_fit' (the word is
    wider or taller than the canvas) or 'no_room' (rejection sampling ran out).
  """
  pad = 2 * variant.outline
  scale, thick, mthick = variant.scale, variant.thickness, variant.measure_thickness
  if variant.policy == "large":
    w0, _, _ = _measure(text, variant.font, scale, mthick + pad)
    factor = variant.large_width * width / max(w0, 1)
    scale = scale * factor
    thick = max(1, int(round(thick * factor)))
    mthick = max(1, int(round(mthick * factor)))
    pad = 2 * int(round(variant.outline * factor))
  w, h, baseline = _measure(text, variant.font, scale, mthick + pad)
  if width - w <= 0 or h >= height:
    return None, "text_does_not_fit"
  if variant.policy == "random":
    origins = sample_random(rng, height, width, w, h, variant.count, variant.max_tries,
                            variant.overlap)
    if origins is None:
      return None, "no_room"
  else:  # centered stack (policy 'large' is a stack of one)
    step = h + baseline + thick
    total = variant.count * h + (variant.count - 1) * (baseline + thick)
    if total >= height:
      return None, "text_does_not_fit"
    x = (width - w) // 2
    top = (height - total) // 2
    origins = [(x, top + h + i * step) for i in range(variant.count)]
  return Layout(tuple(origins), (w, h, baseline), float(scale), thick), ""


def roz_matplotlib_origins(text: str, rng: np.random.Generator, count: int = 4,
                           max_tries: int = 0) -> Optional[list[tuple[int, int]]]:
  """RoZ's CIFAR placement: x ~ randint(0, 24), y ~ randint(1, 32) in data
  coordinates, nominal box width len(text)/6*5 and height 2, corner test as in
  RoZ's script (strict inequalities); ``max_tries=0`` retries without limit."""
  width, height = len(text) / 6 * 5, 2
  pts = []
  for _ in range(count):
    for _ in _tries(max_tries, f"placing {text!r} on CIFAR-10-T"):
      x, y = int(rng.integers(0, 24)), int(rng.integers(1, 32))
      if corners_free(x, y, width, height, pts):
        break
    else:
      return None
    pts.append((x, y))
  return pts
