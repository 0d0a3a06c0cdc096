"""scikit-learn's handwritten digits as the demo's image set: split, upscaling, captions.

scikit-learn ships the 1797 8x8 grey-level digits of the UCI "Optical Recognition
of Handwritten Digits" test set inside its wheel, so the demo needs no download.
Everything here is NumPy (no JAX): example ids, the fixed train/test split, the
upscaled RGB images and the caption phrasings the CLIP model is trained on.

Ids are ``digits/NNNN`` (the index in scikit-learn's order). The split is a
function of the id alone (CRC-32 of the id, 30 % test), so it never depends on
the image size, a seed or the order examples are read in.
"""
from __future__ import annotations

import functools
import zlib

import numpy as np

NUM_CLASSES = 10
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUMERALS = tuple(str(i) for i in range(NUM_CLASSES))
TEST_PERCENT = 30
SPLITS = ("train", "test")

# Captions the CLIP model is trained on: {w} is the digit's word, {n} its numeral.
CAPTIONS = (
    "a photo of the number {w}.",
    "a handwritten {n}.",
    "a handwritten digit {w}.",
    "the digit {n}.",
    "a blurry image of a {w}.",
    "a drawing of the number {n}.",
    "a {w}.",
    "{n}",
    "an image of the digit {w}.",
    "a scan of a handwritten {w}.",
)
# Zero-shot templates for evaluation ({} is the class word). Two are phrasings
# the model never saw in training.
TEMPLATES = (
    "a photo of the number {}.",
    "a handwritten digit {}.",
    "a picture of the number {}.",
    "a small handwritten {}.",
)


def example_id(index: int) -> str:
  return f"digits/{int(index):04d}"


def in_test(example: str) -> bool:
  """The fixed split: True when the id belongs to the test split."""
  return zlib.crc32(example.encode("utf-8")) % 100 < TEST_PERCENT


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
  """(float64 (1797, 8, 8) ink in 0..16, int64 (1797,) labels) from scikit-learn."""
  from sklearn.datasets import load_digits
  d = load_digits()
  return np.asarray(d.images), np.asarray(d.target, np.int64)


def indices(split: str) -> np.ndarray:
  """Sorted scikit-learn indices of a split ('train' or 'test')."""
  if split not in SPLITS:
    raise ValueError(f"digits split {split!r}: expected one of {SPLITS}")
  n = len(_raw()[1])
  test = np.array([in_test(example_id(i)) for i in range(n)])
  return np.flatnonzero(test if split == "test" else ~test)


@functools.lru_cache(maxsize=8)
def _images(size: int) -> np.ndarray:
  from PIL import Image
  raw, _ = _raw()
  ink = np.uint8(np.round(raw * (255.0 / 16.0)))
  out = np.empty((len(ink), size, size, 3), np.uint8)
  for i, a in enumerate(ink):
    grey = Image.fromarray(a, "L").resize((size, size), Image.BICUBIC)
    out[i] = np.asarray(grey)[..., None]
  out.flags.writeable = False
  return out


def load(split: str, size: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Images, labels and ids of one split.

  Args:
    split: 'train' or 'test'.
    size: side of the square output in pixels (bicubic upscaling of the 8x8
      originals; 8 keeps them as they are).

  Returns:
    (uint8 (N, size, size, 3) RGB, white ink on black; int64 (N,) labels in
    0..9; N ids 'digits/NNNN'), in scikit-learn order.
  """
  if not isinstance(size, int) or size < 8:
    raise ValueError(f"digits size={size!r}: expected an int >= 8 (pixels)")
  idx = indices(split)
  return _images(size)[idx], _raw()[1][idx], [example_id(i) for i in idx]


def captions(label: int) -> list[str]:
  """Every training caption of a class."""
  return [c.format(w=WORDS[label], n=NUMERALS[label]) for c in CAPTIONS]


# --- written text (the typographic attack) -----------------------------------------

TEXT_FORMS = ("word", "numeral")


def text_of(label: int, form: str) -> str:
  if form not in TEXT_FORMS:
    raise ValueError(f"text form {form!r}: expected one of {TEXT_FORMS}")
  return WORDS[label] if form == "word" else NUMERALS[label]


def write_text(image: np.ndarray, text: str, rng: np.random.Generator, *,
               placement: str = "center", width_frac: float = 0.9,
               height_frac: float = 0.35, thickness: float = 0.08) -> np.ndarray:
  """Writes ``text`` once on a uint8 RGB image in white (Hershey Duplex, anti-aliased).

  Args:
    image: uint8 (H, W, 3).
    text: what to write.
    rng: chooses the position for placement 'random'.
    placement: 'center' (text scaled to ``width_frac`` of the image width, centred)
      or 'random' (cap height ``height_frac`` of the image, uniform position).
    width_frac, height_frac: text size, fractions of the image side.
    thickness: stroke width as a fraction of the cap height.

  Returns:
    uint8 (H, W, 3); the input when the text does not fit.
  """
  from jaxbench.typographic import hershey, render, variants, vocabulary
  h, w = image.shape[:2]
  ss = 4                                  # supersampling: anti-aliased strokes
  base_w, base_h, _ = hershey.text_size(text, "hershey_duplex", 1.0, 1)
  if placement == "center":
    scale = width_frac * w * ss / max(base_w, 1)
    scale = min(scale, 0.8 * h * ss / max(base_h, 1))
    policy = "centered"
  elif placement == "random":
    scale = height_frac * h * ss / max(base_h, 1)
    policy = "random"
  else:
    raise ValueError(f"placement {placement!r}: expected 'center' or 'random'")
  thick = max(1, int(round(thickness * base_h * scale)))
  variant = variants.Variant(count=1, scale=float(scale), thickness=thick, measure_thickness=thick,
                         policy=policy, text="fixed", word=text,
                         supersample=ss, max_tries=50)
  vocab = vocabulary.Vocabulary("digits", NUM_CLASSES, WORDS, tuple(range(NUM_CLASSES)))
  rend = render.render(np.ascontiguousarray(image), variant, vocab, None, rng, rng)
  return image if rend.image is None else rend.image
