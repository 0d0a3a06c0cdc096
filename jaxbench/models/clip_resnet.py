"""CLIP's ModifiedResNet image tower (RN50, RN101, RN50x4, RN50x16, RN50x64) in Flax.

Differences from a torchvision ResNet (Radford et al. 2021):

* a stem of three 3x3 convolutions (the first with stride 2) and a 2x2 average
  pool instead of one 7x7 convolution and a max pool;
* anti-aliased downsampling: convolutions never stride; a stride-s block
  average-pools (s x s) after its 3x3 convolution and before its shortcut's 1x1
  convolution;
* attention pooling: the mean of the final feature map is prepended as a query
  token, learned positions are added, and one multi-head attention layer reads
  the map out; its output projection (``c_proj``) gives the embedding.

Parameter names follow OpenCLIP/OpenAI's ``visual.*`` names (``layer1_0`` is
``layer1.0``) so :func:`jaxbench.models.layers.default_src` maps them.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from jaxbench.models.layers import BatchNorm, attention, avg_pool, conv

EXPANSION = 4


@dataclasses.dataclass(frozen=True)
class ModifiedResNetConfig:
  """Attributes:
    layers: blocks per stage, e.g. (3, 4, 6, 3) for RN50.
    width: stem width; stage s has ``width * 2**s`` planes, features ``width * 32``.
    image_size: input side; the attention pool's positions fix it.
    heads: attention-pool heads (``width * 32 // 64`` in CLIP).
    output_dim: embedding width.
  """
  layers: tuple[int, ...] = (3, 4, 6, 3)
  width: int = 64
  image_size: int = 224
  heads: int = 32
  output_dim: int = 1024
  eps: float = 1e-5

  @property
  def embed_dim(self) -> int:
    return self.width * 32


class Bottleneck(nn.Module):
  planes: int
  stride: int = 1
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    bn = lambda name: BatchNorm(self.eps, name=name)
    out = nn.relu(bn("bn1")(conv(self.planes, 1, name="conv1")(x)))
    out = nn.relu(bn("bn2")(conv(self.planes, 3, name="conv2")(out)))
    if self.stride > 1:
      out = avg_pool(out, self.stride)
    out = bn("bn3")(conv(self.planes * EXPANSION, 1, name="conv3")(out))
    if self.stride > 1 or x.shape[-1] != self.planes * EXPANSION:
      x = avg_pool(x, self.stride) if self.stride > 1 else x
      x = bn("downsample_1")(conv(self.planes * EXPANSION, 1, name="downsample_0")(x))
    return nn.relu(out + x)


class AttentionPool(nn.Module):
  """One query (the spatial mean) attends over [mean; all positions]."""
  heads: int
  output_dim: int

  @nn.compact
  def __call__(self, x):
    """Args: x (N, H, W, C). Returns: (N, output_dim)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h * w, c)
    x = jnp.concatenate([x.mean(axis=1, keepdims=True), x], axis=1)
    pos = self.param("positional_embedding", nn.initializers.normal(c ** -0.5), (h * w + 1, c))
    x = x + pos.astype(x.dtype)
    hd = c // self.heads
    q = nn.Dense(c, name="q_proj")(x[:, :1]).reshape(n, 1, self.heads, hd)
    k = nn.Dense(c, name="k_proj")(x).reshape(n, h * w + 1, self.heads, hd)
    v = nn.Dense(c, name="v_proj")(x).reshape(n, h * w + 1, self.heads, hd)
    o = attention(q, k, v)
    return nn.Dense(self.output_dim, name="c_proj")(o.reshape(n, c))


class ModifiedResNet(nn.Module):
  cfg: ModifiedResNetConfig

  @nn.compact
  def __call__(self, x):
    """Args: x float (N, S, S, 3) normalised, S = cfg.image_size. Returns: (N, output_dim)."""
    cfg = self.cfg
    if x.shape[1] != cfg.image_size or x.shape[2] != cfg.image_size:
      raise ValueError(f"CLIP ModifiedResNet takes {cfg.image_size}x{cfg.image_size} inputs "
                       f"(its attention-pool positions fix the size); got {x.shape[1:3]}")
    bn = lambda name: BatchNorm(cfg.eps, name=name)
    w = cfg.width
    x = nn.relu(bn("bn1")(conv(w // 2, 3, stride=2, name="conv1")(x)))
    x = nn.relu(bn("bn2")(conv(w // 2, 3, name="conv2")(x)))
    x = nn.relu(bn("bn3")(conv(w, 3, name="conv3")(x)))
    x = avg_pool(x, 2)
    for s, blocks in enumerate(cfg.layers):
      for b in range(blocks):
        stride = 2 if (s > 0 and b == 0) else 1
        x = Bottleneck(w * 2 ** s, stride, cfg.eps, name=f"layer{s + 1}_{b}")(x)
    return AttentionPool(cfg.heads, cfg.output_dim, name="attnpool")(x)
