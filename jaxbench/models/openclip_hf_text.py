"""OpenCLIP models with a Hugging Face text tower (open_clip's ``HFTextEncoder``).

open_clip builds ``text_cfg.hf_model_name`` with transformers (``AutoModel``; for
encoder-decoder models only the ``.encoder``), runs it with the attention mask
``ids != pad_token_id``, pools it (``hf_pooler_type``) and projects it
(``hf_proj_type``). The model is a ``CustomTextCLIP``: the text tower's tensors are
``text.transformer.*`` (transformers' own names) and ``text.proj*``. This module is
the Flax port, for the encoders open_clip 3.3's configs use:

* ``roberta`` / ``xlm-roberta``: BERT-style post-LN encoder; word + token-type +
  position embeddings where positions count non-pad tokens from ``pad_token_id + 1``
  (fairseq's scheme), LayerNorm after the embeddings and after each residual;
* ``mt5``: the T5 encoder: RMSNorm (no mean, no bias) before each sub-layer,
  unscaled attention plus a learned bias per relative-position bucket (computed in
  the first block, shared by all), gated-GELU (tanh) feed-forward, final RMSNorm;
* ``m2m_100`` (NLLB): pre-LN encoder over ``sqrt(d_model)``-scaled embeddings plus
  fairseq sinusoidal positions (same padding-aware position ids), final LayerNorm.

Poolers: ``mean_pooler`` (mean over non-pad tokens), ``cls_pooler`` (the first
token; through RoBERTa's tanh pooler layer when the encoder has one, as open_clip
builds it with ``add_pooling_layer``), ``cls_last_hidden_state_pooler``.
Projections: ``linear`` (no bias), ``mlp`` (Linear -> GELU -> Linear, hidden
``(width + embed_dim) // 2``, no biases), none when the width already equals
``embed_dim`` and ``hf_proj_type`` is null.

The encoder's hyper-parameters come from the ``config.json`` of ``hf_model_name`` (a
hub repo or a local directory, as open_clip's ``AutoConfig.from_pretrained``); the
image tower is OpenCLIP's ViT (:mod:`openclip_vit`) or a timm trunk
(:mod:`openclip_timm`, e.g. the SigLIP trunk of ``nllb-clip-*-siglip``). Flax
modules are named after transformers' module paths with ``__`` for ``.``, so the
name map is one rule, checked against ``jax.eval_shape`` by :func:`layers.pull`.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import hub, layers, openclip_common, openclip_timm, openclip_vit

MODEL_TYPES = ("roberta", "xlm-roberta", "mt5", "m2m_100")
POOLERS = ("mean_pooler", "cls_pooler", "cls_last_hidden_state_pooler")
PROJ_TYPES = ("linear", "mlp", None)
HF_CONFIG = "config.json"

# text_cfg keys that matter with an HF tower; the TextTransformer keys open_clip
# ignores when hf_model_name is set are accepted too (they change nothing).
_TEXT_KEYS = {"hf_model_name", "hf_tokenizer_name", "hf_proj_type", "hf_pooler_type",
              "hf_model_pretrained", "context_length", "tokenizer_kwargs", "output_tokens"}
_TOP_KNOWN = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "cast_dtype", "custom_text",
              "init_logit_scale", "init_logit_bias"}

# transformers' ACT2FN names used by these encoders.
_ACTS = {"gelu": lambda x: jax.nn.gelu(x, approximate=False),
         "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
         "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
         "relu": jax.nn.relu, "silu": jax.nn.silu, "swish": jax.nn.silu}


@dataclasses.dataclass(frozen=True)
class EncoderCfg:
  """One HF text encoder, in our terms (from its ``config.json``)."""
  model_type: str
  vocab_size: int
  width: int
  layers: int
  heads: int
  mlp_dim: int
  act: str
  pad_id: int
  eps: float = 1e-5
  max_positions: int = 0          # learned position table size (RoBERTa)
  type_vocab_size: int = 1        # RoBERTa token-type table (row 0 is used)
  head_dim: int = 0               # T5's d_kv (inner width heads * d_kv may differ from width)
  num_buckets: int = 32           # T5 relative attention
  max_distance: int = 128
  gated: bool = True              # T5 gated feed-forward (wi_0, wi_1)
  scale_embedding: bool = False   # M2M100: embeddings * sqrt(width)


@dataclasses.dataclass(frozen=True)
class HFTextCfg:
  encoder: EncoderCfg
  embed_dim: int
  pooler: str
  proj: Optional[str]             # 'linear', 'mlp' or None (identity)
  pooler_layer: bool              # RoBERTa's dense+tanh pooler (cls_pooler)
  context_length: int


@dataclasses.dataclass(frozen=True)
class HFClipCfg:
  """A whole ``CustomTextCLIP``: image tower (``vit`` or ``timm``) + HF text tower."""
  tower: str
  visual: object                  # openclip_vit.OcVitClipCfg or openclip_timm.TimmClipCfg
  text: Optional[HFTextCfg]       # None until the HF config is read (parse without weights)
  image_size: int
  logit_bias: bool
  hf_model_name: str
  pooler: str
  proj: Optional[str]
  context_length: int


# --- config --------------------------------------------------------------------

def handles(model_cfg: dict) -> bool:
  """Whether ``model_cfg`` has a Hugging Face text tower (and is not CoCa)."""
  return bool(model_cfg.get("text_cfg", {}).get("hf_model_name")) and \
      "multimodal_cfg" not in model_cfg


def parse(model_cfg: dict, *, quick_gelu: Optional[bool], source: str) -> HFClipCfg:
  """Everything ``model_cfg`` decides (image tower, pooler, projection), no weights and no
  HF config: :func:`with_encoder` adds the encoder.

  Raises:
    UnknownArchitecture: an option outside POOLERS/PROJ_TYPES, an unknown key, or an
      image tower the ViT/timm modules refuse, named.
  """
  unknown = sorted(set(model_cfg) - _TOP_KNOWN)
  if unknown:
    raise layers.UnknownArchitecture(f"{source}: {openclip_common.CONFIG} model_cfg has "
                                     f"unsupported keys {unknown} with an HF text tower; "
                                     f"supported: {sorted(_TOP_KNOWN)}")
  t = model_cfg["text_cfg"]
  ignored = openclip_common._TEXT_KNOWN | set(openclip_common._TEXT_DEFAULTS)
  bad = sorted(set(t) - _TEXT_KEYS - ignored)
  if bad:
    raise layers.UnknownArchitecture(f"{source}: text_cfg keys {bad} with an HF text tower; "
                                     f"known: {sorted(_TEXT_KEYS)}")
  if t.get("tokenizer_mode"):
    raise layers.UnknownArchitecture(f"{source}: text_cfg.tokenizer_mode "
                                     f"{t['tokenizer_mode']!r} is not implemented")
  pooler = t.get("hf_pooler_type", "mean_pooler")      # open_clip's CLIPTextCfg defaults
  proj = t.get("hf_proj_type", "mlp")
  if pooler not in POOLERS:
    raise layers.UnknownArchitecture(f"{source}: text_cfg.hf_pooler_type {pooler!r} is not "
                                     f"implemented; known: {POOLERS}")
  if proj not in PROJ_TYPES:
    raise layers.UnknownArchitecture(f"{source}: text_cfg.hf_proj_type {proj!r} is not "
                                     f"implemented; known: {PROJ_TYPES}")
  v = model_cfg["vision_cfg"]
  # The image tower alone, through the module that builds it (text_cfg left at CLIP's
  # defaults: it is not used).
  vis_cfg = {k: model_cfg[k] for k in ("embed_dim", "vision_cfg", "quick_gelu",
                                       "init_logit_bias", "init_logit_scale") if k in model_cfg}
  vis_cfg["text_cfg"] = {}
  if v.get("timm_model_name"):
    visual = openclip_timm.parse(vis_cfg, quick_gelu=quick_gelu, source=source)
    tower, size = "timm", visual.image_size
  else:
    if isinstance(v.get("layers", 12), (list, tuple)):
      raise layers.UnknownArchitecture(f"{source}: ModifiedResNet image tower with an HF "
                                       "text tower is not implemented")
    vis_cfg.pop("init_logit_bias", None)
    visual = openclip_vit.parse(vis_cfg, quick_gelu=quick_gelu, source=source)
    tower, size = "vit", visual.image_size
  return HFClipCfg(tower=tower, visual=visual, text=None, image_size=size,
                   logit_bias="init_logit_bias" in model_cfg,
                   hf_model_name=t["hf_model_name"], pooler=pooler, proj=proj,
                   context_length=int(t.get("context_length", 77)))


def encoder_config(hf: dict, source: str) -> EncoderCfg:
  """EncoderCfg from a transformers ``config.json`` dict.

  Raises:
    UnknownArchitecture: a ``model_type`` outside MODEL_TYPES or an option these
      encoders do not implement (relative positions in RoBERTa, an unknown activation).
  """
  mt = hf.get("model_type")
  if mt not in MODEL_TYPES:
    raise layers.UnknownArchitecture(f"{source}: HF text tower model_type {mt!r} is not "
                                     f"implemented; implemented: {MODEL_TYPES}")
  g = lambda k, d=None: hf.get(k, d)
  if mt in ("roberta", "xlm-roberta"):
    pet = g("position_embedding_type", "absolute")
    if pet != "absolute":
      raise layers.UnknownArchitecture(f"{source}: {mt} position_embedding_type {pet!r}; "
                                       "implemented: 'absolute'")
    act = g("hidden_act", "gelu")
    cfg = EncoderCfg(mt, int(g("vocab_size")), int(g("hidden_size", 768)),
                     int(g("num_hidden_layers", 12)), int(g("num_attention_heads", 12)),
                     int(g("intermediate_size", 3072)), act, int(g("pad_token_id", 1)),
                     eps=float(g("layer_norm_eps", 1e-12)),
                     max_positions=int(g("max_position_embeddings", 512)),
                     type_vocab_size=int(g("type_vocab_size", 2)))
  elif mt == "mt5":
    ff = g("feed_forward_proj", "gated-gelu")
    parts = ff.split("-")
    act = "gelu_new" if ff == "gated-gelu" else parts[-1]
    cfg = EncoderCfg(mt, int(g("vocab_size")), int(g("d_model", 512)), int(g("num_layers", 8)),
                     int(g("num_heads", 6)), int(g("d_ff", 1024)), act,
                     int(g("pad_token_id", 0)), eps=float(g("layer_norm_epsilon", 1e-6)),
                     head_dim=int(g("d_kv", 64)),
                     num_buckets=int(g("relative_attention_num_buckets", 32)),
                     max_distance=int(g("relative_attention_max_distance", 128)),
                     gated=parts[0] == "gated")
  else:
    cfg = EncoderCfg(mt, int(g("vocab_size")), int(g("d_model", 1024)),
                     int(g("encoder_layers", 12)), int(g("encoder_attention_heads", 16)),
                     int(g("encoder_ffn_dim", 4096)), g("activation_function", "relu"),
                     int(g("pad_token_id", 1)), eps=1e-5,
                     scale_embedding=bool(g("scale_embedding", False)))
  if cfg.act not in _ACTS:
    raise layers.UnknownArchitecture(f"{source}: HF text tower activation {cfg.act!r}; "
                                     f"implemented: {sorted(_ACTS)}")
  return cfg


def with_encoder(cfg: HFClipCfg, hf: dict, embed_dim: int, source: str) -> HFClipCfg:
  """``cfg`` completed with the encoder of transformers config ``hf``.

  Raises:
    UnknownArchitecture: a projection open_clip would not build (``hf_proj_type`` null
      with the encoder width != embed_dim).
  """
  enc = encoder_config(hf, source)
  if cfg.proj is None and enc.width != embed_dim:
    raise layers.UnknownArchitecture(
        f"{source}: text_cfg.hf_proj_type null needs the encoder width ({enc.width}) to equal "
        f"embed_dim ({embed_dim}); open_clip builds no projection otherwise")
  text = HFTextCfg(encoder=enc, embed_dim=int(embed_dim), pooler=cfg.pooler, proj=cfg.proj,
                   pooler_layer=(cfg.pooler == "cls_pooler" and enc.model_type in
                                 ("roberta", "xlm-roberta")),
                   context_length=cfg.context_length)
  return dataclasses.replace(cfg, text=text)


# --- positions -------------------------------------------------------------------

def fairseq_positions(mask):
  """Position ids of fairseq/RoBERTa/M2M100: 1.. over non-pad tokens, offset by pad id
  by the caller; pad tokens get 0 here. mask: bool (N, L) -> int32 (N, L)."""
  m = mask.astype(jnp.int32)
  return jnp.cumsum(m, axis=1) * m


def sinusoid_table(n: int, dim: int, padding_idx: int) -> np.ndarray:
  """M2M100's sinusoidal table (n, dim): [sin | cos] of p * 10000**(-j / (dim/2 - 1)), in
  float32 like transformers (same rounding); row ``padding_idx`` is zero."""
  half = dim // 2
  step = math.log(10000) / (half - 1)
  freq = np.exp(np.arange(half, dtype=np.float32) * np.float32(-step)).astype(np.float32)
  ang = np.arange(n, dtype=np.float32)[:, None] * freq[None]
  emb = np.concatenate([np.sin(ang), np.cos(ang)], axis=1).astype(np.float32)
  if dim % 2:
    emb = np.concatenate([emb, np.zeros((n, 1), np.float32)], axis=1)
  emb[padding_idx] = 0
  return emb


def relative_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
  """T5's bidirectional relative-position bucket (L, L) of key j for query i, float32
  logarithm like transformers' ``_relative_position_bucket``."""
  pos = np.arange(length)
  rel = pos[None, :] - pos[:, None]                       # memory - query
  nb = num_buckets // 2
  out = (rel > 0).astype(np.int64) * nb
  n = np.abs(rel)
  max_exact = nb // 2
  with np.errstate(divide="ignore"):
    large = (np.log(n.astype(np.float32) / np.float32(max_exact))
             / np.float32(math.log(max_distance / max_exact)) * np.float32(nb - max_exact))
  large = max_exact + np.where(n < max_exact, 0, large).astype(np.int64)
  large = np.minimum(large, nb - 1)
  return out + np.where(n < max_exact, n, large)


# --- modules ---------------------------------------------------------------------

def _dense(features, name, bias=True):
  return nn.Dense(features, use_bias=bias, name=name)


def _split_heads(x, heads):
  n, l, d = x.shape
  return x.reshape(n, l, heads, d // heads)


class RobertaEncoder(nn.Module):
  """transformers ``RobertaModel`` (post-LN BERT blocks): ids (N, L) -> (N, L, width)."""
  cfg: EncoderCfg

  @nn.compact
  def __call__(self, ids, mask):
    c = self.cfg
    n, l = ids.shape
    if l + c.pad_id + 1 > c.max_positions:
      raise ValueError(f"{c.model_type} takes at most {c.max_positions - c.pad_id - 1} tokens; "
                       f"got {l}")
    e = "embeddings__"
    x = nn.Embed(c.vocab_size, c.width, name=e + "word_embeddings")(ids)
    pos = fairseq_positions(mask) + c.pad_id
    x = x + nn.Embed(c.max_positions, c.width, name=e + "position_embeddings")(pos)
    # token type 0 everywhere (open_clip passes no token_type_ids)
    x = x + nn.Embed(c.type_vocab_size, c.width, name=e + "token_type_embeddings")(
        jnp.zeros_like(ids))
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    x = ln(e + "LayerNorm")(x)
    key_mask = mask[:, None, None, :]                         # (N, 1, 1, L): keys only
    for i in range(c.layers):
      p = f"encoder__layer__{i}__"
      q, k, v = (_split_heads(_dense(c.width, p + "attention__self__" + w)(x), c.heads)
                 for w in ("query", "key", "value"))
      a = openclip_common.attention(q, k, v, mask=key_mask).reshape(n, l, c.width)
      x = ln(p + "attention__output__LayerNorm")(x + _dense(c.width, p + "attention__output__"
                                                             "dense")(a))
      y = _ACTS[c.act](_dense(c.mlp_dim, p + "intermediate__dense")(x))
      x = ln(p + "output__LayerNorm")(x + _dense(c.width, p + "output__dense")(y))
    return x


class RMSNorm(nn.Module):
  """T5LayerNorm: x / sqrt(mean(x^2) + eps) * weight (statistics in float32)."""
  eps: float

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.ones, (x.shape[-1],))
    var = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True)
    return w.astype(x.dtype) * (x * jax.lax.rsqrt(var + self.eps)).astype(x.dtype)


class T5Encoder(nn.Module):
  """transformers ``MT5Stack`` (encoder): ids (N, L) -> (N, L, width)."""
  cfg: EncoderCfg

  @nn.compact
  def __call__(self, ids, mask):
    c = self.cfg
    n, l = ids.shape
    inner = c.heads * c.head_dim
    x = nn.Embed(c.vocab_size, c.width, name="embed_tokens")(ids)
    table = nn.Embed(c.num_buckets, c.heads,
                     name="block__0__layer__0__SelfAttention__relative_attention_bias")
    buckets = jnp.asarray(relative_buckets(l, c.num_buckets, c.max_distance))
    bias = jnp.transpose(table(buckets), (2, 0, 1))[None]      # (1, H, L, L)
    key_mask = mask[:, None, None, :]
    for i in range(c.layers):
      p = f"block__{i}__layer__"
      y = RMSNorm(c.eps, name=p + "0__layer_norm")(x)
      q, k, v = (_split_heads(_dense(inner, p + "0__SelfAttention__" + w, bias=False)(y),
                              c.heads) for w in "qkv")
      # T5 does not scale q.k; the relative-position bias (+ key mask) is added instead.
      a = jax.nn.dot_product_attention(q, k, v, bias=bias.astype(q.dtype), mask=key_mask,
                                       scale=1.0)
      x = x + _dense(c.width, p + "0__SelfAttention__o", bias=False)(a.reshape(n, l, inner))
      y = RMSNorm(c.eps, name=p + "1__layer_norm")(x)
      f = p + "1__DenseReluDense__"
      if c.gated:
        h = _ACTS[c.act](_dense(c.mlp_dim, f + "wi_0", bias=False)(y)) * \
            _dense(c.mlp_dim, f + "wi_1", bias=False)(y)
      else:
        h = _ACTS[c.act](_dense(c.mlp_dim, f + "wi", bias=False)(y))
      x = x + _dense(c.width, f + "wo", bias=False)(h)
    return RMSNorm(c.eps, name="final_layer_norm")(x)


class M2M100Encoder(nn.Module):
  """transformers ``M2M100Encoder`` (NLLB; pre-LN): ids (N, L) -> (N, L, width)."""
  cfg: EncoderCfg

  @nn.compact
  def __call__(self, ids, mask):
    c = self.cfg
    n, l = ids.shape
    x = nn.Embed(c.vocab_size, c.width, name="embed_tokens")(ids)
    if c.scale_embedding:
      x = x * math.sqrt(c.width)
    pos = fairseq_positions(mask) + c.pad_id
    table = jnp.asarray(sinusoid_table(l + c.pad_id + 1, c.width, c.pad_id))
    x = x + table[pos].astype(x.dtype)
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    key_mask = mask[:, None, None, :]
    for i in range(c.layers):
      p = f"layers__{i}__"
      y = ln(p + "self_attn_layer_norm")(x)
      q, k, v = (_split_heads(_dense(c.width, p + f"self_attn__{w}_proj")(y), c.heads)
                 for w in "qkv")
      a = openclip_common.attention(q, k, v, mask=key_mask).reshape(n, l, c.width)
      x = x + _dense(c.width, p + "self_attn__out_proj")(a)
      y = ln(p + "final_layer_norm")(x)
      y = _dense(c.width, p + "fc2")(_ACTS[c.act](_dense(c.mlp_dim, p + "fc1")(y)))
      x = x + y
    return ln("layer_norm")(x)


_ENCODERS = {"roberta": RobertaEncoder, "xlm-roberta": RobertaEncoder, "mt5": T5Encoder,
             "m2m_100": M2M100Encoder}


class HFTextEncoder(nn.Module):
  """open_clip ``HFTextEncoder``: ids (N, L) -> (N, embed_dim) (encoder, pooler, projection)."""
  cfg: HFTextCfg

  @nn.compact
  def __call__(self, ids):
    c, e = self.cfg, self.cfg.encoder
    mask = ids != e.pad_id
    h = _ENCODERS[e.model_type](e, name="transformer")(ids, mask)
    if c.pooler == "mean_pooler":
      m = mask[..., None].astype(h.dtype)
      x = jnp.sum(h * m, axis=1) / jnp.sum(m, axis=1)
    else:
      x = h[:, 0]
      if c.pooler_layer:              # RobertaPooler: dense -> tanh on the first token
        x = jnp.tanh(nn.Dense(e.width, name="transformer__pooler__dense")(x))
    if c.proj == "linear":
      x = _dense(c.embed_dim, "proj", bias=False)(x)
    elif c.proj == "mlp":
      x = _dense((e.width + c.embed_dim) // 2, "proj__0", bias=False)(x)
      x = _dense(c.embed_dim, "proj__2", bias=False)(_ACTS["gelu"](x))
    return x


class HFClip(nn.Module):
  """OpenCLIP ``CustomTextCLIP`` with an HF text tower; CLIP's methods."""
  cfg: HFClipCfg

  def setup(self):
    c = self.cfg
    if c.tower == "timm":
      self.visual = openclip_timm.TimmVisual(c.visual.visual, name="visual")
    else:
      self.visual = openclip_vit.VisionTransformer(c.visual.vision, c.visual.embed_dim,
                                                   name="visual")
    self.text = HFTextEncoder(c.text, name="text")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), ())
    if c.logit_bias:
      self.logit_bias = self.param("logit_bias", nn.initializers.constant(-10.0), ())

  def encode_image(self, x):
    return self.visual(x)

  def encode_text(self, ids):
    return self.text(ids)

  def __call__(self, images, ids):
    out = (self.encode_image(images), self.encode_text(ids), self.logit_scale)
    return out + (self.logit_bias,) if self.cfg.logit_bias else out


# --- name map ----------------------------------------------------------------------

def make_src(cfg: HFClipCfg):
  """(Flax path, shape) -> Src in open_clip's ``CustomTextCLIP`` state dict."""
  visual_src = (openclip_timm.make_src(cfg.visual) if cfg.tower == "timm"
                else openclip_vit.make_src(cfg.visual))

  def src(path: tuple, shape: tuple) -> layers.Src:
    top = path[0]
    if top in ("logit_scale", "logit_bias"):
      return layers.copy(top)
    if top == "visual":
      return visual_src(path, shape)
    # text/<transformer>/<module with '__' for '.'>/leaf, or text/proj__0/kernel
    mods = [m.replace("__", ".") for m in path[1:-1]]
    return layers.named_src("text." + ".".join(mods), path[-1], shape)
  return src


def params_from_openclip(tensors: dict, cfg: HFClipCfg, source: str = ""):
  """(module, Flax params) from an open_clip state dict with an HF text tower."""
  module = HFClip(cfg)
  shapes = openclip_common.two_tower_shapes(module, cfg.image_size, cfg.context_length)
  e = cfg.text.encoder
  what = (f"OpenCLIP {cfg.tower} image tower + HF {e.model_type} text tower (width {e.width}, "
          f"layers {e.layers}, pooler {cfg.pooler}, proj {cfg.proj})")
  tensors = dict(tensors)
  for k in ("logit_scale", "logit_bias"):
    if k in tensors:
      tensors[k] = np.asarray(tensors[k]).reshape(())
  # Buffers, not weights: older transformers saved RoBERTa's position_ids and M2M100's
  # sinusoidal table (embed_positions.weights) in the state dict; both are recomputed.
  ignore = lambda k: (k.endswith(("attn_mask", "position_ids", "token_type_ids",
                                  "embed_positions.weights")) or layers.bn_counter(k))
  return module, layers.pull(shapes, tensors, make_src(cfg), source=source, what=what,
                             ignore=ignore)


def expected_tensors(cfg: HFClipCfg) -> dict[str, tuple]:
  """open_clip tensor name -> shape this config needs (``jax.eval_shape``, no weights)."""
  shapes = openclip_common.two_tower_shapes(HFClip(cfg), cfg.image_size, cfg.context_length)
  return openclip_common.tensor_shapes(shapes, make_src(cfg))


# --- tokenizer -----------------------------------------------------------------------

# A tokenizer's files: tokenizer.json, or the vocabulary transformers builds one from.
VOCAB_FILES = (("tokenizer.json",), ("sentencepiece.bpe.model",), ("spiece.model",),
               ("vocab.json", "merges.txt"), ("vocab.txt",))


def check_tokenizer_files(src: str, files: list[str], source: str):
  """Refuses a tokenizer source without tokenizer files (transformers 5 would otherwise
  build an *empty* tokenizer from a bare config.json and map every word to <unk>).

  Raises:
    WeightsError: naming the source, the files expected and the files found.
  """
  names = {os.path.basename(f) for f in files}
  if not any(all(f in names for f in group) for group in VOCAB_FILES):
    want = ", ".join(" + ".join(g) for g in VOCAB_FILES)
    raise hub.WeightsError(f"{source}: no tokenizer files in {src!r} (text_cfg."
                           f"hf_tokenizer_name / the checkpoint): expected one of {want}; "
                           f"found {sorted(names)}")


class CheckedTokenizer:
  """:class:`openclip_text.HFTokenizer` whose source is checked for tokenizer files on
  first use (loading a model never needs them)."""

  def __init__(self, inner, source: str):
    self.inner, self.source = inner, source
    self.describe = inner.describe
    self._checked = False

  def __call__(self, texts) -> np.ndarray:
    if not self._checked:
      src = self.inner.root
      check_tokenizer_files(src, hub.list_files(src), self.source)
      self._checked = True
    return self.inner(texts)


def tokenizer_for(root: str, text_cfg: dict, context_length: int, files: list[str],
                  source: str):
  """The tokenizer open_clip's ``get_tokenizer`` builds for an HF-text config:
  ``hf_tokenizer_name`` -> ``HFTokenizer`` over the checkpoint's own tokenizer files if it
  ships them (``files``), else over that name, checked for tokenizer files on first use;
  no ``hf_tokenizer_name`` -> CLIP's BPE (as open_clip).

  Args:
    root: the checkpoint's local directory.
    files: the checkpoint's file names.
    source: the checkpoint, for messages.
  """
  tok = openclip_timm.tokenizer_for(root, text_cfg, context_length, files)
  return CheckedTokenizer(tok, source) if text_cfg.get("hf_tokenizer_name") else tok


# --- loader --------------------------------------------------------------------------

def read_hf_config(name: str, source: str) -> dict:
  """The transformers ``config.json`` of ``text_cfg.hf_model_name`` (repo or directory).

  Raises:
    WeightsError: naming the file, the name and the config key it came from.
  """
  try:
    path = hub.resolve(name, [HF_CONFIG])[HF_CONFIG]
  except hub.WeightsError as e:
    raise hub.WeightsError(f"{source}: the HF text tower's {HF_CONFIG} (text_cfg.hf_model_name "
                           f"{name!r}) is not available: {e}") from e
  return hub.read_json(path)


def load(ref: str, config: dict, files: dict, *, revision: Optional[str], spec: Optional[str],
         precision: str, quick_gelu: Optional[bool]):
  """Model for an OpenCLIP repo whose config :func:`handles` (called by openclip.load)."""
  model_cfg = config["model_cfg"]
  t = model_cfg["text_cfg"]
  cfg = parse(model_cfg, quick_gelu=quick_gelu, source=ref)
  cfg = with_encoder(cfg, read_hf_config(cfg.hf_model_name, ref), int(model_cfg["embed_dim"]),
                     ref)
  names = layers.safetensors_files(ref, revision, [openclip_common.WEIGHTS],
                                   openclip_common.PICKLES, layout="OpenCLIP")
  files.update(hub.resolve(ref, names, revision=revision))
  module, net = params_from_openclip(hub.load_safetensors([files[n] for n in names]), cfg,
                                     source=ref)
  preprocess = openclip_common.preprocess_from_config(config.get("preprocess_cfg", {}),
                                                      cfg.image_size)
  root, listing = openclip_common.tokenizer_files(ref, files, revision)
  tokenizer = tokenizer_for(root, t, cfg.context_length, listing, ref)
  prov = hub.provenance(ref, files, revision, layout="openclip")
  e = cfg.text.encoder
  prov.update(tokenizer=tokenizer.describe,
              architecture=f"openclip-hf-text-{e.model_type}:{cfg.hf_model_name}",
              text_pooler=cfg.pooler, text_proj=cfg.proj or "none")
  if cfg.logit_bias:
    prov.update(logit_scale=float(np.exp(net["logit_scale"])),
                logit_bias=float(net["logit_bias"]))
  return layers.zeroshot_model(module, net, preprocess, name=spec or f"openclip:{ref}",
                               provenance=prov, tokenizer=tokenizer,
                               context_length=cfg.context_length, precision=precision,
                               score="sigmoid" if cfg.logit_bias else "softmax")
