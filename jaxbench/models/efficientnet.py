"""EfficientNet B0-B7 (Tan & Le 2019) in timm's layout (``timm/efficientnet_b3.ra2_in1k``).

The architecture is derived the way timm derives it: the B0 block table below
(type, repeats, kernel, stride, expansion, output channels, squeeze-excite
ratio), widths scaled by ``channel_multiplier`` and rounded to multiples of 8
(never below 90% of the scaled value), repeats scaled by ``depth_multiplier``
and rounded up. Blocks:

* ``ds`` (depthwise separable, first stage): depthwise kxk, BN+SiLU, SE, 1x1, BN;
* ``ir`` (MBConv): 1x1 expand, BN+SiLU, depthwise kxk (strided), BN+SiLU, SE,
  1x1 project, BN; residual when the shape is kept.

SE reduces the *block input* width by 4 (timm computes it from the expanded
width divided by the expansion). Padding is symmetric (timm's non-``tf_``
models). Then a 1x1 head convolution to ``round(1280 * channel_multiplier)``,
BN+SiLU, global average pooling and the classifier.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax.numpy as jnp

from jaxbench.models.layers import BatchNorm, conv

# (type, repeats, kernel, stride, expansion, out channels, se ratio) per stage.
B0 = (("ds", 1, 3, 1, 1, 16, 0.25), ("ir", 2, 3, 2, 6, 24, 0.25), ("ir", 2, 5, 2, 6, 40, 0.25),
      ("ir", 3, 3, 2, 6, 80, 0.25), ("ir", 3, 5, 1, 6, 112, 0.25), ("ir", 4, 5, 2, 6, 192, 0.25),
      ("ir", 1, 3, 1, 6, 320, 0.25))
# timm name -> (channel multiplier, depth multiplier).
SCALES = {"efficientnet_b0": (1.0, 1.0), "efficientnet_b1": (1.0, 1.1),
          "efficientnet_b2": (1.1, 1.2), "efficientnet_b3": (1.2, 1.4),
          "efficientnet_b4": (1.4, 1.8), "efficientnet_b5": (1.6, 2.2),
          "efficientnet_b6": (1.8, 2.6), "efficientnet_b7": (2.0, 3.1)}
TIMM_ARCHS = tuple(sorted(SCALES))
# channel_multiplier/depth_multiplier are jaxbench's own model_args (small test
# configs); timm's factory fixes them per architecture name.
TIMM_ARGS = {"num_classes", "global_pool", "in_chans", "drop_rate", "drop_path_rate",
             "channel_multiplier", "depth_multiplier"}


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  if new_v < round_limit * v:
    new_v += divisor
  return new_v


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  kind: str        # 'ds' or 'ir'
  in_ch: int
  out_ch: int
  kernel: int
  stride: int
  mid_ch: int      # expanded width (= in_ch for 'ds')
  se_ch: int       # squeeze width (0 = no SE)

  @property
  def skip(self) -> bool:
    return self.stride == 1 and self.in_ch == self.out_ch


@dataclasses.dataclass(frozen=True)
class EfficientNetConfig:
  stem: int
  stages: tuple[tuple[BlockSpec, ...], ...]
  head: int
  num_classes: int = 1000
  eps: float = 1e-5


def config(channel_multiplier: float, depth_multiplier: float,
           num_classes: int = 1000) -> EfficientNetConfig:
  """The EfficientNet with these multipliers, block by block."""
  ch = lambda c: make_divisible(c * channel_multiplier)
  stem = ch(32)
  in_ch, stages = stem, []
  for kind, repeats, k, s, e, c, se in B0:
    n = int(math.ceil(repeats * depth_multiplier))
    blocks = []
    for b in range(n):
      out = ch(c)
      if kind == "ds":
        mid, se_ch = in_ch, round(in_ch * se)
      else:
        mid = make_divisible(in_ch * e)
        se_ch = round(mid * (se / e))
      blocks.append(BlockSpec(kind, in_ch, out, k, s if b == 0 else 1, mid, se_ch))
      in_ch = out
    stages.append(tuple(blocks))
  return EfficientNetConfig(stem=stem, stages=tuple(stages), head=ch(1280),
                            num_classes=num_classes)


class SqueezeExcite(nn.Module):
  reduced: int

  @nn.compact
  def __call__(self, x):
    s = x.mean(axis=(1, 2), keepdims=True)
    s = nn.silu(conv(self.reduced, 1, bias=True, name="conv_reduce")(s))
    s = conv(x.shape[-1], 1, bias=True, name="conv_expand")(s)
    return x * nn.sigmoid(s)


def _pad(k: int, s: int) -> int:
  return ((s - 1) + (k - 1)) // 2


class MBBlock(nn.Module):
  spec: BlockSpec
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    sp = self.spec
    bn = lambda name: BatchNorm(self.eps, name=name)
    y = x
    if sp.kind == "ds":
      y = nn.silu(bn("bn1")(conv(sp.in_ch, sp.kernel, sp.stride, _pad(sp.kernel, sp.stride),
                                 groups=sp.in_ch, name="conv_dw")(y)))
      if sp.se_ch:
        y = SqueezeExcite(sp.se_ch, name="se")(y)
      y = bn("bn2")(conv(sp.out_ch, 1, name="conv_pw")(y))
    else:
      y = nn.silu(bn("bn1")(conv(sp.mid_ch, 1, name="conv_pw")(y)))
      y = nn.silu(bn("bn2")(conv(sp.mid_ch, sp.kernel, sp.stride, _pad(sp.kernel, sp.stride),
                                 groups=sp.mid_ch, name="conv_dw")(y)))
      if sp.se_ch:
        y = SqueezeExcite(sp.se_ch, name="se")(y)
      y = bn("bn3")(conv(sp.out_ch, 1, name="conv_pwl")(y))
    return y + x if sp.skip else y


class EfficientNet(nn.Module):
  cfg: EfficientNetConfig

  @nn.compact
  def __call__(self, x):
    """Args: x (N, H, W, 3) normalised. Returns: (N, num_classes) logits."""
    cfg = self.cfg
    x = nn.silu(BatchNorm(cfg.eps, name="bn1")(conv(cfg.stem, 3, 2, 1, name="conv_stem")(x)))
    for s, blocks in enumerate(cfg.stages):
      for b, spec in enumerate(blocks):
        x = MBBlock(spec, cfg.eps, name=f"blocks_{s}_{b}")(x)
    x = nn.silu(BatchNorm(cfg.eps, name="bn2")(conv(cfg.head, 1, name="conv_head")(x)))
    x = jnp.mean(x, axis=(1, 2))
    if cfg.num_classes:
      x = nn.Dense(cfg.num_classes, name="classifier")(x)
    return x


def timm_config(arch: str, args: dict, num_classes: int) -> EfficientNetConfig:
  cm, dm = SCALES[arch]
  return config(float(args.get("channel_multiplier", cm)),
                float(args.get("depth_multiplier", dm)), num_classes)
