"""ResNet (He et al. 2016, torchvision's v1.5 variant) and ResNeXt / wide ResNets in Flax.

One module serves timm's ``resnet*`` (torchvision's weights, ``*.tv_in1k``) and
transformers' ``ResNetForImageClassification`` (``microsoft/resnet-50``); each
layout maps its tensor names onto the parameter names here, which are timm's
(``layer1_0/conv1`` is ``layer1.0.conv1``).

Stem: 7x7/2 convolution, BN, ReLU, 3x3/2 max pool. Stages of basic (two 3x3) or
bottleneck (1x1, 3x3, 1x1 with expansion 4) blocks; a stride-2 block strides
its 3x3 convolution (``stride_in_1x1`` moves it to the first 1x1, as the
original ResNet and transformers' ``downsample_in_bottleneck`` do) and projects
its shortcut with a strided 1x1 convolution + BN. Global average pool, linear.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import flax.linen as nn

from jaxbench.models.layers import BatchNorm, conv, max_pool_3x3_s2


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
  """Attributes:
    layers: blocks per stage.
    block: 'bottleneck' or 'basic'.
    planes: planes per stage (a bottleneck's output is 4x planes).
    stem_width: stem convolution width.
    cardinality: groups of the 3x3 convolution (ResNeXt).
    base_width: width per group (64 = plain ResNet; 128 = wide ResNet).
    num_classes: logits; 0 = pooled features.
    stride_in_1x1: downsample in the first 1x1 instead of the 3x3.
    first_stride: stride of the first stage (1, or 2 in some transformers configs).
    eps: BatchNorm epsilon.
  """
  layers: tuple[int, ...] = (3, 4, 6, 3)
  block: str = "bottleneck"
  planes: tuple[int, ...] = (64, 128, 256, 512)
  stem_width: int = 64
  cardinality: int = 1
  base_width: int = 64
  num_classes: int = 1000
  stride_in_1x1: bool = False
  first_stride: int = 1
  eps: float = 1e-5

  @property
  def expansion(self) -> int:
    return 4 if self.block == "bottleneck" else 1


class Block(nn.Module):
  cfg: ResNetConfig
  planes: int
  stride: int

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    bn = lambda name: BatchNorm(cfg.eps, name=name)
    out_ch = self.planes * cfg.expansion
    if cfg.block == "bottleneck":
      width = int(math.floor(self.planes * (cfg.base_width / 64))) * cfg.cardinality
      s1, s3 = (self.stride, 1) if cfg.stride_in_1x1 else (1, self.stride)
      y = nn.relu(bn("bn1")(conv(width, 1, s1, name="conv1")(x)))
      y = nn.relu(bn("bn2")(conv(width, 3, s3, groups=cfg.cardinality, name="conv2")(y)))
      y = bn("bn3")(conv(out_ch, 1, name="conv3")(y))
    else:
      y = nn.relu(bn("bn1")(conv(self.planes, 3, self.stride, name="conv1")(x)))
      y = bn("bn2")(conv(self.planes, 3, name="conv2")(y))
    if self.stride != 1 or x.shape[-1] != out_ch:
      x = bn("downsample_1")(conv(out_ch, 1, self.stride, padding=0, name="downsample_0")(x))
    return nn.relu(y + x)


class ResNet(nn.Module):
  cfg: ResNetConfig

  @nn.compact
  def __call__(self, x):
    """Args: x (N, H, W, 3) normalised. Returns: (N, num_classes) logits (or features)."""
    cfg = self.cfg
    x = nn.relu(BatchNorm(cfg.eps, name="bn1")(conv(cfg.stem_width, 7, 2, name="conv1")(x)))
    x = max_pool_3x3_s2(x)
    for s, (blocks, planes) in enumerate(zip(cfg.layers, cfg.planes)):
      for b in range(blocks):
        stride = (cfg.first_stride if s == 0 else 2) if b == 0 else 1
        x = Block(cfg, planes, stride, name=f"layer{s + 1}_{b}")(x)
    x = x.mean(axis=(1, 2))
    if cfg.num_classes:
      x = nn.Dense(cfg.num_classes, name="fc")(x)
    return x


# --- timm architectures -----------------------------------------------------------

_DEPTHS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
           "resnet26": ("bottleneck", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3)),
           "resnet101": ("bottleneck", (3, 4, 23, 3)),
           "resnet152": ("bottleneck", (3, 8, 36, 3)),
           "resnet200": ("bottleneck", (3, 24, 36, 3))}
_VARIANTS = {"wide_resnet50_2": ("resnet50", dict(base_width=128)),
             "wide_resnet101_2": ("resnet101", dict(base_width=128)),
             "resnext50_32x4d": ("resnet50", dict(cardinality=32, base_width=4)),
             "resnext101_32x4d": ("resnet101", dict(cardinality=32, base_width=4)),
             "resnext101_32x8d": ("resnet101", dict(cardinality=32, base_width=8)),
             "resnext101_64x4d": ("resnet101", dict(cardinality=64, base_width=4))}
TIMM_ARCHS = tuple(sorted(_DEPTHS)) + tuple(sorted(_VARIANTS))
# timm model_args this family understands (others are refused by timm_layout).
TIMM_ARGS = {"layers", "num_classes", "cardinality", "base_width", "global_pool", "in_chans",
             "drop_rate", "drop_path_rate"}


def timm_config(arch: str, args: dict, num_classes: int) -> ResNetConfig:
  """ResNetConfig for a timm architecture name and its ``model_args``."""
  base, extra = _VARIANTS.get(arch, (arch, {}))
  block, depths = _DEPTHS[base]
  kw = dict(block=block, layers=tuple(args.get("layers", depths)), num_classes=num_classes,
            cardinality=int(args.get("cardinality", extra.get("cardinality", 1))),
            base_width=int(args.get("base_width", extra.get("base_width", 64))))
  return ResNetConfig(**kw)


def hf_config(c: dict) -> ResNetConfig:
  """ResNetConfig from a transformers ``ResNetConfig`` dict (microsoft/resnet-*)."""
  block = c.get("layer_type", "bottleneck")
  hidden = tuple(c.get("hidden_sizes", (256, 512, 1024, 2048)))
  planes = tuple(h // 4 for h in hidden) if block == "bottleneck" else hidden
  act = c.get("hidden_act", "relu")
  if act != "relu":
    raise ValueError(f"transformers ResNet hidden_act {act!r} is not implemented; known: relu")
  num_labels = len(c.get("id2label", {})) or int(c.get("num_labels", 1000))
  return ResNetConfig(layers=tuple(c.get("depths", (3, 4, 6, 3))), block=block, planes=planes,
                      stem_width=int(c.get("embedding_size", 64)), num_classes=num_labels,
                      stride_in_1x1=bool(c.get("downsample_in_bottleneck", False)),
                      first_stride=2 if c.get("downsample_in_first_stage", False) else 1)


def hf_key(path: tuple) -> Optional[str]:
  """Our ResNet param path -> transformers ResNetForImageClassification tensor name."""
  leaf = {"kernel": "weight", "scale": "weight", "mean": "running_mean",
          "var": "running_var"}.get(path[-1], path[-1])
  mod = path[:-1]
  if mod == ("fc",):
    return f"classifier.1.{leaf}"
  if mod in (("conv1",), ("bn1",)):
    part = "convolution" if mod[0] == "conv1" else "normalization"
    return f"resnet.embedder.embedder.{part}.{leaf}"
  stage, block = mod[0][len("layer"):].split("_")
  base = f"resnet.encoder.stages.{int(stage) - 1}.layers.{block}"
  name = mod[1]
  if name.startswith("downsample"):
    part = "convolution" if name.endswith("0") else "normalization"
    return f"{base}.shortcut.{part}.{leaf}"
  part = "convolution" if name.startswith("conv") else "normalization"
  return f"{base}.layer.{int(name[-1]) - 1}.{part}.{leaf}"
