"""OpenCLIP's own text tower (``TextTransformer``) in all the variants its configs use.

The standard CLIP text tower (causal, pooled at the argmax/EOS token, a bias-free
projection matrix) is one case; OpenCLIP configs also use a bidirectional tower
pooled at the *last* position with a biased linear projection (SigLIP and SigLIP2
in OpenCLIP, ``custom_text``), tanh-GELU (SigLIP2), LayerNorm eps 1e-6, no
projection, or a ``first`` token pool. :class:`TextTower` covers those; the
transformer blocks are :class:`jaxbench.models.clip.Encoder` (shared, tested
against transformers and open_clip), mapped onto OpenCLIP's ``resblocks`` names
by :func:`jaxbench.models.openclip_common._block_src`.

Parameter names: OpenCLIP's ``CLIP`` keeps the text tower at the top level
(``token_embedding.weight``, ``transformer.resblocks.*``, ``ln_final``,
``text_projection``); ``CustomTextCLIP`` puts it under ``text.``. :func:`src`
takes that prefix.

Tokenizers: :class:`HFTokenizer` mirrors open_clip's ``HFTokenizer`` (clean
function, pad to the context with the tokenizer's pad id, optional SEP strip)
for towers whose config names ``hf_tokenizer_name``.
"""
from __future__ import annotations

import dataclasses
import html
import string
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxbench.models import clip, hub, layers, openclip_common

POOL_TYPES = ("argmax", "eos", "last", "first")
PROJ_TYPES = ("linear", "none")


@dataclasses.dataclass(frozen=True)
class TextConfig:
  """One OpenCLIP text tower (``text_cfg`` plus the model's ``embed_dim``)."""
  tower: clip.TowerConfig
  vocab_size: int = 49408
  context_length: int = 77
  embed_dim: int = 512
  causal: bool = True
  pool_type: str = "argmax"
  eos_id: int = 2
  proj_type: str = "linear"
  proj_bias: bool = False


def text_config(t: dict, embed_dim: int, quick_gelu: bool, source: str = "") -> TextConfig:
  """TextConfig from OpenCLIP's ``text_cfg`` dict.

  Raises:
    UnknownArchitecture: a pool or projection type outside POOL_TYPES/PROJ_TYPES,
      or an activation keyword other than ``approximate``.
  """
  pool = t.get("pool_type", "argmax")
  if pool not in POOL_TYPES:
    raise layers.UnknownArchitecture(f"{source}: text_cfg.pool_type {pool!r} is not "
                                     f"implemented; known: {POOL_TYPES}")
  proj = t.get("proj_type", "linear")
  if proj not in PROJ_TYPES:
    raise layers.UnknownArchitecture(f"{source}: text_cfg.proj_type {proj!r} is not "
                                     f"implemented; known: {PROJ_TYPES}")
  act = "quick_gelu" if quick_gelu else "gelu"
  ak = t.get("act_kwargs") or {}
  if set(ak) - {"approximate"}:
    raise layers.UnknownArchitecture(f"{source}: text_cfg.act_kwargs {ak} not implemented; "
                                     "known: {'approximate': 'tanh'|'none'}")
  if ak.get("approximate", "none") == "tanh":
    if quick_gelu:
      raise layers.UnknownArchitecture(f"{source}: quick_gelu with act_kwargs {ak}")
    act = "gelu_pytorch_tanh"
  w = int(t.get("width", 512))
  tower = clip.TowerConfig(width=w, layers=int(t.get("layers", 12)), heads=int(t.get("heads", 8)),
                           mlp_dim=int(w * float(t.get("mlp_ratio", 4.0))), act=act,
                           eps=float((t.get("norm_kwargs") or {}).get("eps", 1e-5)))
  return TextConfig(tower=tower, vocab_size=int(t.get("vocab_size", 49408)),
                    context_length=int(t.get("context_length", 77)), embed_dim=int(embed_dim),
                    causal=not t.get("no_causal_mask", False), pool_type=pool,
                    eos_id=int(t.get("eos_id", 2)), proj_type=proj,
                    proj_bias=bool(t.get("proj_bias", False)))


class TextTower(nn.Module):
  """OpenCLIP ``TextTransformer``: ids -> (N, embed_dim) (or (N, width) without projection)."""
  cfg: TextConfig

  def setup(self):
    c = self.cfg
    self.token_embedding = nn.Embed(c.vocab_size, c.tower.width, name="token_embedding")
    self.positional_embedding = self.param("positional_embedding", nn.initializers.normal(0.01),
                                           (c.context_length, c.tower.width))
    self.encoder = clip.Encoder(c.tower, causal=c.causal, name="encoder")
    self.ln_final = nn.LayerNorm(epsilon=c.tower.eps, name="ln_final")
    if c.proj_type == "linear":
      self.text_projection = nn.Dense(c.embed_dim, use_bias=c.proj_bias, name="text_projection")

  def pool_index(self, ids):
    """(N,) position pooled for each row of ``ids`` (N, L)."""
    n, l = ids.shape
    p = self.cfg.pool_type
    if p == "argmax":
      return jnp.argmax(ids, axis=-1)
    if p == "eos":
      return jnp.argmax(ids == self.cfg.eos_id, axis=-1)
    return jnp.full((n,), l - 1 if p == "last" else 0, jnp.int32)

  def __call__(self, ids):
    """Args: ids int32 (N, L); L == context_length unless the tower is causal.

    Returns: (N, embed_dim) text features (unnormalised).
    """
    if not self.cfg.causal and ids.shape[1] != self.cfg.context_length:
      raise ValueError(f"this bidirectional text tower needs ids padded to "
                       f"{self.cfg.context_length}; got length {ids.shape[1]}")
    return self.from_embeddings(self.token_embedding(ids), self.pool_index(ids))

  def embed_tokens(self, ids):
    return self.token_embedding(ids)

  def from_embeddings(self, x, index):
    """Runs the tower on token embeddings (N, L, width), pooled at ``index`` (N,)."""
    x = x + self.positional_embedding[: x.shape[1]].astype(x.dtype)
    x = self.ln_final(self.encoder(x))
    x = jnp.take_along_axis(x, index[:, None, None], axis=1)[:, 0]
    return self.text_projection(x) if self.cfg.proj_type == "linear" else x


def make_src(cfg: TextConfig, prefix: str):
  """(path, shape) -> Src for a :class:`TextTower` leaf; ``prefix`` is '' or 'text.'."""

  def src(path: tuple, shape: tuple) -> layers.Src:
    head, leaf = path[0], path[-1]
    if head == "token_embedding":
      return layers.copy(prefix + "token_embedding.weight")
    if head == "positional_embedding":
      return layers.copy(prefix + "positional_embedding")
    if head == "ln_final":
      return layers.named_src(prefix + "ln_final", leaf, shape)
    if head == "text_projection":
      # With a bias it is an nn.Linear (weight (out, in)); without, a Parameter
      # used as x @ P, already (in, out).
      if cfg.proj_bias:
        return layers.named_src(prefix + "text_projection", leaf, shape)
      return layers.copy(prefix + "text_projection")
    i = int(path[1].split("_")[1])              # encoder/layers_i/...
    return openclip_common._block_src(path[2:], shape, f"{prefix}transformer.resblocks.{i}.")
  return src


# --- tokenizer -----------------------------------------------------------------

def _basic_clean(text: str) -> str:
  try:
    import ftfy
    text = ftfy.fix_text(text)
  except ImportError:       # open_clip requires ftfy; without it only HTML entities are fixed
    pass
  return html.unescape(html.unescape(text)).strip()


def _canonicalize(text: str) -> str:
  text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation)).lower()
  return " ".join(text.split()).strip()


CLEAN = {
    "canonicalize": lambda t: _canonicalize(_basic_clean(t)),
    "lower": lambda t: " ".join(_basic_clean(t).split()).strip().lower(),
    "whitespace": lambda t: " ".join(_basic_clean(t).split()).strip(),
}


class TwoTowerMethods:
  """CLIP's methods for an OpenCLIP model module with ``visual``, ``text`` (a
  :class:`TextTower`) and ``logit_scale`` submodules/params; mixed into the
  model classes of :mod:`openclip_timm` and :mod:`openclip_vit`."""

  def encode_image(self, x):
    return self.visual(x)

  def encode_text(self, ids):
    return self.text(ids)

  def encode_text_embeddings(self, x, index):
    return self.text.from_embeddings(x, index)

  def embed_tokens(self, ids):
    return self.text.embed_tokens(ids)


class HFTokenizer:
  """``list[str] -> int32 (N, context_length)`` as open_clip's ``HFTokenizer``.

  Text cleaned by ``clean`` ('canonicalize' for SigLIP: punctuation removed,
  lowercased), tokenised with the repo's transformers tokenizer, padded to the
  context with the tokenizer's *pad id* (bidirectional towers see the padding),
  truncated; ``strip_sep_token`` zeroes SEP ids (CLIPA's BERT tokenizer).
  Loaded lazily: a model loads without its tokenizer files.
  """

  def __init__(self, root: str, context_length: int, *, clean: str = "whitespace",
               strip_sep_token: bool = False, name: Optional[str] = None):
    if clean not in CLEAN:
      raise ValueError(f"tokenizer clean {clean!r} unknown; known: {sorted(CLEAN)}")
    self.root, self.context_length = root, context_length
    self.clean, self.strip_sep_token = clean, strip_sep_token
    self.describe = f"transformers:AutoTokenizer({name or root}, clean={clean})"
    self._tok = None

  def _load(self):
    from transformers import AutoTokenizer
    try:
      return AutoTokenizer.from_pretrained(self.root)
    except (OSError, ValueError, ImportError) as e:
      raise hub.WeightsError(
          f"no usable tokenizer in {self.root!r}: expected tokenizer.json or "
          "tokenizer_config.json with its vocabulary (spiece.model / vocab.txt / "
          f"vocab.json + merges.txt) ({e})") from e

  def __call__(self, texts) -> np.ndarray:
    if self._tok is None:
      self._tok = self._load()
    clean = CLEAN[self.clean]
    enc = self._tok([clean(t) for t in texts], max_length=self.context_length,
                    padding="max_length", truncation=True)
    ids = np.asarray(enc["input_ids"], np.int64)
    if self.strip_sep_token and self._tok.sep_token_id is not None:
      ids = np.where(ids == self._tok.sep_token_id, 0, ids)
    return ids.astype(np.int32)
