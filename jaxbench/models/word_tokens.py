"""CLIP BPE token ids through a per-word cache: the same ids, ~10x fewer calls.

A zero-shot head tokenizes classes x templates prompts (1000 x 80 = 80,000 for
ImageNet), built from a few hundred distinct words. transformers' CLIP tokenizer
handles each prompt whole (normalise, split, byte-level BPE, special tokens,
padding, Python objects per prompt): ~17 s for 80,000 prompts on a GPU host,
half of a cold start.

CLIP's tokenizer pipeline never lets a token cross whitespace: the normaliser
(NFC, whitespace runs to one space, lowercase) works within words, the split
pattern (``'s|'t|...|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``) matches no
whitespace, and BPE runs on each piece alone. So a prompt's ids are
``<|startoftext|>`` + the ids of each whitespace-separated word, in order, +
``<|endoftext|>``, truncated to the context keeping the end token. Each distinct
word goes through the real tokenizer once (cached); nothing about BPE is
re-implemented here.

:func:`wrap` uses the cache only for a tokenizer whose normaliser,
pre-tokeniser, model and post-processor are exactly CLIP's, and checks itself
against the tokenizer's own output on the first texts of every call it
serves; anything else goes through the tokenizer unchanged.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from absl import logging

# The parts of transformers' CLIP fast tokenizer this relies on (their reprs).
_CLIP_NORMALIZER = ('Sequence(normalizers=[NFC(), Replace(pattern=Regex("\\s+"), content=" "), '
                    'Lowercase()])')
_CLIP_SPLIT = ("Split(pattern=Regex(\"<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|"
               "'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+\"), behavior=Removed, "
               "invert=True)")
_SELF_CHECK = 16   # texts of every call compared with the tokenizer's own ids


def clip_pipeline(tok) -> bool:
  """Whether ``tok`` (a transformers fast tokenizer) is CLIP's BPE pipeline."""
  backend = getattr(tok, "backend_tokenizer", None)
  if backend is None:
    return False
  pre = repr(backend.pre_tokenizer)
  return (repr(backend.normalizer) == _CLIP_NORMALIZER and _CLIP_SPLIT in pre
          and "ByteLevel(add_prefix_space=False" in pre
          and type(backend.model).__name__ == "BPE"
          and type(backend.post_processor).__name__ == "RobertaProcessing"
          and tok.bos_token_id is not None and tok.eos_token_id is not None)


class WordCache:
  """``texts -> int32 (N, context)`` ids, zero padded, from cached word ids.

  Args:
    tok: a transformers CLIP fast tokenizer (:func:`clip_pipeline` is true).
    context_length: ids per row (77 for CLIP); longer texts are cut, keeping
      the end token.
  """

  def __init__(self, tok, context_length: int):
    self.tok = tok
    self.context = int(context_length)
    backend = tok.backend_tokenizer
    self._normalize = backend.normalizer.normalize_str
    self._pre = backend.pre_tokenizer.pre_tokenize_str
    self._bpe = backend.model.tokenize
    self._bos, self._eos = int(tok.bos_token_id), int(tok.eos_token_id)
    self._words: dict[str, list[int]] = {}
    # Texts holding an added token (<|endoftext|> ...) are matched as such by the
    # tokenizer before any splitting: those go through the tokenizer itself.
    self.special = tuple(tok.get_added_vocab())

  def _word(self, word: str) -> list[int]:
    ids = self._words.get(word)
    if ids is None:
      ids = [t.id for piece, _ in self._pre(self._normalize(word)) for t in self._bpe(piece)]
      self._words[word] = ids
    return ids

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), self.context), np.int32)
    last = self.context - 1
    whole = [i for i, t in enumerate(texts) if any(s in t for s in self.special)]
    if whole:
      out[whole] = tokenizer_ids(self.tok, [texts[i] for i in whole], self.context)
    skip = set(whole)
    for i, text in enumerate(texts):
      if i in skip:
        continue
      ids = [self._bos]
      for word in text.split():
        ids.extend(self._word(word))
        if len(ids) >= last:
          break
      ids = ids[:last] + [self._eos]
      out[i, :len(ids)] = ids
    return out


class JsonTokenizer:
  """A ``tokenizer.json`` read by the ``tokenizers`` library alone.

  transformers' tokenizer classes import torch (seconds on a GPU host, most of
  a cold start's tokenization time); this loads the same serialised fast
  tokenizer without them and offers the parts of a transformers fast tokenizer
  that this module uses: ``backend_tokenizer``, ``bos_token_id``,
  ``eos_token_id``, ``get_added_vocab()`` and ``__call__`` with max-length
  padding and truncation (the post-processor's special tokens kept, as
  transformers does). ``clip.hf_tokenizer`` uses it only where
  :func:`clip_pipeline` holds, and the tests compare it with transformers'.

  Args:
    path: a ``tokenizer.json`` file.
  """

  def __init__(self, path: str):
    import json
    from tokenizers import Tokenizer
    self.path = path
    self.backend_tokenizer = Tokenizer.from_file(path)
    with open(path, encoding="utf-8") as f:
      post = json.load(f).get("post_processor") or {}
    # RobertaProcessing serialises its special tokens as [token, id].
    self.bos_token_id = (post.get("cls") or [None, None])[1]
    self.eos_token_id = (post.get("sep") or [None, None])[1]

  def get_added_vocab(self) -> dict:
    return {t.content: i for i, t in self.backend_tokenizer.get_added_tokens_decoder().items()}

  def __call__(self, texts: Sequence[str], *, padding: str = "max_length",
               max_length: int = 77, truncation: bool = True,
               return_attention_mask: bool = True) -> dict:
    del return_attention_mask   # always returned
    if padding != "max_length" or not truncation:
      raise ValueError("JsonTokenizer pads and truncates to max_length only")
    tok = self.backend_tokenizer
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=0)
    encs = tok.encode_batch(list(texts))
    return {"input_ids": [e.ids for e in encs],
            "attention_mask": [e.attention_mask for e in encs]}


def tokenizer_ids(tok, texts: Sequence[str], context: int) -> np.ndarray:
  """The tokenizer's own ids, prompt by prompt: int32 (N, context), zero padded
  after the end token (as open_clip pads), truncated keeping the end token."""
  enc = tok(list(texts), padding="max_length", max_length=context, truncation=True,
            return_attention_mask=True)
  return np.where(np.asarray(enc["attention_mask"]) > 0,
                  np.asarray(enc["input_ids"], np.int32), 0).astype(np.int32)


def wrap(tok, context_length: int, reference: Callable[[Sequence[str]], np.ndarray]
         ) -> Callable[[Sequence[str]], np.ndarray]:
  """A tokenize function: the word cache where ``tok`` is CLIP's pipeline.

  Args:
    tok: the loaded transformers tokenizer.
    context_length: ids per row.
    reference: the tokenizer's own ``texts -> (N, context)`` ids; used for any
      other tokenizer, and on the first texts of every call as a check (a
      difference logs a warning and the whole call goes through ``reference``).
  """
  if not clip_pipeline(tok):
    return reference
  cache = WordCache(tok, context_length)
  state: dict[str, Optional[bool]] = {"ok": None}

  def tokenize(texts: Sequence[str]) -> np.ndarray:
    texts = list(texts)
    if state["ok"] is False or len(texts) <= _SELF_CHECK:
      return reference(texts)
    ids = cache(texts)
    if not np.array_equal(ids[:_SELF_CHECK], reference(texts[:_SELF_CHECK])):
      logging.warning("word-cached CLIP tokenization differs from the tokenizer's own; "
                      "tokenizing prompt by prompt from now on")
      state["ok"] = False
      return reference(texts)
    return ids
  tokenize.word_cache = cache
  return tokenize
