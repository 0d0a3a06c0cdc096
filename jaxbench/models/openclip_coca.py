"""CoCa (open_clip's ``CoCa``): the contrastive path, for zero-shot classification.

What open_clip's ``CoCa.encode_image`` / ``encode_text`` return, on OpenCLIP's own
ViT and text transformer (``coca_ViT-B-32``, ``coca_ViT-L-14``, ``coca_base``):

* Image tower: OpenCLIP's ViT. With ``vision_cfg.attentional_pool`` (the LAION CoCa
  models) the transformer's tokens go through an attentional pooler
  (``visual.attn_pool``: ``attn_pooler_queries`` learned queries, LayerNorms on the
  queries and the tokens, one multi-head cross-attention whose key/value width is the
  tower's width), then ``ln_post``; query 0 is the *contrastive* token (projected by
  ``visual.proj``), queries 1.. are the caption tokens the decoder reads. Only query 0
  is computed here: the queries do not interact, so the others cannot change it.
  Without the option (``coca_base``) the tower is :class:`openclip_vit.VisionTransformer`.
* Text tower (``text_cfg.embed_cls``): a learned CLS embedding (``text.cls_emb``) is
  appended after the ``context_length`` token embeddings (so ``context_length + 1``
  positions); attention is causal and masks padding with open_clip's legacy CLS
  mask (the pad mask shifted one position right, its first column always kept:
  ``TextTransformer._build_additive_mask`` with ``correct_cls_mask=False``, the only
  value ``CoCa`` builds); the output is the last position (the CLS) -> ``ln_final``
  -> ``text_projection``. Ids must be padded to ``context_length``: the CLS position
  depends on it, so prompts cannot be length-bucketed (the Model's ``causal_text`` is
  False).
* The multimodal text decoder (``text_decoder.*``, captioning) is not needed for
  zero-shot scores: its tensors are *known-unused*. :func:`decoder_tensors` lists
  every name and shape the config's decoder has; the loader skips exactly those
  (mis-shaped ones are named with both shapes) and still names any other tensor it
  does not use. A checkpoint without its decoder loads.

Not built here: CoCa with a Hugging Face text tower (``coca_roberta-ViT-B-32``,
refused in :mod:`openclip_refusals`), the untested ``'parallel'``/``'cascade'``
attentional pools, and text options beyond those :mod:`openclip_vit` accepts.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxbench.models import (api, clip, layers, openclip_common, openclip_text, openclip_timm,
                             openclip_vit)

# Config keys of a CoCa model_cfg beyond a CLIP's.
_COCA_TOP = {"multimodal_cfg"}
_COCA_VISION = ("attentional_pool", "attn_pooler_queries", "attn_pooler_heads")
_COCA_TEXT = ("embed_cls",)


@dataclasses.dataclass(frozen=True)
class CocaCfg:
  """A CoCa model's contrastive towers (and the names of the decoder it skips).

  Attributes:
    vision: the ViT (with ``attn_pool`` its ``pool`` is 'tok': query 0 of the pooler).
    text: the text tower; ``pool_type`` is 'last' (the appended CLS).
    attn_pool: the image tower ends in an attentional pooler.
    pool_queries, pool_heads: the pooler's learned queries and attention heads.
    pad_id: the token id masked as padding (``text_cfg.pad_id``).
    decoder: (name, shape) of every known-unused ``text_decoder.*`` tensor.
  """
  vision: openclip_vit.VitCfg
  text: openclip_text.TextConfig
  embed_dim: int
  attn_pool: bool = False
  pool_queries: int = 256
  pool_heads: int = 8
  pad_id: int = 0
  decoder: tuple = ()

  @property
  def image_size(self) -> int:
    return self.vision.image_size


# --- modules --------------------------------------------------------------------

class AttentionalPooler(nn.Module):
  """open_clip's ``AttentionalPooler``, contrastive query only: (N, L, width) -> (N, dim).

  Parameter names follow PyTorch's (``query``, ``ln_q``, ``ln_k``, the attention's q/k/v
  and output projections); ``query`` keeps all ``queries`` rows so the checkpoint's
  tensor is checked whole.
  """
  dim: int
  heads: int
  queries: int
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    n = x.shape[0]
    ln = lambda name: nn.LayerNorm(epsilon=self.eps, name=name, dtype=x.dtype)
    query = self.param("query", nn.initializers.normal(1.0), (self.queries, self.dim))
    q = ln("ln_q")(query[:1].astype(x.dtype))                  # (1, dim): query 0
    x = ln("ln_k")(x)
    q = jnp.broadcast_to(nn.Dense(self.dim, name="attn_q")(q), (n, 1, self.dim))
    k = nn.Dense(self.dim, name="attn_k")(x)
    v = nn.Dense(self.dim, name="attn_v")(x)
    split = lambda t: t.reshape(n, t.shape[1], self.heads, self.dim // self.heads)
    o = openclip_common.attention(split(q), split(k), split(v)).reshape(n, self.dim)
    return nn.Dense(self.dim, name="attn_out_proj")(o)


class AttnPoolVisionTransformer(nn.Module):
  """OpenCLIP's ViT with CoCa's attentional pool: (N, S, S, 3) -> (N, embed_dim).

  Same embedding and blocks as :class:`openclip_vit.VisionTransformer` (same names);
  after the blocks: ``attn_pool`` -> ``ln_post`` -> query 0 -> ``proj``.
  """
  cfg: openclip_vit.VitCfg
  embed_dim: int
  pool_heads: int
  pool_queries: int

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    x = openclip_vit.encode_tokens(self, x, c, "CoCa ViT")
    x = AttentionalPooler(self.embed_dim, self.pool_heads, self.pool_queries, c.eps,
                          name="attn_pool")(x)
    x = nn.LayerNorm(epsilon=c.eps, name="ln_post", dtype=x.dtype)(x)
    return nn.Dense(self.embed_dim, use_bias=False, name="proj")(x)


class _MaskedAttention(nn.Module):
  """Self-attention with a boolean mask (N, 1, L, L) (True: attend)."""
  heads: int

  @nn.compact
  def __call__(self, x, mask):
    n, l, d = x.shape
    split = lambda t: t.reshape(n, l, self.heads, d // self.heads)
    q, k, v = (split(nn.Dense(d, name=f"{p}_proj")(x)) for p in "qkv")
    o = openclip_common.attention(q, k, v, mask=mask).reshape(n, l, d)
    return nn.Dense(d, name="out_proj")(o)


class _MaskedLayer(nn.Module):
  """A pre-LN transformer block with an explicit attention mask; the parameter names of
  :class:`clip.EncoderLayer`, so :func:`openclip_common._block_src` maps them."""
  cfg: clip.TowerConfig

  @nn.compact
  def __call__(self, x, mask):
    c = self.cfg
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    x = x + _MaskedAttention(c.heads, name="self_attn")(ln("layer_norm1")(x), mask)
    y = nn.Dense(c.mlp_dim, name="fc1")(ln("layer_norm2")(x))
    return x + nn.Dense(x.shape[-1], name="fc2")(clip._act(c.act)(y))


class _Encoder(nn.Module):
  cfg: clip.TowerConfig

  @nn.compact
  def __call__(self, x, mask):
    for i in range(self.cfg.layers):
      x = _MaskedLayer(self.cfg, name=f"layers_{i}")(x, mask)
    return x


class CocaTextTower(nn.Module):
  """OpenCLIP ``TextTransformer`` with ``embed_cls``: ids (N, context_length) -> (N, embed_dim)."""
  cfg: openclip_text.TextConfig
  pad_id: int = 0

  @nn.compact
  def __call__(self, ids):
    c = self.cfg
    n, l = ids.shape
    if l != c.context_length:
      raise ValueError(f"CoCa's text tower takes ids padded to {c.context_length} (the CLS "
                       f"token is appended after them); got length {l}")
    w = c.tower.width
    x = nn.Embed(c.vocab_size, w, name="token_embedding")(ids)
    cls = self.param("cls_emb", nn.initializers.normal(0.01), (w,))
    x = jnp.concatenate([x, jnp.broadcast_to(cls.astype(x.dtype), (n, 1, w))], axis=1)
    x = x + self.param("positional_embedding", nn.initializers.normal(0.01),
                       (l + 1, w)).astype(x.dtype)
    # open_clip's legacy CLS mask: key j > 0 is kept iff token j-1 is not padding, key 0
    # always (the pad mask shifted right by the CLS column it prepends).
    keep = jnp.concatenate([jnp.ones((n, 1), bool), ids != self.pad_id], axis=1)
    mask = keep[:, None, None, :]                                  # (N, 1, 1, L+1)
    if c.causal:
      mask = mask & jnp.tril(jnp.ones((l + 1, l + 1), bool))[None, None]
    x = _Encoder(c.tower, name="encoder")(x, mask)
    x = nn.LayerNorm(epsilon=c.tower.eps, name="ln_final", dtype=x.dtype)(x[:, -1])
    if c.proj_type == "linear":
      x = nn.Dense(c.embed_dim, use_bias=c.proj_bias, name="text_projection")(x)
    return x


class CoCa(nn.Module):
  """CoCa's contrastive towers; ``encode_image``/``encode_text`` as open_clip's (unnormalised)."""
  cfg: CocaCfg

  def setup(self):
    c = self.cfg
    if c.attn_pool:
      self.visual = AttnPoolVisionTransformer(c.vision, c.embed_dim, c.pool_heads,
                                              c.pool_queries, name="visual")
    else:
      self.visual = openclip_vit.VisionTransformer(c.vision, c.embed_dim, name="visual")
    self.text = CocaTextTower(c.text, c.pad_id, name="text")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), ())

  def encode_image(self, x):
    return self.visual(x)

  def encode_text(self, ids):
    return self.text(ids)

  def __call__(self, images, ids):
    return self.encode_image(images), self.encode_text(ids), self.logit_scale


# --- config ---------------------------------------------------------------------

def handles(model_cfg: dict) -> bool:
  """A CoCa config (``multimodal_cfg``) with OpenCLIP's own text tower and ViT."""
  v, t = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
  return "multimodal_cfg" in model_cfg and not t.get("hf_model_name") \
      and not v.get("timm_model_name")


def decoder_tensors(model_cfg: dict) -> dict[str, tuple]:
  """Name -> shape of every ``text_decoder.*`` tensor open_clip's CoCa has for this config
  (``MultimodalTransformer``: self-attention and cross-attention blocks, ``ln_final``, a
  projection onto the text vocabulary). Used only to recognise them as unused."""
  mm, t = model_cfg["multimodal_cfg"], model_cfg["text_cfg"]
  w, n = int(mm.get("width", 512)), int(mm.get("layers", 12))
  hidden = int(w * float(mm.get("mlp_ratio", 4)))
  out = {}
  for kind in ("resblocks", "cross_attn"):
    for i in range(n):
      p = f"text_decoder.{kind}.{i}."
      norms = ("ln_1", "ln_2") + (("ln_1_kv",) if kind == "cross_attn" else ())
      for ln in norms:
        out[p + ln + ".weight"] = out[p + ln + ".bias"] = (w,)
      out.update({p + "attn.in_proj_weight": (3 * w, w), p + "attn.in_proj_bias": (3 * w,),
                  p + "attn.out_proj.weight": (w, w), p + "attn.out_proj.bias": (w,),
                  p + "mlp.c_fc.weight": (hidden, w), p + "mlp.c_fc.bias": (hidden,),
                  p + "mlp.c_proj.weight": (w, hidden), p + "mlp.c_proj.bias": (w,)})
      if mm.get("ls_init_value") is not None:
        out[p + "ls_1.gamma"] = out[p + "ls_2.gamma"] = (w,)
  out["text_decoder.ln_final.weight"] = out["text_decoder.ln_final.bias"] = (w,)
  out["text_decoder.text_projection"] = (w, int(t.get("vocab_size", 49408)))
  return out


def parse(model_cfg: dict, *, quick_gelu: Optional[bool], source: str) -> CocaCfg:
  """CocaCfg from a CoCa ``model_cfg``.

  The ViT and text options are checked by :func:`openclip_vit.parse` (everything it
  does not build is refused there, named) on the config without CoCa's own keys.

  Raises:
    UnknownArchitecture: a string ``attentional_pool`` ('parallel'/'cascade'), a
      pooled ViT option together with the attentional pool, a text tower without
      ``embed_cls``, or what :func:`openclip_vit.parse` refuses.
  """
  v, t = dict(model_cfg["vision_cfg"]), dict(model_cfg["text_cfg"])
  pool = v.get("attentional_pool", False)
  if not isinstance(pool, bool):
    raise layers.UnknownArchitecture(
        f"{source}: vision_cfg.attentional_pool {pool!r} (open_clip's untested "
        "'parallel'/'cascade' pools) is not implemented; implemented: true/false")
  if pool and (v.get("pool_type", "tok") != "tok" or v.get("final_ln_after_pool")):
    raise layers.UnknownArchitecture(
        f"{source}: CoCa's attentional pool with vision_cfg.pool_type "
        f"{v.get('pool_type')!r} / final_ln_after_pool: only the contrastive first query "
        "('tok') is implemented")
  if not t.get("embed_cls", False):
    raise layers.UnknownArchitecture(f"{source}: a CoCa text tower without embed_cls is not "
                                     "implemented (open_clip's CoCa configs all set it)")
  if t.get("pool_type", "argmax") not in ("argmax", "last") or t.get("final_ln_after_pool"):
    # embed_cls overrides both in open_clip; a config that asks otherwise is suspect.
    raise layers.UnknownArchitecture(f"{source}: text_cfg.pool_type {t.get('pool_type')!r} / "
                                     "final_ln_after_pool with embed_cls (always the CLS)")
  plain = {k: x for k, x in model_cfg.items() if k not in _COCA_TOP | {"custom_text"}}
  plain["vision_cfg"] = {k: x for k, x in v.items() if k not in _COCA_VISION}
  plain["text_cfg"] = {k: x for k, x in t.items() if k not in _COCA_TEXT + ("pool_type",)}
  base = openclip_vit.parse(plain, quick_gelu=quick_gelu, source=source)
  text = dataclasses.replace(base.text, pool_type="last")
  return CocaCfg(vision=base.vision, text=text, embed_dim=base.embed_dim, attn_pool=pool,
                 pool_queries=int(v.get("attn_pooler_queries", 256)),
                 pool_heads=int(v.get("attn_pooler_heads", 8)), pad_id=int(t.get("pad_id", 0)),
                 decoder=tuple(sorted(decoder_tensors(model_cfg).items())))


# --- name map -------------------------------------------------------------------

def make_src(cfg: CocaCfg):
  """(path, shape) -> Src for a :class:`CoCa` leaf, OpenCLIP's CoCa names."""
  base = openclip_vit.make_src(openclip_vit.OcVitClipCfg(cfg.vision, cfg.text, cfg.embed_dim))
  text_src = openclip_text.make_src(cfg.text, "text.")
  pool_fused = cfg.embed_dim == cfg.vision.width      # PyTorch fuses q/k/v when kdim == dim

  def src(path: tuple, shape: tuple) -> layers.Src:
    top, leaf = path[0], path[-1]
    if top == "text":
      if path[1] == "cls_emb":
        return layers.copy("text.cls_emb")
      return text_src(path[1:], shape)
    if top == "visual" and path[1] == "attn_pool":
      p, mod = "visual.attn_pool.", path[2]
      if mod == "query":
        return layers.copy(p + "query")
      if mod in ("ln_q", "ln_k"):
        return layers.named_src(p + mod, leaf, shape)
      if mod == "attn_out_proj":
        return layers.named_src(p + "attn.out_proj", leaf, shape)
      which = mod[-1]                                  # attn_q / attn_k / attn_v
      if leaf == "bias" or pool_fused:
        return openclip_common.fused_qkv_src(p + "attn.in_proj_", which, leaf)
      return layers.dense_kernel(f"{p}attn.{which}_proj_weight")
    return base(path, shape)                           # ViT blocks, ln_*, proj, logit_scale
  return src


def _shapes(cfg: CocaCfg):
  return openclip_common.two_tower_shapes(CoCa(cfg), cfg.image_size, cfg.text.context_length)


def params_from_openclip(tensors: dict, cfg: CocaCfg, source: str = ""):
  """(module, Flax params) from open_clip's CoCa state dict (NumPy arrays).

  ``text_decoder.*`` tensors of the config's decoder are skipped as known-unused (the
  zero-shot path does not run the decoder); a decoder tensor of another shape is named
  with both shapes, any other tensor not used is named as unexpected.
  """
  decoder = dict(cfg.decoder)
  bad = [f"{k}: expected {decoder[k]}, found {tuple(np.shape(a))} (CoCa decoder, unused for "
         "zero-shot)" for k, a in sorted(tensors.items())
         if k in decoder and tuple(np.shape(a)) != decoder[k]]
  if bad:
    raise layers.CheckpointMismatch(f"checkpoint {source!r} does not fit the CoCa config: "
                                    f"shape mismatches [{'; '.join(bad[:12])}]")
  tensors = dict(tensors)
  if "logit_scale" in tensors:
    tensors["logit_scale"] = np.asarray(tensors["logit_scale"]).reshape(())
  v = cfg.vision
  what = (f"OpenCLIP CoCa (ViT width {v.width}, layers {v.layers}, patch {v.patch}, "
          f"attentional pool {cfg.attn_pool}; text width {cfg.text.tower.width}, "
          f"layers {cfg.text.tower.layers})")
  module = CoCa(cfg)
  return module, layers.pull(_shapes(cfg), tensors, make_src(cfg), source=source, what=what,
                             ignore=lambda k: k.endswith("attn_mask") or k in decoder)


def expected_tensors(cfg: CocaCfg) -> dict[str, tuple]:
  """OpenCLIP tensor name -> shape the contrastive path loads (``jax.eval_shape``, no
  weights); ``dict(cfg.decoder)`` holds the rest of open_clip's CoCa state dict."""
  return openclip_common.tensor_shapes(_shapes(cfg), make_src(cfg))


# --- loader ---------------------------------------------------------------------

def load(ref: str, config: dict, files: dict, *, revision: Optional[str], spec: Optional[str],
         precision: str, quick_gelu: Optional[bool]) -> api.Model:
  """Model for an OpenCLIP CoCa repo (called by :func:`openclip.load`).

  The shared OpenCLIP loader (:func:`openclip_timm.load`) reads the weights and the
  tokenizer (CLIP's BPE at ``context_length``, 76 for the LAION CoCa models); this adds
  what provenance says about CoCa.
  """
  model = openclip_timm.load(ref, config, files, revision=revision, spec=spec,
                             precision=precision, quick_gelu=quick_gelu,
                             family=sys.modules[__name__])
  cfg = parse(config["model_cfg"], quick_gelu=quick_gelu, source=ref)
  prov = dict(model.provenance, architecture="openclip-coca-" + (
      "attn-pool" if cfg.attn_pool else "tok-pool"),
      unused_tensors=f"text_decoder.* ({len(cfg.decoder)} tensors: the captioning decoder, "
                     "not run for zero-shot scores)")
  return dataclasses.replace(model, provenance=prov)
