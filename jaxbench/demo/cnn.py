"""The demo's supervised baseline: a small Flax CNN and its checkpoint layout.

Layout of a saved classifier directory (registered as ``jaxbench-cnn`` with
:func:`jaxbench.models.register_layout`, so ``jaxbench.models.load(dir)`` finds it):

  config.json        {"model_type": "jaxbench_demo_cnn", "width", "num_classes",
                      "image_size", "label_space", "class_names", "mean", "std"}
  model.safetensors  one tensor per Flax parameter, named by its path joined
                     with '.' (``conv0.kernel``, ``head.bias``, ...)

The network: three 3x3 conv + ReLU stages (width, 2 width, 4 width channels;
2x2 max-pooling after the first two), global average pooling, a linear head.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import api, hub

MODEL_TYPE = "jaxbench_demo_cnn"
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


class Conv3x3(nn.Module):
  """3x3 'SAME' convolution with bias, parameters laid out as ``nn.Conv``'s.

  Computed as nine shifted views concatenated on the channel axis and one
  matmul (im2col): the same numbers as ``lax.conv``, but XLA:CPU runs it about
  three times faster inside ``lax.fori_loop`` (the iterative attacks), and as
  fast outside.
  """
  features: int

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)],
                           axis=-1)
    return cols @ kernel.reshape(9 * c, self.features) + bias


class DigitCNN(nn.Module):
  """Small convolutional classifier.

  Attributes:
    width: channels of the first stage.
    num_classes: logits per image.
  """
  width: int = 16
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    """Args: x float (N, H, W, 3) normalised. Returns: float (N, num_classes) logits."""
    for i, mult in enumerate((1, 2, 4)):
      x = nn.relu(Conv3x3(self.width * mult, name=f"conv{i}")(x))
      if i < 2:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(self.num_classes, name="head")(x.mean(axis=(1, 2)))


def init_params(width: int, num_classes: int, image_size: int, key) -> dict:
  # One compiled init instead of one small compilation per eager op (seconds).
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  return jax.jit(lambda k: DigitCNN(width, num_classes).init(k, x)["params"])(key)


def _flatten(params: dict) -> dict[str, np.ndarray]:
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    out[".".join(str(getattr(k, "key", k)) for k in path)] = np.asarray(leaf, np.float32)
  return out


def save(out_dir: str, params: dict, *, width: int, num_classes: int, image_size: int,
         label_space: str, class_names=()) -> list[str]:
  """Writes ``config.json`` and ``model.safetensors`` into ``out_dir``; returns their names."""
  from safetensors.numpy import save_file
  os.makedirs(out_dir, exist_ok=True)
  save_file(_flatten(params), os.path.join(out_dir, "model.safetensors"))
  cfg = {"model_type": MODEL_TYPE, "width": int(width), "num_classes": int(num_classes),
         "image_size": int(image_size), "label_space": label_space,
         "class_names": list(class_names), "mean": list(MEAN), "std": list(STD)}
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(cfg, f, indent=1, sort_keys=True)
  return ["config.json", "model.safetensors"]


def net_logits_fn(width: int, num_classes: int):
  module = DigitCNN(width, num_classes)

  def net_logits(p, x):
    return module.apply({"params": p}, x)
  return net_logits


_KEYS = ("width", "num_classes", "image_size", "label_space")


def load(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
         precision: str = "float32", **unused) -> api.Model:
  """Loads a saved classifier directory as a supervised :class:`Model`.

  Raises:
    ValueError: unknown options, a config.json missing keys, or tensors that do
      not fit the architecture (naming them).
  """
  if unused:
    raise ValueError(f"unknown options for a {MODEL_TYPE} model: {sorted(unused)}; "
                     "known: precision")
  if revision is not None:
    raise ValueError(f"{ref!r}: a local {MODEL_TYPE} directory has no revisions")
  files = hub.resolve(ref, ["config.json", "model.safetensors"])
  cfg = hub.read_json(files["config.json"])
  missing = [k for k in _KEYS if k not in cfg]
  if cfg.get("model_type") != MODEL_TYPE or missing:
    raise ValueError(f"{files['config.json']}: expected model_type {MODEL_TYPE!r} and keys "
                     f"{list(_KEYS)}; got model_type {cfg.get('model_type')!r}, missing "
                     f"{missing}")
  width, k, size = int(cfg["width"]), int(cfg["num_classes"]), int(cfg["image_size"])
  tensors = hub.load_safetensors([files["model.safetensors"]])
  want = jax.eval_shape(lambda: init_params(width, k, size, jax.random.key(0)))
  flat_want = {n: tuple(v.shape) for n, v in _flatten(
      jax.tree.map(lambda s: np.zeros(s.shape, np.float32), want)).items()}
  bad = sorted(n for n in flat_want if n in tensors and tuple(tensors[n].shape) != flat_want[n])
  if set(flat_want) != set(tensors) or bad:
    raise ValueError(
        f"{files['model.safetensors']} does not fit a width-{width} {MODEL_TYPE}: missing "
        f"{sorted(set(flat_want) - set(tensors))}, unexpected "
        f"{sorted(set(tensors) - set(flat_want))}, shape mismatches "
        f"{[(n, tensors[n].shape, flat_want[n]) for n in bad]}")
  params: dict = {}
  for name, a in tensors.items():
    node = params
    parts = name.split(".")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = a
  dtype = jnp.bfloat16 if precision == "bfloat16" else jnp.float32
  params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
  pp = api.Preprocess(size=size, resize=size, interpolation="bicubic",
                      mean=tuple(cfg.get("mean", MEAN)), std=tuple(cfg.get("std", STD)))
  prov = hub.provenance(ref, files, None, layout=MODEL_TYPE)
  prov["class_names"] = list(cfg.get("class_names", []))
  return api.Model(name=spec or ref, params={"net": params}, preprocess=pp,
                   kind="supervised", label_space=cfg["label_space"], num_classes=k,
                   provenance=prov, net_logits=net_logits_fn(width, k), precision=precision,
                   arch=DigitCNN(width, k))


def detect(files: list[str], ref: str) -> bool:
  return "config.json" in files and hub.config_json(ref).get("model_type") == MODEL_TYPE


def register() -> None:
  from jaxbench import models
  if "jaxbench-cnn" not in models.LAYOUTS:
    models.register_layout(models.Layout("jaxbench-cnn", "jaxbench-cnn", detect, load,
                                         priority=20))


register()
