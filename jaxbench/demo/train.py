"""Trains the demo's models with optax: a small CLIP (contrastive) and a CNN baseline.

CLIP (:func:`train_clip`): our Flax :class:`jaxbench.models.clip.CLIP` (a small
ViT image tower and a causal text transformer, the real 49408-token CLIP BPE
tokenizer) trained contrastively on the training split of scikit-learn's digits,
upscaled to ``image_size``, each image paired with one caption drawn from
several phrasings ('a photo of the number seven.', 'a handwritten 7.', ...).

Loss: CLIP's symmetric cross-entropy over the batch's image-text similarity
matrix, except that a batch of 10 classes holds many pairs of one class, so
every caption of an image's class is a positive (targets uniform over them)
instead of only the image's own caption.

Only the rows of the token embedding that training captions use are trained
(a 49408-row table would make every Adam step read and write 3M unused
values); embeddings get no weight decay, so this is exactly what training the
full table would do: the other rows keep their initial values.

Baseline (:func:`train_cnn`): :class:`jaxbench.demo.cnn.DigitCNN` trained with
softmax cross-entropy on the same split.

Every random draw of step ``i`` (batch, captions, translations) comes from
``fold_in(key(seed), i)``, so training resumed from a checkpoint
(:mod:`jaxbench.demo.cache`) ends with the same parameters as a run that was
never interrupted.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from jaxbench.demo import cache, cnn, digits
from jaxbench.models import api, clip

LABEL_SPACE = "digits10"
# Part of every cached model's identity: bump when the training code changes results.
RECIPE = 1


@dataclasses.dataclass(frozen=True)
class ClipTrainConfig:
  """Architecture and optimisation of the demo CLIP (every field is part of its identity)."""
  seed: int = 0
  image_size: int = 32
  patch_size: int = 8
  width: int = 64
  layers: int = 2
  heads: int = 4
  text_width: int = 64
  text_layers: int = 2
  embed_dim: int = 32
  context_length: int = 16
  steps: int = 400
  batch_size: int = 64
  learning_rate: float = 3e-3
  warmup_steps: int = 50
  weight_decay: float = 0.05
  max_shift: int = 2          # random translation, pixels of the upscaled image

  def clip_config(self) -> clip.ClipConfig:
    return clip.ClipConfig(
        vision=clip.TowerConfig(self.width, self.layers, self.heads, 2 * self.width),
        text=clip.TowerConfig(self.text_width, self.text_layers, self.heads,
                              2 * self.text_width),
        image_size=self.image_size, patch_size=self.patch_size,
        context_length=self.context_length, embed_dim=self.embed_dim,
        legacy_argmax_pool=False)


@dataclasses.dataclass(frozen=True)
class CnnTrainConfig:
  """The supervised baseline (every field is part of its identity)."""
  seed: int = 0
  image_size: int = 32
  width: int = 8
  steps: int = 400
  batch_size: int = 64
  learning_rate: float = 3e-3
  max_shift: int = 2


def make_config(cls, **overrides):
  """A config dataclass from keyword overrides; unknown names are refused by name."""
  known = [f.name for f in dataclasses.fields(cls)]
  bad = sorted(set(overrides) - set(known))
  if bad:
    raise ValueError(f"unknown {cls.__name__} fields {bad}; known: {known}")
  defaults = {f.name: f.default for f in dataclasses.fields(cls)}
  overrides = {k: float(v) if isinstance(defaults[k], float) and isinstance(v, int) else v
               for k, v in overrides.items()}
  cfg = cls(**overrides)
  for f in dataclasses.fields(cls):
    v = getattr(cfg, f.name)
    if not isinstance(v, type(f.default)) or isinstance(v, bool) or v < 0:
      raise ValueError(f"{cls.__name__}.{f.name}={v!r}: expected a non-negative "
                       f"{type(f.default).__name__}")
  if cfg.steps < 1 or cfg.batch_size < 1:
    raise ValueError(f"{cls.__name__}: steps and batch_size must be >= 1, got "
                     f"{cfg.steps}, {cfg.batch_size}")
  if cfg.image_size < 8:
    raise ValueError(f"{cls.__name__}.image_size={cfg.image_size}: expected >= 8 pixels")
  return cfg


# --- data -----------------------------------------------------------------------------

def _tokenize(tokenizer_dir: str, texts: list[str], context: int) -> np.ndarray:
  """int32 (N, context) ids as the saved checkpoint's tokenizer makes them."""
  return clip.hf_tokenizer(tokenizer_dir, context)(texts)


def _augment(key, images, max_shift: int):
  """Random translation by up to ``max_shift`` pixels (zero fill), per image.

  Args: images uint8 (B, S, S). Returns: float32 (B, S, S, 3) in [0, 1].
  """
  b, s = images.shape[0], images.shape[1]
  x = images.astype(jnp.float32) / 255.0
  if max_shift:
    x = jnp.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    offs = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
    x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1]), (s, s)))(x, offs)
  return jnp.repeat(x[..., None], 3, axis=-1)


def _decay_mask(params):
  """Weight decay on matrices only (no biases, norms, embeddings, logit scale)."""
  def mask(path, leaf):
    names = [str(getattr(k, "key", k)) for k in path]
    return names[-1] == "kernel"
  return jax.tree_util.tree_map_with_path(mask, params)


def _fit(step_fn: Callable, state, steps: int, state_file: str, identity: dict,
         what: str, checkpoint_every: int, stop_after: Optional[int]):
  """Runs the jitted ``step_fn(state, i) -> (state, loss)`` from the last checkpoint.

  A Python loop over one compiled step: XLA:CPU runs the CLIP's patch
  convolution several times slower inside a ``while`` loop (``lax.fori_loop``)
  than at top level (``python -m jaxbench.bench demo``).
  """
  restored = cache.load_state(state_file, state, identity)
  start = 0
  if restored is not None:
    state, start = restored
    logging.info("%s: resuming training from step %d of %d (%s)", what, start, steps,
                 state_file)
  state = jax.device_put(state)
  t0 = time.perf_counter()
  first = start
  for i in range(start, steps):
    state, loss = step_fn(state, jnp.int32(i))
    done = i + 1
    if done % checkpoint_every == 0 or done == steps:
      loss = float(loss)
      cache.save_state(state_file, state, done, identity)
      dt = time.perf_counter() - t0
      logging.info("%s: step %d/%d, loss %.4f, %.1fs (ETA %.0fs)", what, done, steps, loss,
                   dt, dt / (done - first) * (steps - done))
      if stop_after is not None and stop_after <= done < steps:
        raise KeyboardInterrupt(f"{what}: stopped after step {done} (stop_after)")
  return state


# --- CLIP -------------------------------------------------------------------------------

def _clip_tables(cfg: ClipTrainConfig, tokenizer_dir: str):
  """Training images and labels, caption ids per (class, phrasing), the token subset."""
  images, labels, _ = digits.load("train", cfg.image_size)
  texts = [t for c in range(digits.NUM_CLASSES) for t in digits.captions(c)]
  ids = _tokenize(tokenizer_dir, texts, cfg.context_length)
  eos = cfg.clip_config().eos_token_id
  eot = np.argmax(ids == eos, axis=1).astype(np.int32)
  if not (ids[np.arange(len(ids)), eot] == eos).all():
    raise ValueError(f"a training caption does not fit context_length={cfg.context_length}")
  # The tower is causal and pools at the end token: positions after the longest
  # caption's end token never matter, so training runs at that length.
  ids = ids[:, :int(eot.max()) + 1]
  vocab = np.unique(ids)
  local = np.searchsorted(vocab, ids).astype(np.int32)
  p = len(digits.CAPTIONS)
  return (images[..., 0], labels, local.reshape(digits.NUM_CLASSES, p, -1),
          eot.reshape(digits.NUM_CLASSES, p), vocab, p)


@functools.lru_cache(maxsize=4)
def _clip_program(cfg: ClipTrainConfig, tokenizer_dir: str):
  """(initial params, full token table, vocabulary, optimiser, jitted step), built once."""
  ccfg = cfg.clip_config()
  images, labels, cap_ids, cap_eot, vocab, n_phr = _clip_tables(cfg, tokenizer_dir)
  model = clip.CLIP(ccfg)
  x0 = jnp.zeros((1, cfg.image_size, cfg.image_size, 3))
  full = jax.jit(lambda k: model.init(k, x0, jnp.zeros((1, 4), jnp.int32))["params"])(
      jax.random.key(cfg.seed))
  full = jax.tree.map(np.asarray, full)
  table = full["text_model"]["token_embedding"]["embedding"]
  net = dict(full)
  net["text_model"] = {k: v for k, v in full["text_model"].items() if k != "token_embedding"}
  params = {"net": net, "tokens": table[vocab]}
  sched = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps,
                                             max(cfg.steps, cfg.warmup_steps + 1))
  opt = optax.adamw(sched, weight_decay=cfg.weight_decay, mask=_decay_mask)
  mean, std = jnp.asarray(api.CLIP_MEAN), jnp.asarray(api.CLIP_STD)
  images_d, labels_d = jnp.asarray(images), jnp.asarray(labels)
  cap_ids_d, cap_eot_d = jnp.asarray(cap_ids), jnp.asarray(cap_eot)
  max_scale = float(np.log(100.0))

  def loss_fn(p, x, y, ids, eot):
    zi = model.apply({"params": p["net"]}, (x - mean) / std, method=clip.CLIP.encode_image)
    zt = model.apply({"params": p["net"]}, p["tokens"][ids], eot,
                     method=clip.CLIP.encode_text_embeddings)
    zi, zt = api.l2_normalize(zi), api.l2_normalize(zt)
    scale = jnp.exp(jnp.minimum(p["net"]["logit_scale"], max_scale))
    logits = scale * zi @ zt.T
    same = (y[:, None] == y[None, :]).astype(jnp.float32)
    target = same / same.sum(axis=1, keepdims=True)
    return 0.5 * (optax.softmax_cross_entropy(logits, target).mean()
                  + optax.softmax_cross_entropy(logits.T, target).mean())

  @jax.jit
  def step_fn(state, i):
    p, o = state
    k_idx, k_cap, k_aug = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), i), 3)
    idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, len(labels))
    y = labels_d[idx]
    j = jax.random.randint(k_cap, (cfg.batch_size,), 0, n_phr)
    x = _augment(k_aug, images_d[idx], cfg.max_shift)
    loss, g = jax.value_and_grad(loss_fn)(p, x, y, cap_ids_d[y, j], cap_eot_d[y, j])
    updates, o = opt.update(g, o, p)
    return (optax.apply_updates(p, updates), o), loss

  return params, table, vocab, opt, step_fn


def train_clip(cfg: ClipTrainConfig, out_dir: str, *, state_file: str,
               checkpoint_every: int = 100, stop_after: Optional[int] = None,
               trained: Optional[dict] = None) -> list[str]:
  """Trains the demo CLIP and saves it in the transformers layout into ``out_dir``.

  Args:
    cfg: the training config.
    out_dir: checkpoint directory to write (created).
    state_file: resumable training state (see :mod:`jaxbench.demo.cache`).
    checkpoint_every: steps between training-state checkpoints.
    stop_after: tests only: raise KeyboardInterrupt after this step's checkpoint,
      as if the process had been killed there.
    trained: when a dict, receives the trained Flax params under 'params'.

  Returns:
    the names of the files written.
  """
  from jaxbench.demo import export
  from jaxbench.zeroshot import tokenizer as tok_files
  tok_names = tok_files.write_transformers_files(out_dir, context_length=cfg.context_length)
  # The captions are tokenized with the files just written (the checkpoint's own).
  params, table, vocab, opt, step_fn = _clip_program(cfg, out_dir)
  identity = {"recipe": RECIPE, **dataclasses.asdict(cfg)}
  state = _fit(step_fn, (params, opt.init(params)), cfg.steps, state_file, identity,
               "demo CLIP", checkpoint_every, stop_after)
  result = jax.tree.map(np.asarray, jax.device_get(state[0]))
  full_out = dict(result["net"])
  full_out["text_model"] = dict(result["net"]["text_model"])
  embedding = np.array(table, copy=True)
  embedding[vocab] = result["tokens"]
  full_out["text_model"]["token_embedding"] = {"embedding": embedding}
  if trained is not None:
    trained["params"] = full_out
  names = export.save_transformers(out_dir, full_out, cfg.clip_config(), tokenizer_files=False)
  return names + tok_names


# --- CNN baseline -------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _cnn_program(cfg: CnnTrainConfig):
  """(initial params, optimiser, jitted step) of a CNN config, built once per process."""
  x, y, _ = digits.load("train", cfg.image_size)
  params = cnn.init_params(cfg.width, digits.NUM_CLASSES, cfg.image_size,
                           jax.random.key(cfg.seed))
  sched = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, min(20, cfg.steps),
                                             max(cfg.steps, 21))
  opt = optax.adamw(sched, weight_decay=1e-4, mask=_decay_mask)
  net = cnn.net_logits_fn(cfg.width, digits.NUM_CLASSES)
  mean, std = jnp.asarray(cnn.MEAN), jnp.asarray(cnn.STD)
  x_d, y_d = jnp.asarray(x[..., 0]), jnp.asarray(y)

  def loss_fn(p, xb, yb):
    logits = net(p, (xb - mean) / std)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def step_fn(state, i):
    p, o = state
    k_idx, k_aug = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), i))
    idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, len(y))
    xb = _augment(k_aug, x_d[idx], cfg.max_shift)
    loss, g = jax.value_and_grad(loss_fn)(p, xb, y_d[idx])
    updates, o = opt.update(g, o, p)
    return (optax.apply_updates(p, updates), o), loss

  return params, opt, step_fn


def train_cnn(cfg: CnnTrainConfig, out_dir: str, *, state_file: str,
              checkpoint_every: int = 100, stop_after: Optional[int] = None,
              trained: Optional[dict] = None) -> list[str]:
  """Trains the CNN baseline on the digits training split; saves it into ``out_dir``.

  Args: as :func:`train_clip`. Returns: the names of the files written.
  """
  params, opt, step_fn = _cnn_program(cfg)
  identity = {"recipe": RECIPE, **dataclasses.asdict(cfg)}
  state = _fit(step_fn, (params, opt.init(params)), cfg.steps, state_file, identity,
               f"demo CNN (width {cfg.width}, {cfg.steps} steps)", checkpoint_every,
               stop_after)
  result = jax.tree.map(np.asarray, jax.device_get(state[0]))
  if trained is not None:
    trained["params"] = result
  return cnn.save(out_dir, result, width=cfg.width, num_classes=digits.NUM_CLASSES,
                  image_size=cfg.image_size, label_space=LABEL_SPACE,
                  class_names=digits.WORDS)
