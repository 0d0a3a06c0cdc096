"""What every OpenCLIP family module shares: file names, the config options that are
implemented, the resblock name map, preprocessing and the tokenizer.

One floor below :mod:`jaxbench.models.openclip` (the loader that dispatches to a family)
and the family modules it dispatches to (:mod:`openclip_text`, :mod:`openclip_timm`,
:mod:`openclip_vit`), so the families need not import the loader back.
:mod:`openclip` re-exports every name here.
"""

from __future__ import annotations

import numpy as np

from jaxbench.models import api, layers

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


# --- name maps ------------------------------------------------------------------

def _block_src(rest: tuple, shape: tuple, prefix: str) -> layers.Src:
  """A transformer layer's leaf (our clip.EncoderLayer names) -> OpenCLIP resblock names."""
  mod, leaf = rest[0], rest[-1]
  if mod == "self_attn":
    proj = rest[1]
    if proj == "out_proj":
      return layers.named_src(prefix + "attn.out_proj", leaf, shape)
    i = "qkv".index(proj[0])
    key = prefix + "attn.in_proj_" + ("weight" if leaf == "kernel" else "bias")
    return layers.chunk(key, i, 3, transpose=(leaf == "kernel"))
  name = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "fc1": "mlp.c_fc",
          "fc2": "mlp.c_proj"}[mod]
  return layers.named_src(prefix + name, leaf, shape)


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
    enc = self._tok(list(texts), padding="max_length", max_length=self.context_length,
                    truncation=True, return_attention_mask=True)
    ids = np.asarray(enc["input_ids"], np.int64)
    return np.where(np.asarray(enc["attention_mask"]) > 0, ids, 0).astype(np.int32)
