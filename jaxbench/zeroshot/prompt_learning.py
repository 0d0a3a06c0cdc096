"""Learned prompts as ordinary zero-shot heads: the parts both learners share.

RoZ's CLIP-Auto replaces the 80 hand-written templates by learned prompts. Two
learners share this module (their orchestrator, :mod:`jaxbench.zeroshot.clip_auto`,
sits above all three):

* :mod:`jaxbench.zeroshot.autoprompt`: discrete AutoPrompt/HotFlip search for M
  trigger tokens, ``[SOT] t1..tM <class name> [EOT]``, ranked by frequency and
  ensembled like templates (RoZ's CLIP-Auto);
* :mod:`jaxbench.zeroshot.coop`: CoOp's M continuous context vectors in the
  same slots, shared by all classes or one set per class.

What lives here: the prompt layout (:class:`PromptLayout`), the text tower run on
token embeddings, the zero-shot cross-entropy both learners minimise, image
features of a training split, decoding of token ids, and the artifacts: a learned
prompt set is saved as JSON (CoOp's vectors in an ``.npz`` beside it) with its
provenance and loaded back by :func:`load_learned_head` as a plain
:class:`~jaxbench.zeroshot.head.ZeroShotHead`, so every suite evaluates with it
exactly as with the 80 templates. RoZ's published prompt logs (one token-id
sequence per line) load the same way.

Both towers are frozen, so the image features of the training images are
computed once (:func:`image_features`) and the learners only run the text tower.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench import store as store_lib
from jaxbench.models.api import Model, l2_normalize
from jaxbench.zeroshot import head as head_lib
from jaxbench.zeroshot import prompts as prompts_lib

FORMAT = 1
# RoZ adds "a photo of a" (token ids, CLIP BPE) to every prompt log with count 1.
ROZ_DEFAULT_PROMPT = (320, 1125, 539, 320)


# --- prompt layout --------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class PromptLayout:
  """K class prompts with M learned slots right after the start token.

  ``ids[k] = [SOT] s_1..s_M <tokens of suffix.format(classname_k)> [EOT] 0...``
  with the slots holding 0 until filled (:func:`fill`).

  Attributes:
    ids: int32 (K, L) token ids; L is the longest prompt rounded up to
      ``bucket`` (a causal tower ignores positions after EOT), at most the
      model's context length.
    eot: int32 (K,) position of each prompt's end-of-text token.
    num_slots: M.
    classnames: the K class names.
    suffix: the text after the slots, with one '{}' for the class name.
    specials: token ids that may never fill a slot (start and end of text).
    vocab_size: size of the model's token embedding table.
    context_length: the model's context length.
  """
  ids: np.ndarray
  eot: np.ndarray
  num_slots: int
  classnames: tuple
  suffix: str
  specials: tuple
  vocab_size: int
  context_length: int

  @property
  def num_classes(self) -> int:
    return len(self.classnames)


def check_text_model(model: Model) -> None:
  """Learned prompts run the text tower on embeddings: CLIP-family models only."""
  if not model.is_zeroshot:
    raise ValueError(f"learned prompts need a zero-shot (image-text) model; {model.name!r} "
                     f"is {model.kind}")
  arch = model.arch
  if arch is None or not hasattr(arch, "encode_text_embeddings") \
      or not hasattr(arch, "embed_tokens") or not model.causal_text:
    raise ValueError(f"model {model.name!r} has no causal text tower that runs on token "
                     "embeddings (arch.encode_text_embeddings / arch.embed_tokens): learned "
                     "prompts support CLIP-family models")


def special_tokens(model: Model) -> tuple[int, int]:
  """(start, end) token ids, read off the tokenizer's output for an empty text."""
  ids = model.tokenize([""])[0]
  nz = ids[ids != 0]
  if len(nz) < 2:
    raise ValueError(f"tokenizer of {model.name!r} does not frame texts with start and end "
                     f"tokens (empty text -> {ids[:4].tolist()})")
  return int(nz[0]), int(nz[-1])


def vocab_size(model: Model) -> int:
  cfg = getattr(model.arch, "cfg", None)
  if cfg is None or not hasattr(cfg, "vocab_size"):
    raise ValueError(f"cannot read the vocabulary size of {model.name!r}")
  return int(cfg.vocab_size)


def _eot_positions(ids: np.ndarray) -> np.ndarray:
  nonpad = ids != 0
  return ids.shape[1] - 1 - np.argmax(nonpad[:, ::-1], axis=1)


def make_layout(model: Model, classnames: Sequence[str], num_slots: int,
                suffix: str = "{}", bucket: int = 8) -> PromptLayout:
  """Tokenizes the class prompts and opens M slots after the start token.

  Args:
    model: a CLIP-family zero-shot model.
    classnames: the K class names.
    num_slots: M >= 1 learned tokens or vectors.
    suffix: text after the slots, one '{}' for the class name ('{}' as RoZ,
      '{}.' as CoOp).
    bucket: the layout's length is a multiple of this (fewer compilations).

  Raises:
    ValueError: M < 1, a suffix without exactly one '{}', or a class whose
      prompt (start + M slots + class tokens + end) exceeds the context length.
  """
  check_text_model(model)
  if isinstance(num_slots, bool) or not isinstance(num_slots, (int, np.integer)) \
      or num_slots < 1:
    raise ValueError(f"the number of learned prompt tokens must be a positive integer, "
                     f"got {num_slots!r}")
  if suffix.count("{}") != 1:
    raise ValueError(f"prompt suffix {suffix!r} must contain exactly one '{{}}' for the "
                     "class name")
  names = tuple(classnames)
  if not names:
    raise ValueError("no class names given")
  ctx = model.context_length
  tok = np.asarray(model.tokenize([suffix.format(c) for c in names]), np.int32)
  sot, eot_id = special_tokens(model)
  pos = _eot_positions(tok)
  need = pos + 1 + num_slots
  # A prompt whose class text filled the whole context was truncated by the
  # tokenizer: it cannot take M more tokens either.
  too_long = np.nonzero((need > ctx) | (pos >= ctx - 1))[0]
  if len(too_long):
    listed = ", ".join(f"{names[i]!r} needs {int(need[i])}{'+' if pos[i] >= ctx - 1 else ''}"
                       for i in too_long[:5])
    raise ValueError(f"prompts with {num_slots} learned tokens are longer than the model's "
                     f"context length {ctx} for {len(too_long)} class(es): {listed} tokens "
                     f"(start + {num_slots} + class tokens + end)")
  length = int(min(ctx, -(-int(need.max()) // bucket) * bucket))
  ids = np.zeros((len(names), length), np.int32)
  ids[:, 0] = tok[:, 0]
  ids[:, 1 + num_slots:] = tok[:, 1:length - num_slots]
  return PromptLayout(ids=ids, eot=(pos + num_slots).astype(np.int32), num_slots=num_slots,
                      classnames=names, suffix=suffix, specials=(sot, eot_id),
                      vocab_size=vocab_size(model), context_length=ctx)


def fill(ids, trigger):
  """Layout ids (K, L) with ``trigger`` (M,) written into the slots 1..M."""
  m = trigger.shape[-1]
  if isinstance(ids, np.ndarray) and isinstance(trigger, np.ndarray):
    out = ids.copy()
    out[:, 1:1 + m] = trigger
    return out
  return jnp.asarray(ids).at[:, 1:1 + m].set(trigger)


def check_trigger(layout: PromptLayout, trigger: Sequence[int], what: str = "prompt") -> None:
  """Raises ValueError for token ids outside the vocabulary or special tokens."""
  t = np.asarray(trigger)
  if t.ndim != 1 or len(t) != layout.num_slots:
    raise ValueError(f"{what} {t.tolist()} has {t.size} tokens; the layout has "
                     f"{layout.num_slots} slots")
  bad = [int(x) for x in t if x < 0 or x >= layout.vocab_size]
  if bad:
    raise ValueError(f"{what} {t.tolist()} has unknown token ids {bad}: the vocabulary "
                     f"has ids 0..{layout.vocab_size - 1}")
  special = [int(x) for x in t if int(x) in layout.specials]
  if special:
    raise ValueError(f"{what} {t.tolist()} contains start/end-of-text tokens {special}, "
                     "which cannot be prompt tokens")


# --- the text tower on embeddings ------------------------------------------------

def embed_ids(arch, net, ids):
  """Token embeddings (..., W) of ids."""
  return arch.apply({"params": net}, ids, method="embed_tokens")


def encode_embeddings(arch, net, x, eot):
  """Unit-norm text features (N, D) float32 from token embeddings (N, L, W)."""
  z = arch.apply({"params": net}, x, eot, method="encode_text_embeddings")
  return l2_normalize(z.astype(jnp.float32))


def token_matrix(arch, net, vocab: int):
  """The (V, W) token-embedding table (by embedding every id: layout-agnostic)."""
  return embed_ids(arch, net, jnp.arange(vocab, dtype=jnp.int32))


def constrain(x, mesh: Optional[Mesh], spec: P):
  """Sharding constraint when a mesh is given (no-op on a single device)."""
  if mesh is None or mesh.size == 1:
    return x
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def zeroshot_loss(text, feats, labels, weights, scale, bias=None, class_mask=None):
  """Mean cross-entropy and accuracy of zero-shot logits.

  Args:
    text: float32 (K, D) unit class embeddings.
    feats: float32 (B, D) unit image embeddings.
    labels: int32 (B,) in [0, K).
    weights: float32 (B,) 1 for real rows, 0 for padding.
    scale: logit scale (RoZ: 100; CLIP's learned exp(scale) ~ 100).
    bias: optional additive logit bias.
    class_mask: optional bool (K,) False for padded classes (never predicted).

  Returns:
    (loss, accuracy): weighted means over the rows, float32 scalars.
  """
  logits = scale * feats @ text.T
  if bias is not None:
    logits = logits + bias
  if class_mask is not None:
    logits = jnp.where(class_mask[None], logits, -jnp.inf)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  n = jnp.maximum(weights.sum(), 1.0)
  acc = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return (weights * ce).sum() / n, (weights * acc).sum() / n


def pad_classes(layout: PromptLayout, multiple: int):
  """Layout ids/eot padded to a multiple of ``multiple`` classes, plus the class mask."""
  k = layout.num_classes
  kp = -(-k // multiple) * multiple
  ids = np.concatenate([layout.ids, np.repeat(layout.ids[:1], kp - k, 0)])
  eot = np.concatenate([layout.eot, np.repeat(layout.eot[:1], kp - k)])
  return ids, eot, np.arange(kp) < k


def data_size(mesh: Optional[Mesh]) -> int:
  return 1 if mesh is None else int(mesh.shape["data"])


def logit_scale_of(model: Model, logit_scale: Union[str, float]) -> tuple[float, Optional[float]]:
  """(scale, bias): the model's own ('model') or a fixed scale (RoZ: 100)."""
  net = model.params["net"]
  scale = float(np.exp(np.asarray(net["logit_scale"], np.float32))) \
      if "logit_scale" in net else 100.0
  bias = float(np.asarray(net["logit_bias"], np.float32)) if "logit_bias" in net else None
  if logit_scale != "model":
    scale = float(logit_scale)
  return scale, bias


# --- image features --------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("model_apply",))
def _encode_batch(model_apply, params, images):
  return l2_normalize(model_apply(params, images.astype(jnp.float32) / 255.0))


def image_features(model: Model, source, *, batch_size: int = 128, mesh: Optional[Mesh] = None,
                   name: str = "train", num_threads: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """Unit-norm image embeddings of every record of ``source`` (towers frozen: once).

  Args:
    model: zero-shot model; its preprocessing (resize, crop) applies.
    source: random-access records (e.g. a :class:`jaxbench.data.kshot.SubsetSource`).
    batch_size: global batch (a multiple of the mesh's data size).
    mesh: ('data', 'model') mesh; batches are sharded over 'data'.

  Returns:
    (features float32 (N, D), labels int32 (N,)) in source order.

  Raises:
    ValueError: a record that cannot be decoded (named by id).
  """
  from jaxbench.data import evalset, pipeline
  from jaxbench import parallel
  n = len(source)
  es = evalset.EvalSet(name=name, source=source, num_classes=0)
  pc, pi = jax.process_count(), jax.process_index()
  the_plan = pipeline.plan(np.arange(n), batch_size, pi, pc)
  out_f: dict[int, np.ndarray] = {}
  out_l: dict[int, int] = {}
  encode = functools.partial(_encode_batch, model.encode_image)
  for batch in pipeline.batches(es, model.preprocess, the_plan, num_threads=num_threads):
    if batch["bad"].any():
      i = int(batch["index"][np.argmax(batch["bad"])])
      raise ValueError(f"training image {source[i].get('id')!r} ({name}) cannot be decoded: "
                       f"{pipeline.describe_error(es, i)}")
    local = {"image": batch["image"], "index": batch["index"], "label": batch["label"]}
    if mesh is not None:
      g = parallel.to_global(local, mesh)
      z = encode(model.params, g["image"])
      z, idx, lab = parallel.to_host((z, g["index"], g["label"]))
    else:
      z = np.asarray(encode(model.params, jnp.asarray(local["image"])))
      idx, lab = local["index"], local["label"]
    for zi, ii, li in zip(z, idx, lab):
      if ii >= 0:
        out_f[int(ii)] = zi
        out_l[int(ii)] = int(li)
  feats = np.stack([out_f[i] for i in range(n)]).astype(np.float32)
  labels = np.asarray([out_l[i] for i in range(n)], np.int32)
  return feats, labels


# --- decoding token ids ----------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _id_to_token() -> tuple[dict, dict]:
  from jaxbench.zeroshot import tokenizer as tok
  vocab, _ = tok.vocab_and_merges()
  # Byte-level BPE symbols: printable bytes stand for themselves, the n-th other
  # byte (ascending) is written chr(256 + n).
  printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)]
  others = [b for b in range(256) if b not in set(printable)]
  byte_of = {chr(b): b for b in printable}
  byte_of.update({chr(256 + n): b for n, b in enumerate(others)})
  return {i: t for t, i in vocab.items()}, byte_of


def decode(ids: Sequence[int]) -> str:
  """Text of CLIP BPE token ids (as CLIP's SimpleTokenizer decodes: '</w>' -> space)."""
  inv, byte_of = _id_to_token()
  text = "".join(inv.get(int(i), f"<{int(i)}>") for i in ids)
  raw = bytearray()
  out = []
  for ch in text.replace("</w>", " "):
    if ch in byte_of:
      raw.append(byte_of[ch])
    else:
      out.append(raw.decode("utf-8", errors="replace"))
      raw = bytearray()
      out.append(ch)
  out.append(raw.decode("utf-8", errors="replace"))
  return "".join(out).strip()


# --- heads from learned prompts ---------------------------------------------------

def rank_prompts(sequences: Sequence[Sequence[int]],
                 extra: Sequence[tuple[Sequence[int], int]] = ()) -> list[tuple[tuple, int]]:
  """Unique prompts ranked by frequency (ties: first appearance), as RoZ ranks its logs.

  Args:
    sequences: token-id sequences, one per occurrence.
    extra: (prompt, count) added to the counts (RoZ adds 'a photo of a' once).

  Returns:
    [(prompt ids tuple, count)] most frequent first.
  """
  counts: collections.Counter = collections.Counter()
  first: dict[tuple, int] = {}
  for n, s in enumerate(sequences):
    t = tuple(int(x) for x in s)
    counts[t] += 1
    first.setdefault(t, n)
  for s, c in extra:
    t = tuple(int(x) for x in s)
    counts[t] += int(c)
    first.setdefault(t, len(first) + len(sequences))
  return sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))


_SEPARATORS = str.maketrans({c: " " for c in ",[]()"})


def read_prompt_log(path: str, *, add_default: bool = True) -> list[tuple[tuple, int]]:
  """RoZ's prompt logs: one token-id sequence per line (spaces, commas, brackets).

  Args:
    path: a ``*.log`` file (RoZ ``scripts/*/Prompts/ViT-B_32.log``).
    add_default: add 'a photo of a' (320 1125 539 320) with count 1, as RoZ does.

  Returns:
    [(prompt ids, count)] ranked by frequency.

  Raises:
    ValueError: a line that is not integers, or lines of differing lengths.
  """
  seqs = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        seqs.append(tuple(int(x) for x in line.translate(_SEPARATORS).split()))
      except ValueError as e:
        raise ValueError(f"{path}:{n}: expected whitespace-separated token ids, found "
                         f"{line[:80]!r}") from e
  if not seqs:
    raise ValueError(f"prompt log {path!r} has no token-id lines")
  lengths = sorted({len(s) for s in seqs})
  if len(lengths) > 1:
    raise ValueError(f"prompt log {path!r} mixes prompts of {lengths} tokens; one length "
                     "per file")
  extra = [(ROZ_DEFAULT_PROMPT, 1)] if add_default and lengths[0] == len(ROZ_DEFAULT_PROMPT) \
      else []
  return rank_prompts(seqs, extra)


def _head_from_weights(model: Model, weights: np.ndarray, names: tuple, templates: tuple,
                       scale: float, bias: Optional[float], label_space: str,
                       key_extra: str, template_set: str) -> head_lib.ZeroShotHead:
  key = hashlib.sha256((head_lib.head_key(model, names, templates) + key_extra).encode()
                       ).hexdigest()[:20]
  tok = getattr(model.tokenizer, "describe", "") or model.provenance.get("tokenizer", "")
  return head_lib.ZeroShotHead(weights=weights.astype(np.float32), logit_scale=float(scale),
                               logit_bias=bias, classnames=names, templates=templates,
                               label_space=label_space, tokenizer=tok, key=key,
                               template_set=template_set, classname_set="")


def _label_space(classnames, names) -> str:
  return "imagenet1k" if isinstance(classnames, str) and classnames == "imagenet" \
      else f"custom{len(names)}"


@functools.partial(jax.jit, static_argnames=("arch",))
def _encode_rows(arch, net, ids, eot):
  return encode_embeddings(arch, net, embed_ids(arch, net, ids), eot)


def encode_ids(model: Model, ids: np.ndarray, eot: np.ndarray, *,
               batch_size: int = 256) -> np.ndarray:
  """Unit text features (N, D) of prompts (N, L) pooled at ``eot`` (N,).

  Runs in chunks of ``batch_size`` (the last one padded): one compilation per
  prompt length whatever N is. Pooling at the given EOT positions equals the
  model's own ``encode_text`` (which finds them by argmax) for prompts without
  special tokens in their slots.
  """
  n = len(ids)
  chunk = batch_size
  out = []
  for s in range(0, n, chunk):
    i, e = ids[s:s + chunk], eot[s:s + chunk]
    pad = chunk - len(i)
    if pad:
      i = np.concatenate([i, np.repeat(i[-1:], pad, 0)])
      e = np.concatenate([e, np.repeat(e[-1:], pad, 0)])
    out.append(np.asarray(_encode_rows(model.arch, model.params["net"], jnp.asarray(i),
                                       jnp.asarray(e)))[:chunk - pad])
  return np.concatenate(out).astype(np.float32)


def trigger_head(model: Model, triggers: Sequence[Sequence[int]],
                 classnames: Union[str, Sequence[str]] = "imagenet", *, suffix: str = "{}",
                 logit_scale: Union[str, float] = 100.0, label_space: Optional[str] = None,
                 source: str = "", batch_size: int = 256) -> head_lib.ZeroShotHead:
  """The ensemble head of discrete prompts (normalise, mean, renormalise: as templates).

  Args:
    model: CLIP-family model.
    triggers: N prompts of M token ids each (the slots after the start token).
    classnames: class-name set or list.
    suffix: text after the prompt tokens ('{}': RoZ's layout).
    logit_scale: 'model' or a float (RoZ: 100).
    source: recorded in the head's ``template_set`` (which file it came from).

  Raises:
    ValueError: prompts longer than the context, unknown or special token ids.
  """
  names = prompts_lib.classnames(classnames)
  trig = np.asarray(triggers, np.int64)
  if trig.ndim != 2 or not len(trig):
    raise ValueError(f"expected N prompts of M token ids, got an array of shape {trig.shape}")
  layout = make_layout(model, names, trig.shape[1], suffix)
  for t in trig:
    check_trigger(layout, t)
  ids = np.concatenate([fill(layout.ids, t) for t in trig.astype(np.int32)])   # (N*K, L)
  eot = np.tile(layout.eot, len(trig))
  z = encode_ids(model, ids, eot, batch_size=batch_size)
  z = z.reshape(len(trig), len(names), -1).mean(axis=0)
  weights = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  scale, bias = logit_scale_of(model, logit_scale)
  templates = tuple(decode(t).replace("{", "{{").replace("}", "}}") + " "
                    + suffix for t in trig)
  digest = hashlib.sha256(trig.astype(np.int64).tobytes() + suffix.encode()).hexdigest()[:16]
  return _head_from_weights(model, weights, names, templates, scale, bias,
                            label_space or _label_space(classnames, names),
                            f"|triggers:{digest}", f"learned:{source or digest}")


@functools.partial(jax.jit, static_argnames=("arch",))
def _context_features(arch, net, ids, eot, ctx):
  x = embed_ids(arch, net, ids)
  m = ctx.shape[-2]
  ctx = jnp.broadcast_to(ctx.astype(x.dtype), (x.shape[0], m, x.shape[-1]))
  return encode_embeddings(arch, net, x.at[:, 1:1 + m].set(ctx), eot)


def context_head(model: Model, ctx: np.ndarray, classnames: Union[str, Sequence[str]],
                 *, suffix: str = "{}.", logit_scale: Union[str, float] = "model",
                 label_space: Optional[str] = None, source: str = "",
                 train_classnames: Optional[Sequence[str]] = None,
                 batch_size: int = 256) -> head_lib.ZeroShotHead:
  """The head of CoOp context vectors: one prompt per class, its slots the vectors.

  Args:
    ctx: float (M, W) shared vectors, or (K, M, W) one set per class (then
      ``classnames`` must be the classes it was trained on).
    train_classnames: the classes a class-specific context was learned for.

  Raises:
    ValueError: a width that is not the text tower's, or class-specific
      vectors asked for other classes.
  """
  names = prompts_lib.classnames(classnames)
  ctx = np.asarray(ctx, np.float32)
  layout = make_layout(model, names, ctx.shape[-2], suffix)
  width = int(jax.eval_shape(lambda: embed_ids(model.arch, model.params["net"],
                                               jnp.zeros((1,), jnp.int32))).shape[-1])
  if ctx.ndim not in (2, 3) or ctx.shape[-1] != width:
    raise ValueError(f"context vectors of shape {ctx.shape} do not fit {model.name!r}: "
                     f"expected (M, {width}) or (K, M, {width})")
  if ctx.ndim == 3:
    if train_classnames is not None and tuple(train_classnames) != names:
      raise ValueError("class-specific context vectors were learned for other classes "
                       f"({len(train_classnames)} classes, first {list(train_classnames)[:3]}); "
                       f"cannot build a head for {len(names)} classes {list(names)[:3]}")
    if ctx.shape[0] != len(names):
      raise ValueError(f"class-specific context has {ctx.shape[0]} classes, the head "
                       f"{len(names)}")
  feats = []
  for s in range(0, len(names), batch_size):
    c = ctx if ctx.ndim == 2 else ctx[s:s + batch_size]
    feats.append(np.asarray(_context_features(
        model.arch, model.params["net"], jnp.asarray(layout.ids[s:s + batch_size]),
        jnp.asarray(layout.eot[s:s + batch_size]), jnp.asarray(c))))
  weights = np.concatenate(feats)
  scale, bias = logit_scale_of(model, logit_scale)
  digest = hashlib.sha256(ctx.tobytes() + suffix.encode()).hexdigest()[:16]
  templates = (f"[{ctx.shape[-2]} learned context vectors] " + suffix,)
  return _head_from_weights(model, weights, names, templates, scale, bias,
                            label_space or _label_space(classnames, names),
                            f"|context:{digest}", f"learned:{source or digest}")


# --- artifacts -------------------------------------------------------------------

def _atomic_write(path: str, text: str) -> None:
  store_lib.atomic_write_bytes(os.path.abspath(path), text.encode())


def model_record(model: Model) -> dict:
  """What an artifact records about the model it was learned on."""
  prov = model.provenance or {}
  return {"name": model.name, "source": prov.get("source"), "revision": prov.get("revision"),
          "sha256": prov.get("sha256"), "tokenizer": prov.get("tokenizer"),
          "precision": model.precision, "context_length": model.context_length}


def save_prompts(path: str, *, model: Model, ranked: Sequence[tuple[Sequence[int], int]],
                 suffix: str, top_n: int, logit_scale: Union[str, float], data: dict,
                 seed: int, steps: int, settings: dict, metrics: dict,
                 losses: Optional[dict] = None) -> str:
  """Writes an AutoPrompt artifact (JSON): ranked prompts with ids, text and counts."""
  prompts = []
  for ids, count in ranked:
    row = {"ids": [int(x) for x in ids], "text": decode(ids), "count": int(count)}
    if losses and tuple(ids) in losses:
      row["loss"] = float(losses[tuple(ids)])
    prompts.append(row)
  doc = {"format": FORMAT, "method": "autoprompt", "model": model_record(model),
         "num_tokens": len(ranked[0][0]) if ranked else 0, "suffix": suffix,
         "top_n": int(top_n), "logit_scale": logit_scale, "seed": int(seed),
         "steps": int(steps), "data": data, "settings": settings, "metrics": metrics,
         "prompts": prompts}
  _atomic_write(path, json.dumps(doc, indent=1, default=_json_default))
  return path


def save_context(path: str, *, model: Model, ctx: np.ndarray, classnames: Sequence[str],
                 suffix: str, logit_scale: Union[str, float], data: dict, seed: int,
                 steps: int, settings: dict, metrics: dict, init: str = "") -> str:
  """Writes a CoOp artifact: JSON (provenance) + ``<stem>.npz`` (the vectors)."""
  ctx = np.asarray(ctx, np.float32)
  npz = os.path.splitext(path)[0] + ".npz"
  os.makedirs(os.path.dirname(os.path.abspath(npz)), exist_ok=True)
  tmp = npz + ".tmp.npz"
  np.savez(tmp, ctx=ctx)
  os.replace(tmp, npz)
  doc = {"format": FORMAT, "method": "coop", "model": model_record(model),
         "num_tokens": int(ctx.shape[-2]), "class_specific": ctx.ndim == 3,
         "suffix": suffix, "logit_scale": logit_scale, "init": init,
         "classnames": list(classnames), "context_file": os.path.basename(npz),
         "context_sha256": hashlib.sha256(ctx.tobytes()).hexdigest(),
         "context_shape": list(ctx.shape), "seed": int(seed), "steps": int(steps),
         "data": data, "settings": settings, "metrics": metrics}
  _atomic_write(path, json.dumps(doc, indent=1, default=_json_default))
  return path


def _json_default(o: Any):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  if isinstance(o, tuple):
    return list(o)
  raise TypeError(f"cannot record {type(o).__name__} in a CLIP-Auto artifact")


def load_artifact(path: str) -> dict:
  """Reads a CLIP-Auto artifact (JSON), checking its method and keys."""
  if not os.path.exists(path):
    raise ValueError(f"learned-prompt file {path!r} does not exist")
  with open(path) as f:
    try:
      doc = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"learned-prompt file {path!r} is not JSON ({e}); RoZ token-id logs "
                       "must end in .log or .txt") from e
  method = doc.get("method")
  need = {"autoprompt": ("prompts", "suffix"),
          "coop": ("context_file", "suffix", "classnames", "context_sha256")}
  if method not in need:
    raise ValueError(f"{path!r}: unknown method {method!r}; expected 'autoprompt' or 'coop'")
  missing = [k for k in need[method] if k not in doc]
  if missing:
    raise ValueError(f"{path!r} ({method}) lacks keys {missing}")
  return doc


def load_context(path: str, doc: Optional[dict] = None) -> np.ndarray:
  doc = doc or load_artifact(path)
  npz = os.path.join(os.path.dirname(os.path.abspath(path)), doc["context_file"])
  if not os.path.exists(npz):
    raise ValueError(f"{path!r} refers to context vectors {npz!r}, which do not exist")
  ctx = np.load(npz)["ctx"].astype(np.float32)
  if hashlib.sha256(ctx.tobytes()).hexdigest() != doc["context_sha256"]:
    raise ValueError(f"context vectors {npz!r} do not match the sha256 recorded in {path!r}")
  return ctx


def load_learned_head(model: Model, path: str,
                      classnames: Union[str, Sequence[str]] = "imagenet", *,
                      top_n: Optional[int] = None,
                      logit_scale: Union[str, float, None] = None,
                      label_space: Optional[str] = None) -> head_lib.ZeroShotHead:
  """A zero-shot head from learned prompts, usable by every suite like any other head.

  Args:
    model: the CLIP-family model to evaluate (normally the one the prompts were
      learned on; recorded in the artifact).
    path: an AutoPrompt or CoOp artifact (``.json``), or a RoZ prompt log
      (``.log``/``.txt``: one token-id sequence per line, ranked by frequency,
      'a photo of a' added once).
    classnames: the head's classes (a named set or a list). A discrete or a
      shared CoOp context transfers to any classes; a class-specific context
      only to its own.
    top_n: prompts ensembled (discrete only); default the artifact's ``top_n``,
      all prompts for a log (0 or None = all).
    logit_scale: override the recorded scale ('model' or a float); RoZ logs
      default to 100.

  Returns:
    a :class:`~jaxbench.zeroshot.head.ZeroShotHead`.
  """
  base = os.path.basename(path)
  if path.endswith((".log", ".txt")) or base.endswith("log"):
    if not os.path.exists(path):
      raise ValueError(f"prompt log {path!r} does not exist")
    ranked = read_prompt_log(path)
    n = top_n or len(ranked)
    return trigger_head(model, [r[0] for r in ranked[:n]], classnames, suffix="{}",
                        logit_scale=100.0 if logit_scale is None else logit_scale,
                        label_space=label_space, source=f"{base}:top{n}")
  doc = load_artifact(path)
  scale = doc.get("logit_scale", 100.0) if logit_scale is None else logit_scale
  if doc["method"] == "autoprompt":
    ranked = [tuple(p["ids"]) for p in doc["prompts"]]
    if not ranked:
      raise ValueError(f"{path!r} holds no prompts")
    n = top_n if top_n is not None else doc.get("top_n", 0)
    n = n or len(ranked)
    return trigger_head(model, ranked[:n], classnames, suffix=doc["suffix"], logit_scale=scale,
                        label_space=label_space, source=f"{base}:top{n}")
  ctx = load_context(path, doc)
  return context_head(model, ctx, classnames, suffix=doc["suffix"], logit_scale=scale,
                      label_space=label_space, source=base,
                      train_classnames=doc["classnames"])


def artifact_path(workdir: str, model_name: str) -> str:
  """Where :func:`learn` writes the prompts learned for a model in a workdir."""
  slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name).strip("_")
  return os.path.join(workdir, "clip_auto", f"{slug or 'model'}.json")


def head_for(model: Model, classnames: Union[str, Sequence[str]] = "imagenet",
             templates: Union[str, Sequence[str]] = "clip80", *,
             workdir: Optional[str] = None, **build_kwargs) -> head_lib.ZeroShotHead:
  """Drop-in for :func:`~jaxbench.zeroshot.build_head` that also takes learned prompts.

  ``templates`` of the form 'learned:PATH' or 'learned:PATH:N' (N prompts of a
  discrete set) loads :func:`load_learned_head`; 'learned:auto' is what
  :func:`learn` wrote for this model in ``workdir`` (default: the parent of
  ``cache_dir``, i.e. the run's workdir when the runner passes
  ``workdir/heads``). Anything else goes to ``build_head`` unchanged, so the
  runner can call this for every suite.
  """
  if not (isinstance(templates, str) and templates.startswith("learned:")):
    return head_lib.build_head(model, classnames, templates, **build_kwargs)
  spec = templates[len("learned:"):]
  path, n = spec, ""
  if ":" in spec and spec.rsplit(":", 1)[-1].isdigit():
    path, n = spec.rsplit(":", 1)
  if path == "auto":
    cache_dir = build_kwargs.get("cache_dir")
    workdir = workdir or (os.path.dirname(os.path.abspath(cache_dir)) if cache_dir else None)
    if not workdir:
      raise ValueError("templates='learned:auto' needs the workdir the prompts were learned "
                       "in (pass workdir= or cache_dir=WORKDIR/heads)")
    path = artifact_path(workdir, model.name)
    if not os.path.exists(path):
      raise ValueError(f"templates='learned:auto': no learned prompts for model "
                       f"{model.name!r} at {path!r}; run the clip_auto learning step first "
                       "(configs/clip_auto.py)")
  scale = build_kwargs.get("logit_scale")
  return load_learned_head(model, os.path.expanduser(path), classnames,
                           top_n=int(n) if n else None,
                           logit_scale=None if scale in (None, "model") else scale,
                           label_space=build_kwargs.get("label_space"))


def accuracy(head: head_lib.ZeroShotHead, feats: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy of a head on unit image features (host side, for reports)."""
  logits = feats @ head.weights.T
  return float((np.argmax(logits, 1) == labels).mean())


# --- learning from a config -------------------------------------------------------
