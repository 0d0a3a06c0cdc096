"""OpenCLIP's own ViT with the options its newer configs use (CLIPA, layer scale).

:mod:`jaxbench.models.openclip` maps the standard OpenCLIP ViT onto
:class:`jaxbench.models.clip.CLIP`. Configs that change the tower -- no
``ln_pre`` and average pooling with the final LayerNorm after the pool (CLIPA),
layer scale (``ls_init_value``: ``ls_1.gamma``/``ls_2.gamma``, ViT-M-16-alt), a
bidirectional text tower pooled at the last position -- are built here, with
OpenCLIP's own parameter names (``visual.conv1``, ``visual.transformer.resblocks.i``,
``visual.ln_post``, ``visual.proj``) and :mod:`jaxbench.models.openclip_text` as
the text tower. Attention goes through :func:`openclip_common.attention`.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxbench.models import clip, layers, openclip_common, openclip_text

# vision_cfg options this module implements beyond openclip.parse_config's.
VISION_OPTIONS = ("no_ln_pre", "pool_type", "final_ln_after_pool", "ls_init_value")


@dataclasses.dataclass(frozen=True)
class VitCfg:
  width: int
  layers: int
  heads: int
  patch: int
  image_size: int
  mlp_dim: int
  act: str = "gelu"
  eps: float = 1e-5
  ln_pre: bool = True
  pool: str = "tok"                 # 'tok' (class token) or 'avg' (mean of patch tokens)
  final_ln_after_pool: bool = False
  layer_scale: bool = False


@dataclasses.dataclass(frozen=True)
class OcVitClipCfg:
  vision: VitCfg
  text: openclip_text.TextConfig
  embed_dim: int

  @property
  def image_size(self) -> int:
    return self.vision.image_size


class ResBlock(nn.Module):
  """OpenCLIP ResidualAttentionBlock: ln_1 -> MHA (fused in_proj) [-> ls_1], ln_2 -> MLP [-> ls_2]."""
  cfg: VitCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    d = x.shape[-1]
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    y = ln("ln_1")(x)
    q, k, v = (nn.Dense(d, name=f"attn_{p}")(y) for p in "qkv")
    y = nn.Dense(d, name="attn_out_proj")(openclip_common.multi_head_attention(q, k, v,
                                                                               c.heads))
    if c.layer_scale:
      y = y * self.param("ls_1", nn.initializers.constant(1e-5), (d,)).astype(y.dtype)
    x = x + y
    y = nn.Dense(c.mlp_dim, name="mlp_c_fc")(ln("ln_2")(x))
    y = nn.Dense(d, name="mlp_c_proj")(clip._act(c.act)(y))
    if c.layer_scale:
      y = y * self.param("ls_2", nn.initializers.constant(1e-5), (d,)).astype(y.dtype)
    return x + y


def encode_tokens(module: nn.Module, x, c: VitCfg, what: str = "ViT"):
  """OpenCLIP's ViT trunk up to the pooling, inside ``module``'s compact call (its
  parameter names: conv1, class_embedding, positional_embedding, ln_pre,
  resblocks_i); shared by :class:`VisionTransformer` and CoCa's tower.

  Returns:
    (N, 1 + tokens, width): the class token, then the patch tokens.
  """
  openclip_common.check_image_size(x, c.image_size, what)
  x = nn.Conv(c.width, (c.patch, c.patch), strides=(c.patch, c.patch), padding="VALID",
              use_bias=False, name="conv1", dtype=x.dtype)(x)
  n = x.shape[0]
  x = x.reshape(n, -1, c.width)
  cls = module.param("class_embedding", nn.initializers.normal(0.02), (c.width,))
  x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (n, 1, c.width)), x], axis=1)
  x = x + module.param("positional_embedding", nn.initializers.normal(0.02),
                       (x.shape[1], c.width)).astype(x.dtype)
  if c.ln_pre:
    x = nn.LayerNorm(epsilon=c.eps, name="ln_pre", dtype=x.dtype)(x)
  for i in range(c.layers):
    x = ResBlock(c, name=f"resblocks_{i}")(x)
  return x


class VisionTransformer(nn.Module):
  """OpenCLIP VisionTransformer: (N, S, S, 3) -> (N, embed_dim)."""
  cfg: VitCfg
  embed_dim: int

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    x = encode_tokens(self, x, c)
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    pool = (lambda t: jnp.mean(t[:, 1:], axis=1)) if c.pool == "avg" else (lambda t: t[:, 0])
    x = ln("ln_post")(pool(x)) if c.final_ln_after_pool else pool(ln("ln_post")(x))
    return nn.Dense(self.embed_dim, use_bias=False, name="proj")(x)


class OcVitClip(openclip_text.TwoTowerMethods, nn.Module):
  cfg: OcVitClipCfg

  def setup(self):
    self.visual = VisionTransformer(self.cfg.vision, self.cfg.embed_dim, name="visual")
    self.text = openclip_text.TextTower(self.cfg.text, name="text")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), ())

  def __call__(self, images, ids):
    return self.encode_image(images), self.encode_text(ids), self.logit_scale


def handles(model_cfg: dict) -> bool:
  """An OpenCLIP ViT (no timm, no HF text, no CoCa) using an option only this module builds."""
  v, t = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
  if v.get("timm_model_name") or t.get("hf_model_name") or "multimodal_cfg" in model_cfg \
      or isinstance(v.get("layers", 12), (list, tuple)):
    return False
  return (v.get("no_ln_pre", False) or v.get("pool_type", "tok") != "tok"
          or v.get("final_ln_after_pool", False) or v.get("ls_init_value") is not None
          or t.get("no_causal_mask", False) or t.get("pool_type", "argmax") not in ("argmax", "eos")
          or t.get("proj_bias", False))


def parse(model_cfg: dict, *, quick_gelu: Optional[bool], source: str) -> OcVitClipCfg:
  """OcVitClipCfg from ``model_cfg``; options outside this module's set are refused, named."""
  v, t = dict(model_cfg["vision_cfg"]), model_cfg["text_cfg"]
  unknown = sorted(set(model_cfg) - openclip_common._TOP_KNOWN)
  if unknown or model_cfg.get("custom_text"):
    raise layers.UnknownArchitecture(f"{source}: model_cfg keys {unknown or ['custom_text']} "
                                     "not implemented for an OpenCLIP ViT")
  free_v = {k: openclip_common._VISION_DEFAULTS[k] for k in VISION_OPTIONS}
  openclip_common._check_options({k: x for k, x in v.items() if k not in free_v},
                                 openclip_common._VISION_DEFAULTS, openclip_common._VISION_KNOWN,
                                 "vision_cfg", source)
  free_t = ("no_causal_mask", "proj_bias", "pool_type", "proj_type", "act_kwargs")
  openclip_common._check_options(
      t, {k: d for k, d in openclip_common._TEXT_DEFAULTS.items() if k not in free_t},
      openclip_common._TEXT_KNOWN | set(free_t), "text_cfg", source)
  pool = v.get("pool_type", "tok")
  if pool not in ("tok", "avg"):
    raise layers.UnknownArchitecture(f"{source}: vision_cfg.pool_type {pool!r}; implemented: "
                                     "'tok', 'avg'")
  qg = bool(model_cfg.get("quick_gelu", False)) if quick_gelu is None else bool(quick_gelu)
  size = v.get("image_size", 224)
  size = int(size[0] if isinstance(size, (list, tuple)) else size)
  w = int(v.get("width", 768))
  vision = VitCfg(width=w, layers=int(v.get("layers", 12)), heads=w // int(v.get("head_width", 64)),
                  patch=int(v.get("patch_size", 16)), image_size=size,
                  mlp_dim=int(w * float(v.get("mlp_ratio", 4.0))),
                  act="quick_gelu" if qg else "gelu",
                  eps=float((v.get("norm_kwargs") or {}).get("eps", 1e-5)),
                  ln_pre=not v.get("no_ln_pre", False), pool=pool,
                  final_ln_after_pool=bool(v.get("final_ln_after_pool", False)),
                  layer_scale=v.get("ls_init_value") is not None)
  embed = int(model_cfg["embed_dim"])
  return OcVitClipCfg(vision=vision, text=openclip_text.text_config(t, embed, qg, source),
                      embed_dim=embed)


def make_src(cfg: OcVitClipCfg):
  text_src = openclip_text.make_src(cfg.text, "")

  def src(path: tuple, shape: tuple) -> layers.Src:
    top, leaf = path[0], path[-1]
    if top == "logit_scale":
      return layers.copy("logit_scale")
    if top == "text":
      return text_src(path[1:], shape)
    head = path[1]
    if head in ("class_embedding", "positional_embedding"):
      return layers.copy("visual." + head)
    if head == "conv1":
      return layers.conv_kernel("visual.conv1.weight")
    if head == "proj":
      return layers.copy("visual.proj")          # x @ P: already (in, out)
    if head in ("ln_pre", "ln_post"):
      return layers.named_src("visual." + head, leaf, shape)
    p = f"visual.transformer.resblocks.{int(head.split('_')[1])}."
    mod = path[2]
    if mod in ("ls_1", "ls_2"):
      return layers.copy(p + mod + ".gamma")
    if mod in ("attn_q", "attn_k", "attn_v"):
      return openclip_common.fused_qkv_src(p + "attn.in_proj_", mod[-1], leaf)
    name = {"attn_out_proj": "attn.out_proj", "mlp_c_fc": "mlp.c_fc",
            "mlp_c_proj": "mlp.c_proj"}.get(mod, mod)
    return layers.named_src(p + name, leaf, shape)
  return src


def params_from_openclip(tensors: dict, cfg: OcVitClipCfg, source: str = ""):
  module = OcVitClip(cfg)
  shapes = openclip_common.two_tower_shapes(module, cfg.image_size, cfg.text.context_length)
  v = cfg.vision
  what = (f"OpenCLIP ViT (width {v.width}, layers {v.layers}, ln_pre {v.ln_pre}, pool {v.pool}, "
          f"layer scale {v.layer_scale})")
  tensors = dict(tensors)
  if "logit_scale" in tensors:
    tensors["logit_scale"] = np.asarray(tensors["logit_scale"]).reshape(())
  return module, layers.pull(shapes, tensors, make_src(cfg), source=source, what=what,
                             ignore=lambda k: k.endswith("attn_mask"))


def expected_tensors(cfg: OcVitClipCfg) -> dict[str, tuple]:
  """OpenCLIP tensor name -> shape this config needs (``jax.eval_shape``, no weights)."""
  shapes = openclip_common.two_tower_shapes(OcVitClip(cfg), cfg.image_size,
                                            cfg.text.context_length)
  return openclip_common.tensor_shapes(shapes, make_src(cfg))
