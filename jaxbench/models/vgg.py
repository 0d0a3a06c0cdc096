"""VGG (Simonyan & Zisserman 2015) in timm's layout (``timm/vgg16.tv_in1k``: torchvision's weights).

``features``: 3x3 convolutions (+ BN for ``*_bn``) with ReLU, and 2x2 max pools.
timm's head keeps torchvision's two 4096-wide layers as convolutions
(``pre_logits.fc1``: 7x7, ``pre_logits.fc2``: 1x1, both ReLU), then global
average pooling and ``head.fc``. At 224 px the 7x7 map becomes 1x1, which is
torchvision's classifier exactly; a map smaller than 7x7 is first adaptively
average-pooled up to 7x7, as timm does.

Parameter names are PyTorch's indices into ``features`` (``features_0`` is
``features.0``).
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn

from jaxbench.models.layers import BatchNorm, adaptive_avg_pool, conv

CFGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}
TIMM_ARCHS = tuple(sorted(CFGS)) + tuple(sorted(f"{k}_bn" for k in CFGS))
TIMM_ARGS = {"num_classes", "mlp_ratio", "global_pool", "in_chans", "drop_rate"}


@dataclasses.dataclass(frozen=True)
class VGGConfig:
  """Attributes:
    cfg: conv widths and 'M' (max pool), as torchvision's.
    batch_norm: BN after each convolution (``*_bn``).
    mlp_ratio: width of ``pre_logits.fc1`` relative to 4096.
  """
  cfg: tuple = CFGS["vgg16"]
  batch_norm: bool = False
  num_classes: int = 1000
  mlp_ratio: float = 1.0
  eps: float = 1e-5


class VGG(nn.Module):
  cfg: VGGConfig

  @nn.compact
  def __call__(self, x):
    """Args: x (N, H, W, 3) normalised. Returns: (N, num_classes) logits."""
    i = 0
    for v in self.cfg.cfg:
      if v == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        i += 1
        continue
      x = conv(v, 3, padding=1, bias=True, name=f"features_{i}")(x)
      i += 1
      if self.cfg.batch_norm:
        x = BatchNorm(self.cfg.eps, name=f"features_{i}")(x)
        i += 1
      x = nn.relu(x)
      i += 1
    h, w = x.shape[1:3]
    if h < 7 or w < 7:
      x = adaptive_avg_pool(x, (max(7, h), max(7, w)))
    mid = int(4096 * self.cfg.mlp_ratio)
    x = nn.relu(conv(mid, 7, padding=0, bias=True, name="pre_logits_fc1")(x))
    x = nn.relu(conv(4096, 1, padding=0, bias=True, name="pre_logits_fc2")(x))
    x = x.mean(axis=(1, 2))
    if self.cfg.num_classes:
      x = nn.Dense(self.cfg.num_classes, name="head_fc")(x)
    return x


def timm_config(arch: str, args: dict, num_classes: int) -> VGGConfig:
  bn = arch.endswith("_bn")
  return VGGConfig(cfg=CFGS[arch[:-3] if bn else arch], batch_norm=bn, num_classes=num_classes,
                   mlp_ratio=float(args.get("mlp_ratio", 1.0)))


def timm_key(path: tuple) -> tuple[str, ...]:
  """Our flat names for timm's nested head modules (pre_logits.fc1, head.fc)."""
  head = {"pre_logits_fc1": ("pre_logits", "fc1"), "pre_logits_fc2": ("pre_logits", "fc2"),
          "head_fc": ("head", "fc")}
  return head.get(path[0], (path[0],)) + tuple(path[1:])
