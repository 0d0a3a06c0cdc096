"""Writing on one image: :func:`render` chooses the word, places it and draws it.

Two renderers. ``'opencv'`` draws the variant's font (:mod:`.hershey`) on the
image itself, at its resolution: with supersample 1 and no outline, binary
pixels exactly as RoZ's putText (ImageNet-T); otherwise text is rasterised on a
``supersample``-times canvas and area-averaged back (anti-aliased), then alpha
composited, so pixels away from the text keep their exact values (the 32x32
``'on_image'`` CIFAR-10-T preset, and the on-the-fly shift, which must keep the
image size). ``'roz_matplotlib'`` is RoZ's CIFAR-10-T figure: matplotlib draws
the image and the text and the whole 960x720 figure (axes, ticks, white margins)
is the dataset image ('Times New Roman' falls back to matplotlib's default face
where it is not installed; the resolved font file is recorded).

Variants beyond RoZ (fields of :class:`~jaxbench.typographic.variants.Variant`):
number of placements, font and scale, colour, outline, position policy
('random', 'centered', 'large' = one big word), and the text itself
('other_class' = the attack, 'true_class' = control that should not hurt,
'random_word' = non-class word control, 'random_class' = any eligible class
(label-free, for on-the-fly use), 'fixed').
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Optional

import cv2
import numpy as np

from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.hershey import put_texts, renderer_name
from jaxbench.typographic.layout import Layout, fits, layout, roz_matplotlib_origins
from jaxbench.typographic.text import choose_text
from jaxbench.typographic.variants import Variant
from jaxbench.typographic.vocabulary import Vocabulary


def _text_mask(shape_hw, text, font, lay: Layout) -> np.ndarray:
  """uint8 {0, 255} canvas mask of the text drawn at every origin of ``lay``."""
  mask = np.zeros(shape_hw, np.uint8)
  put_texts(mask, text, lay.origins, font, lay.scale, 255, lay.thickness)
  return mask


def _coverage(mask: np.ndarray, supersample: int) -> np.ndarray:
  """Canvas mask -> float32 coverage in [0, 1] at output resolution."""
  a = mask.astype(np.float32) / 255.0
  if supersample > 1:
    hh, ww = mask.shape[0] // supersample, mask.shape[1] // supersample
    a = cv2.resize(a, (ww, hh), interpolation=cv2.INTER_AREA)
  return a


def outline_radius(lay: Layout, variant: Variant) -> int:
  """Outline width in canvas pixels (scaled with the font for policy 'large')."""
  if not variant.outline:
    return 0
  factor = lay.scale / variant.scale if variant.policy == "large" else 1.0
  return max(1, int(round(variant.outline * factor)))


def draw(image: np.ndarray, text: str, lay: Layout, variant: Variant) -> np.ndarray:
  """Composites the text (and outline) onto a copy of ``image``.

  The outline is the text mask dilated by the outline radius (a thicker
  putText would also move the glyphs: OpenCV's advance grows with thickness).

  Args:
    image: uint8 (H, W, 3) RGB.
    text: the word.
    lay: canvas layout (canvas = image size x ``variant.supersample``).
    variant: colours, outline, font.

  Returns:
    uint8 (H, W, 3): the image with the text; pixels with no text coverage are
    unchanged. With supersample 1 and no outline this is :func:`put_text` on
    the image (OpenCV <= 4's putText for Hershey fonts).
  """
  k = variant.supersample
  r = outline_radius(lay, variant)
  if k == 1 and not r:
    # Binary text, RoZ's exact drawing: putText straight onto a copy.
    out = np.ascontiguousarray(image).copy()
    put_texts(out, text, lay.origins, variant.font, lay.scale, variant.color, lay.thickness)
    return out
  mask = _text_mask((image.shape[0] * k, image.shape[1] * k), text, variant.font, lay)
  layers = []
  if r:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    layers.append((cv2.dilate(mask, kernel), variant.outline_color))
  layers.append((mask, variant.color))
  out = image.copy()
  for m, color in layers:
    a = _coverage(m, k)
    sel = a > 0  # blend only covered pixels; the rest stay bit-identical
    av = a[sel][:, None]
    blended = out[sel].astype(np.float32) * (1.0 - av) + np.asarray(color, np.float32) * av
    out[sel] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
  return out


def ink_boxes(lay: Layout, variant: Variant) -> list[tuple[int, int, int, int]]:
  """Half-open canvas boxes that contain every pixel the text can touch.

  The sampling box excludes the baseline (RoZ); descenders reach ``baseline``
  below y and strokes spill ``thickness`` pixels around the glyph outline.
  """
  w, h, baseline = lay.size
  m = lay.thickness + outline_radius(lay, variant) + 2
  return [(x - m, y - h - m, x + w + m, y + baseline + m) for x, y in lay.origins]


# ----------------------------------------------------------------------------
# RoZ's matplotlib CIFAR-10-T rendering.

_ROZ_FONT = {"color": "white", "size": 20, "family": "Times New Roman"}


def roz_matplotlib_render(image: np.ndarray, text: str, origins, color="white") -> np.ndarray:
  """RoZ's figure: imshow of the image plus plt.text at each origin, 960x720.

  Default rcParams figure (6.4 x 4.8 in) at 150 dpi, axes and ticks kept, as
  ``plt.savefig(path, pad_inches=0, dpi=150)`` produced. Font: Times New Roman
  size 20 when installed, otherwise matplotlib's fallback (recorded by
  :func:`roz_matplotlib_font`).

  Returns:
    uint8 (720, 960, 3) RGB.
  """
  import matplotlib
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
  with matplotlib.rc_context(matplotlib.rcParamsDefault):
    fig = Figure(figsize=(6.4, 4.8), dpi=150)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.imshow(image)
    font = dict(_ROZ_FONT, color=color)
    for x, y in origins:
      ax.text(x, y, text, fontdict=font)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
  return np.ascontiguousarray(rgba[..., :3])


def roz_matplotlib_font() -> str:
  """The font file matplotlib resolves for RoZ's font dict on this machine."""
  from matplotlib import font_manager
  logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
  props = font_manager.FontProperties(family=_ROZ_FONT["family"], size=_ROZ_FONT["size"])
  return os.path.basename(font_manager.findfont(props))


# ----------------------------------------------------------------------------
# One example.


@dataclasses.dataclass(frozen=True)
class Rendered:
  """The result of writing on one image.

  Attributes:
    image: uint8 (H', W', 3) RGB, or None when skipped. H', W' = input size
      (opencv) or 720, 960 (roz_matplotlib).
    text: the written word ('' when skipped before choosing).
    written_label: the class the text names, -1 for non-class text.
    skipped: '' or the reason ('text_does_not_fit', 'no_room').
    placements: output-pixel (x, y) bottom-left origins (floats when
      supersampled; matplotlib data coordinates for roz_matplotlib).
    box: (w, h, baseline) in output pixels (sampling box, baseline excluded).
    ink: output-pixel (x0, y0, x1, y1) boxes containing all text pixels.
    font: font facts for the manifest.
  """
  image: Optional[np.ndarray]
  text: str
  written_label: int
  skipped: str = ""
  placements: tuple = ()
  box: tuple = ()
  ink: tuple = ()
  font: dict = dataclasses.field(default_factory=dict)

  def manifest_fields(self) -> dict:
    d = {"text": self.text, "written_label": self.written_label}
    if self.skipped:
      d["skipped"] = self.skipped
    else:
      d.update(placements=[list(p) for p in self.placements], box=list(self.box),
               ink=[list(b) for b in self.ink])
    return d


def _scaled(v, k):
  return v if k == 1 else round(v / k, 3)


def render(image: np.ndarray, variant: Variant, vocab: Vocabulary, label: Optional[int],
           label_rng: np.random.Generator, place_rng: np.random.Generator,
           written_label: Optional[int] = None) -> Rendered:
  """Writes the variant's text on one image.

  Args:
    image: uint8 (H, W, 3) RGB (grayscale/alpha/CMYK sources must be converted
      to RGB first; the generator records their original mode).
    variant: what and how to write.
    vocab: the class vocabulary.
    label: true class or None (label-free text modes only).
    label_rng: the example's label stream (chooses the word).
    place_rng: the example's placement stream.
    written_label: write this class instead of choosing (RoZ's published record).

  Returns:
    a :class:`Rendered`.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise TypographicError(
        f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}; convert "
        "grayscale/RGBA/CMYK sources with PIL .convert('RGB') first")
  k = variant.supersample
  if written_label is not None:
    if not 0 <= written_label < vocab.num_classes:
      raise TypographicError(f"written label {written_label} outside 0..{vocab.num_classes - 1}")
    text, written = vocab.words[written_label], int(written_label)
  else:
    text, written = choose_text(variant, vocab, label, label_rng,
                                fits=functools.partial(fits, variant=variant,
                                                       height=image.shape[0] * k,
                                                       width=image.shape[1] * k))
  if variant.renderer == "roz_matplotlib":
    origins = roz_matplotlib_origins(text, place_rng, variant.count, variant.max_tries)
    if origins is None:
      return Rendered(None, text, written, "no_room")
    color = "#%02x%02x%02x" % variant.color
    out = roz_matplotlib_render(image, text, origins, color)
    return Rendered(out, text, written, "", tuple(origins), (len(text) / 6 * 5, 2, 0), (),
                    {"renderer": "matplotlib", "family": _ROZ_FONT["family"],
                     "resolved": roz_matplotlib_font(), "size": _ROZ_FONT["size"], "dpi": 150})
  lay, reason = layout(variant, text, image.shape[0] * k, image.shape[1] * k, place_rng)
  if lay is None:
    return Rendered(None, text, written, reason)
  out = draw(image, text, lay, variant)
  font = {"renderer": renderer_name(variant.font), "face": variant.font,
          "scale": round(lay.scale, 6),
          "thickness": lay.thickness, "measure_thickness": variant.measure_thickness,
          "color": list(variant.color), "outline": variant.outline,
          "outline_color": list(variant.outline_color), "supersample": k}
  return Rendered(
      out, text, written, "",
      tuple((_scaled(x, k), _scaled(y, k)) for x, y in lay.origins),
      tuple(_scaled(v, k) for v in lay.size),
      tuple(tuple(_scaled(v, k) for v in b) for b in ink_boxes(lay, variant)),
      font)
