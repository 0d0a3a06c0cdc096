"""CLIP (ViT image tower + causal text transformer) in Flax, transformers' layout.

The modules mirror transformers' ``CLIPModel`` parameter names one to one so the
converter in :func:`params_from_transformers` is a plain name map (no pickle, no
torch). Both towers run on normalised inputs; :class:`jaxbench.models.api.Model`
does the normalisation.

Text pooling: the output at the end-of-text token. Because attention is causal,
the pooled embedding of a prompt does not depend on anything after its EOT, so
prompts may be padded to any length >= their own (the head builder buckets by
length; see :mod:`jaxbench.zeroshot.head`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import api, hub, layers, word_tokens


@dataclasses.dataclass(frozen=True)
class TowerConfig:
  width: int
  layers: int
  heads: int
  mlp_dim: int
  act: str = "quick_gelu"
  eps: float = 1e-5


@dataclasses.dataclass(frozen=True)
class ClipConfig:
  vision: TowerConfig
  text: TowerConfig
  image_size: int = 224
  patch_size: int = 32
  vocab_size: int = 49408
  context_length: int = 77
  embed_dim: int = 512
  eos_token_id: int = 49407
  legacy_argmax_pool: bool = True   # transformers: eos_token_id == 2 -> argmax(ids)


def _act(name: str):
  if name == "quick_gelu":
    return lambda x: x * jax.nn.sigmoid(1.702 * x)
  if name in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
    return lambda x: layers.gelu(x, approximate=(name != "gelu"))
  raise ValueError(f"unknown activation {name!r}; known: quick_gelu, gelu, gelu_new, "
                   "gelu_pytorch_tanh")


class Attention(nn.Module):
  cfg: TowerConfig
  causal: bool = False

  @nn.compact
  def __call__(self, x):
    n, l, d = x.shape
    h = self.cfg.heads
    split = lambda t: t.reshape(n, l, h, d // h)
    q = split(nn.Dense(d, name="q_proj")(x))
    k = split(nn.Dense(d, name="k_proj")(x))
    v = split(nn.Dense(d, name="v_proj")(x))
    # cuDNN flash attention on GPU in bf16, XLA elsewhere (see layers.attention).
    o = layers.attention(q, k, v, is_causal=self.causal)
    return nn.Dense(d, name="out_proj")(o.reshape(n, l, d))


class EncoderLayer(nn.Module):
  cfg: TowerConfig
  causal: bool = False

  @nn.compact
  def __call__(self, x):
    ln = lambda name: nn.LayerNorm(epsilon=self.cfg.eps, name=name, dtype=x.dtype)
    x = x + Attention(self.cfg, self.causal, name="self_attn")(ln("layer_norm1")(x))
    y = ln("layer_norm2")(x)
    y = nn.Dense(self.cfg.mlp_dim, name="fc1")(y)
    y = nn.Dense(self.cfg.width, name="fc2")(_act(self.cfg.act)(y))
    return x + y


class Encoder(nn.Module):
  cfg: TowerConfig
  causal: bool = False

  @nn.compact
  def __call__(self, x):
    for i in range(self.cfg.layers):
      x = EncoderLayer(self.cfg, self.causal, name=f"layers_{i}")(x)
    return x


class VisionTower(nn.Module):
  """ViT: patch conv, class token, positions, pre-LN, encoder, post-LN on [CLS]."""
  cfg: ClipConfig

  @nn.compact
  def __call__(self, x):
    """Args: x float (N, H, W, 3) normalised. Returns: pooled (N, width)."""
    c = self.cfg.vision
    p = self.cfg.patch_size
    x = layers.PatchEmbed(c.width, p, name="patch_embedding", dtype=x.dtype)(x)
    n = x.shape[0]
    x = x.reshape(n, -1, c.width)
    cls = self.param("class_embedding", nn.initializers.normal(0.02), (c.width,))
    pos = self.param("position_embedding", nn.initializers.normal(0.02),
                     ((self.cfg.image_size // p) ** 2 + 1, c.width))
    x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (n, 1, c.width)), x], axis=1)
    x = x + pos.astype(x.dtype)
    x = nn.LayerNorm(epsilon=c.eps, name="pre_layrnorm", dtype=x.dtype)(x)
    x = Encoder(c, name="encoder")(x)
    return nn.LayerNorm(epsilon=c.eps, name="post_layernorm", dtype=x.dtype)(x[:, 0])


class TextTower(nn.Module):
  """Causal transformer over token ids; pooled at the end-of-text token."""
  cfg: ClipConfig

  def setup(self):
    c = self.cfg.text
    self.token_embedding = nn.Embed(self.cfg.vocab_size, c.width, name="token_embedding")
    self.position_embedding = self.param(
        "position_embedding", nn.initializers.normal(0.01), (self.cfg.context_length, c.width))
    self.encoder = Encoder(c, causal=True, name="encoder")
    self.final_layer_norm = nn.LayerNorm(epsilon=c.eps, name="final_layer_norm")

  def eot_index(self, ids):
    if self.cfg.legacy_argmax_pool:
      return jnp.argmax(ids, axis=-1)
    return jnp.argmax(ids == self.cfg.eos_token_id, axis=-1)

  def __call__(self, ids):
    """Args: ids int32 (N, L), L <= context_length. Returns: pooled (N, width)."""
    return self.from_embeddings(self.token_embedding(ids), self.eot_index(ids))

  def embed_tokens(self, ids):
    return self.token_embedding(ids)

  def from_embeddings(self, x, eot_index):
    """Runs the tower on token embeddings (N, L, width) (learned prompts use this)."""
    x = x + self.position_embedding[: x.shape[1]].astype(x.dtype)
    x = self.final_layer_norm(self.encoder(x))
    return jnp.take_along_axis(x, eot_index[:, None, None], axis=1)[:, 0]


class TextMethods:
  """CLIP's text path for a model module with a ``text_model`` (:class:`TextTower`) and a
  ``text_projection``; mixed into :class:`CLIP` and OpenCLIP's ResNet CLIP
  (:class:`jaxbench.models.openclip.ClipResNet`)."""

  def encode_text(self, ids):
    return self.text_projection(self.text_model(ids))

  def encode_text_embeddings(self, x, eot_index):
    return self.text_projection(self.text_model.from_embeddings(x, eot_index))

  def embed_tokens(self, ids):
    return self.text_model.embed_tokens(ids)


class CLIP(TextMethods, nn.Module):
  cfg: ClipConfig

  def setup(self):
    self.vision_model = VisionTower(self.cfg, name="vision_model")
    self.text_model = TextTower(self.cfg, name="text_model")
    self.visual_projection = nn.Dense(self.cfg.embed_dim, use_bias=False,
                                      name="visual_projection")
    self.text_projection = nn.Dense(self.cfg.embed_dim, use_bias=False, name="text_projection")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), ())

  def encode_image(self, x):
    return self.visual_projection(self.vision_model(x))

  def __call__(self, images, ids):
    return self.encode_image(images), self.encode_text(ids), self.logit_scale


# --- transformers layout ------------------------------------------------------

def config_from_transformers(cfg: dict) -> ClipConfig:
  """ClipConfig from a transformers CLIP config.json dict."""
  v, t = cfg["vision_config"], cfg["text_config"]

  def tower(c, default_width):
    return TowerConfig(width=c.get("hidden_size", default_width),
                       layers=c.get("num_hidden_layers", 12),
                       heads=c.get("num_attention_heads", 8),
                       mlp_dim=c.get("intermediate_size", 4 * c.get("hidden_size", default_width)),
                       act=c.get("hidden_act", "quick_gelu"),
                       eps=c.get("layer_norm_eps", 1e-5))
  eos = t.get("eos_token_id", 2)
  return ClipConfig(vision=tower(v, 768), text=tower(t, 512),
                    image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 32),
                    vocab_size=t.get("vocab_size", 49408),
                    context_length=t.get("max_position_embeddings", 77),
                    embed_dim=cfg.get("projection_dim", 512),
                    eos_token_id=eos if eos != 2 else 49407,
                    legacy_argmax_pool=(eos == 2))


def _set(tree: dict, path: list[str], value):
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  if path[-1] in tree:
    raise ValueError(f"duplicate parameter {'/'.join(path)}")
  tree[path[-1]] = value


def params_from_transformers(tensors: dict[str, np.ndarray], cfg: ClipConfig,
                             source: str = "") -> dict:
  """Flax params of :class:`CLIP` from transformers' CLIPModel state dict (NumPy).

  Raises:
    ValueError: naming missing/unexpected tensors and shape mismatches.
  """
  params: dict = {}
  for key, w in tensors.items():
    if key.endswith("position_ids"):
      continue
    parts = key.split(".")
    # encoder.layers.3.self_attn.q_proj -> encoder/layers_3/self_attn/q_proj
    path = []
    i = 0
    while i < len(parts):
      if parts[i] == "layers" and i + 1 < len(parts) and parts[i + 1].isdigit():
        path.append(f"layers_{parts[i + 1]}")
        i += 2
        continue
      if parts[i] in ("embeddings", "mlp"):   # flattened in our modules
        i += 1
        continue
      path.append(parts[i])
      i += 1
    leaf = path[-1]
    mod = path[-2] if len(path) > 1 else ""
    if leaf == "weight":
      if mod == "patch_embedding":
        _set(params, path[:-1] + ["kernel"], np.transpose(w, (2, 3, 1, 0)))
      elif mod in ("position_embedding",):
        _set(params, path[:-1], w)
      elif mod == "token_embedding":
        _set(params, path[:-1] + ["embedding"], w)
      elif "norm" in mod or "layrnorm" in mod:
        _set(params, path[:-1] + ["scale"], w)
      else:
        _set(params, path[:-1] + ["kernel"], w.T)
    elif leaf == "bias":
      _set(params, path[:-1] + ["bias"], w)
    else:
      _set(params, path, w)
  _check_tree(params, cfg, source)
  return params


def _check_tree(params: dict, cfg: ClipConfig, source: str):
  """Compares names and shapes with a freshly initialised tree."""
  want = jax.eval_shape(lambda: CLIP(cfg).init(
      jax.random.key(0), jnp.zeros((1, cfg.image_size, cfg.image_size, 3)),
      jnp.zeros((1, 4), jnp.int32))["params"])
  flat_want = {"/".join(str(getattr(k, "key", k)) for k in p): v.shape
               for p, v in jax.tree_util.tree_leaves_with_path(want)}
  flat_got = {"/".join(str(getattr(k, "key", k)) for k in p): np.shape(v)
              for p, v in jax.tree_util.tree_leaves_with_path(params)}
  missing = sorted(set(flat_want) - set(flat_got))
  extra = sorted(set(flat_got) - set(flat_want))
  bad = [f"{k}: expected {flat_want[k]}, found {flat_got[k]}"
         for k in flat_want if k in flat_got and tuple(flat_want[k]) != tuple(flat_got[k])]
  if missing or extra or bad:
    raise ValueError(f"checkpoint {source!r} does not fit the CLIP config: "
                     f"missing tensors {missing[:10]}{'...' if len(missing) > 10 else ''}; "
                     f"unexpected tensors {extra[:10]}; shape mismatches {bad[:10]}")


def preprocess_from_transformers(pp: dict, image_size: int) -> api.Preprocess:
  """Preprocess from a preprocessor_config.json dict (CLIPImageProcessor)."""
  def side(v, *keys):
    if isinstance(v, dict):
      for k in keys:
        if k in v:
          return int(v[k])
    return int(v) if v is not None else image_size
  crop = side(pp.get("crop_size", image_size), "height", "shortest_edge")
  resize = side(pp.get("size", crop), "shortest_edge", "height")
  resample = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box",
              5: "hamming"}.get(pp.get("resample", 3), "bicubic")
  return api.Preprocess(size=crop if pp.get("do_center_crop", True) else resize,
                        resize=resize, interpolation=resample,
                        mean=tuple(pp.get("image_mean", api.CLIP_MEAN)),
                        std=tuple(pp.get("image_std", api.CLIP_STD)))


def _load_tokenizer(path_or_repo: str, revision: Optional[str]):
  """The repo's tokenizer: its tokenizer.json through ``tokenizers`` alone when
  that is CLIP's pipeline (no transformers or torch import: seconds of a cold
  start on a GPU host), else transformers' AutoTokenizer."""
  try:
    path = hub.resolve(path_or_repo, [], revision=revision,
                       optional=["tokenizer.json"]).get("tokenizer.json")
  except hub.WeightsError:
    path = None
  if path:
    try:
      tok = word_tokens.JsonTokenizer(path)
    except Exception:  # noqa: BLE001 -- unreadable here: transformers says why below
      tok = None
    if tok is not None and word_tokens.clip_pipeline(tok):
      return tok
  from transformers import AutoTokenizer
  try:
    return AutoTokenizer.from_pretrained(path_or_repo, revision=revision)
  except (OSError, ValueError) as e:
    raise hub.WeightsError(f"no usable tokenizer files in {path_or_repo!r} (expected "
                           f"vocab.json + merges.txt or tokenizer.json): {e}") from e


def hf_tokenizer(path_or_repo: str, context_length: int, revision: Optional[str] = None):
  """A ``list[str] -> int32 (N, context_length)`` tokenizer from a repo's files.

  transformers' CLIP tokenizer (BPE from vocab.json/merges.txt or tokenizer.json):
  lowercased, <|startoftext|> ... <|endoftext|>, truncated to the context length
  keeping the end token, padded with zeros as open_clip does (padding after the
  end token never reaches the pooled output of a causal tower).
  """
  state = {}

  def tokenize(texts):
    if "tok" not in state:   # loaded on first use: building the BPE takes seconds
      state["tok"] = _load_tokenizer(path_or_repo, revision)
      # CLIP's BPE never crosses whitespace: ids from a per-word cache (checked
      # against the tokenizer's own on every call; other tokenizers unchanged).
      state["fn"] = word_tokens.wrap(state["tok"], context_length, whole_prompts)
    return state["fn"](texts)

  def whole_prompts(texts):
    return word_tokens.tokenizer_ids(state["tok"], texts, context_length)
  tokenize.describe = f"transformers:CLIPTokenizer({path_or_repo})"
  return tokenize


def build_model(cfg: ClipConfig, net_params, preprocess: api.Preprocess, *, name: str,
                provenance: dict, tokenizer=None, precision: str = "float32") -> api.Model:
  """Wraps CLIP params in the Model contract."""
  module = CLIP(cfg)
  dtype = jnp.bfloat16 if precision == "bfloat16" else jnp.float32
  net_params = jax.tree.map(lambda a: jnp.asarray(a, dtype), net_params)

  def net_image(p, x):
    return module.apply({"params": p}, x, method=CLIP.encode_image)

  def net_text(p, ids):
    return module.apply({"params": p}, ids, method=CLIP.encode_text)

  return api.Model(name=name, params={"net": net_params}, preprocess=preprocess,
                   kind="zeroshot", provenance=provenance, net_image=net_image,
                   net_text=net_text, tokenizer=tokenizer,
                   context_length=cfg.context_length, precision=precision,
                   head_info={}, arch=CLIP(cfg), causal_text=True)


def load_transformers(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
                      precision: str = "float32", **unused) -> api.Model:
  """Loads a transformers-layout CLIP repo or directory (safetensors only)."""
  if unused:
    raise ValueError(f"unknown options for a transformers CLIP model: {sorted(unused)}; "
                     "known: revision, precision")
  files = hub.resolve(ref, ["config.json"], revision=revision,
                      optional=["preprocessor_config.json"])
  cfg_json = hub.read_json(files["config.json"])
  if cfg_json.get("model_type") not in ("clip", None):
    raise ValueError(f"{ref!r} config.json has model_type {cfg_json.get('model_type')!r}, "
                     "not 'clip'")
  weight_names = hub.find_weight_files(ref, revision)
  files.update(hub.resolve(ref, weight_names, revision=revision))
  cfg = config_from_transformers(cfg_json)
  tensors = hub.load_safetensors([files[n] for n in weight_names])
  net = params_from_transformers(tensors, cfg, source=ref)
  pp = hub.read_json(files["preprocessor_config.json"]) if "preprocessor_config.json" in files \
      else {}
  preprocess = preprocess_from_transformers(pp, cfg.image_size)
  root = ref if hub.is_local(ref) else os.path.dirname(files["config.json"])
  tokenizer = hf_tokenizer(root, cfg.context_length)
  prov = hub.provenance(ref, files, revision, layout="transformers-clip")
  prov["tokenizer"] = tokenizer.describe
  return build_model(cfg, net, preprocess, name=spec or f"hf:{ref}", provenance=prov,
                     tokenizer=tokenizer, precision=precision)


def _detect(files: list[str], ref: str) -> bool:
  return "config.json" in files and hub.config_json(ref).get("model_type") == "clip"



def _register():
  from jaxbench import models
  models.register_layout(models.Layout("transformers-clip", "hf", _detect, load_transformers,
                                       priority=10))
  for name, repo in {
      "clip_vit_b32": "hf:openai/clip-vit-base-patch32",
      "clip_vit_b16": "hf:openai/clip-vit-base-patch16",
      "clip_vit_l14": "hf:openai/clip-vit-large-patch14",
      "clip_vit_l14_336": "hf:openai/clip-vit-large-patch14-336",
      "laion_vit_b32": "hf:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
      "laion_vit_l14": "hf:laion/CLIP-ViT-L-14-laion2B-s32B-b82K",
  }.items():
    if name not in models.NAMES:
      models.NAMES.register(name, (lambda r=repo: r))


_register()
