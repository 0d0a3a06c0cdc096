"""The text fonts: Hershey strokes as OpenCV <= 4 drew them, or the installed OpenCV's.

RoZ drew with opencv-python 4.1 (``FONT_HERSHEY_DUPLEX``). OpenCV 5 draws its
"Hershey" fonts with a different (TrueType) face and metrics, so the Hershey
Duplex strokes and metrics of OpenCV <= 4 are reproduced here from the glyph
data (``resources/hershey_duplex.json``): :func:`put_text` and
:func:`text_size` are pixel-identical to OpenCV 4.10 (tested). With them 'hen'
measures 48x18 and 'centipede' 124x18 at RoZ's scale 0.8, thickness 2 (OpenCV
5 reports 45x22 and 120x22).
"""
from __future__ import annotations

import functools
import json
import os

import cv2
import numpy as np

from jaxbench.typographic.errors import TypographicError

_RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")

# Fonts. RoZ drew with opencv-python 4.1 (FONT_HERSHEY_DUPLEX: thin Hershey
# strokes, LINE_8). OpenCV 5 replaced the Hershey fonts by an anti-aliased
# TrueType face with other metrics, so 'hershey_duplex' is rendered here from
# the Hershey glyph data exactly as OpenCV <= 4 did (pixel-identical to 4.10,
# tested). The 'cv2_*' fonts are whatever the installed OpenCV's putText draws
# (OpenCV 5: a bold sans), offered as a font variant.
HERSHEY_FONTS = {"hershey_duplex": "hershey_duplex.json"}
CV2_FONTS = {
    "cv2_simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "cv2_plain": cv2.FONT_HERSHEY_PLAIN,
    "cv2_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "cv2_complex": cv2.FONT_HERSHEY_COMPLEX,
    "cv2_triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "cv2_script_simplex": cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
}
FONTS = tuple(HERSHEY_FONTS) + tuple(CV2_FONTS)


_XY_SHIFT = 16  # OpenCV's fixed-point shift for sub-pixel polyline vertices


@functools.lru_cache(maxsize=None)
def _hershey(font: str) -> dict:
  with open(os.path.join(_RESOURCES, HERSHEY_FONTS[font])) as f:
    d = json.load(f)
  return {"glyphs": d["glyphs"], "cap": int(d["cap_line"]), "base": int(d["base_line"])}


def _hershey_chars(text: str):
  """Bytes of the UTF-8 text as OpenCV reads them: non-printable -> '?'."""
  for b in text.encode("utf-8"):
    yield chr(b) if 32 <= b < 127 else "?"


def text_size(text: str, font: str, scale: float, thickness: int) -> tuple[int, int, int]:
  """(width, height, baseline) of ``text``, as ``cv2.getTextSize``.

  For Hershey fonts this is OpenCV <= 4's formula: width = round(sum of glyph
  advances * scale + thickness), height = round((cap + base) * scale +
  (thickness + 1) // 2), baseline = round(base * scale + thickness / 2),
  rounding half to even as cvRound.
  """
  if font in CV2_FONTS:
    (w, h), baseline = cv2.getTextSize(text, CV2_FONTS[font], scale, thickness)
    return int(w), int(h), int(baseline)
  g = _hershey(font)
  view_x = 0.0
  for c in _hershey_chars(text):
    glyph = g["glyphs"][c]
    view_x += (ord(glyph[1]) - ord(glyph[0])) * scale
  return (int(round(view_x + thickness)), int(round((g["cap"] + g["base"]) * scale
                                                     + (thickness + 1) // 2)),
          int(round(g["base"] * scale + thickness * 0.5)))


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """C integer division (rounds toward zero) of int64 arrays, b > 0."""
  q = np.abs(a) // b
  return np.where(a < 0, -q, q)


def _clip_line(w: int, h: int, p1: list, p2: list) -> bool:
  """OpenCV's clipLine on 16.16 points (in place); False when nothing is left."""
  right, bottom = w - 1, h - 1
  x1, y1, x2, y2 = p1[0], p1[1], p2[0], p2[1]
  c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
  c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
  if (c1 & c2) == 0 and (c1 | c2) != 0:
    if c1 & 12:
      a = 0 if c1 < 8 else bottom
      x1 += int(float(a - y1) * (x2 - x1) / (y2 - y1))
      y1 = a
      c1 = (x1 < 0) + (x1 > right) * 2
    if c2 & 12:
      a = 0 if c2 < 8 else bottom
      x2 += int(float(a - y2) * (x2 - x1) / (y2 - y1))
      y2 = a
      c2 = (x2 < 0) + (x2 > right) * 2
    if (c1 & c2) == 0 and (c1 | c2) != 0:
      if c1:
        a = 0 if c1 == 1 else right
        y1 += int(float(a - x1) * (y2 - y1) / (x2 - x1))
        x1 = a
        c1 = 0
      if c2:
        a = 0 if c2 == 1 else right
        y2 += int(float(a - x2) * (y2 - y1) / (x2 - x1))
        x2 = a
        c2 = 0
  p1[:], p2[:] = [x1, y1], [x2, y2]
  return (c1 | c2) == 0


def _line2_pixels(segs: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixels OpenCV's Line2 (1-px LINE_8 lines between 16.16 points) sets.

  Args:
    segs: int64 (S, 4) segments x1, y1, x2, y2 in 16.16 fixed point.
    h, w: image size.

  Returns:
    (ys, xs) int arrays of the pixels inside the image.
  """
  half = 1 << (_XY_SHIFT - 1)
  sw, sh = w << _XY_SHIFT, h << _XY_SHIFT
  segs = segs.copy()
  outside = ((segs[:, [0, 2]] < 0) | (segs[:, [0, 2]] > sw - 1)).any(1) | \
            ((segs[:, [1, 3]] < 0) | (segs[:, [1, 3]] > sh - 1)).any(1)
  keep = np.ones(len(segs), bool)
  for i in np.nonzero(outside)[0]:  # rare: text touching the border
    p1, p2 = [int(segs[i, 0]), int(segs[i, 1])], [int(segs[i, 2]), int(segs[i, 3])]
    keep[i] = _clip_line(sw, sh, p1, p2)
    segs[i] = p1 + p2
  x1, y1, x2, y2 = segs[keep].T
  dx, dy = x2 - x1, y2 - y1
  xmajor = np.abs(dx) > np.abs(dy)
  # Walk along the major axis in increasing order (swap the ends otherwise).
  swap = np.where(xmajor, dx < 0, dy < 0)
  x1, x2 = np.where(swap, x2, x1), np.where(swap, x1, x2)
  y1, y2 = np.where(swap, y2, y1), np.where(swap, y1, y2)
  dx, dy = x2 - x1, y2 - y1
  major = np.where(xmajor, dx, dy)
  minor = np.where(xmajor, dy, dx)
  step = _trunc_div(minor << _XY_SHIFT, major | 1)
  count = (major >> _XY_SHIFT) + 1
  x1, y1 = x1 + half, y1 + half
  k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
  rep = lambda a: np.repeat(a, count)
  xm = rep(xmajor)
  xs = np.where(xm, (rep(x1) >> _XY_SHIFT) + k, (rep(x1) + k * rep(step)) >> _XY_SHIFT)
  ys = np.where(xm, (rep(y1) + k * rep(step)) >> _XY_SHIFT, (rep(y1) >> _XY_SHIFT) + k)
  # Line2 also sets the rounded end point.
  xs = np.concatenate([(x2 + half) >> _XY_SHIFT, xs])
  ys = np.concatenate([(y2 + half) >> _XY_SHIFT, ys])
  inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
  return ys[inside], xs[inside]


@functools.lru_cache(maxsize=4096)
def _hershey_strokes(font: str, text: str, scale: float) -> tuple[np.ndarray, ...]:
  """The text's polylines as int64 (P, 2) 16.16 points for an origin at (0, 0)."""
  g = _hershey(font)
  hscale = int(round(scale * (1 << _XY_SHIFT)))
  view_x, view_y = 0, -g["base"] * hscale
  strokes = []
  for c in _hershey_chars(text):
    glyph = g["glyphs"][c]
    left, right = ord(glyph[0]) - 82, ord(glyph[1]) - 82
    view_x -= left * hscale
    for stroke in glyph[2:].split(" "):
      if len(stroke) >= 4:   # a single point draws nothing
        pts = np.frombuffer(stroke.encode(), np.uint8).astype(np.int64).reshape(-1, 2) - 82
        strokes.append(pts * hscale + np.array([view_x, view_y]))
    view_x += right * hscale
  return tuple(strokes)


@functools.lru_cache(maxsize=4096)
def _hershey_segments(font: str, text: str, scale: float) -> np.ndarray:
  strokes = _hershey_strokes(font, text, scale)
  if not strokes:
    return np.zeros((0, 4), np.int64)
  return np.concatenate([np.concatenate([p[:-1], p[1:]], 1) for p in strokes])


def put_texts(img: np.ndarray, text: str, origins, font: str, scale: float, color,
              thickness: int) -> None:
  """Draws ``text`` in place at every baseline-left origin in ``origins`` (LINE_8).

  Hershey fonts follow OpenCV <= 4's putText: each glyph is a set of polylines
  in font units around 'R', scaled by round(scale * 2**16) in 16.16 fixed
  point. One-pixel strokes are rasterised as OpenCV 4's Line2 (with its
  clipping), bit-exact; thicker strokes (not used by RoZ) go through the
  installed OpenCV's ``polylines`` (also identical to OpenCV 4.10, tested).
  """
  origins = [(int(x), int(y)) for x, y in origins]
  if font in CV2_FONTS:
    for org in origins:
      cv2.putText(img, text, org, CV2_FONTS[font], scale, color, thickness, cv2.LINE_8)
    return
  shift = np.array([[x << _XY_SHIFT, y << _XY_SHIFT] for x, y in origins], np.int64)
  if thickness == 1:
    base = _hershey_segments(font, text, float(scale))
    if not len(base) or not len(shift):
      return
    segs = (base[None] + np.tile(shift, 2)[:, None]).reshape(-1, 4)
    ys, xs = _line2_pixels(segs, img.shape[0], img.shape[1])
    img[ys, xs] = color
    return
  strokes = [p + o for o in shift for p in _hershey_strokes(font, text, float(scale))]
  if not strokes:
    return
  if max(np.abs(p).max() for p in strokes) >= 2**31:
    raise TypographicError(f"text origins {origins} are too far out for 16.16 fixed point")
  cv2.polylines(img, [p.astype(np.int32) for p in strokes], False, color, thickness,
                cv2.LINE_8, _XY_SHIFT)


def put_text(img: np.ndarray, text: str, org: tuple[int, int], font: str, scale: float,
             color, thickness: int) -> None:
  """Draws ``text`` in place with its baseline-left origin at ``org`` (see put_texts)."""
  put_texts(img, text, [org], font, scale, color, thickness)


def renderer_name(font: str) -> str:
  """What draws ``font``: OpenCV 4's Hershey putText (reproduced) or this OpenCV."""
  return "hershey_opencv4" if font in HERSHEY_FONTS else f"opencv_{cv2.__version__}"

