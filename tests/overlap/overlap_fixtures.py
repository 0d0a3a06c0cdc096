"""Shared helpers for the overlap tests: synthetic images, tar shards, tiny Flax models.

The detector is a thumbnail feature extractor (4x4 average pooling, per-image mean removed,
a random orthogonal projection): a Flax module with no pretrained weights whose cosine
similarity is high for near-duplicates of these smooth images (>= 0.7 for 85-95 % crops,
>= 0.98 for the other transforms) and low for unrelated ones (<= 0.55 over 60 images).
"""
from __future__ import annotations

import io
import os
import tarfile

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxbench import models
from jaxbench.models.api import Model, Preprocess

SIZE = 32


def smooth_image(rng: np.random.Generator, h: int = 48, w: int = 64) -> np.ndarray:
  """A random smooth RGB image: a base colour plus random waves of up to 2 cycles."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  img = rng.uniform(70, 185, size=3)[None, None, :] + np.zeros((h, w, 3), np.float32)
  for fy in range(3):
    for fx in range(3):
      if fy == fx == 0:
        continue
      a = rng.normal(0, 1, size=(2, 3)) * 90 / (1 + fy + fx)
      ph = 2 * np.pi * (fy * yy / h + fx * xx / w)
      img += np.cos(ph)[..., None] * a[0] + np.sin(ph)[..., None] * a[1]
  return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(img: np.ndarray, quality: int = 95) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format="JPEG", quality=quality)
  return buf.getvalue()


def add_member(tf: tarfile.TarFile, name: str, data: bytes, **kw):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  for k, v in kw.items():
    setattr(info, k, v)
  tf.addfile(info, io.BytesIO(data))


def write_shard(path: str, samples, extra=None):
  """Writes an img2dataset-style shard: KEY.jpg, KEY.txt, KEY.json per sample.

  Args:
    samples: (key, jpeg bytes) pairs.
    extra: callable(tarfile) adding odd members at the end.
  """
  with tarfile.open(path, "w") as tf:
    for key, data in samples:
      add_member(tf, f"{key}.jpg", data)
      add_member(tf, f"{key}.txt", f"caption of {key}".encode())
      add_member(tf, f"{key}.json", b'{"key": "%s"}' % key.encode())
    if extra is not None:
      extra(tf)
  return path


class Thumb(nn.Module):
  """Thumbnail features: 4x4 mean pool, spatial mean removed, orthogonal projection."""

  @nn.compact
  def __call__(self, x):
    x = nn.avg_pool(x, (4, 4), strides=(4, 4))
    x = x - x.mean(axis=(1, 2), keepdims=True)
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(x.shape[-1], use_bias=False,
                    kernel_init=nn.initializers.orthogonal())(x)


class TinyClassifier(nn.Module):
  classes: int = 3

  @nn.compact
  def __call__(self, x):
    x = nn.avg_pool(x, (8, 8), strides=(8, 8)).reshape(x.shape[0], -1)
    return nn.Dense(self.classes)(x)


PRE = Preprocess(size=SIZE, resize=SIZE, interpolation="bicubic")


def thumb_model(name: str = "ovltest:thumb") -> Model:
  net = Thumb()
  # A NumPy orthogonal matrix: no eager JAX ops (slow under jax.distributed).
  q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((192, 192)))
  params = {"params": {"Dense_0": {"kernel": q.astype(np.float32)}}}
  return Model(name=name, params={"net": params}, preprocess=PRE, kind="zeroshot",
               net_image=lambda p, x: net.apply(p, x),
               net_text=lambda p, ids: jnp.zeros((ids.shape[0], 192)),
               tokenizer=lambda texts: np.zeros((len(texts), 8), np.int32))


def classifier_model(name: str = "ovltest:clf", classes: int = 3) -> Model:
  net = TinyClassifier(classes)
  rng = np.random.default_rng(1)
  params = {"params": {"Dense_0": {
      "kernel": rng.standard_normal((48, classes)).astype(np.float32) / 7,
      "bias": np.zeros(classes, np.float32)}}}
  return Model(name=name, params={"net": params}, preprocess=PRE, kind="supervised",
               label_space="custom", num_classes=classes,
               net_logits=lambda p, x: net.apply(p, x))


def _load(ref, revision=None, spec=None, **kw):
  if ref == "thumb":
    return thumb_model(spec or "ovltest:thumb")
  if ref == "clf":
    return classifier_model(spec or "ovltest:clf")
  raise ValueError(f"unknown test model {ref!r}")


def register_test_models():
  """Makes 'ovltest:thumb' and 'ovltest:clf' loadable through jaxbench.models.load."""
  if "ovltest" not in models.LAYOUTS:
    models.register_layout(models.Layout(name="ovltest", prefix="ovltest",
                                         detect=lambda files, d: False, load=_load))


def files_under(root: str) -> set[str]:
  out = set()
  for d, _, fs in os.walk(root):
    out.update(os.path.join(d, f) for f in fs)
  return out
