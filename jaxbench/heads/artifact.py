"""A trained head on disk: weights plus everything needed to trust and reuse it.

One ``.safetensors`` file holds ``weight`` (K, D) and ``bias`` (K,) float32 and,
in its string metadata, a JSON record:

* ``backbone``: the model spec the features come from (loaded by ``probe:PATH``);
* ``preprocess``: that backbone's preprocessing fields (re-applied on load);
* ``features``: the feature identity (:func:`jaxbench.heads.features.identity`);
* ``label_space``, ``class_names``: what the K logits mean;
* ``data``: training set, example count, sha256 of the example ids (and the
  validation ids' hash), ``seed``;
* ``recipe``: how it was trained (method, C sweep or optimiser and schedule,
  BatchNorm mode, epoch selection split) and its figures;
* ``backbone_state``: names of ``backbone/<param path>`` tensors, BatchNorm
  statistics that replace the backbone's (RoZ's train-mode BatchNorm changes them);
* ``content_sha256``: sha256 over the tensors' bytes and the record, checked on
  load, so a file edited by hand or truncated is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import numpy as np

from jaxbench import atomic
from jaxbench.models.api import Preprocess

FORMAT = "jaxbench.head/1"


class ArtifactError(ValueError):
  """A head file that is missing, corrupt or not a jaxbench head."""


@dataclasses.dataclass(frozen=True, eq=False)
class HeadArtifact:
  """Attributes: see the module docstring; ``weight`` (K, D), ``bias`` (K,) float32."""
  weight: np.ndarray
  bias: np.ndarray
  backbone: str
  preprocess: dict
  features: dict
  label_space: str
  class_names: tuple = ()
  data: dict = dataclasses.field(default_factory=dict)
  seed: int = 0
  recipe: dict = dataclasses.field(default_factory=dict)
  backbone_state: dict = dataclasses.field(default_factory=dict)

  @property
  def num_classes(self) -> int:
    return int(self.weight.shape[0])

  def record(self) -> dict:
    return {"format": FORMAT, "backbone": self.backbone, "preprocess": self.preprocess,
            "features": self.features, "label_space": self.label_space,
            "class_names": list(self.class_names), "data": self.data, "seed": int(self.seed),
            "recipe": self.recipe, "backbone_state": sorted(self.backbone_state)}

  def get_preprocess(self) -> Preprocess:
    d = dict(self.preprocess)
    d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
    return Preprocess(**d)


def preprocess_record(pp: Preprocess) -> dict:
  return {k: (list(v) if isinstance(v, tuple) else v)
          for k, v in dataclasses.asdict(pp).items()}


def _content_hash(tensors: dict, record_json: str) -> str:
  h = hashlib.sha256()
  for name in sorted(tensors):
    a = np.ascontiguousarray(tensors[name], np.float32)
    h.update(name.encode() + b"\0" + str(a.shape).encode())
    h.update(a.tobytes())
  h.update(record_json.encode())
  return h.hexdigest()


def save(art: HeadArtifact, path: str) -> str:
  """Writes ``art`` atomically; returns its content sha256."""
  from safetensors.numpy import save as st_save
  weight = np.ascontiguousarray(art.weight, np.float32)
  bias = np.ascontiguousarray(art.bias, np.float32)
  if weight.ndim != 2 or bias.shape != (weight.shape[0],):
    raise ArtifactError(f"head weight must be (K, D) and bias (K,), got {weight.shape} and "
                        f"{bias.shape}")
  if art.class_names and len(art.class_names) != weight.shape[0]:
    raise ArtifactError(f"{len(art.class_names)} class names for {weight.shape[0]} logits")
  rec = json.dumps(art.record(), sort_keys=True, default=atomic.json_default)
  tensors = {"weight": weight, "bias": bias,
             **{f"backbone/{k}": np.ascontiguousarray(v, np.float32)
                for k, v in art.backbone_state.items()}}
  digest = _content_hash(tensors, rec)
  blob = st_save(tensors, metadata={"jaxbench_head": rec, "content_sha256": digest})
  d = os.path.dirname(os.path.abspath(path))
  os.makedirs(d, exist_ok=True)
  atomic.atomic_write_bytes(path, blob)
  return digest


def load(path: str) -> HeadArtifact:
  """Reads and verifies a head file.

  Raises:
    ArtifactError: missing file, not a jaxbench head, or content hash mismatch.
  """
  from safetensors import safe_open
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise ArtifactError(f"head file {path!r} does not exist")
  try:
    with safe_open(path, framework="numpy") as f:
      meta = f.metadata() or {}
      tensors = {k: f.get_tensor(k) for k in f.keys()}
  except Exception as e:  # safetensors raises its own error types for corrupt headers
    raise ArtifactError(f"head file {path!r} is not a readable safetensors file: {e}") from e
  if "jaxbench_head" not in meta or not {"weight", "bias"} <= set(tensors) or any(
      k not in ("weight", "bias") and not k.startswith("backbone/") for k in tensors):
    raise ArtifactError(f"{path!r} is not a jaxbench head: expected tensors 'weight', 'bias' "
                        f"and 'jaxbench_head' metadata, found tensors {sorted(tensors)} and "
                        f"metadata keys {sorted(meta)}")
  rec_json = meta["jaxbench_head"]
  digest = _content_hash(tensors, rec_json)
  if digest != meta.get("content_sha256"):
    raise ArtifactError(f"head file {path!r}: content sha256 {digest} does not match the "
                        f"recorded {meta.get('content_sha256')} (file modified or corrupt)")
  rec = json.loads(rec_json)
  if rec.get("format") != FORMAT:
    raise ArtifactError(f"head file {path!r} has format {rec.get('format')!r}, "
                        f"expected {FORMAT!r}")
  state = {k[len("backbone/"):]: v for k, v in tensors.items() if k.startswith("backbone/")}
  if sorted(state) != list(rec.get("backbone_state", [])):
    raise ArtifactError(f"head file {path!r}: backbone tensors {sorted(state)} do not match "
                        f"the recorded {rec.get('backbone_state')}")
  return HeadArtifact(weight=tensors["weight"], bias=tensors["bias"], backbone=rec["backbone"],
                      preprocess=rec["preprocess"], features=rec["features"],
                      label_space=rec["label_space"], class_names=tuple(rec["class_names"]),
                      data=rec["data"], seed=int(rec["seed"]), recipe=rec["recipe"],
                      backbone_state=state)


def content_hash(path: str) -> str:
  """The recorded (and verified) content sha256 of a head file."""
  from safetensors import safe_open
  load(path)
  with safe_open(os.path.expanduser(path), framework="numpy") as f:
    return f.metadata()["content_sha256"]
