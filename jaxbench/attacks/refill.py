"""Survivor refill: keep the compiled batch full of unfinished examples.

Attacks that stop per example (BIM/MIM/DIM with early stop, NES/SPSA, Square,
DeepFool, APGD, minimal-eps search) finish examples at different iterations;
a plain batched run pays for the slowest example in every slot. Here the
attack runs ``chunk_steps`` iterations at a time over a fixed batch of
``batch_size`` slots; between chunks, finished examples leave (their state is
read back) and fresh examples from the stream take their slots, so the
compiled step keeps working on live examples.

Every example owns its iteration counter, keys and state (see
:class:`~jaxbench.attacks.base.Iterative`) and a step leaves finished examples
bit-identical, so results equal running each example alone; finished
examples are finalised (projection + one re-evaluation) in full batches.
Compiled functions: one refill (init + merge), one chunk and one finalise,
all at the fixed batch shape.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.attacks import base, ensemble


@functools.partial(jax.jit, static_argnames=("attack", "prep"), donate_argnames=("state",))
def _refill(attack, prep, state, images, labels, keys, eps, targets, take, mask):
  """Fresh state for the slots where ``take`` (``mask`` False: finished at once, as
  padding in a batch); others keep ``state``. ``prep`` (None: identity) turns the
  images handed in into [0, 1] floats inside this program."""
  images = prep(images) if prep is not None else images
  return base.select(take, attack.init(images, labels, keys, eps, targets, mask), state)


def _empty_state(attack, imgs, labs, kds, eps, tgs, put):
  """A batch of finished placeholder slots with the state's structure."""
  shapes = jax.eval_shape(attack.init, imgs, labs, kds, eps, tgs, np.zeros(labs.shape, bool))

  def fill(path, sd):
    done = getattr(path[-1], "key", None) == "done"
    return put(np.ones(sd.shape, sd.dtype) if done else np.zeros(sd.shape, sd.dtype))
  return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.partial(jax.jit, static_argnames=("attack", "apply", "n"), donate_argnames=("state",))
def _chunk(attack, apply, params, dyn, state, n):
  """n steps, and every slot's output (read back only for finished slots)."""
  a = attack._merge(dyn) if dyn is not None else attack
  state = base.run(a, a._models(apply, params, dyn), state, n)
  return state, a.output(state)


@functools.partial(jax.jit, static_argnames=("attack", "apply"))
def _finish(attack, apply, params, dyn, images, labels, raw, mask):
  a = attack._merge(dyn) if dyn is not None else attack
  return base.finalize(a.threat, a._models(apply, params, dyn), images, labels, raw, mask)



def examples_from_arrays(images, labels, keys=None, targets=None,
                         batch: int = 64) -> Iterator[dict]:
  """Batches (dicts) from whole arrays; ``keys`` (N,) per example or None
  (``fold_in(key(0), i)`` for example i)."""
  n = images.shape[0]
  if keys is None:
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n))
  kd = base.key_data(keys, n)
  for i in range(0, n, batch):
    b = {"image": images[i:i + batch], "label": labels[i:i + batch], "key": kd[i:i + batch]}
    if targets is not None:
      b["target"] = targets[i:i + batch]
    yield b


def _stream(batches: Iterable[dict]) -> Iterator[tuple]:
  for b in batches:
    images = np.asarray(b["image"], np.float32)
    n = images.shape[0]
    labels = np.asarray(b["label"], np.int32)
    kd = np.asarray(base.key_data(b["key"], n))
    tg = np.asarray(b["target"], np.int32) if "target" in b else np.full((n,), -1, np.int32)
    mk = np.asarray(b["mask"], bool) if "mask" in b else np.ones((n,), bool)
    for i in range(n):
      if mk[i]:
        yield images[i], labels[i], kd[i], tg[i]


@dataclasses.dataclass
class Stats:
  """How full the compiled batch stayed."""
  chunks: int = 0
  slot_steps: int = 0        # slots x chunk steps executed
  live_slot_steps: int = 0   # of which held an unfinished example at chunk start
  examples: int = 0

  @property
  def occupancy(self) -> float:
    return self.live_slot_steps / max(self.slot_steps, 1)


class Slots:
  """A compiled batch of ``batch_size`` slots running an iterative attack.

  The building block of :func:`run` and of the runner's refill pass
  (:mod:`jaxbench.engine.refill`): :meth:`fill` puts examples into empty slots,
  :meth:`advance` runs ``chunk_steps`` iterations of every slot and hands back
  the raw outputs (``attack.output``) of the examples that finished, whose
  slots become empty. Examples are named by caller-chosen integer ids.

  Args:
    attack: an :class:`~jaxbench.attacks.base.Iterative` attack, bound to the
      model (``for_model``/``prepare``).
    apply, params: the victim (``apply`` hashable: it keys the compiled steps).
    batch_size: slots.
    chunk_steps: iterations between refills.
    put: host array -> device array for batch-leading arrays (e.g. a
      ``device_put`` to ``NamedSharding(mesh, P('data'))``).
    prep: optional hashable function applied to the images inside the compiled
      refill (e.g. uint8 -> [0, 1] floats: XLA folds that conversion into the
      attack-space normalisation exactly as in a batched step, so results stay
      bit-identical to it).
  """

  def __init__(self, attack: base.Iterative, apply, params, *, batch_size: int,
               chunk_steps: int = 2, put=None, prep=None):
    if not isinstance(attack, base.Iterative):
      raise base.AttackInputError(f"refill needs an iterative attack, got {attack.name!r}")
    if int(chunk_steps) < 1:
      raise base.AttackInputError(f"refill: chunk_steps={chunk_steps!r}: expected an int >= 1")
    static, self.dyn = attack._split()
    # eps travels as an array: one compiled chunk serves every radius.
    self.static = static.erase_eps()
    self.eps_value = np.float32(attack.eps_array(1)[0])
    self.apply, self.params = apply, params
    self.batch_size, self.chunk_steps = int(batch_size), int(chunk_steps)
    self.put = put if put is not None else jnp.asarray
    self.prep = prep
    self.slot = np.full((self.batch_size,), -1, np.int64)
    self.state = None
    self.stats = Stats()

  def free(self) -> int:
    """Number of empty slots."""
    return int((self.slot < 0).sum())

  def live(self) -> int:
    """Number of slots holding an example."""
    return int((self.slot >= 0).sum())

  def fill(self, ids, images, labels, keys, targets=None, mask=None) -> None:
    """Starts examples in empty slots.

    Args:
      ids: (m,) int ids, m <= :meth:`free`.
      images: (m, H, W, C) float32 in [0, 1] (or what ``prep`` turns into them).
      labels: (m,) int32.
      keys: (m, 2) uint32 raw per-example key data.
      targets: (m,) int32 or None (-1: no given target).
      mask: (m,) bool or None; False marks an example the attack must leave
        untouched (an unreadable file): it finishes at once, as in a batch.
    """
    m = len(ids)
    if m == 0:
      return
    empty = np.flatnonzero(self.slot < 0)[:m]
    if len(empty) < m:
      raise ValueError(f"refill: {m} examples for {len(empty)} empty slots")
    images = np.asarray(images, None if self.prep is not None else np.float32)
    keys = np.asarray(keys)
    bsz = self.batch_size
    imgs = np.zeros((bsz,) + images.shape[1:], images.dtype)
    labs = np.zeros((bsz,), np.int32)
    kds = np.zeros((bsz,) + keys.shape[1:], keys.dtype)
    tgs = np.full((bsz,), -1, np.int32)
    mks = np.ones((bsz,), bool)
    take = np.zeros((bsz,), bool)
    imgs[empty], labs[empty], kds[empty] = images, labels, keys
    if targets is not None:
      tgs[empty] = targets
    if mask is not None:
      mks[empty] = mask
    take[empty] = True
    self.slot[empty] = np.asarray(ids, np.int64)
    eps = np.full((bsz,), self.eps_value, np.float32)
    put = self.put
    if self.state is None:
      x = jax.eval_shape(self.prep, imgs) if self.prep is not None else imgs
      self.state = _empty_state(self.static, x, labs, kds, eps, tgs, put)
    self.state = _refill(self.static, self.prep, self.state, put(imgs), put(labs), put(kds), put(eps),
                         put(tgs), put(take), put(mks))

  def advance(self) -> list[tuple[int, dict]]:
    """Runs one chunk; returns [(id, raw output dict of host arrays)] of finished examples."""
    live = self.live()
    if live == 0:
      return []
    self.state, raw = _chunk(self.static, self.apply, self.params, self.dyn, self.state,
                             self.chunk_steps)
    self.stats.chunks += 1
    self.stats.slot_steps += self.batch_size * self.chunk_steps
    self.stats.live_slot_steps += live * self.chunk_steps
    done = np.asarray(jax.device_get(self.state["done"]))
    fin = np.flatnonzero(done & (self.slot >= 0))
    out = []
    if fin.size:
      raw = jax.device_get(raw)
      for j in fin:
        out.append((int(self.slot[j]), {k: np.asarray(v[j]) for k, v in raw.items()}))
        self.slot[j] = -1
    self.stats.examples += len(out)
    return out


def run(attack: base.Iterative, apply, params, batches: Iterable[dict], *,
        batch_size: int, chunk_steps: int = 2, sharding=None):
  """Runs an iterative attack over a stream with survivor refill.

  Args:
    attack: an :class:`~jaxbench.attacks.base.Iterative` attack (bound to
      the model with ``for_model``/``prepare`` as needed).
    apply, params: the victim.
    batches: iterable of dicts with 'image' (b, H, W, C) in [0, 1], 'label'
      (b,), 'key' (b,) per-example keys, optional 'target' (b,) and 'mask'
      (b,) (False rows are skipped).
    batch_size: compiled batch (slots).
    chunk_steps: iterations between refills.
    sharding: optional sharding for batch-leading arrays (e.g.
      ``NamedSharding(mesh, P('data'))``).

  Returns:
    (AttackResult with host numpy arrays in stream order, :class:`Stats`).
  """
  put = (lambda x: jax.device_put(x, sharding)) if sharding is not None else jnp.asarray
  slots = Slots(attack, apply, params, batch_size=batch_size, chunk_steps=chunk_steps,
                put=put)
  stream = _stream(batches)
  done_raw: dict[int, dict] = {}
  inputs: dict[int, tuple] = {}
  next_id = 0
  exhausted = False
  while True:
    fresh = []
    while not exhausted and len(fresh) < slots.free():
      try:
        ex = next(stream)
      except StopIteration:
        exhausted = True
        break
      fresh.append(next_id)
      inputs[next_id] = ex
      next_id += 1
    if fresh:
      slots.fill(fresh, np.stack([inputs[e][0] for e in fresh]),
                 np.asarray([inputs[e][1] for e in fresh], np.int32),
                 np.stack([inputs[e][2] for e in fresh]),
                 np.asarray([inputs[e][3] for e in fresh], np.int32))
    if slots.live() == 0:
      break
    done_raw.update(slots.advance())
  stats = slots.stats
  stats.examples = next_id
  return _finalize_all(slots.static, apply, params, slots.dyn, inputs, done_raw,
                       batch_size, put), stats


def _finalize_all(static, apply, params, dyn, inputs, done_raw, bsz, put):
  ids = sorted(done_raw)
  parts = []
  for i in range(0, len(ids), bsz):
    chunk = ids[i:i + bsz]
    pad = bsz - len(chunk)
    rows = chunk + [chunk[0]] * pad
    imgs = np.stack([inputs[e][0] for e in rows])
    labs = np.asarray([inputs[e][1] for e in rows], np.int32)
    raw = {k: np.stack([done_raw[e][k] for e in rows]) for k in done_raw[chunk[0]]}
    mask = np.arange(bsz) < len(chunk)
    res = _finish(static, apply, params, dyn, put(imgs), put(labs),
                  jax.tree.map(put, raw), put(mask))
    res = jax.device_get(res)
    parts.append(jax.tree.map(lambda a, k=len(chunk): np.asarray(a)[:k], res))
  if not parts:
    raise base.AttackInputError("refill: the stream held no examples")
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def run_ensemble(attack: ensemble.Ensemble, apply, params, images, labels, keys=None, *,
                 batch_size: int, chunk_steps: int = 2, sharding=None):
  """An ensemble's stages with refill: each stage streams only the survivors.

  Returns:
    (per-example dict: adv_images, robust (N,), broken_by (N,) stage index or
    -1, robust_stage (N, S)), list of per-stage :class:`Stats`.
  """
  n = images.shape[0]
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32)
  kd = np.asarray(base.key_data(
      keys if keys is not None else
      jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n)), n))
  adv = images.copy()
  robust = None
  broken_by = np.full((n,), -1, np.int64)
  stage_robust, stats = [], []
  for s, a in enumerate(attack.attacks):
    idx = np.arange(n) if robust is None else np.flatnonzero(robust)
    if idx.size == 0:
      stage_robust.append(np.zeros((n,), bool))
      stats.append(Stats())
      continue
    skd = np.asarray(jax.random.key_data(base.fold(jnp.asarray(kd[idx]), s)))
    b = [{"image": images[idx], "label": labels[idx], "key": skd}]
    if isinstance(a, base.Iterative):
      res, st = run(a, apply, params, b, batch_size=batch_size, chunk_steps=chunk_steps,
                    sharding=sharding)
    else:
      res = jax.device_get(a(apply, params, images[idx], labels[idx], skd))
      st = Stats(examples=int(idx.size))
    d = res.diagnostics
    if robust is None:
      robust = np.zeros((n,), bool)
      robust[idx] = np.asarray(d["clean_correct"])
    ok = np.asarray(res.success)
    adv[idx[ok]] = np.asarray(res.adv_images)[ok]
    broken_by[idx[ok]] = s
    robust[idx[ok]] = False
    stage_robust.append(robust.copy())
    stats.append(st)
  return {"adv_images": adv, "robust": robust, "broken_by": broken_by,
          "robust_stage": np.stack(stage_robust, axis=1)}, stats
