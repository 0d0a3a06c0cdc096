"""SigLIP (Zhai et al. 2023) in transformers' layout (``google/siglip-base-patch16-224``).

Image tower: patch convolution with bias, learned positions, no class token,
pre-LN transformer (:class:`jaxbench.models.clip.Encoder`, tanh-GELU, eps 1e-6),
post LayerNorm, then a multi-head attention pooling head (a learned probe
attends over all tokens, plus a LayerNorm/MLP residual). Text tower:
bidirectional transformer over ids padded to the full context (64), final
LayerNorm, the *last* position's output through a linear head.

Zero-shot scoring is a sigmoid, not a softmax: ``logits = exp(logit_scale) *
cos(image, text) + logit_bias``, one independent probability per class; the
Model has ``score='sigmoid'`` and its net params carry ``logit_scale`` (log
scale) and ``logit_bias`` for the head builder. The ranking of classes is the
same as the softmax model's, so top-k accuracy needs no change.

Tokenizer: transformers' ``AutoTokenizer`` from the repo's files (SigLIP's
SentencePiece model: needs the ``sentencepiece`` package), ids padded to the
context length with the pad token, no attention mask, as SigLIP was trained.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxbench.models import api, clip, hub, layers


@dataclasses.dataclass(frozen=True)
class SiglipConfig:
  vision: clip.TowerConfig
  text: clip.TowerConfig
  image_size: int = 224
  patch_size: int = 16
  vocab_size: int = 32000
  context_length: int = 64
  projection_size: int = 768


class MAPHead(nn.Module):
  """Multi-head attention pooling: one learned query over all tokens."""
  cfg: clip.TowerConfig

  @nn.compact
  def __call__(self, x):
    n, l, d = x.shape
    h = self.cfg.heads
    probe = self.param("probe", nn.initializers.normal(1.0), (d,))
    q = nn.Dense(d, name="q_proj")(jnp.broadcast_to(probe.astype(x.dtype), (n, 1, d)))
    k = nn.Dense(d, name="k_proj")(x)
    v = nn.Dense(d, name="v_proj")(x)
    o = layers.attention(q.reshape(n, 1, h, d // h), k.reshape(n, l, h, d // h),
                         v.reshape(n, l, h, d // h))
    y = nn.Dense(d, name="out_proj")(o.reshape(n, 1, d))
    z = nn.LayerNorm(epsilon=self.cfg.eps, name="layernorm", dtype=y.dtype)(y)
    z = nn.Dense(self.cfg.mlp_dim, name="fc1")(z)
    z = nn.Dense(d, name="fc2")(clip._act(self.cfg.act)(z))
    return (y + z)[:, 0]


class VisionTower(nn.Module):
  cfg: SiglipConfig

  @nn.compact
  def __call__(self, x):
    """Args: x (N, S, S, 3) normalised. Returns: (N, width) pooled."""
    c, p = self.cfg.vision, self.cfg.patch_size
    if x.shape[1] != self.cfg.image_size or x.shape[2] != self.cfg.image_size:
      raise ValueError(f"SigLIP takes {self.cfg.image_size}px inputs; got {x.shape[1:3]}")
    x = layers.PatchEmbed(c.width, p, use_bias=True, name="patch_embedding", dtype=x.dtype)(x)
    n = x.shape[0]
    x = x.reshape(n, -1, c.width)
    pos = self.param("position_embedding", nn.initializers.normal(0.02), (x.shape[1], c.width))
    x = clip.Encoder(c, name="encoder")(x + pos.astype(x.dtype))
    x = nn.LayerNorm(epsilon=c.eps, name="post_layernorm", dtype=x.dtype)(x)
    return MAPHead(c, name="head")(x)


class TextTower(nn.Module):
  cfg: SiglipConfig

  @nn.compact
  def __call__(self, ids):
    """Args: ids int32 (N, L) padded to the context length. Returns: (N, projection)."""
    c = self.cfg.text
    x = nn.Embed(self.cfg.vocab_size, c.width, name="token_embedding")(ids)
    pos = self.param("position_embedding", nn.initializers.normal(0.02),
                     (self.cfg.context_length, c.width))
    x = x + pos[: ids.shape[1]].astype(x.dtype)
    x = clip.Encoder(c, name="encoder")(x)
    x = nn.LayerNorm(epsilon=c.eps, name="final_layer_norm", dtype=x.dtype)(x[:, -1])
    return nn.Dense(self.cfg.projection_size, name="head")(x)


class Siglip(nn.Module):
  cfg: SiglipConfig

  def setup(self):
    self.vision_model = VisionTower(self.cfg, name="vision_model")
    self.text_model = TextTower(self.cfg, name="text_model")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(10.0)), ())
    self.logit_bias = self.param("logit_bias", nn.initializers.constant(-10.0), ())

  def encode_image(self, x):
    return self.vision_model(x)

  def encode_text(self, ids):
    if ids.shape[1] != self.cfg.context_length:
      raise ValueError(f"SigLIP text ids must be padded to {self.cfg.context_length} "
                       f"(it pools the last position); got length {ids.shape[1]}")
    return self.text_model(ids)

  def __call__(self, images, ids):
    return self.encode_image(images), self.encode_text(ids), self.logit_scale, self.logit_bias


def config_from_transformers(c: dict) -> SiglipConfig:
  v, t = c.get("vision_config", {}), c.get("text_config", {})

  def tower(d):
    w = int(d.get("hidden_size", 768))
    act = d.get("hidden_act", "gelu_pytorch_tanh")
    clip._act(act)                      # refuses unknown activations, listing known ones
    return clip.TowerConfig(width=w, layers=int(d.get("num_hidden_layers", 12)),
                            heads=int(d.get("num_attention_heads", 12)),
                            mlp_dim=int(d.get("intermediate_size", 3072)), act=act,
                            eps=float(d.get("layer_norm_eps", 1e-6)))
  text = tower(t)
  if not v.get("vision_use_head", True):
    raise layers.UnknownArchitecture("SigLIP vision_use_head=False (no pooled embedding) is not "
                                     "implemented")
  return SiglipConfig(vision=tower(v), text=text, image_size=int(v.get("image_size", 224)),
                      patch_size=int(v.get("patch_size", 16)),
                      vocab_size=int(t.get("vocab_size", 32000)),
                      context_length=int(t.get("max_position_embeddings", 64)),
                      projection_size=int(t.get("projection_size") or text.width))


def _tower_src(prefix: str, path: tuple, shape: tuple) -> layers.Src:
  """Path inside a tower -> transformers tensor name (embeddings/mlp levels flattened)."""
  top, leaf = path[0], path[-1]
  if top == "patch_embedding":
    return layers.named_src(prefix + "embeddings.patch_embedding", leaf, shape)
  if top == "position_embedding":
    return layers.copy(prefix + "embeddings.position_embedding.weight")
  if top == "token_embedding":
    return layers.copy(prefix + "embeddings.token_embedding.weight")
  if top == "encoder":
    i, rest = int(path[1].split("_")[1]), path[2:]
    mod = ".".join(("mlp." + r) if r in ("fc1", "fc2") else r for r in rest[:-1])
    return layers.named_src(f"{prefix}encoder.layers.{i}.{mod}", leaf, shape)
  if top == "head" and len(path) == 3 and path[1] in ("q_proj", "k_proj", "v_proj"):
    key = prefix + "head.attention.in_proj_" + ("weight" if leaf == "kernel" else "bias")
    return layers.chunk(key, "qkv".index(path[1][0]), 3, transpose=(leaf == "kernel"))
  if top == "head" and len(path) == 3:
    mod = {"out_proj": "attention.out_proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}.get(path[1],
                                                                                   path[1])
    return layers.named_src(f"{prefix}head.{mod}", leaf, shape)
  if top == "head" and leaf == "probe":
    return layers.reshaped(prefix + "head.probe", lambda s: (1, 1) + s)
  return layers.named_src(prefix + ".".join(path[:-1]), leaf, shape)


def src(path: tuple, shape: tuple) -> layers.Src:
  if path[0] in ("logit_scale", "logit_bias"):
    return layers.reshaped(path[0], lambda s: (1,))
  return _tower_src(path[0] + ".", path[1:], shape)


def params_from_transformers(tensors: dict, cfg: SiglipConfig, source: str = ""):
  module = Siglip(cfg)
  shapes = layers.param_shapes(module, jnp.zeros((1, cfg.image_size, cfg.image_size, 3)),
                               jnp.zeros((1, cfg.context_length), jnp.int32))
  return module, layers.pull(shapes, tensors, src, source=source, what="transformers SigLIP")


def hf_tokenizer(root: str, context_length: int):
  """``list[str] -> int32 (N, context_length)``: SigLIP's tokenizer, padded to the context."""
  state = {}

  def tokenize(texts):
    if "tok" not in state:
      from transformers import AutoTokenizer
      try:
        state["tok"] = AutoTokenizer.from_pretrained(root)
      except (ImportError, ValueError) as e:
        raise ImportError(f"SigLIP's tokenizer in {root!r} could not be built ({e}); it "
                          "needs the 'sentencepiece' package: pip install sentencepiece") from e
    enc = state["tok"](list(texts), padding="max_length", max_length=context_length,
                       truncation=True)
    return np.asarray(enc["input_ids"], np.int32)
  tokenize.describe = f"transformers:AutoTokenizer({root})"
  return tokenize


def load(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
         precision: str = "float32", **unused) -> api.Model:
  """Loads a transformers-layout SigLIP repo or directory (safetensors only)."""
  if unused:
    raise ValueError(f"unknown options for a SigLIP model: {sorted(unused)}; "
                     "known: revision, precision")
  layers.check_precision(precision)
  files = hub.resolve(ref, ["config.json"], revision=revision,
                      optional=["preprocessor_config.json"])
  c = hub.read_json(files["config.json"])
  if c.get("model_type") != "siglip":
    raise ValueError(f"{ref!r} config.json has model_type {c.get('model_type')!r}, not 'siglip'")
  cfg = config_from_transformers(c)
  names = layers.safetensors_files(ref, revision, ["model.safetensors"], ("pytorch_model.bin",),
                                   layout="transformers")
  files.update(hub.resolve(ref, names, revision=revision))
  module, net = params_from_transformers(hub.load_safetensors([files[n] for n in names]), cfg,
                                         source=ref)
  from jaxbench.models import hf_vision
  pp = hub.read_json(files["preprocessor_config.json"]) if "preprocessor_config.json" in files \
      else {"resample": 3}
  preprocess = hf_vision.preprocess_from_processor(pp, cfg.image_size, (0.5,) * 3, (0.5,) * 3)
  if not hub.is_local(ref):
    listing = hub.list_files(ref, revision)
    hub.resolve(ref, [f for f in listing if f.startswith(("tokenizer", "spiece",
                                                          "special_tokens"))],
                revision=revision)
  root = ref if hub.is_local(ref) else os.path.dirname(files["config.json"])
  tokenizer = hf_tokenizer(root, cfg.context_length)
  prov = hub.provenance(ref, files, revision, layout="transformers-siglip")
  prov.update(tokenizer=tokenizer.describe, architecture="SiglipModel",
              logit_scale=float(np.exp(net["logit_scale"])), logit_bias=float(net["logit_bias"]))
  return layers.zeroshot_model(module, net, preprocess, name=spec or f"hf:{ref}",
                               provenance=prov, tokenizer=tokenizer,
                               context_length=cfg.context_length, precision=precision,
                               score="sigmoid")


def detect(files: list[str], ref: str) -> bool:
  return "config.json" in files and hub.config_json(ref).get("model_type") == "siglip"
