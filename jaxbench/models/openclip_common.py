"""What every OpenCLIP family module shares: file names, the config options that are
implemented, attention, the transformer-layer name maps, parameter and tensor shapes,
preprocessing and the tokenizer.

One floor below :mod:`jaxbench.models.openclip` (the loader that dispatches to a family)
and the family modules it dispatches to (:mod:`openclip_text`, :mod:`openclip_timm`,
:mod:`openclip_vit`), so the families need not import the loader back.
:mod:`openclip` re-exports every name here.
"""

from __future__ import annotations

import html
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import api, hub, layers

CONFIG = "open_clip_config.json"
WEIGHTS = "open_clip_model.safetensors"
PICKLES = ("open_clip_pytorch_model.bin",)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")

# Config keys we implement (or that do not change the network), with the values
# we implement where only the default is supported.
_VISION_DEFAULTS = dict(ls_init_value=None, attentional_pool=False, no_ln_pre=False,
                        pos_embed_type="learnable", final_ln_after_pool=False, pool_type="tok",
                        act_kwargs=None, block_type=None, qk_norm=False,
                        scaled_cosine_attn=False, scale_heads=False, scale_attn_inner=False,
                        scale_attn=False, scale_fc=False, timm_model_name=None)
_VISION_KNOWN = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size",
                 "norm_kwargs", "output_tokens", "patch_dropout", "attn_pooler_queries",
                 "attn_pooler_heads", "timm_model_pretrained", "timm_pool", "timm_proj",
                 "timm_proj_bias", "timm_drop", "timm_drop_path"}
_TEXT_DEFAULTS = dict(ls_init_value=None, embed_cls=False, no_causal_mask=False,
                      final_ln_after_pool=False, proj_type="linear", proj_bias=False,
                      act_kwargs=None, block_type=None, qk_norm=False, scaled_cosine_attn=False,
                      scale_heads=False, scale_attn_inner=False, scale_attn=False,
                      scale_fc=False, hf_model_name=None)
_TEXT_KNOWN = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio",
               "hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs", "pad_id", "eos_id",
               "pool_type", "norm_kwargs", "output_tokens", "hf_model_pretrained",
               "hf_proj_type", "hf_pooler_type"}
_TOP_KNOWN = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "cast_dtype", "custom_text",
              "init_logit_scale"}


def _check_options(cfg: dict, defaults: dict, known: set, where: str, source: str):
  bad = {k: cfg[k] for k in cfg if k in defaults and cfg[k] != defaults[k]}
  unknown = sorted(k for k in cfg if k not in defaults and k not in known)
  if bad or unknown:
    raise layers.UnknownArchitecture(
        f"{source}: {CONFIG} {where} uses options jaxbench does not implement: "
        f"{bad if bad else ''}{' unknown keys ' + str(unknown) if unknown else ''}. Supported: "
        "OpenAI-style CLIP with a ViT (vision_cfg.layers an int) or ModifiedResNet "
        "(vision_cfg.layers four ints) image tower and the causal text transformer; "
        f"keys {sorted(known | set(defaults))} with {defaults} at their defaults.")


# --- attention ------------------------------------------------------------------

def attention(q, k, v, mask=None):
  """Multi-head attention, (N, L, H, D) operands (one helper so towers share the kernel)."""
  return layers.attention(q, k, v, mask=mask)


def multi_head_attention(q, k, v, heads: int):
  """Attention of (N, L, D) query/key/value projections split into ``heads`` heads, merged
  back to (N, L, D) (the block of OpenCLIP's ViT and of timm's)."""
  n, l, d = q.shape
  q, k, v = (t.reshape(n, l, heads, d // heads) for t in (q, k, v))
  return attention(q, k, v).reshape(n, l, d)


# --- name maps ------------------------------------------------------------------

def fused_qkv_src(stem: str, which: str, leaf: str) -> layers.Src:
  """Our q, k or v projection (``which``) from PyTorch's fused (3*D, D) in-projection
  ``stem + 'weight'`` (or its bias ``stem + 'bias'``), split in three."""
  return layers.chunk(stem + ("weight" if leaf == "kernel" else "bias"), "qkv".index(which), 3,
                      transpose=(leaf == "kernel"))


def encoder_layer_src(rest: tuple, shape: tuple, prefix: str, *, out_proj: str, qkv: str,
                      names: dict) -> layers.Src:
  """A clip.EncoderLayer leaf -> the tensor of a PyTorch block with a fused qkv projection.

  Args:
    rest: the leaf's path inside the layer (e.g. ('self_attn', 'q_proj', 'kernel')).
    prefix: the block's tensor prefix ('transformer.resblocks.3.').
    out_proj: the attention output projection's module ('attn.out_proj').
    qkv: the fused in-projection's tensor stem ('attn.in_proj_', 'attn.qkv.').
    names: our norm and MLP modules -> theirs ({'layer_norm1': 'ln_1', ...}).
  """
  mod, leaf = rest[0], rest[-1]
  if mod == "self_attn":
    proj = rest[1]
    if proj == "out_proj":
      return layers.named_src(prefix + out_proj, leaf, shape)
    return fused_qkv_src(prefix + qkv, proj[0], leaf)
  return layers.named_src(prefix + names[mod], leaf, shape)


_RESBLOCK_NAMES = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "fc1": "mlp.c_fc",
                   "fc2": "mlp.c_proj"}


def _block_src(rest: tuple, shape: tuple, prefix: str) -> layers.Src:
  """A transformer layer's leaf (our clip.EncoderLayer names) -> OpenCLIP resblock names."""
  return encoder_layer_src(rest, shape, prefix, out_proj="attn.out_proj", qkv="attn.in_proj_",
                           names=_RESBLOCK_NAMES)


# --- shapes ---------------------------------------------------------------------

def two_tower_shapes(module, image_size: int, context_length: int):
  """Parameter shapes (ShapeDtypeStruct pytree, no weights) of a CLIP-style module
  called as ``module(images (1, S, S, 3), ids (1, context_length))``."""
  return layers.param_shapes(module, jnp.zeros((1, image_size, image_size, 3)),
                             jnp.zeros((1, context_length), jnp.int32))


def tensor_shapes(shapes, src) -> dict[str, tuple]:
  """OpenCLIP tensor name -> shape, for every parameter of ``shapes`` read through the
  name map ``src`` (what a config needs, checked against open_clip's state dicts)."""
  out = {}
  for path, sds in jax.tree_util.tree_leaves_with_path(shapes):
    p = tuple(str(getattr(k, "key", k)) for k in path)
    s = src(p, tuple(sds.shape))
    out[s.key] = tuple(s.want(tuple(sds.shape)))
  return out


# --- preprocessing and tokenizer ------------------------------------------------

def preprocess_from_config(pp: dict, size: int) -> api.Preprocess:
  """OpenCLIP ``preprocess_cfg`` -> Preprocess (resize the short side, center crop)."""
  mode = pp.get("resize_mode", "shortest")
  crop = {"shortest": "center", "squash": "squash"}.get(mode, mode)
  interp = pp.get("interpolation", "bicubic")
  if interp not in layers.INTERPOLATIONS:
    raise ValueError(f"preprocess_cfg interpolation {interp!r} unknown; known: "
                     f"{layers.INTERPOLATIONS}")
  return api.Preprocess(size=size, resize=size, interpolation=interp, crop=crop,
                        mean=tuple(float(m) for m in pp.get("mean", api.CLIP_MEAN)),
                        std=tuple(float(s) for s in pp.get("std", api.CLIP_STD)))


def clip_bpe_tokenizer():
  """transformers' CLIPTokenizer over CLIP's BPE shipped with jaxbench (resources/)."""
  from transformers import CLIPTokenizer
  from jaxbench.zeroshot import tokenizer as bpe
  vocab, merges = bpe.vocab_and_merges()
  return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges])


class OpenClipTokenizer:
  """``list[str] -> int32 (N, context_length)``, OpenCLIP's conventions.

  ``<|startoftext|> tokens <|endoftext|>``, truncated to the context keeping the
  end token, zero padded. The underlying tokenizer is found lazily (first call),
  so loading a model never needs the network.
  """

  def __init__(self, root: str, text_cfg: dict, context_length: int, files: list[str]):
    self.root, self.text_cfg, self.context_length = root, text_cfg, context_length
    self.has_files = any(f in files for f in TOKENIZER_FILES)
    self._tok = None
    self.describe = self._source()

  def _source(self) -> str:
    if self.has_files:
      return f"transformers:AutoTokenizer({self.root})"
    if self.text_cfg.get("hf_tokenizer_name"):
      return f"transformers:AutoTokenizer({self.text_cfg['hf_tokenizer_name']})"
    return "clip-bpe:bpe_simple_vocab_16e6"

  def _load(self):
    from transformers import AutoTokenizer
    if self.has_files:
      return AutoTokenizer.from_pretrained(self.root)
    if self.text_cfg.get("hf_tokenizer_name"):
      return AutoTokenizer.from_pretrained(self.text_cfg["hf_tokenizer_name"])
    return clip_bpe_tokenizer()

  def __call__(self, texts) -> np.ndarray:
    if self._tok is None:
      self._tok = self._load()
    if not self.text_cfg.get("hf_tokenizer_name"):
      # open_clip's SimpleTokenizer (basic_clean) unescapes HTML entities twice before
      # BPE; transformers' CLIPTokenizer does not ('&amp;' would become '&', 'amp', ';').
      texts = [html.unescape(html.unescape(t)) for t in texts]
    enc = self._tok(list(texts), padding="max_length", max_length=self.context_length,
                    truncation=True, return_attention_mask=True)
    ids = np.asarray(enc["input_ids"], np.int64)
    return np.where(np.asarray(enc["attention_mask"]) > 0, ids, 0).astype(np.int32)


def check_image_size(x, size: int, what: str) -> None:
  """Refuses inputs of another size than a tower's learned position embedding takes.

  Args:
    x: (N, H, W, C) images.
    size: the tower's input side.
    what: the tower's name, for the message ('ViT', 'EVA', ...).
  """
  if x.shape[1] != size or x.shape[2] != size:
    raise ValueError(f"this {what} takes {size}px inputs; got {x.shape[1:3]}")


# Tokenizer files a hub repo may ship (CLIP BPE, HF tokenizers, SentencePiece).
TOKENIZER_PREFIXES = ("tokenizer", "vocab", "merges", "special_tokens", "spiece",
                      "sentencepiece")


def tokenizer_files(ref: str, files: dict, revision=None) -> tuple[str, list]:
  """(directory holding the repo's tokenizer files, the repo's file listing); hub
  repos get their tokenizer files fetched next to the config (``files[CONFIG]``)."""
  listing = hub.list_files(ref, revision)
  if hub.is_local(ref):
    return ref, listing
  hub.resolve(ref, [f for f in listing if f.startswith(TOKENIZER_PREFIXES)], revision=revision)
  return os.path.dirname(files[CONFIG]), listing
