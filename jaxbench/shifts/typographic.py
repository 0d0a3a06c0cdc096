"""Typographic attacks: write a class name on an image (ImageNet-T, CIFAR-10-T).

RoZ (protocol.md §1.4) writes the name of a *different* class several times on
each evaluation image and measures how often a model then predicts the written
class. This module is the renderer; ``jaxbench.typographic`` generates whole
sets to disk and ``jaxbench.data.typographic_sets`` reads them back.

What RoZ's ImageNet-T builder does, and what is reproduced here (defaults):
  * text: the WordNet ``words`` string of a uniformly random class among the 309
    single-word classes, different from the true class;
  * OpenCV ``FONT_HERSHEY_DUPLEX``, scale 0.8, white, thickness 1 (LINE_8);
    the box is measured with ``getTextSize(..., thickness=2)`` (width w, height
    h, baseline not included). RoZ pinned opencv-python 4.1; OpenCV 5 draws
    its "Hershey" fonts with a different (TrueType) face and metrics, so the
    Hershey Duplex strokes and metrics of OpenCV <= 4 are reproduced here from
    the glyph data (:func:`put_text`, :func:`text_size`; pixel-identical to
    OpenCV 4.10, tested). With them 'hen' measures 48x18 and 'centipede'
    124x18 (OpenCV 5 reports 45x22 and 120x22);
  * 8 placements on the original-resolution image, bottom-left origin
    x ~ U[0, W - w), y ~ U[h, H), each rejection-sampled, as coded, until none of
    its 4 box corners lies *strictly* inside an earlier box (``overlap='corners'``;
    boxes that share an x or a y may overlap), retrying without limit
    (``max_tries=0``; the loop ends with probability 1, since the first box's own
    position always passes);
  * the written label as ``get_mis_text`` codes it (``label_loop='roz'``): draw
    randint(1000) until an eligible label other than the true one does *not* fit
    the image (then the image is skipped), or, from the 100th draw on, until any
    eligible label other than the true one is drawn. The loop thus prefers words
    that do not fit: narrow images are skipped far more often than with a
    uniform label (issue 18: width 140 px, 95 % vs 9 %). CIFAR-10-T:
    ``while mis == label: mis = randint(10)``;
  * an image is skipped (and counted) when ``W - w <= 0 or h >= H``.

These are the defaults and the ``'roz'`` preset. The ``'strict'`` preset keeps
jaxbench's earlier, stricter rules: no two boxes intersect (half-open pixel
rectangles), at most ``max_tries=1000`` draws per placement before skipping with
``'no_room'``, and a uniform written label (``label_loop='uniform'``).

Deliberate difference from RoZ's script: randomness comes from (seed, example id)
streams, not a global unseeded NumPy state, so a set is reproducible byte for byte
(RoZ's own record reproduces its labels exactly, :mod:`jaxbench.typographic`).

CIFAR-10-T: RoZ draws with matplotlib and saves the whole 960x720 figure (axes,
ticks, white margins) as the dataset image. That is the default here too
(``renderer='roz_matplotlib'``; the JPEG bytes equal ``plt.savefig``'s at quality
95, the ``savefig.jpeg_quality`` of the matplotlib RoZ pinned, tested; 'Times New
Roman' falls back to matplotlib's default face where it is not installed, and the
resolved font file is recorded). The ``'on_image'`` preset writes the 10 CIFAR names
4 times onto the 32x32 image itself instead: text is rasterised on an 8x
supersampled canvas and area-averaged back (anti-aliased), then alpha composited,
so pixels away from the text keep their exact values; the on-the-fly shift, which
must keep the image size, uses it.

Variants beyond RoZ (fields of :class:`Variant`): number of placements, font
and scale, colour, outline, position policy ('random', 'centered', 'large' =
one big word), and the text itself ('other_class' = the attack,
'true_class' = control that should not hurt, 'random_word' = non-class word
control, 'random_class' = any eligible class (label-free, for on-the-fly use),
'fixed').

Randomness: two independent streams per example, both from (seed, example id)
only (:func:`example_rng`): the *label* stream picks the written word, the
*placement* stream picks positions. Every variant of one image therefore
writes the same wrong class and starts from the same position draws, which
pairs the comparisons across variants.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
from typing import Optional

import cv2
import numpy as np

from jaxbench import registry as registry_lib
from jaxbench.data import decode as decode_lib

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
POLICIES = ("random", "centered", "large")
TEXT_MODES = ("other_class", "true_class", "random_class", "random_word", "fixed")
RENDERERS = ("opencv", "roz_matplotlib")
OVERLAPS = ("corners", "boxes")
LABEL_LOOPS = ("roz", "uniform")
# max_tries=0 (RoZ: retry forever) stops with an error after this many draws.
UNBOUNDED_STOP = 10_000_000
KINDS = ("imagenet_t", "cifar10_t")

# Control words for text='random_word': common English words that are not (and
# do not occur inside) any ImageNet WordNet lemma, CLIP ImageNet name or CIFAR
# name; tests/shifts/test_typographic.py checks this against the resources.
NON_CLASS_WORDS = (
    "honesty", "seven", "quickly", "between", "yesterday", "idea", "justice",
    "purple", "silent", "remember", "because", "freedom", "answer", "history",
    "maybe", "simple", "again", "always", "never", "thought", "number",
    "energy", "moment", "reason", "minute", "opinion", "policy", "theory",
    "method", "result", "value", "future", "problem", "example", "period",
    "effort", "season", "region", "degree", "courage", "wisdom", "patience",
    "promise", "silence", "journey", "harmony", "logic", "memory", "notion",
    "quality", "rhythm", "summary", "tension", "virtue", "zeal", "gentle",
    "bright", "modest", "eager", "humble", "lucky", "ordinary", "sudden",
    "brave", "calm", "clever")


class TypographicError(ValueError):
  """Bad typographic input or settings (names the value and what was expected)."""


class TextDoesNotFit(TypographicError):
  """Raised by the on-the-fly shift when the text cannot be placed."""


# ----------------------------------------------------------------------------
# Class vocabularies.


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """The words a typographic set may write.

  Attributes:
    kind: 'imagenet_t' or 'cifar10_t'.
    num_classes: K, the label space (1000 or 10).
    words: K strings; words[i] is written for class i.
    eligible: sorted class indices that may be written as the attack text.
    wnids: K ImageNet wnids (folder names) or () for CIFAR.
  """
  kind: str
  num_classes: int
  words: tuple[str, ...]
  eligible: tuple[int, ...]
  wnids: tuple[str, ...] = ()

  def true_word(self, label: int) -> str:
    """The word written for the true-class control: the first lemma."""
    return self.words[label].split(",")[0].strip()


@functools.lru_cache(maxsize=None)
def vocabulary(kind: str) -> Vocabulary:
  """The vocabulary of an ImageNet-T or CIFAR-10-T set."""
  if kind == "imagenet_t":
    with open(os.path.join(_RESOURCES, "imagenet_t_eligible.json")) as f:
      d = json.load(f)
    return Vocabulary(kind, 1000, tuple(d["words"]), tuple(d["eligible"]), tuple(d["wnids"]))
  if kind == "cifar10_t":
    with open(os.path.join(_RESOURCES, "cifar10_prompts.json")) as f:
      names = tuple(json.load(f)["classnames"])
    return Vocabulary(kind, 10, names, tuple(range(10)))
  raise TypographicError(f"unknown typographic kind {kind!r}; expected one of {KINDS}")


# ----------------------------------------------------------------------------
# Variants.


@dataclasses.dataclass(frozen=True)
class Variant:
  """What is written and how. Field defaults are RoZ's ImageNet-T settings.

  Attributes:
    count: number of placements (RoZ: 8 on ImageNet, 4 on CIFAR).
    font: 'hershey_duplex' (RoZ: OpenCV 4's Hershey strokes, reproduced) or a
      'cv2_*' face drawn by the installed OpenCV (OpenCV 5: TrueType sans).
    scale: OpenCV fontScale on the drawing canvas.
    thickness: stroke thickness on the canvas (pixels).
    measure_thickness: thickness passed to getTextSize for the box (RoZ: 2).
    color: RGB text colour, 0..255.
    outline: outline width in canvas pixels drawn under the text (0 = none).
    outline_color: RGB outline colour.
    policy: 'random' (RoZ), 'centered' (count copies stacked at the centre) or
      'large' (one word whose width is ``large_width`` of the image, centred).
    large_width: text width / image width for policy 'large'.
    text: one of TEXT_MODES.
    word: the text for text='fixed'.
    supersample: canvas scale factor; text is drawn at this scale and area
      averaged back (1 = draw directly, binary pixels as in RoZ).
    renderer: 'opencv' (the font above) or 'roz_matplotlib' (RoZ's CIFAR-10-T
      figures; only the text, count, colour and selection fields apply).
    max_tries: rejection-sampling budget per placement before 'no_room'; 0 = no
      limit (RoZ; a safety stop of :data:`UNBOUNDED_STOP` draws raises).
    overlap: 'corners' (RoZ: reject when a corner lies strictly inside an earlier
      box) or 'boxes' (reject any intersection).
    label_loop: 'roz' (RoZ's get_mis_text loop, which prefers words that do not
      fit) or 'uniform' (a uniform eligible label other than the true one).
  """
  count: int = 8
  font: str = "hershey_duplex"
  scale: float = 0.8
  thickness: int = 1
  measure_thickness: int = 2
  color: tuple = (255, 255, 255)
  outline: int = 0
  outline_color: tuple = (0, 0, 0)
  policy: str = "random"
  large_width: float = 0.8
  text: str = "other_class"
  word: str = ""
  supersample: int = 1
  renderer: str = "opencv"
  max_tries: int = 0
  overlap: str = "corners"
  label_loop: str = "roz"

  def __post_init__(self):
    def bad(field, value, expected):
      raise TypographicError(f"typographic variant: {field}={value!r}, expected {expected}")
    if not isinstance(self.count, int) or self.count < 1:
      bad("count", self.count, "an int >= 1")
    if self.font not in FONTS:
      bad("font", self.font, f"one of {list(FONTS)}")
    if not self.scale > 0:
      bad("scale", self.scale, "> 0")
    for name in ("thickness", "measure_thickness", "supersample"):
      v = getattr(self, name)
      if not isinstance(v, int) or v < 1:
        bad(name, v, "an int >= 1")
    if not isinstance(self.max_tries, int) or self.max_tries < 0:
      bad("max_tries", self.max_tries, "an int >= 0 (0 = no limit, as RoZ)")
    if self.overlap not in OVERLAPS:
      bad("overlap", self.overlap, f"one of {OVERLAPS}")
    if self.label_loop not in LABEL_LOOPS:
      bad("label_loop", self.label_loop, f"one of {LABEL_LOOPS}")
    if not isinstance(self.outline, int) or self.outline < 0:
      bad("outline", self.outline, "an int >= 0")
    for name in ("color", "outline_color"):
      v = tuple(getattr(self, name))
      if len(v) != 3 or any(not isinstance(c, int) or not 0 <= c <= 255 for c in v):
        bad(name, getattr(self, name), "3 ints in 0..255 (RGB)")
      object.__setattr__(self, name, v)
    if self.policy not in POLICIES:
      bad("policy", self.policy, f"one of {POLICIES}")
    if self.policy == "large" and self.count != 1:
      bad("count", self.count, "1 with policy='large'")
    if not 0 < self.large_width <= 1:
      bad("large_width", self.large_width, "in (0, 1]")
    if self.text not in TEXT_MODES:
      bad("text", self.text, f"one of {TEXT_MODES}")
    if (self.text == "fixed") != bool(self.word):
      bad("word", self.word, "a non-empty word exactly when text='fixed'")
    if self.renderer not in RENDERERS:
      bad("renderer", self.renderer, f"one of {RENDERERS}")
    if self.renderer == "roz_matplotlib" and (self.policy != "random" or self.outline):
      bad("renderer", self.renderer, "'opencv' with policy "
          f"{self.policy!r} / outline {self.outline} (RoZ's figures place text randomly, "
          "without outline)")

  def replace(self, **kw) -> "Variant":
    return dataclasses.replace(self, **kw)


# Kind defaults: the RoZ settings of each set. CIFAR-10-T at 32x32 draws the
# same Hershey Duplex strokes on an 8x canvas: scale 1.25 makes the longest
# name ('automobile') 228 canvas px wide (28.5 of 32 output px) and 3.8 px
# high, about the largest size at which it still fits; strokes of 7 canvas px
# (0.9 output px) are area averaged into anti-aliased text that stays legible
# after the bicubic upsampling to 224 px that models apply.
KIND_DEFAULTS = {
    "imagenet_t": Variant(),
    "cifar10_t": Variant(count=4, scale=1.25, thickness=7, measure_thickness=8, supersample=8,
                         renderer="roz_matplotlib"),
}

# Named presets (variant specs without arguments), applied over the kind defaults.
PRESETS = {
    "roz": {},
    "strict": {"overlap": "boxes", "max_tries": 1000, "label_loop": "uniform"},
    "roz_matplotlib": {"renderer": "roz_matplotlib"},
    "on_image": {"renderer": "opencv"},
    "true_class": {"text": "true_class"},
    "random_word": {"text": "random_word"},
    "random_class": {"text": "random_class"},
    # Only the opencv renderer places text by policy or draws outlines.
    "centered": {"policy": "centered", "count": 1, "renderer": "opencv"},
    "large": {"policy": "large", "count": 1, "renderer": "opencv"},
    "outline": {"outline": 1, "outline_color": (0, 0, 0), "renderer": "opencv"},
}


def parse_variant(spec: str, kind: str) -> tuple[str, Variant]:
  """A variant spec to (name, Variant) over the kind's defaults.

  Specs: a preset name ('roz', 'true_class', ...) or ``typo(field=value, ...)``
  with Variant fields, optionally ``typo(preset='large', color=(255, 0, 0))``.
  The name is the canonical spec made path-safe; it keys ids and directories.
  """
  if kind not in KIND_DEFAULTS:
    raise TypographicError(f"unknown typographic kind {kind!r}; expected one of {KINDS}")
  try:
    name, args, kwargs = registry_lib.parse(spec)
  except registry_lib.SpecError as e:
    raise TypographicError(str(e)) from e
  base = KIND_DEFAULTS[kind]
  if name in PRESETS and not args and not kwargs:
    return name, base.replace(**PRESETS[name])
  if name != "typo" or args:
    raise TypographicError(
        f"variant spec {spec!r}: expected a preset ({sorted(PRESETS)}) or "
        f"typo(field=value, ...) with fields of Variant")
  preset = kwargs.pop("preset", "roz")
  if preset not in PRESETS:
    raise TypographicError(f"variant spec {spec!r}: unknown preset {preset!r}")
  fields = {f.name for f in dataclasses.fields(Variant)}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise TypographicError(f"variant spec {spec!r}: unknown fields {unknown}; known {sorted(fields)}")
  variant = base.replace(**{**PRESETS[preset], **kwargs})
  # Path-safe name: the canonical spec without spaces and quotes.
  canon = registry_lib.canonical(spec)
  return "".join(c for c in canon if c not in " '\"").replace("/", "_"), variant


# ----------------------------------------------------------------------------
# Randomness.


def example_rng(seed: int, example_id: str, stream: str = "") -> np.random.Generator:
  """A NumPy Generator from (seed, example id, stream name), batch-independent."""
  digest = hashlib.sha256(f"{stream}\x00{example_id}".encode()).digest()
  words = np.frombuffer(digest[:16], dtype="<u4").tolist()
  return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))


# ----------------------------------------------------------------------------
# Text choice.


def roz_label(vocab: Vocabulary, label: int, rng: np.random.Generator, fits) -> int:
  """RoZ's written-label loop as coded (module docstring), on ``rng``.

  ImageNet (``get_mis_text``): draw ``rng.integers(K)``; stop on an eligible label
  other than ``label`` whose word does *not* fit; from the 100th draw on also stop
  on any eligible label other than ``label``. CIFAR-10 (``build_CIFAR_dataset``):
  redraw ``rng.integers(10)`` while it equals ``label``.

  Args:
    fits: word -> True when it fits the image (``W - w > 0 and h < H``).
  """
  if vocab.kind == "cifar10_t":
    mis = label
    while mis == label:
      mis = int(rng.integers(vocab.num_classes))
    return mis
  eligible = set(vocab.eligible)
  count = 0
  while True:
    cur = int(rng.integers(vocab.num_classes))
    if cur != label and cur in eligible and not fits(vocab.words[cur]):
      return cur
    count += 1
    if count >= 100 and cur != label and cur in eligible:
      return cur


def choose_text(variant: Variant, vocab: Vocabulary, label: Optional[int],
                rng: np.random.Generator, fits=None) -> tuple[str, int]:
  """Picks the word to write.

  Args:
    variant: the text mode lives in ``variant.text``; ``variant.label_loop``
      picks how 'other_class' draws.
    vocab: the set's vocabulary.
    label: the true class, or None when unknown (on-the-fly shifts).
    rng: the example's label stream.
    fits: word -> whether it fits the image (RoZ's loop needs it); None: every
      word fits.

  Returns:
    (text, written_label); written_label is the class the text names, or -1
    for non-class text (random words, fixed words that are not class names).
  """
  mode = variant.text
  if mode in ("other_class", "true_class") and label is None:
    raise TypographicError(
        f"text={mode!r} needs the true label; on the fly use host_fn_record(record, rng) "
        "or a label-free text mode ('random_class', 'random_word', 'fixed')")
  if label is not None and not 0 <= label < vocab.num_classes:
    raise TypographicError(f"label {label} outside 0..{vocab.num_classes - 1} for {vocab.kind}")
  if mode == "other_class" and variant.label_loop == "roz":
    written = roz_label(vocab, label, rng, fits or (lambda _: True))
    return vocab.words[written], written
  if mode == "other_class":
    candidates = [c for c in vocab.eligible if c != label]
    written = candidates[int(rng.integers(len(candidates)))]
    return vocab.words[written], written
  if mode == "true_class":
    return vocab.true_word(label), label
  if mode == "random_class":
    written = vocab.eligible[int(rng.integers(len(vocab.eligible)))]
    return vocab.words[written], written
  if mode == "random_word":
    return NON_CLASS_WORDS[int(rng.integers(len(NON_CLASS_WORDS)))], -1
  matches = [i for i, w in enumerate(vocab.words) if w == variant.word]
  return variant.word, (matches[0] if matches else -1)


# ----------------------------------------------------------------------------
# Placement.


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


# ----------------------------------------------------------------------------
# Text rendering: Hershey strokes as OpenCV <= 4 drew them, or the installed
# OpenCV's putText.

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


def _fits(text: str, variant: Variant, height: int, width: int) -> bool:
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


# ----------------------------------------------------------------------------
# Drawing.


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
                                fits=functools.partial(_fits, variant=variant,
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


# ----------------------------------------------------------------------------
# On-the-fly host-side shift.


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
  from ``_BUILTIN_MODULES``); ``registry`` is for tests.
  """
  if registry is None:
    from jaxbench import shifts  # pylint: disable=g-import-not-at-top
    registry = shifts.SHIFTS
  if "typographic" not in registry:
    registry.register("typographic", TypographicShift.create)


def encode(image: np.ndarray, fmt: str, quality: int = 95) -> bytes:
  """Encodes an RGB uint8 image.

  Args:
    image: uint8 (H, W, 3) RGB.
    fmt: 'jpeg' (OpenCV, as RoZ's cv2.imwrite; quality 95 is its default),
      'png' (lossless) or 'jpeg_matplotlib' (PIL with 150 dpi metadata: the bytes
      ``plt.savefig(..., dpi=150)`` writes for RoZ's CIFAR-10-T figures; RoZ's
      matplotlib saved at ``savefig.jpeg_quality`` 95, today's at PIL's 75).
    quality: JPEG quality for 'jpeg' and 'jpeg_matplotlib' (default 95, RoZ's).

  Returns:
    the encoded file bytes.
  """
  if fmt == "jpeg_matplotlib":
    from PIL import Image  # pylint: disable=g-import-not-at-top
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="jpeg", dpi=(150, 150), quality=int(quality))
    return buf.getvalue()
  bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
  if fmt == "jpeg":
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  elif fmt == "png":
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
  else:
    raise TypographicError(f"image format {fmt!r}, expected 'jpeg', 'png' or 'jpeg_matplotlib'")
  if not ok:
    raise TypographicError(f"OpenCV could not encode a {image.shape} image as {fmt}")
  return buf.tobytes()


def decode_rgb(data: bytes) -> tuple[np.ndarray, str]:
  """Decodes image bytes to RGB as RoZ's ``cv2.imread`` did, and reports the mode.

  JPEGs (all of ImageNet; RGB, grayscale and CMYK) are decoded with OpenCV's
  ``IMREAD_COLOR``, as ``cv2.imread``: the EXIF orientation is applied, grayscale is
  replicated, and CMYK is converted as OpenCV 4's ``icvCvt_CMYK2BGR_8u_C4C3R`` does
  (``c' = k - ((255 - c) k >> 8)`` on libjpeg's Adobe-inverted values, which differs
  from PIL's ``convert('RGB')`` by +-1 at most pixels; tested against that formula).
  Other files and modes (PNG, palette, alpha, 16-bit, ...) go through the pipeline's
  decoder (:func:`jaxbench.data.decode.decode`).

  Returns:
    (uint8 (H, W, 3) RGB, original PIL mode such as 'RGB', 'L', 'CMYK', 'P').
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(data)) as im:
    mode, fmt = im.mode, im.format
    if fmt != "JPEG" or mode not in ("RGB", "L", "CMYK"):
      return np.asarray(decode_lib.decode(data)), mode
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise TypographicError("OpenCV could not decode a JPEG that PIL opened")
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mode


register()
