"""Tiny models and data shared by the attack tests.

Apply functions live at module level so that every test reuses the same
function object: jit caches compiled attacks per (attack config, apply,
shapes), and compile time dominates these tests.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def keys(n, seed=0, offset=0):
  """Per-example keys fold_in(key(seed), i) for i in [offset, offset + n)."""
  return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(
      jnp.arange(offset, offset + n))


def linear_apply(p, x):
  """Affine classifier on flattened images: (N, H, W, C) -> (N, K)."""
  return x.reshape(x.shape[0], -1) @ p["w"] + p["b"]


def softmax_apply(p, x):
  """A 'model' that returns probabilities (bad input for attacks)."""
  return jax.nn.softmax(linear_apply(p, x), axis=-1)


def make_linear(d, k, seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  return {"w": jnp.asarray(rng.normal(size=(d, k)).astype(np.float32) * scale),
          "b": jnp.asarray(rng.normal(size=(k,)).astype(np.float32) * 0.1)}


def toy2d(n=24, seed=0):
  """Points in [0.2, 0.8]^2 as (N, 1, 1, 2) images and a 2-class linear model."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(0.2, 0.8, size=(n, 1, 1, 2)).astype(np.float32)
  p = {"w": jnp.asarray([[1.0, -1.0], [-2.0, 1.5]], jnp.float32),
       "b": jnp.asarray([0.0, 0.1], jnp.float32)}
  return jnp.asarray(x), p


def zeroshot_apply(p, x):
  """CLIP-shaped head: logit_scale * normalize(tanh(x W)) @ head.T (+ bias)."""
  e = jnp.tanh(x.reshape(x.shape[0], -1) @ p["net"])
  u = e / jnp.linalg.norm(e, axis=-1, keepdims=True)
  return p["logit_scale"] * u @ p["head"].T + p.get("logit_bias", 0.0)


def make_zeroshot(d_in, dim, k, seed=0):
  rng = np.random.default_rng(seed)
  return {"net": jnp.asarray(rng.normal(size=(d_in, dim)).astype(np.float32) * 0.5),
          "head": jnp.asarray(rng.normal(size=(k, dim)).astype(np.float32)),
          "logit_scale": jnp.float32(10.0)}


class TinyCNN(nn.Module):
  """conv3x3(8) - relu - conv3x3(16) - relu - global mean - dense(10)."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3), padding=((1, 1), (1, 1)))(x))
    x = nn.relu(nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)))(x))
    return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def cnn_apply(params, images):
  x = (images - jnp.asarray(MEAN)) / jnp.asarray(STD)
  return TinyCNN().apply(params, x)


def cnn_pair(seed=0):
  """(flax params, torch module) computing the same logits from NCHW/NHWC.

  Weights are drawn with NumPy (He-style scales) rather than ``TinyCNN.init``,
  whose eager tracing costs seconds.
  """
  import torch
  rng = np.random.default_rng(seed)

  def conv(cin, cout):
    return {"kernel": (rng.normal(size=(3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))
                       ).astype(np.float32),
            "bias": (rng.normal(size=(cout,)) * 0.1).astype(np.float32)}
  p = {"Conv_0": conv(3, 8), "Conv_1": conv(8, 16),
       "Dense_0": {"kernel": (rng.normal(size=(16, 10)) / 4).astype(np.float32),
                   "bias": (rng.normal(size=(10,)) * 0.1).astype(np.float32)}}
  params = {"params": jax.tree.map(jnp.asarray, p)}

  class Torch(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
      self.c2 = torch.nn.Conv2d(8, 16, 3, padding=1)
      self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
      x = torch.relu(self.c1(x))
      x = torch.relu(self.c2(x))
      return self.fc(x.mean(dim=(2, 3)))

  t = Torch()
  with torch.no_grad():
    for name, conv in (("Conv_0", t.c1), ("Conv_1", t.c2)):
      conv.weight.copy_(torch.from_numpy(p[name]["kernel"].transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(p[name]["bias"]))
    t.fc.weight.copy_(torch.from_numpy(p["Dense_0"]["kernel"].T.copy()))
    t.fc.bias.copy_(torch.from_numpy(p["Dense_0"]["bias"]))
  return params, t.eval()
