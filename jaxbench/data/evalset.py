"""The EvalSet contract: what the runner needs to know about an evaluation set.

A dataset spec (``imagenet_r(root='...')``) resolves, through
:mod:`jaxbench.data.catalog`, to an :class:`EvalSet`: a random-access source of
records plus the rules that score a model on it.

Record contract (what ``source[i]`` returns, a dict):
  'id':     str, unique within the set and stable across runs (relative path).
  'label':  int class index in the set's label space, or -1 when unlabelled.
  and exactly one of
  'image_bytes': bytes of an encoded image file (decoded by the pipeline, so a
                 corrupt file is skipped and recorded instead of killing a run), or
  'image':  uint8 (H, W, 3) RGB array (for sets stored as arrays, e.g. CIFAR).
  optional:
  'labels': bool (num_classes,) multi-hot, for multi-label sets (Vid-Robust);
            a prediction is correct when it falls in the set.
  any other keys are metadata kept host-side with the example id.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Protocol, Sequence

import jax
from PIL import Image

from jaxbench.data import sources


class Source(Protocol):
  """Random-access records (grain's ``RandomAccessDataSource`` protocol)."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> dict: ...


@dataclasses.dataclass(frozen=True, eq=False)
class EvalSet:
  """An evaluation set and how to score a model on it.

  Attributes:
    name: canonical spec string (the results key).
    source: random-access records, see the module docstring.
    num_classes: K, the width of the set's label space.
    class_names: K names for zero-shot heads over the set's own classes.
    project: jittable ``(N, model_classes) -> (N, K)`` logits map (sub-select or
      max-pool over mapped ImageNet classes); None when the model's label space
      already is the set's (``model_label_space``).
    model_label_space: label space ``project`` expects ('imagenet1k').
    multilabel: records carry 'labels' multi-hot masks.
    pre_transform: host-side PIL transform applied right after decoding, before
      the model's resize/crop (ObjectNet's 2-pixel border crop).
    sequence_metrics: metric names computed on per-example predictions after a
      pass (e.g. ('pm0', 'pm10')) by ``sequence_metric_fn``.
    sequence_metric_fn: ``(ids, preds, correct) -> dict`` of those metrics.
    metadata: anything recorded with the row (sizes, excluded counts, mapping files).
  """
  name: str
  source: Source
  num_classes: int
  class_names: Sequence[str] = ()
  project: Optional[Callable[[jax.Array], jax.Array]] = None
  model_label_space: str = "imagenet1k"
  multilabel: bool = False
  pre_transform: Optional[Callable[[Image.Image], Image.Image]] = None
  sequence_metrics: tuple[str, ...] = ()
  sequence_metric_fn: Optional[Callable[..., dict]] = None
  metadata: dict = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.source)

  def fingerprint(self) -> dict:
    """Which data this set reads (:func:`jaxbench.data.sources.fingerprint`): stored
    with a pass's progress so a resume notices changed data."""
    return sources.fingerprint(self.source)
