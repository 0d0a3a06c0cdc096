"""Learned prompts: the prompt layout and the text of token ids.

A learned prompt of class k is ``[SOT] s_1..s_M <tokens of suffix.format(name_k)>
[EOT]``: M slots right after the start token that a learner fills with discrete
tokens (:mod:`~jaxbench.zeroshot.learned.autoprompt`) or continuous vectors
(:mod:`~jaxbench.zeroshot.learned.coop`). This module builds that layout
(:func:`make_layout`), fills and checks its slots, and turns CLIP BPE token ids
back into text (:func:`decode`) for artifacts and reports.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from jaxbench.models.api import Model

@dataclasses.dataclass(frozen=True, eq=False)
class PromptLayout:
  """K class prompts with M learned slots right after the start token.

  ``ids[k] = [SOT] s_1..s_M <tokens of suffix.format(classname_k)> [EOT] 0...``
  with the slots holding 0 until filled (:func:`fill`).

  Attributes:
    ids: int32 (K, L) token ids; L is the longest prompt rounded up to
      ``bucket`` (a causal tower ignores positions after EOT), at most the
      model's context length.
    eot: int32 (K,) position of each prompt's end-of-text token.
    num_slots: M.
    classnames: the K class names.
    suffix: the text after the slots, with one '{}' for the class name.
    specials: token ids that may never fill a slot (start and end of text).
    vocab_size: size of the model's token embedding table.
    context_length: the model's context length.
  """
  ids: np.ndarray
  eot: np.ndarray
  num_slots: int
  classnames: tuple
  suffix: str
  specials: tuple
  vocab_size: int
  context_length: int

  @property
  def num_classes(self) -> int:
    return len(self.classnames)


def check_text_model(model: Model) -> None:
  """Learned prompts run the text tower on embeddings: CLIP-family models only."""
  if not model.is_zeroshot:
    raise ValueError(f"learned prompts need a zero-shot (image-text) model; {model.name!r} "
                     f"is {model.kind}")
  arch = model.arch
  if arch is None or not hasattr(arch, "encode_text_embeddings") \
      or not hasattr(arch, "embed_tokens") or not model.causal_text:
    raise ValueError(f"model {model.name!r} has no causal text tower that runs on token "
                     "embeddings (arch.encode_text_embeddings / arch.embed_tokens): learned "
                     "prompts support CLIP-family models")


def special_tokens(model: Model) -> tuple[int, int]:
  """(start, end) token ids, read off the tokenizer's output for an empty text."""
  ids = model.tokenize([""])[0]
  nz = ids[ids != 0]
  if len(nz) < 2:
    raise ValueError(f"tokenizer of {model.name!r} does not frame texts with start and end "
                     f"tokens (empty text -> {ids[:4].tolist()})")
  return int(nz[0]), int(nz[-1])


def vocab_size(model: Model) -> int:
  cfg = getattr(model.arch, "cfg", None)
  if cfg is None or not hasattr(cfg, "vocab_size"):
    raise ValueError(f"cannot read the vocabulary size of {model.name!r}")
  return int(cfg.vocab_size)


def _eot_positions(ids: np.ndarray) -> np.ndarray:
  nonpad = ids != 0
  return ids.shape[1] - 1 - np.argmax(nonpad[:, ::-1], axis=1)


def make_layout(model: Model, classnames: Sequence[str], num_slots: int,
                suffix: str = "{}", bucket: int = 8) -> PromptLayout:
  """Tokenizes the class prompts and opens M slots after the start token.

  Args:
    model: a CLIP-family zero-shot model.
    classnames: the K class names.
    num_slots: M >= 1 learned tokens or vectors.
    suffix: text after the slots, one '{}' for the class name ('{}' as RoZ,
      '{}.' as CoOp).
    bucket: the layout's length is a multiple of this (fewer compilations).

  Raises:
    ValueError: M < 1, a suffix without exactly one '{}', or a class whose
      prompt (start + M slots + class tokens + end) exceeds the context length.
  """
  check_text_model(model)
  if isinstance(num_slots, bool) or not isinstance(num_slots, (int, np.integer)) \
      or num_slots < 1:
    raise ValueError(f"the number of learned prompt tokens must be a positive integer, "
                     f"got {num_slots!r}")
  if suffix.count("{}") != 1:
    raise ValueError(f"prompt suffix {suffix!r} must contain exactly one '{{}}' for the "
                     "class name")
  names = tuple(classnames)
  if not names:
    raise ValueError("no class names given")
  ctx = model.context_length
  tok = np.asarray(model.tokenize([suffix.format(c) for c in names]), np.int32)
  sot, eot_id = special_tokens(model)
  pos = _eot_positions(tok)
  need = pos + 1 + num_slots
  # A prompt whose class text filled the whole context was truncated by the
  # tokenizer: it cannot take M more tokens either.
  too_long = np.nonzero((need > ctx) | (pos >= ctx - 1))[0]
  if len(too_long):
    listed = ", ".join(f"{names[i]!r} needs {int(need[i])}{'+' if pos[i] >= ctx - 1 else ''}"
                       for i in too_long[:5])
    raise ValueError(f"prompts with {num_slots} learned tokens are longer than the model's "
                     f"context length {ctx} for {len(too_long)} class(es): {listed} tokens "
                     f"(start + {num_slots} + class tokens + end)")
  length = int(min(ctx, -(-int(need.max()) // bucket) * bucket))
  ids = np.zeros((len(names), length), np.int32)
  ids[:, 0] = tok[:, 0]
  ids[:, 1 + num_slots:] = tok[:, 1:length - num_slots]
  return PromptLayout(ids=ids, eot=(pos + num_slots).astype(np.int32), num_slots=num_slots,
                      classnames=names, suffix=suffix, specials=(sot, eot_id),
                      vocab_size=vocab_size(model), context_length=ctx)


def fill(ids, trigger):
  """Layout ids (K, L) with ``trigger`` (M,) written into the slots 1..M."""
  m = trigger.shape[-1]
  if isinstance(ids, np.ndarray) and isinstance(trigger, np.ndarray):
    out = ids.copy()
    out[:, 1:1 + m] = trigger
    return out
  return jnp.asarray(ids).at[:, 1:1 + m].set(trigger)


def check_trigger(layout: PromptLayout, trigger: Sequence[int], what: str = "prompt") -> None:
  """Raises ValueError for token ids outside the vocabulary or special tokens."""
  t = np.asarray(trigger)
  if t.ndim != 1 or len(t) != layout.num_slots:
    raise ValueError(f"{what} {t.tolist()} has {t.size} tokens; the layout has "
                     f"{layout.num_slots} slots")
  bad = [int(x) for x in t if x < 0 or x >= layout.vocab_size]
  if bad:
    raise ValueError(f"{what} {t.tolist()} has unknown token ids {bad}: the vocabulary "
                     f"has ids 0..{layout.vocab_size - 1}")
  special = [int(x) for x in t if int(x) in layout.specials]
  if special:
    raise ValueError(f"{what} {t.tolist()} contains start/end-of-text tokens {special}, "
                     "which cannot be prompt tokens")


def check_rows(layout: PromptLayout, feats, labels) -> tuple[np.ndarray, np.ndarray]:
  """A learner's training rows, checked against the layout's classes.

  Returns:
    (features float32 (N, D), labels int32 (N,)).

  Raises:
    ValueError: features that are not (N, D) with one label per row, no rows, or
      labels outside [0, K).
  """
  feats = np.asarray(feats, np.float32)
  labels = np.asarray(labels, np.int32)
  if feats.ndim != 2 or labels.shape != (feats.shape[0],) or not len(labels):
    raise ValueError(f"expected features (N, D) and labels (N,), got {feats.shape} and "
                     f"{labels.shape}")
  if labels.min() < 0 or labels.max() >= layout.num_classes:
    raise ValueError(f"labels span [{labels.min()}, {labels.max()}] but there are "
                     f"{layout.num_classes} class names")
  return feats, labels


# --- token ids to text ------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _id_to_token() -> tuple[dict, dict]:
  from jaxbench.zeroshot import tokenizer as tok
  vocab, _ = tok.vocab_and_merges()
  # Byte-level BPE symbols: printable bytes stand for themselves, the n-th other
  # byte (ascending) is written chr(256 + n).
  printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)]
  others = [b for b in range(256) if b not in set(printable)]
  byte_of = {chr(b): b for b in printable}
  byte_of.update({chr(256 + n): b for n, b in enumerate(others)})
  return {i: t for t, i in vocab.items()}, byte_of


def decode(ids: Sequence[int]) -> str:
  """Text of CLIP BPE token ids (as CLIP's SimpleTokenizer decodes: '</w>' -> space)."""
  inv, byte_of = _id_to_token()
  text = "".join(inv.get(int(i), f"<{int(i)}>") for i in ids)
  raw = bytearray()
  out = []
  for ch in text.replace("</w>", " "):
    if ch in byte_of:
      raw.append(byte_of[ch])
    else:
      out.append(raw.decode("utf-8", errors="replace"))
      raw = bytearray()
      out.append(ch)
  out.append(raw.decode("utf-8", errors="replace"))
  return "".join(out).strip()

