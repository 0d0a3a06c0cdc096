"""A trained head as a :class:`jaxbench.models.Model`: spec ``probe:PATH``.

``probe:/runs/lp/heads/clip_vit_b32.safetensors`` loads the head file, loads the
backbone it names (its spec is in the file; ``precision=`` passes through),
re-applies the preprocessing the head was trained with and returns a
*supervised* model whose ``apply`` is ``head(features(backbone(x)))``. Every
suite (natural shifts, CIFAR-10-C, typographic sets) and every attack then runs
on it through the usual contract, and attacks differentiate through backbone
and head together. The row records the head's hash, recipe and data.

:func:`attach` puts a head on a backbone already loaded; the backbone's feature
identity (model, preprocessing, feature kind) must equal the head's.
"""
from __future__ import annotations

import os

import jax.numpy as jnp

from jaxbench.heads import artifact as artifact_lib
from jaxbench.heads import features as features_lib
from jaxbench.models.api import Model

PREFIX = "probe"


class TrainedHeadModel(Model):
  """A Model whose rows say what it is: 'probe' (a head on a zero-shot model's
  embeddings, RoZ's CLIP_LP) or 'supervised' (a new head on a supervised backbone,
  RoZ's CIFAR-10 baselines). Only the recorded kind differs: ``apply`` is the
  supervised path, so the report never counts a probe as a supervised baseline."""

  def describe(self) -> dict:
    d = super().describe()
    d["kind"] = self.head_info.get("row_kind", "supervised")
    return d


def attach(backbone: Model, art: artifact_lib.HeadArtifact, *, name: str = "",
           content_sha256: str = "") -> Model:
  """``backbone`` + ``art`` as one supervised Model over the head's label space.

  Raises:
    features.FeatureMismatch: ``backbone`` (or its preprocessing) is not the one
      the head was trained on; both identities are named.
  """
  normalize = bool(art.features.get("normalize", False))
  features_lib.check_identity(art.features, features_lib.identity(backbone, normalize=normalize),
                              f"head {name or art.backbone}")
  fn = features_lib.feature_fn(backbone, normalize=normalize)
  dim = art.weight.shape[1]

  def net_logits(p, x):
    z = fn(p["backbone"], x)
    if z.shape[-1] != dim:
      raise features_lib.FeatureMismatch(
          f"head {name!r} expects {dim}-dim features, backbone {backbone.name!r} gives "
          f"{z.shape[-1]}")
    return z @ p["head"]["weight"].T + p["head"]["bias"]

  net = backbone.params["net"]
  if art.backbone_state:   # BatchNorm statistics updated while the head trained (RoZ)
    from jaxbench.heads import bn_train
    net = bn_train.set_bn_leaves(net, art.backbone_state)
  params = {"net": {"backbone": net,
                    "head": {"weight": jnp.asarray(art.weight, jnp.float32),
                             "bias": jnp.asarray(art.bias, jnp.float32)}}}
  info = {"trained_head": True, "backbone": art.backbone, "features": art.features,
          "label_space": art.label_space, "data": {k: v for k, v in art.data.items()
                                                   if k not in ("ids", "val_ids")},
          "seed": art.seed, "recipe": art.recipe, "content_sha256": content_sha256,
          "row_kind": "probe" if backbone.is_zeroshot else "supervised",
          "backbone_state": sorted(art.backbone_state)}
  prov = {"backbone": backbone.provenance, "head_file": name, "head_sha256": content_sha256}
  return TrainedHeadModel(name=name or f"{PREFIX}:<{art.backbone}>", params=params,
                          preprocess=backbone.preprocess, kind="supervised",
                          label_space=art.label_space, num_classes=art.num_classes,
                          provenance=prov, net_logits=net_logits, head_info=info,
                          precision=backbone.precision)


def load(ref: str, revision=None, spec=None, **options) -> Model:
  """The ``probe:PATH`` layout loader (see the module docstring)."""
  from jaxbench import models
  if revision is not None:
    raise ValueError(f"probe:{ref}: a head file has no revisions")
  path = os.path.expanduser(ref)
  art = artifact_lib.load(path)
  backbone = models.load(art.backbone, **options)
  backbone = backbone.with_preprocess(art.get_preprocess())
  return attach(backbone, art, name=spec or f"{PREFIX}:{ref}",
                content_sha256=artifact_lib.content_hash(path))


def _register():
  from jaxbench import models
  models.register_layout(models.Layout("probe", PREFIX, lambda files, ref: False, load))


_register()
