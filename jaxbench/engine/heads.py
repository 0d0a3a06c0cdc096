"""The head a model gets for a set: a zero-shot head built from prompts, or none.

Supervised models (trained heads included) keep their own head; their label space
must match the set's, directly or through the set's projection.
"""
from __future__ import annotations

from jaxbench.data.evalset import EvalSet
from jaxbench.engine import keys
from jaxbench.model_setup import ConfigError
from jaxbench.models.api import Model


def _head_builder():
  """build_head, extended with learned prompts (templates='learned:PATH[:N]')."""
  from jaxbench.zeroshot.learned import heads as learned_heads
  return learned_heads.head_for


def label_space_error(model: Model, evalset: EvalSet) -> str:
  """Why a trained head cannot be scored on ``evalset`` ('' when it can)."""
  info = model.head_info or {}
  if info.get("trained_head") and model.label_space != evalset.model_label_space:
    return (
        f"trained head {model.name!r} predicts {model.num_classes} classes of label space "
        f"{model.label_space!r}; dataset {evalset.name!r} is labelled in "
        f"{evalset.model_label_space!r} ({evalset.num_classes} classes)")
  return ""


def attach_head(model: Model, evalset: EvalSet, config, cache_dir: str) -> tuple[Model, bool]:
  """Zero-shot head for this set; returns (model, whether to apply evalset.project)."""
  zs = keys.zeroshot(config)
  if not model.is_zeroshot:
    if label_space_error(model, evalset):
      raise ConfigError(label_space_error(model, evalset))
    if model.label_space != evalset.model_label_space and evalset.project is None:
      if model.num_classes != evalset.num_classes:
        raise ConfigError(
            f"supervised model {model.name!r} predicts {model.num_classes} classes "
            f"({model.label_space}), dataset {evalset.name!r} has {evalset.num_classes} "
            f"classes ({evalset.model_label_space}): no projection between them")
    return model, evalset.project is not None and model.label_space == evalset.model_label_space
  scale = zs["logit_scale"] if zs["logit_scale"] == "model" else float(zs["logit_scale"])
  if zs["head"] == "imagenet" and evalset.model_label_space == "imagenet1k":
    head = _head_builder()(model, zs["classnames"], zs["templates"], logit_scale=scale,
                           cache_dir=cache_dir)
    return model.with_head(head), evalset.project is not None
  if not evalset.class_names:
    raise ConfigError(f"dataset {evalset.name!r} has no class names for a zero-shot head")
  templates = zs["templates"]
  head = _head_builder()(model, list(evalset.class_names), templates, logit_scale=scale,
                         label_space=f"{evalset.name}:classes", cache_dir=cache_dir)
  return model.with_head(head), False
