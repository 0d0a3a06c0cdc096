"""Which word is written: the per-example random streams and the text choice.

Randomness: two independent streams per example, both from (seed, example id)
only (:func:`example_rng`): the *label* stream picks the written word, the
*placement* stream picks positions. Every variant of one image therefore
writes the same wrong class and starts from the same position draws, which
pairs the comparisons across variants. (RoZ's script drew from a global
unseeded NumPy state; these streams make a set reproducible byte for byte.)

The written label as RoZ's ``get_mis_text`` codes it (``label_loop='roz'``):
draw randint(1000) until an eligible label other than the true one does *not*
fit the image (then the image is skipped), or, from the 100th draw on, until
any eligible label other than the true one is drawn. The loop thus prefers
words that do not fit: narrow images are skipped far more often than with a
uniform label (issue 18: width 140 px, 95 % vs 9 %). CIFAR-10-T:
``while mis == label: mis = randint(10)``.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.variants import Variant
from jaxbench.typographic.vocabulary import NON_CLASS_WORDS, Vocabulary


def example_rng(seed: int, example_id: str, stream: str = "") -> np.random.Generator:
  """A NumPy Generator from (seed, example id, stream name), batch-independent."""
  digest = hashlib.sha256(f"{stream}\x00{example_id}".encode()).digest()
  words = np.frombuffer(digest[:16], dtype="<u4").tolist()
  return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))


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
