"""The words a typographic set may write: class vocabularies and control words.

ImageNet-T writes WordNet ``words`` of the 309 single-word classes (RoZ's
Appendix A, ``resources/imagenet_t_eligible.json``); CIFAR-10-T the 10 CIFAR
names. :data:`NON_CLASS_WORDS` are the non-class control words of
``text='random_word'``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os

from jaxbench.typographic.errors import TypographicError

_RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")
KINDS = ("imagenet_t", "cifar10_t")

# Control words for text='random_word': common English words that are not (and
# do not occur inside) any ImageNet WordNet lemma, CLIP ImageNet name or CIFAR
# name; tests/typographic/test_typographic_vocabulary.py checks this against the resources.
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

