"""OpenCLIP image towers built on timm trunks (``vision_cfg.timm_model_name``).

OpenCLIP's ``TimmModel`` wraps ``timm.create_model(name)`` as ``visual.trunk`` and
adds ``visual.head`` (``timm_proj``: 'linear' -> ``head.proj``, 'mlp' -> timm's
``Mlp`` ``head.mlp.fc1/fc2``, 'none' -> nothing, None -> the trunk's own
classifier sized to ``embed_dim``). Implemented trunk families:

* ``convnext``: timm's ConvNeXt (stem 4x4/4 conv + LayerNorm, stages of
  depthwise 7x7 conv -> LayerNorm -> MLP -> layer scale, LayerNorm+2x2/2 conv
  downsampling, head LayerNorm after global average pooling);
* ``vit``: timm's VisionTransformer in the variants OpenCLIP uses: SigLIP/SigLIP2
  (no class token, learned positions, attention-pooling 'map' head), CLIP-style
  (class token, pre-norm, token pool, e.g. MobileCLIP2-L-14) and MobileCLIP-B's
  conv-stem ViT (BatchNorm stem, positions added before the class token);
* ``eva``: timm's Eva: EVA-01 (fused qkv with q/v biases), EVA-02 (2-D rotary
  embeddings, SwiGLU with sub-LN, LN before the attention projection), EVA-02-E
  (post-norm blocks) and PE-Core (``AttentionRope``, 'xy' rotary grid with an
  offset, norm_pre, attention pooling);
* ``vitamin``: timm's ViTamin (MBConv stages with LayerNorm2d, strided conv to
  tokens, GeGLU ViT blocks, average pool + fc_norm);
* ``fastvit``: timm's FastViT MCi trunks of MobileCLIP-S*/MobileCLIP2-S*
  (:mod:`jaxbench.models.openclip_fastvit`, re-parameterised at load).

Families built in other modules join through :func:`register_family`
(:mod:`jaxbench.models.openclip_swin`: Swin and layer-scale ViTs).

A trunk's hyper-parameters are timm's constructor arguments for its registered
name (:data:`TRUNKS`), so jaxbench needs neither torch nor timm to load one;
:func:`register_trunk` adds a name (tests register reduced-depth trunks with the
same names in timm). The transformer blocks are
:class:`jaxbench.models.clip.Encoder`; the map head is
:class:`jaxbench.models.siglip.MAPHead` (timm's fused ``qkv``/``kv`` tensors are
split by the name map).

The text tower is :mod:`jaxbench.models.openclip_text` (under ``text.`` for
``custom_text`` configs). A config with ``init_logit_bias`` (SigLIP-style) scores
with a sigmoid.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import clip, layers, openclip_common, openclip_fastvit, openclip_text, siglip

FAMILIES = ("convnext", "vit", "eva", "vitamin", "fastvit")


@dataclasses.dataclass(frozen=True)
class ConvNeXtCfg:
  depths: tuple
  dims: tuple
  eps: float = 1e-6
  ls: bool = True                    # layer scale ('gamma') in every block


@dataclasses.dataclass(frozen=True)
class ViTCfg:
  width: int
  depth: int
  heads: int
  patch: int
  image_size: int
  mlp_ratio: float = 4.0
  class_token: bool = True
  global_pool: str = "token"         # 'token', 'map', 'avg'
  act: str = "gelu"
  eps: float = 1e-6
  pre_norm: bool = False
  # Hybrid conv stem instead of the patch conv (MobileCLIP's vit_base_mci_224): per conv
  # (channels, kernel = stride); all but the last are bias-free + BatchNorm + GELU.
  conv_stem: tuple = ()
  no_embed_class: bool = False       # positions added to the patches only, before [CLS]

  def tower(self) -> clip.TowerConfig:
    return clip.TowerConfig(width=self.width, layers=self.depth, heads=self.heads,
                            mlp_dim=int(self.width * self.mlp_ratio), act=self.act, eps=self.eps)


@dataclasses.dataclass(frozen=True)
class EvaCfg:
  """timm ``Eva`` (EVA-01 and EVA-02 image towers) as OpenCLIP uses it (class token pooling)."""
  width: int
  depth: int
  heads: int
  patch: int
  image_size: int
  mlp_ratio: float = 4.0
  qkv_fused: bool = True            # one qkv Linear + q_bias/v_bias (EVA-01, EVA-02-E)
  swiglu: bool = False              # SwiGLU MLP (fc1_g, fc1_x) instead of fc1 -> GELU
  scale_mlp: bool = False           # sub-LN inside the MLP
  scale_attn_inner: bool = False    # sub-LN before the attention output projection
  rope: bool = False                # 2-D rotary embeddings (EVA-02)
  ref_feat_shape: Optional[tuple] = None
  post_norm: bool = False           # x + norm(f(x)) blocks (EVA-02-E)
  eps: float = 1e-6
  global_pool: str = "token"        # 'token' or 'map' (attention pooling, PE-Core)
  class_token: bool = True
  attn_rope: bool = False           # timm AttentionRope: fused qkv Linear *with* bias (PE-Core)
  pre_norm: bool = False            # norm_pre after the embeddings (patch conv then has no bias)
  rope_offset: float = 0.0
  rope_xy: bool = False             # meshgrid 'xy' indexing (PE-Core) instead of 'ij'
  pool_heads: int = 8
  pool_mlp_ratio: float = 4.0

  def pool_tower(self) -> clip.TowerConfig:
    return clip.TowerConfig(width=self.width, layers=0, heads=self.pool_heads,
                            mlp_dim=int(self.width * self.pool_mlp_ratio), act="gelu",
                            eps=self.eps)


@dataclasses.dataclass(frozen=True)
class VitaminCfg:
  """timm ViTamin: MBConv stem/stages (LayerNorm2d, GELU), strided conv to tokens, ViT with
  GeGLU MLPs (their own LayerNorm), average pooling + fc_norm."""
  stem_width: int
  conv_dims: tuple                 # the two MBConv stages' widths
  conv_depths: tuple
  width: int
  depth: int
  heads: int
  image_size: int
  mlp_ratio: float = 2.0
  pos_embed: bool = True
  eps: float = 1e-6


TRUNKS: dict[str, tuple[str, object]] = {}


@dataclasses.dataclass(frozen=True)
class TrunkFamily:
  """A trunk family built in another module (:func:`register_family`).

  Attributes:
    cfg_cls: the trunk's config dataclass (with ``image_size``).
    module: ``module(cfg, name=...)``: a Flax module (N, S, S, 3) -> pooled (N, features).
    src: ``src(path, shape, prefix)`` -> :class:`layers.Src`, the trunk's name map.
    pools: the ``timm_pool`` values that keep the trunk's own pooling (OpenCLIP's
      'linear'/'mlp' heads go on top; other pools and projections are refused).
  """
  cfg_cls: type
  module: Callable
  src: Callable
  pools: tuple = ("",)


# Trunk families of other modules (openclip_swin), by name.
EXTRA_FAMILIES: dict[str, TrunkFamily] = {}


def register_family(name: str, family: TrunkFamily):
  """Adds a trunk family built in another module (its trunks: :func:`register_trunk`)."""
  EXTRA_FAMILIES[name] = family


def register_trunk(name: str, family: str, **kwargs):
  """Makes timm model ``name`` loadable: ``family`` in FAMILIES, kwargs of its config class.

  Example: ``register_trunk('convnext_tiny', 'convnext', depths=(3, 3, 9, 3),
  dims=(96, 192, 384, 768))``.
  """
  if family not in FAMILIES and family not in EXTRA_FAMILIES:
    raise ValueError(f"unknown trunk family {family!r}; known: "
                     f"{FAMILIES + tuple(EXTRA_FAMILIES)}")
  cls = {"convnext": ConvNeXtCfg, "vit": ViTCfg, "eva": EvaCfg, "vitamin": VitaminCfg,
         "fastvit": openclip_fastvit.FastViTCfg}.get(
      family) or EXTRA_FAMILIES[family].cfg_cls
  TRUNKS[name] = (family, cls(**kwargs))


def _register_defaults():
  # Values from timm 1.0's model definitions (convnext.py, vision_transformer.py).
  for name, depths, dims in (
      ("convnext_tiny", (3, 3, 9, 3), (96, 192, 384, 768)),
      ("convnext_small", (3, 3, 27, 3), (96, 192, 384, 768)),
      ("convnext_base", (3, 3, 27, 3), (128, 256, 512, 1024)),
      ("convnext_large", (3, 3, 27, 3), (192, 384, 768, 1536)),
      ("convnext_xlarge", (3, 3, 27, 3), (256, 512, 1024, 2048))):
    register_trunk(name, "convnext", depths=depths, dims=dims)
  register_trunk("convnext_xxlarge", "convnext", depths=(3, 4, 30, 3),
                 dims=(384, 768, 1536, 3072), eps=1e-5)
  tanh = "gelu_pytorch_tanh"
  siglip_sizes = {
      # name stem: (width, depth, heads, mlp_ratio, {size: act})
      "vit_base_patch16": (768, 12, 12, 4.0, {224: "gelu", 256: "gelu", 384: "gelu",
                                              512: "gelu"}),
      "vit_base_patch32": (768, 12, 12, 4.0, {256: tanh}),
      "vit_large_patch16": (1024, 24, 16, 4.0, {256: "gelu", 384: "gelu", 512: tanh}),
      "vit_so400m_patch14": (1152, 27, 16, 3.7362, {224: "gelu", 378: "gelu", 384: "gelu"}),
      "vit_so400m_patch16": (1152, 27, 16, 3.7362, {256: tanh, 384: tanh, 512: tanh}),
      "vit_giantopt_patch16": (1536, 40, 16, 4.0, {256: tanh, 384: tanh}),
  }
  for stem, (w, d, h, r, acts) in siglip_sizes.items():
    patch = int(stem.rsplit("patch", 1)[1])
    for size, act in acts.items():
      register_trunk(f"{stem}_siglip_{size}", "vit", width=w, depth=d, heads=h, patch=patch,
                     image_size=size, mlp_ratio=r, class_token=False, global_pool="map",
                     act=act)
  eva02 = dict(mlp_ratio=4 * 2 / 3, qkv_fused=False, swiglu=True, scale_mlp=True,
               scale_attn_inner=True, rope=True, ref_feat_shape=(16, 16))
  register_trunk("eva02_base_patch16_clip_224", "eva", width=768, depth=12, heads=12, patch=16,
                 image_size=224, **eva02)
  register_trunk("eva02_large_patch14_clip_224", "eva", width=1024, depth=24, heads=16,
                 patch=14, image_size=224, **eva02)
  register_trunk("eva02_large_patch14_clip_336", "eva", width=1024, depth=24, heads=16,
                 patch=14, image_size=336, **eva02)
  register_trunk("eva02_enormous_patch14_clip_224", "eva", width=1792, depth=64, heads=16,
                 patch=14, image_size=224, mlp_ratio=15360 / 1792, post_norm=True)
  register_trunk("eva_giant_patch14_224", "eva", width=1408, depth=40, heads=16, patch=14,
                 image_size=224, mlp_ratio=6144 / 1408)
  for name, stem, dims, width, depth, heads, sizes, pos in (
      ("vitamin_small", 64, (64, 128), 384, 14, 6, (224,), True),
      ("vitamin_base", 128, (128, 256), 768, 14, 12, (224,), True),
      ("vitamin_large", 160, (160, 320), 1024, 31, 16, (224, 256, 336, 384), True),
      ("vitamin_large2", 160, (160, 320), 1024, 31, 16, (224, 256, 336, 384), True),
      ("vitamin_xlarge", 192, (192, 384), 1152, 32, 16, (256, 336, 384), False)):
    for size in sizes:
      register_trunk(f"{name}_{size}", "vitamin", stem_width=stem, conv_dims=dims,
                     conv_depths=(2, 4), width=width, depth=depth, heads=heads,
                     image_size=size, pos_embed=pos)
  pe = dict(global_pool="map", attn_rope=True, pre_norm=True, rope=True, rope_xy=True, eps=1e-5)
  for name, w, d, h, patch, size, ref in (
      ("vit_pe_core_tiny_patch16_384", 192, 12, 3, 16, 384, 24),
      ("vit_pe_core_small_patch16_384", 384, 12, 6, 16, 384, 24),
      ("vit_pe_core_base_patch16_224", 768, 12, 12, 16, 224, 14),
      ("vit_pe_core_large_patch14_336", 1024, 24, 16, 14, 336, 24)):
    register_trunk(name, "eva", width=w, depth=d, heads=h, patch=patch, image_size=size,
                   ref_feat_shape=(ref, ref), rope_offset=1.0, **pe)
  register_trunk("vit_pe_core_gigantic_patch14_448", "eva", width=1536, depth=50, heads=16,
                 patch=14, image_size=448, mlp_ratio=8960 / 1536, class_token=False,
                 ref_feat_shape=(32, 32), **pe)
  register_trunk("vit_base_mci_224", "vit", width=768, depth=12, heads=12, patch=16,
                 image_size=224, conv_stem=((192, 4), (192, 2), (768, 2)), no_embed_class=True)
  register_trunk("vit_large_patch14_clip_224", "vit", width=1024, depth=24, heads=16, patch=14,
                 image_size=224, pre_norm=True, eps=1e-5)
  # MobileCLIP's FastViT MCi trunks (timm fastvit.py): RepMixer stages, then attention.
  mci = dict(mixers=("repmixer",) * 3 + ("attention",), mlp_ratios=(3,) * 4,
             se_downsamples=(False, False, True, True), pos_embs=(False,) * 3 + (True,))
  for name, depths, dims in (("fastvit_mci0", (2, 6, 10, 2), (64, 128, 256, 512)),
                             ("fastvit_mci1", (4, 12, 20, 4), (64, 128, 256, 512)),
                             ("fastvit_mci2", (4, 12, 24, 4), (80, 160, 320, 640))):
    register_trunk(name, "fastvit", layers=depths, dims=dims, **mci)
  mci_l = dict(mixers=("repmixer",) * 3 + ("attention",) * 2, mlp_ratios=(4,) * 5,
               se_downsamples=(False,) * 5, pos_embs=(False,) * 3 + (True,) * 2,
               downsamples=(False,) + (True,) * 4, attn_norm="layernorm", stem_scale=False)
  register_trunk("fastvit_mci3", "fastvit", layers=(2, 12, 24, 4, 2),
                 dims=(96, 192, 384, 768, 1536), **mci_l)
  register_trunk("fastvit_mci4", "fastvit", layers=(2, 12, 24, 4, 4),
                 dims=(128, 256, 512, 1024, 2048), **mci_l)


_register_defaults()


# --- modules -------------------------------------------------------------------

class ConvNeXtBlock(nn.Module):
  dim: int
  eps: float
  ls: bool

  @nn.compact
  def __call__(self, x):
    y = layers.DepthwiseConv(7, name="conv_dw", dtype=x.dtype)(x)
    y = nn.LayerNorm(epsilon=self.eps, name="norm", dtype=x.dtype)(y)
    y = _Mlp(4 * self.dim, self.dim, name="mlp")(y)
    if self.ls:
      y = y * self.param("gamma", nn.initializers.constant(1e-6), (self.dim,)).astype(y.dtype)
    return x + y


class _Mlp(nn.Module):
  """timm's Mlp: fc1 -> exact GELU -> fc2."""
  hidden: int
  out: int
  bias2: bool = True

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.hidden, name="fc1")(x)
    return nn.Dense(self.out, use_bias=self.bias2, name="fc2")(clip._act("gelu")(x))


class ConvNeXt(nn.Module):
  """timm ConvNeXt without classifier: (N, H, W, 3) -> (N, dims[-1]) (pool + head LayerNorm)."""
  cfg: ConvNeXtCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    x = nn.Conv(c.dims[0], (4, 4), strides=(4, 4), padding="VALID", name="stem_0",
                dtype=x.dtype)(x)
    x = nn.LayerNorm(epsilon=c.eps, name="stem_1", dtype=x.dtype)(x)
    for i, (depth, dim) in enumerate(zip(c.depths, c.dims)):
      if i > 0:
        x = nn.LayerNorm(epsilon=c.eps, name=f"stages_{i}_downsample_0", dtype=x.dtype)(x)
        x = nn.Conv(dim, (2, 2), strides=(2, 2), padding="VALID",
                    name=f"stages_{i}_downsample_1", dtype=x.dtype)(x)
      for j in range(depth):
        x = ConvNeXtBlock(dim, c.eps, c.ls, name=f"stages_{i}_blocks_{j}")(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.LayerNorm(epsilon=c.eps, name="head_norm", dtype=x.dtype)(x)


class TimmViT(nn.Module):
  """timm VisionTransformer: (N, S, S, 3) -> pooled (N, width), or (N, classes) with a head."""
  cfg: ViTCfg
  num_classes: int = 0

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    openclip_common.check_image_size(x, c.image_size, "ViT")
    if c.conv_stem:
      for i, (ch, k) in enumerate(c.conv_stem):
        last = i == len(c.conv_stem) - 1
        x = nn.Conv(ch, (k, k), strides=(k, k), padding="VALID", use_bias=last,
                    name=f"stem_{i}_conv", dtype=x.dtype)(x)
        if not last:
          x = _gelu(layers.BatchNorm(eps=1e-5, name=f"stem_{i}_bn")(x))
    else:
      # timm drops the patch-embedding bias when a pre-norm follows it (CLIP-style).
      x = nn.Conv(c.width, (c.patch, c.patch), strides=(c.patch, c.patch), padding="VALID",
                  use_bias=not c.pre_norm, name="patch_embed", dtype=x.dtype)(x)
    n = x.shape[0]
    x = x.reshape(n, -1, c.width)
    add_pos = lambda x: x + self.param("pos_embed", nn.initializers.normal(0.02),
                                       (x.shape[1], c.width)).astype(x.dtype)
    if c.no_embed_class:
      x = add_pos(x)
    if c.class_token:
      cls = self.param("cls_token", nn.initializers.normal(1e-6), (c.width,))
      x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (n, 1, c.width)), x], axis=1)
    if not c.no_embed_class:
      x = add_pos(x)
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    if c.pre_norm:
      x = ln("norm_pre")(x)
    x = clip.Encoder(c.tower(), name="encoder")(x)
    if c.global_pool == "avg":           # timm: fc_norm after pooling instead of norm
      start = 1 if c.class_token else 0
      x = ln("fc_norm")(jnp.mean(x[:, start:], axis=1))
    else:
      x = ln("norm")(x)
      x = siglip.MAPHead(c.tower(), name="attn_pool")(x) if c.global_pool == "map" else x[:, 0]
    if self.num_classes:
      x = nn.Dense(self.num_classes, name="head")(x)
    return x


def rope_table(cfg: EvaCfg) -> np.ndarray:
  """timm's ``RotaryEmbeddingCat`` table for the patch grid: (H*W, 2*head_dim), [sin | cos].

  Frequencies ``1 / 10000**(j / B)``, j < B = head_dim // 4, over index grids
  (+ ``rope_offset``) rescaled to ``ref_feat_shape`` (EVA's fine-tune scheme), 'ij'
  order ('xy' for PE-Core), each
  frequency repeated twice (interleaved rotation pairs).
  """
  g = cfg.image_size // cfg.patch
  nb = (cfg.width // cfg.heads) // 4
  bands = 1.0 / (10000.0 ** (np.arange(nb, dtype=np.float32) / np.float32(nb)))
  t = np.arange(g, dtype=np.float32) + np.float32(cfg.rope_offset)
  if cfg.ref_feat_shape is not None:
    t = t / np.float32(g) * np.float32(cfg.ref_feat_shape[0])
  grid = np.stack(np.meshgrid(t, t, indexing="xy" if cfg.rope_xy else "ij"), axis=-1)
  pos = (grid[..., None] * bands).reshape(g * g, 2 * nb)               # (g*g, 2*nb)
  sin = np.repeat(np.sin(pos), 2, axis=-1)
  cos = np.repeat(np.cos(pos), 2, axis=-1)
  return np.concatenate([sin, cos], axis=-1).astype(np.float32)


def _rotate(x, table):
  """timm's ``apply_rot_embed_cat`` (interleaved pairs) on (N, L, H, D) with table (L, 2D)."""
  sin, cos = jnp.split(table.astype(x.dtype), 2, axis=-1)
  sin, cos = sin[None, :, None, :], cos[None, :, None, :]
  pairs = x.reshape(x.shape[:-1] + (-1, 2))
  rot = jnp.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
  return x * cos + rot * sin


class EvaAttention(nn.Module):
  cfg: EvaCfg

  @nn.compact
  def __call__(self, x, rope):
    c = self.cfg
    n, l, d = x.shape
    h = c.heads
    if c.attn_rope:
      q, k, v = jnp.split(nn.Dense(3 * d, name="qkv")(x), 3, axis=-1)
    elif c.qkv_fused:
      qkv = nn.Dense(3 * d, use_bias=False, name="qkv")(x)
      qb = self.param("q_bias", nn.initializers.zeros, (d,))
      vb = self.param("v_bias", nn.initializers.zeros, (d,))
      q, k, v = jnp.split(qkv, 3, axis=-1)
      q, v = q + qb.astype(x.dtype), v + vb.astype(x.dtype)
    else:
      q = nn.Dense(d, name="q_proj")(x)
      k = nn.Dense(d, use_bias=False, name="k_proj")(x)
      v = nn.Dense(d, name="v_proj")(x)
    q, k, v = (t.reshape(n, l, h, d // h) for t in (q, k, v))
    if rope is not None:              # not on the class token
      npt = 1 if c.class_token else 0
      q = jnp.concatenate([q[:, :npt], _rotate(q[:, npt:], rope)], axis=1)
      k = jnp.concatenate([k[:, :npt], _rotate(k[:, npt:], rope)], axis=1)
    o = openclip_common.attention(q, k, v).reshape(n, l, d)
    if c.scale_attn_inner:
      o = nn.LayerNorm(epsilon=c.eps, name="norm", dtype=o.dtype)(o)
    return nn.Dense(d, name="proj")(o)


class EvaMlp(nn.Module):
  cfg: EvaCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    hidden = int(c.width * c.mlp_ratio)
    if c.swiglu:
      y = jax.nn.silu(nn.Dense(hidden, name="fc1_g")(x)) * nn.Dense(hidden, name="fc1_x")(x)
    else:
      y = clip._act("gelu")(nn.Dense(hidden, name="fc1")(x))
    if c.scale_mlp:
      y = nn.LayerNorm(epsilon=c.eps, name="norm", dtype=y.dtype)(y)
    return nn.Dense(c.width, name="fc2")(y)


class EvaBlock(nn.Module):
  cfg: EvaCfg

  @nn.compact
  def __call__(self, x, rope):
    c = self.cfg
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    if c.post_norm:
      x = x + ln("norm1")(EvaAttention(c, name="attn")(x, rope))
      return x + ln("norm2")(EvaMlp(c, name="mlp")(x))
    x = x + EvaAttention(c, name="attn")(ln("norm1")(x), rope)
    return x + EvaMlp(c, name="mlp")(ln("norm2")(x))


class Eva(nn.Module):
  """timm Eva: (N, S, S, 3) -> class-token features (N, width), or (N, classes) with a head."""
  cfg: EvaCfg
  num_classes: int = 0

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    openclip_common.check_image_size(x, c.image_size, "EVA")
    x = nn.Conv(c.width, (c.patch, c.patch), strides=(c.patch, c.patch), padding="VALID",
                use_bias=not c.pre_norm, name="patch_embed", dtype=x.dtype)(x)
    n = x.shape[0]
    x = x.reshape(n, -1, c.width)
    if c.class_token:
      cls = self.param("cls_token", nn.initializers.normal(1e-6), (c.width,))
      x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (n, 1, c.width)), x], axis=1)
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (x.shape[1], c.width))
    x = x + pos.astype(x.dtype)
    if c.pre_norm:
      x = nn.LayerNorm(epsilon=c.eps, name="norm_pre", dtype=x.dtype)(x)
    rope = jnp.asarray(rope_table(c)) if c.rope else None
    for i in range(c.depth):
      x = EvaBlock(c, name=f"blocks_{i}")(x, rope)
    x = nn.LayerNorm(epsilon=c.eps, name="norm", dtype=x.dtype)(x)
    if c.global_pool == "map":
      x = siglip.MAPHead(c.pool_tower(), name="attn_pool")(x)
    else:
      x = x[:, 0]
    if self.num_classes:
      x = nn.Dense(self.num_classes, name="head")(x)
    return x


def _conv(features, k, stride=1, groups=1, name=None):
  """timm create_conv2d (symmetric padding ((stride-1) + (k-1)) // 2), NHWC."""
  return layers.conv(features, k, stride, ((stride - 1) + (k - 1)) // 2, groups,
                     bias=True, name=name)


def _gelu(x):
  return layers.gelu(x)


class MbConvLNBlock(nn.Module):
  """ViTamin's pre-norm inverted bottleneck: LN -> 1x1 -> GELU -> dw3x3 -> GELU -> 1x1."""
  in_chs: int
  out_chs: int
  stride: int
  eps: float

  @nn.compact
  def __call__(self, x):
    if self.stride == 2:            # AvgPool2d(3, 2, 1, count_include_pad=False) [+ 1x1]
      sc = nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                       count_include_pad=False)
      if self.in_chs != self.out_chs:
        sc = nn.Conv(self.out_chs, (1, 1), name="shortcut__expand")(sc)
    elif self.in_chs != self.out_chs:
      sc = nn.Conv(self.out_chs, (1, 1), name="shortcut")(x)
    else:
      sc = x
    mid = self.out_chs * 4
    y = nn.LayerNorm(epsilon=self.eps, name="pre_norm", dtype=x.dtype)(x)
    y = _gelu(_conv(mid, 1, name="conv1_1x1")(y))
    y = _gelu(_conv(mid, 3, self.stride, groups=mid, name="conv2_kxk")(y))
    return _conv(self.out_chs, 1, name="conv3_1x1")(y) + sc


class VitaminBlock(nn.Module):
  """timm Block with ViTamin's GeGLU MLP (LN inside the MLP; norm2 before it too)."""
  cfg: VitaminCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    d = x.shape[-1]
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    q, k, v = jnp.split(nn.Dense(3 * d, name="attn__qkv")(ln("norm1")(x)), 3, axis=-1)
    x = x + nn.Dense(d, name="attn__proj")(openclip_common.multi_head_attention(q, k, v,
                                                                               c.heads))
    y = ln("mlp__norm")(ln("norm2")(x))
    hidden = int(d * c.mlp_ratio)
    y = _gelu(nn.Dense(hidden, name="mlp__w0")(y)) * nn.Dense(hidden, name="mlp__w1")(y)
    return x + nn.Dense(d, name="mlp__w2")(y)


class Vitamin(nn.Module):
  """timm ViTamin trunk: (N, S, S, 3) -> (N, width) (average-pooled tokens, fc_norm)."""
  cfg: VitaminCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    openclip_common.check_image_size(x, c.image_size, "ViTamin")
    b = "patch_embed__backbone__"
    x = _conv(c.stem_width, 3, 2, name=b + "stem__conv1")(x)
    x = _gelu(nn.LayerNorm(epsilon=c.eps, name=b + "stem__norm1", dtype=x.dtype)(x))
    x = _conv(c.stem_width, 3, 1, name=b + "stem__conv2")(x)
    chs = c.stem_width
    for s, (dim, depth) in enumerate(zip(c.conv_dims, c.conv_depths)):
      for j in range(depth):
        x = MbConvLNBlock(chs, dim, 2 if j == 0 else 1, c.eps,
                          name=f"{b}stages__{s}__{j}")(x)
        chs = dim
    x = nn.LayerNorm(epsilon=c.eps, name=b + "pool__norm", dtype=x.dtype)(x)
    x = _conv(c.width, 3, 2, name=b + "pool__proj")(x)
    n = x.shape[0]
    x = x.reshape(n, -1, c.width)
    if c.pos_embed:
      x = x + self.param("pos_embed", nn.initializers.normal(0.02),
                         (x.shape[1], c.width)).astype(x.dtype)
    for i in range(c.depth):
      x = VitaminBlock(c, name=f"blocks__{i}")(x)
    return nn.LayerNorm(epsilon=c.eps, name="fc_norm", dtype=x.dtype)(jnp.mean(x, axis=1))


@dataclasses.dataclass(frozen=True)
class VisualCfg:
  """``visual`` of a TimmModel: trunk and OpenCLIP head."""
  trunk_name: str
  family: str
  trunk: object
  embed_dim: int
  proj: str                 # 'linear', 'mlp', 'none' or 'trunk' (timm's own classifier)
  proj_bias: bool = False

  @property
  def image_size(self) -> int:
    return 0 if self.family in ("convnext", "fastvit") else self.trunk.image_size


class TimmVisual(nn.Module):
  cfg: VisualCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    if c.family == "convnext":
      x = ConvNeXt(c.trunk, name="trunk")(x)
    elif c.family == "vitamin":
      x = Vitamin(c.trunk, name="trunk")(x)
    elif c.family == "fastvit":
      x = openclip_fastvit.FastViT(c.trunk, c.embed_dim if c.proj == "trunk" else 0,
                                   name="trunk")(x)
    elif c.family == "eva":
      x = Eva(c.trunk, c.embed_dim if c.proj == "trunk" else 0, name="trunk")(x)
    elif c.family in EXTRA_FAMILIES:
      x = EXTRA_FAMILIES[c.family].module(c.trunk, name="trunk")(x)
    else:
      x = TimmViT(c.trunk, c.embed_dim if c.proj == "trunk" else 0, name="trunk")(x)
    if c.proj == "linear":
      x = nn.Dense(c.embed_dim, use_bias=c.proj_bias, name="head_proj")(x)
    elif c.proj == "mlp":
      x = _Mlp(2 * c.embed_dim, c.embed_dim, bias2=c.proj_bias, name="head_mlp")(x)
    return x


@dataclasses.dataclass(frozen=True)
class TimmClipCfg:
  visual: VisualCfg
  text: openclip_text.TextConfig
  image_size: int
  custom_text: bool
  logit_bias: bool


class TimmClip(openclip_text.TwoTowerMethods, nn.Module):
  """OpenCLIP CLIP/CustomTextCLIP with a timm image tower; CLIP's methods."""
  cfg: TimmClipCfg

  def setup(self):
    self.visual = TimmVisual(self.cfg.visual, name="visual")
    self.text = openclip_text.TextTower(self.cfg.text, name="text")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), ())
    if self.cfg.logit_bias:
      self.logit_bias = self.param("logit_bias", nn.initializers.constant(-10.0), ())

  def __call__(self, images, ids):
    out = (self.encode_image(images), self.encode_text(ids), self.logit_scale)
    return out + (self.logit_bias,) if self.cfg.logit_bias else out


_TOP_KNOWN = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "cast_dtype", "custom_text",
              "init_logit_scale", "init_logit_bias"}


# --- config --------------------------------------------------------------------

def closest_trunk(name: str) -> str:
  """The registered trunk name nearest to ``name`` (for refusal messages)."""
  m = difflib.get_close_matches(name, list(TRUNKS), n=1, cutoff=0.0)
  return m[0] if m else ""


def parse(model_cfg: dict, *, quick_gelu: Optional[bool], source: str) -> TimmClipCfg:
  """TimmClipCfg from OpenCLIP's ``model_cfg`` (a timm image tower).

  Raises:
    UnknownArchitecture: a trunk name not in TRUNKS (naming the closest one), a
      pool/projection combination OpenCLIP's TimmModel builds that is not
      implemented here.
  """
  unknown = sorted(set(model_cfg) - _TOP_KNOWN)
  if unknown:
    raise layers.UnknownArchitecture(f"{source}: {openclip_common.CONFIG} model_cfg has "
                                     f"unsupported keys {unknown}; supported: "
                                     f"{sorted(_TOP_KNOWN)}")
  v, t = model_cfg["vision_cfg"], model_cfg["text_cfg"]
  # Text options openclip_text implements are free; the rest must be at their defaults.
  free = ("no_causal_mask", "proj_bias", "pool_type", "proj_type", "act_kwargs")
  openclip_common._check_options(
      t, {k: d for k, d in openclip_common._TEXT_DEFAULTS.items() if k not in free},
      openclip_common._TEXT_KNOWN | set(free), "text_cfg", source)
  vknown = {"timm_model_name", "timm_model_pretrained", "timm_pool", "timm_proj",
            "timm_proj_bias", "timm_drop", "timm_drop_path", "image_size", "layers", "width",
            "patch_size", "head_width", "mlp_ratio", "output_tokens", "patch_dropout"}
  if set(v) - vknown:
    raise layers.UnknownArchitecture(f"{source}: vision_cfg keys {sorted(set(v) - vknown)} "
                                     f"with a timm trunk; known: {sorted(vknown)}")
  name = v["timm_model_name"]
  if name not in TRUNKS:
    raise layers.UnknownArchitecture(
        f"{source}: timm trunk {name!r} is not implemented; implemented families {FAMILIES} "
        f"with trunks {sorted(TRUNKS)}; closest: {closest_trunk(name)!r}")
  family, trunk = TRUNKS[name]
  pool = v.get("timm_pool", "avg")
  proj = v.get("timm_proj", "linear")
  extra = EXTRA_FAMILIES.get(family)
  if extra is not None and (pool not in extra.pools or proj not in ("linear", "mlp")):
    raise layers.UnknownArchitecture(f"{source}: {family} trunk {name} with timm_pool {pool!r} "
                                     f"/ timm_proj {proj!r}; implemented: timm_pool in "
                                     f"{extra.pools} with timm_proj 'linear' or 'mlp'")
  embed = int(model_cfg["embed_dim"])
  if family == "eva" and (pool not in ("token", "map") or proj not in (None, "", "none")):
    raise layers.UnknownArchitecture(f"{source}: EVA trunk with timm_pool {pool!r} / timm_proj "
                                     f"{proj!r}; implemented: 'token'/'map' with proj null/'none'")
  if family == "eva" and pool != trunk.global_pool:
    if pool == "map" or not trunk.class_token:
      raise layers.UnknownArchitecture(f"{source}: EVA trunk {name} with timm_pool {pool!r}")
    trunk = dataclasses.replace(trunk, global_pool=pool)
  if family == "fastvit":
    # Average pooling only (timm's ClassifierHead); proj null: the trunk's head.fc.
    if pool not in ("", "avg") or proj not in (None, "", "none", "linear", "mlp"):
      raise layers.UnknownArchitecture(f"{source}: FastViT trunk with timm_pool {pool!r} / "
                                       f"timm_proj {proj!r}; implemented: pool 'avg', proj "
                                       "null/'none'/'linear'/'mlp'")
    kind = proj if proj in ("linear", "mlp") else "none" if proj == "none" else "trunk"
  elif family == "eva":
    kind = "none" if proj == "none" else "trunk"
  elif proj in ("linear", "mlp"):
    # TimmModel resets the classifier keeping the trunk's default pooling
    # (pool '' keeps it; another pool replaces it).
    if family in ("convnext", "vitamin") and pool not in ("", "avg"):
      raise layers.UnknownArchitecture(f"{source}: {family} trunk with timm_pool {pool!r}; "
                                       "implemented: '' or 'avg'")
    if family == "vit" and pool not in ("", trunk.global_pool):
      trunk = dataclasses.replace(trunk, global_pool=pool)
    kind = proj
  elif proj in ("none", None, ""):
    if family in ("convnext", "vitamin"):
      raise layers.UnknownArchitecture(f"{source}: {family} trunk with timm_proj {proj!r} is "
                                       "not implemented; implemented: 'linear', 'mlp'")
    if pool not in ("token", "map", "avg"):
      raise layers.UnknownArchitecture(f"{source}: timm ViT pool {pool!r}; implemented: "
                                       "'token', 'map', 'avg'")
    trunk = dataclasses.replace(trunk, global_pool=pool)
    kind = "none" if proj == "none" else "trunk"
  else:
    raise layers.UnknownArchitecture(f"{source}: timm_proj {proj!r}; implemented: linear, mlp, "
                                     "none, null")
  if family == "vit" and trunk.global_pool == "token" and not trunk.class_token:
    raise layers.UnknownArchitecture(f"{source}: token pooling on {name} (no class token)")
  visual = VisualCfg(name, family, trunk, embed, kind, bool(v.get("timm_proj_bias", False)))
  qg = bool(model_cfg.get("quick_gelu", False)) if quick_gelu is None else bool(quick_gelu)
  text = openclip_text.text_config(model_cfg["text_cfg"], embed, qg, source)
  size = v.get("image_size", 224)
  size = int(size[0] if isinstance(size, (list, tuple)) else size)
  if family == "vitamin" and not trunk.pos_embed:
    # No position embedding: the trunk takes any size, and open_clip feeds it
    # vision_cfg.image_size (ViTamin-XL-384's config says 256).
    trunk = dataclasses.replace(trunk, image_size=size)
    visual = dataclasses.replace(visual, trunk=trunk)
  if family not in ("convnext", "fastvit") and size != trunk.image_size:
    raise layers.UnknownArchitecture(f"{source}: vision_cfg.image_size {size} but timm trunk "
                                     f"{name} takes {trunk.image_size}px")
  return TimmClipCfg(visual=visual, text=text, image_size=size,
                     custom_text=bool(model_cfg.get("custom_text", False)),
                     logit_bias="init_logit_bias" in model_cfg)


# --- name map --------------------------------------------------------------------

_BLOCK_NAMES = {"layer_norm1": "norm1", "layer_norm2": "norm2", "fc1": "mlp.fc1",
                "fc2": "mlp.fc2"}


def _encoder_src(rest: tuple, shape: tuple, prefix: str) -> layers.Src:
  """clip.EncoderLayer leaf -> timm Block tensor (fused qkv split in three)."""
  return openclip_common.encoder_layer_src(rest, shape, prefix, out_proj="attn.proj",
                                           qkv="attn.qkv.", names=_BLOCK_NAMES)


def _vit_src(path: tuple, shape: tuple, p: str) -> layers.Src:
  head, leaf = path[0], path[-1]
  if head.startswith("stem_"):                   # stem_1_bn -> patch_embed.backbone.1.bn
    _, i, sub = head.split("_")
    return layers.named_src(f"{p}patch_embed.backbone.{i}.{sub}", leaf, shape)
  if head == "patch_embed":
    return layers.named_src(p + "patch_embed.proj", leaf, shape)
  if head == "cls_token":
    return layers.reshaped(p + "cls_token", lambda s: (1, 1) + s)
  if head == "pos_embed":
    return layers.reshaped(p + "pos_embed", lambda s: (1,) + s)
  if head == "encoder":
    i = int(path[1].split("_")[1])
    return _encoder_src(path[2:], shape, f"{p}blocks.{i}.")
  if head == "attn_pool":
    mod = path[1]
    if mod == "probe":
      return layers.reshaped(p + "attn_pool.latent", lambda s: (1, 1) + s)
    if mod in ("k_proj", "v_proj"):
      key = p + "attn_pool.kv." + ("weight" if leaf == "kernel" else "bias")
      return layers.chunk(key, 0 if mod == "k_proj" else 1, 2, transpose=(leaf == "kernel"))
    name = {"q_proj": "q", "out_proj": "proj", "layernorm": "norm", "fc1": "mlp.fc1",
            "fc2": "mlp.fc2"}[mod]
    return layers.named_src(p + "attn_pool." + name, leaf, shape)
  return layers.named_src(p + head, leaf, shape)       # norm_pre, norm, fc_norm, head


def _eva_src(path: tuple, shape: tuple, p: str) -> layers.Src:
  head = path[0]
  if head == "attn_pool":                         # same head as timm's ViT
    return _vit_src(path, shape, p)
  if head == "patch_embed":
    return layers.named_src(p + "patch_embed.proj", path[-1], shape)
  if head == "cls_token":
    return layers.reshaped(p + "cls_token", lambda s: (1, 1) + s)
  if head == "pos_embed":
    return layers.reshaped(p + "pos_embed", lambda s: (1,) + s)
  return layers.default_src(path, shape, p)     # blocks_3/attn/q_proj -> blocks.3.attn.q_proj


def _dotted_src(path: tuple, shape: tuple, p: str) -> layers.Src:
  """Flax names that spell the timm path with '__' for '.' (ViTamin)."""
  if path[0] == "pos_embed":
    return layers.reshaped(p + "pos_embed", lambda s: (1,) + s)
  return layers.named_src(p + ".".join(path[:-1]).replace("__", "."), path[-1], shape)


def _convnext_src(path: tuple, shape: tuple, p: str) -> layers.Src:
  if path[0] == "head_norm":
    return layers.named_src(p + "head.norm", path[-1], shape)
  # stages_1_downsample_0 -> stages.1.downsample.0; stages_0_blocks_2/mlp/fc1 -> ...
  mods = [m.replace("_downsample_", ".downsample.").replace("_blocks_", ".blocks.")
          for m in path[:-1]]
  mods = [m.replace("stages_", "stages.").replace("stem_", "stem.") for m in mods]
  return layers.named_src(p + ".".join(mods), path[-1], shape)


def make_src(cfg: TimmClipCfg):
  text_src = openclip_text.make_src(cfg.text, "text." if cfg.custom_text else "")

  def src(path: tuple, shape: tuple) -> layers.Src:
    top = path[0]
    if top in ("logit_scale", "logit_bias"):
      return layers.copy(top)
    if top == "text":
      return text_src(path[1:], shape)
    sub = path[1]
    if sub == "trunk":
      f = {"convnext": _convnext_src, "vit": _vit_src, "eva": _eva_src,
           "vitamin": _dotted_src, "fastvit": openclip_fastvit.src}.get(cfg.visual.family) or \
          EXTRA_FAMILIES[cfg.visual.family].src
      return f(path[2:], shape, "visual.trunk.")
    if sub == "head_proj":
      return layers.named_src("visual.head.proj", path[-1], shape)
    if sub == "head_mlp":
      return layers.named_src(f"visual.head.mlp.{path[2]}", path[-1], shape)
    raise KeyError(path)
  return src


def params_from_openclip(tensors: dict, cfg: TimmClipCfg, source: str = ""):
  """(module, Flax params) from an OpenCLIP state dict with a timm image tower."""
  module = TimmClip(cfg)
  shapes = openclip_common.two_tower_shapes(module, cfg.image_size, cfg.text.context_length)
  what = f"OpenCLIP timm {cfg.visual.family} trunk {cfg.visual.trunk_name!r} " \
         f"(head {cfg.visual.proj})"
  ignore = lambda k: (k.endswith("attn_mask") or k.endswith("position_ids")
                     or layers.bn_counter(k))
  # logit_scale/logit_bias are scalars in Flax and 0-d or (1,) tensors in OpenCLIP.
  for k in ("logit_scale", "logit_bias"):
    if k in tensors:
      tensors = dict(tensors, **{k: np.asarray(tensors[k]).reshape(())})
  if cfg.visual.family == "fastvit":     # training-time branches -> reparam_conv tensors
    tensors = openclip_fastvit.fuse(tensors, cfg.visual.trunk, "visual.trunk.", source=source,
                                    what=what)
  return module, layers.pull(shapes, tensors, make_src(cfg), source=source, what=what,
                             ignore=ignore)


# --- loader --------------------------------------------------------------------

def handles(model_cfg: dict) -> bool:
  """Whether this module builds ``model_cfg`` (a timm image tower, OpenCLIP's text tower)."""
  return bool(model_cfg.get("vision_cfg", {}).get("timm_model_name")) and \
      "multimodal_cfg" not in model_cfg and not model_cfg.get("text_cfg", {}).get("hf_model_name")


def tokenizer_for(root: str, text_cfg: dict, context_length: int, files: list[str]):
  """The tokenizer OpenCLIP's ``get_tokenizer`` builds for ``text_cfg``.

  ``hf_tokenizer_name`` -> :class:`openclip_text.HFTokenizer` over the repo's own
  tokenizer files if it has them, else over that name; otherwise CLIP's BPE.
  """
  name = text_cfg.get("hf_tokenizer_name")
  if not name:
    return openclip_common.OpenClipTokenizer(root, text_cfg, context_length, files)
  kw = dict(text_cfg.get("tokenizer_kwargs") or {})
  unknown = set(kw) - {"clean", "strip_sep_token"}
  if unknown:
    raise layers.UnknownArchitecture(f"text_cfg.tokenizer_kwargs {sorted(unknown)} not "
                                     "implemented; known: clean, strip_sep_token")
  has_files = any(f in files for f in openclip_common.TOKENIZER_FILES)
  return openclip_text.HFTokenizer(root if has_files else name, context_length,
                                   clean=kw.get("clean", "whitespace"),
                                   strip_sep_token=bool(kw.get("strip_sep_token", False)),
                                   name=None if has_files else name)


def load(ref: str, config: dict, files: dict, *, revision: Optional[str], spec: Optional[str],
         precision: str, quick_gelu: Optional[bool], family=None):
  """Model for an OpenCLIP repo whose config :func:`handles` (called by openclip.load).

  Args:
    family: the module that parses and maps the config (``parse``,
      ``params_from_openclip``); this module when None. :mod:`openclip_vit` shares
      this loader.
  """
  import sys
  fam = family or sys.modules[__name__]
  from jaxbench.models import hub
  model_cfg = config["model_cfg"]
  t = model_cfg["text_cfg"]
  cfg = fam.parse(model_cfg, quick_gelu=quick_gelu, source=ref)
  names = layers.safetensors_files(ref, revision, [openclip_common.WEIGHTS],
                                   openclip_common.PICKLES,
                                   layout="OpenCLIP")
  files.update(hub.resolve(ref, names, revision=revision))
  module, net = fam.params_from_openclip(hub.load_safetensors([files[n] for n in names]), cfg,
                                         source=ref)
  bias = bool(getattr(cfg, "logit_bias", False))
  preprocess = openclip_common.preprocess_from_config(config.get("preprocess_cfg", {}),
                                                      cfg.image_size)
  root, listing = openclip_common.tokenizer_files(ref, files, revision)
  tokenizer = tokenizer_for(root, t, cfg.text.context_length, listing)
  prov = hub.provenance(ref, files, revision, layout="openclip")
  arch = (f"openclip-timm-{cfg.visual.family}:{cfg.visual.trunk_name}" if fam is sys.modules[
      __name__] else f"openclip-vit-{cfg.vision.pool}-pool")
  prov.update(tokenizer=tokenizer.describe, architecture=arch,
              quick_gelu=cfg.text.tower.act == "quick_gelu")
  if bias:
    prov.update(logit_scale=float(np.exp(net["logit_scale"])),
                logit_bias=float(net["logit_bias"]))
  model = layers.zeroshot_model(module, net, preprocess, name=spec or f"openclip:{ref}",
                                provenance=prov, tokenizer=tokenizer,
                                context_length=cfg.text.context_length, precision=precision,
                                score="sigmoid" if bias else "softmax")
  return dataclasses.replace(model, causal_text=cfg.text.causal and cfg.text.pool_type in (
      "argmax", "eos"))


def expected_tensors(cfg: TimmClipCfg) -> dict[str, tuple]:
  """OpenCLIP tensor name -> shape this config needs (no weights; ``jax.eval_shape``).

  Used to check full-size towers against open_clip's meta-device state dict.
  """
  shapes = openclip_common.two_tower_shapes(TimmClip(cfg), cfg.image_size,
                                            cfg.text.context_length)
  out = openclip_common.tensor_shapes(shapes, make_src(cfg))
  if cfg.visual.family == "fastvit":     # open_clip stores the training-time branches
    unfused, fused = openclip_fastvit.unfused_shapes(cfg.visual.trunk, "visual.trunk.")
    out = dict({k: s for k, s in out.items() if k not in fused}, **unfused)
  return out
