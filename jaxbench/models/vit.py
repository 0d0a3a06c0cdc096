"""Supervised Vision Transformer (Dosovitskiy et al. 2021) for timm and transformers checkpoints.

Patch convolution (with bias), class token, learned positions, optional pre-norm,
pre-LN transformer layers (shared with CLIP: :class:`jaxbench.models.clip.Encoder`),
final LayerNorm, class-token or mean pooling (the latter with timm's ``fc_norm``),
linear head. timm (``timm/vit_base_patch16_224.augreg2_in21k_ft_in1k``: LN eps
1e-6) and transformers (``google/vit-base-patch16-224``: LN eps 1e-12) differ only
in names and epsilon; both map onto this module.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from jaxbench.models import clip, layers


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Attributes:
    tower: width, depth, heads, MLP width, activation and LN epsilon.
    image_size, patch_size: input side and patch side (positions fix the size).
    num_classes: logits; 0 = pooled features.
    class_token: prepend a learned [CLS] token.
    pre_norm: LayerNorm after the embeddings (CLIP-style towers in timm).
    pool: 'token' ([CLS]) or 'avg' (mean over patch tokens, then ``fc_norm``).
    patch_bias: bias on the patch convolution (timm drops it when ``pre_norm``).
  """
  tower: clip.TowerConfig
  image_size: int = 224
  patch_size: int = 16
  num_classes: int = 1000
  class_token: bool = True
  pre_norm: bool = False
  pool: str = "token"
  patch_bias: bool = True


class ViT(nn.Module):
  cfg: ViTConfig

  @nn.compact
  def __call__(self, x):
    """Args: x (N, S, S, 3) normalised, S = image_size. Returns: (N, num_classes)."""
    cfg, t = self.cfg, self.cfg.tower
    if x.shape[1] != cfg.image_size or x.shape[2] != cfg.image_size:
      raise ValueError(f"this ViT takes {cfg.image_size}x{cfg.image_size} inputs (its learned "
                       f"positions fix the size); got {x.shape[1:3]}")
    ln = lambda name: nn.LayerNorm(epsilon=t.eps, name=name, dtype=x.dtype)
    p = cfg.patch_size
    x = layers.PatchEmbed(t.width, p, use_bias=cfg.patch_bias, name="patch_embed",
                          dtype=x.dtype)(x)
    n = x.shape[0]
    x = x.reshape(n, -1, t.width)
    n_tok = x.shape[1] + int(cfg.class_token)
    if cfg.class_token:
      cls = self.param("cls_token", nn.initializers.normal(1e-6), (t.width,))
      x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (n, 1, t.width)), x], axis=1)
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (n_tok, t.width))
    x = x + pos.astype(x.dtype)
    if cfg.pre_norm:
      x = ln("norm_pre")(x)
    x = clip.Encoder(t, name="encoder")(x)
    if cfg.pool == "token":
      x = ln("norm")(x[:, 0])            # LayerNorm is per token: norm(x)[:, 0] == norm(x[:, 0])
    else:                                # timm: mean of patch tokens, then fc_norm
      x = ln("norm")(x[:, int(cfg.class_token):].mean(axis=1))
    if cfg.num_classes:
      x = nn.Dense(cfg.num_classes, name="head")(x)
    return x


# --- timm ------------------------------------------------------------------------

_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "medium": (512, 12, 8),
          "base": (768, 12, 12), "large": (1024, 24, 16), "huge": (1280, 32, 16)}
_NAME = re.compile(r"^vit_(tiny|small|medium|base|large|huge)_patch(\d+)_(clip_)?"
                   r"(quickgelu_)?(\d+)$")
TIMM_ARCHS = ("vit_{tiny,small,medium,base,large,huge}_patch{P}_{S}",
              "vit_{...}_patch{P}_clip_{S}", "vit_{...}_patch{P}_clip_quickgelu_{S}")
TIMM_ARGS = {"img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio",
             "num_classes", "global_pool", "class_token", "pre_norm", "fc_norm", "qkv_bias",
             "act_layer", "in_chans", "drop_rate", "drop_path_rate", "attn_drop_rate",
             "proj_drop_rate", "pos_drop_rate", "patch_drop_rate", "dynamic_img_size"}


def timm_known(arch: str) -> bool:
  return bool(_NAME.match(arch))


def timm_config(arch: str, args: dict, num_classes: int, global_pool: Optional[str] = None):
  """ViTConfig for a timm ``vit_*`` name and its ``model_args``.

  Raises:
    UnknownArchitecture: options that change the network and are not implemented.
  """
  size, patch, is_clip, quick, res = _NAME.match(arch).groups()
  width, depth, heads = _SIZES[size]
  img = args.get("img_size", int(res))
  img = img[0] if isinstance(img, (list, tuple)) else img
  if args.get("qkv_bias", True) is not True:
    raise layers.UnknownArchitecture("timm ViT qkv_bias=False is not implemented")
  if args.get("dynamic_img_size"):
    raise layers.UnknownArchitecture("timm ViT dynamic_img_size=True is not implemented")
  act = args.get("act_layer", "quick_gelu" if quick else "gelu")
  if act not in ("gelu", "quick_gelu", "gelu_tanh"):
    raise layers.UnknownArchitecture(f"timm ViT act_layer {act!r} is not implemented; "
                                     "known: gelu, quick_gelu, gelu_tanh")
  act = {"gelu_tanh": "gelu_new"}.get(act, act)
  width = int(args.get("embed_dim", width))
  pool = args.get("global_pool", global_pool or "token")
  if pool not in ("token", "avg"):
    raise layers.UnknownArchitecture(f"timm ViT global_pool {pool!r} is not implemented; "
                                     "known: token, avg")
  fc_norm = args.get("fc_norm")
  if fc_norm is not None and fc_norm != (pool == "avg"):
    raise layers.UnknownArchitecture(f"timm ViT fc_norm={fc_norm} with global_pool={pool!r} "
                                     "is not implemented")
  tower = clip.TowerConfig(width=width, layers=int(args.get("depth", depth)),
                           heads=int(args.get("num_heads", heads)),
                           mlp_dim=int(width * float(args.get("mlp_ratio", 4.0))), act=act,
                           eps=1e-5 if is_clip else 1e-6)
  pre_norm = bool(args.get("pre_norm", bool(is_clip)))
  return ViTConfig(tower=tower, image_size=int(img), patch_size=int(args.get("patch_size", patch)),
                   num_classes=num_classes, class_token=bool(args.get("class_token", True)),
                   pre_norm=pre_norm, pool=pool, patch_bias=not pre_norm)


def _encoder_src(i: int, rest: tuple, shape: tuple, block_key, qkv) -> layers.Src:
  mod, leaf = rest[0], rest[-1]
  if mod == "self_attn" and rest[1] != "out_proj":
    return qkv(i, "qkv".index(rest[1][0]), leaf)
  if mod == "self_attn":
    mod = "out_proj"
  return layers.named_src(block_key(i, mod), leaf, shape)


def timm_src(cfg: ViTConfig):
  """Our ViT param path -> timm VisionTransformer tensor."""
  names = {"layer_norm1": "norm1", "layer_norm2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
           "out_proj": "attn.proj"}

  def qkv(i, j, leaf):
    return layers.chunk(f"blocks.{i}.attn.qkv.{'weight' if leaf == 'kernel' else 'bias'}", j, 3,
                        transpose=(leaf == "kernel"))

  def src(path, shape):
    top = path[0]
    if top == "patch_embed":
      return layers.named_src("patch_embed.proj", path[-1], shape)
    if top == "cls_token":
      return layers.reshaped("cls_token", lambda s: (1, 1) + s)
    if top == "pos_embed":
      return layers.reshaped("pos_embed", lambda s: (1,) + s)
    if top == "norm" and cfg.pool == "avg":
      return layers.named_src("fc_norm", path[-1], shape)
    if top == "encoder":
      return _encoder_src(int(path[1].split("_")[1]), path[2:], shape,
                          lambda i, m: f"blocks.{i}.{names[m]}", qkv)
    return layers.named_src(top, path[-1], shape)      # norm_pre, norm, head
  return src


# --- transformers ----------------------------------------------------------------

def hf_config(c: dict) -> ViTConfig:
  """ViTConfig from a transformers ViTConfig dict (``google/vit-base-patch16-224``)."""
  act = c.get("hidden_act", "gelu")
  if act not in ("gelu", "gelu_new", "quick_gelu", "gelu_pytorch_tanh"):
    raise layers.UnknownArchitecture(f"transformers ViT hidden_act {act!r} is not implemented")
  if not c.get("qkv_bias", True):
    raise layers.UnknownArchitecture("transformers ViT qkv_bias=False is not implemented")
  w = int(c.get("hidden_size", 768))
  tower = clip.TowerConfig(width=w, layers=int(c.get("num_hidden_layers", 12)),
                           heads=int(c.get("num_attention_heads", 12)),
                           mlp_dim=int(c.get("intermediate_size", 4 * w)), act=act,
                           eps=float(c.get("layer_norm_eps", 1e-12)))
  num_labels = len(c.get("id2label", {})) or int(c.get("num_labels", 1000))
  return ViTConfig(tower=tower, image_size=int(c.get("image_size", 224)),
                   patch_size=int(c.get("patch_size", 16)), num_classes=num_labels)


def hf_src(path: tuple, shape: tuple) -> layers.Src:
  """Our ViT param path -> transformers ViTForImageClassification tensor (saved names)."""
  top = path[0]
  if top == "patch_embed":
    return layers.named_src("vit.embeddings.patch_embeddings.projection", path[-1], shape)
  if top == "cls_token":
    return layers.reshaped("vit.embeddings.cls_token", lambda s: (1, 1) + s)
  if top == "pos_embed":
    return layers.reshaped("vit.embeddings.position_embeddings", lambda s: (1,) + s)
  if top == "norm":
    return layers.named_src("vit.layernorm", path[-1], shape)
  if top == "head":
    return layers.named_src("classifier", path[-1], shape)
  names = {"layer_norm1": "layernorm_before", "layer_norm2": "layernorm_after",
           "fc1": "intermediate.dense", "fc2": "output.dense", "out_proj": "attention.output.dense"}

  def qkv(i, j, leaf):
    part = ("query", "key", "value")[j]
    return layers.named_src(f"vit.encoder.layer.{i}.attention.attention.{part}", leaf,
                            shape)
  return _encoder_src(int(path[1].split("_")[1]), path[2:], shape,
                      lambda i, m: f"vit.encoder.layer.{i}.{names[m]}", qkv)


def hf_ignore(key: str) -> bool:
  """The pooler of ViTModel checkpoints is unused by the classifier."""
  return key.startswith("vit.pooler.")
