"""Survivor refill: keep the compiled batch full of unfinished examples.

Attacks that stop per example (BIM/MIM/DIM with early stop, NES/SPSA, Square,
DeepFool, APGD, minimal-eps search) finish examples at different iterations;
a plain batched run pays for the slowest example in every slot. Here the
attack runs over a fixed set of slots and, every ``chunk_steps`` iterations,
finished examples leave and fresh ones take their slots, so the compiled step
keeps working on live examples.

Everything between two returns to the host happens in one compiled program
(:func:`_launch`): a ``while_loop`` whose body runs ``chunk_steps`` attack
iterations, copies the raw outputs (``attack.output``) of finished slots into a
device-side output buffer and moves fresh examples into their slots from a
device-side reservoir of initialised states. The host only tops the
reservoir up (:func:`_topup`, one batch of fresh examples, initialised inside
the program), takes full scoring batches (``hold`` batches) of finished outputs,
and reads back a handful of counters per launch. A launch ends when a scoring
batch has finished, when the reservoir runs dry while the stream has more, after
:data:`MAX_LAUNCH_STEPS` iterations, or, once the stream is exhausted, when
so few slots are left that a smaller compiled slot set (half, quarter, eighth)
holds them: the survivors are then compacted into it (:func:`_shrink`), so the
tail of a pass does not run empty slots (on a CPU a step costs about in
proportion to its slots).

Every example owns its iteration counter, keys and state (see
:class:`~jaxbench.attacks.base.Iterative`), a step leaves finished examples
bit-identical, and states move between reservoir, slots and buffer by copies
only, so results equal running each example alone; finished examples are
finalised (projection + one re-evaluation) in full batches.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.attacks import base, ensemble
from jaxbench.attacks.per_example import expand

# Attack iterations one launch may run at most: bounds the time between the
# host's checks (preemption, progress) for attacks whose examples run long.
MAX_LAUNCH_STEPS = 32
# Smallest compiled slot set is batch_size / 2**MAX_SHRINKS (one compile each).
MAX_SHRINKS = 3


def _rows(tree, idx):
  """Rows ``idx`` of every leaf (a copy: bits unchanged)."""
  return jax.tree.map(lambda a: a[idx], tree)


@functools.partial(jax.jit, static_argnames=("attack", "prep"),
                   donate_argnames=("res", "res_ids"))
def _topup(attack, prep, res, res_ids, ptr, left, images, labels, keys, eps, targets,
           mask, ids):
  """The reservoir's ``left`` unused rows (from ``ptr``) moved to its front, then
  the fresh examples' initial states behind them.

  Args:
    res: reservoir states, (R, ...) leaves; res_ids (R,) int32 example ids.
    ptr, left: int32 scalars, first unused row and unused rows (left + b <= R).
    images ... mask: b fresh examples (``Slots.add``); ``prep`` (None: identity)
      turns the images handed in into [0, 1] floats inside this program.
    ids: (b,) int32 their example ids.

  Returns:
    (reservoir, reservoir ids); rows beyond left + b are unused.
  """
  images = prep(images) if prep is not None else images
  fresh = attack.init(images, labels, keys, eps, targets, mask)
  r, b = res_ids.shape[0], ids.shape[0]
  j = jnp.arange(r)
  old = jnp.clip(ptr + j, 0, r - 1)
  new = jnp.clip(j - left, 0, b - 1)
  keep = j < left
  res = jax.tree.map(lambda o, f: jnp.where(expand(keep, o.ndim), o[old], f[new]), res, fresh)
  return res, jnp.where(keep, res_ids[old], ids[new])


def _exchange(attack, c, res_n, out_rows):
  """Finished slots hand their raw outputs to the buffer; free slots take the
  reservoir's next examples. ``c['count'] + slots <= out_rows`` (the caller's)."""
  st, ids = c["state"], c["ids"]
  occ = ids >= 0
  fin = occ & st["done"]
  pos = jnp.where(fin, c["count"] + jnp.cumsum(fin) - 1, out_rows)   # out_rows: dropped
  out = jax.tree.map(lambda o, r: o.at[pos].set(r, mode="drop"), c["out"], attack.output(st))
  out_ids = c["out_ids"].at[pos].set(ids, mode="drop")
  free = ~occ | fin
  src = c["ptr"] + jnp.cumsum(free) - 1
  take = free & (src < res_n)
  src = jnp.clip(src, 0, c["res_ids"].shape[0] - 1)
  st = base.select(take, _rows(c["res"], src), st)
  ids = jnp.where(take, c["res_ids"][src], jnp.where(fin, -1, ids))
  return dict(c, state=st, ids=ids, out=out, out_ids=out_ids,
              count=c["count"] + fin.sum(dtype=jnp.int32),
              ptr=c["ptr"] + take.sum(dtype=jnp.int32))


@functools.partial(jax.jit, static_argnames=("attack", "apply", "chunk_steps", "batch"),
                   donate_argnames=("carry",))
def _launch(attack, apply, params, dyn, carry, consumed, count, ptr, res_n, more, shrink_at,
            *, chunk_steps, batch):
  """Runs the slots until the host is needed (see the module docstring).

  Args:
    carry: 'state' (S slots), 'ids' (S,) int32 (-1: empty), 'res'/'res_ids'
      (the reservoir), 'out'/'out_ids' (the output buffer, batch + batch_size rows).
    consumed: int32, leading buffer rows already taken for scoring (dropped).
    count: int32, buffer rows in use before dropping them; ptr, res_n: int32,
      first unused reservoir row and rows filled.
    more: bool, the stream has examples the reservoir does not hold yet.
    shrink_at: int32, stop once the stream is dry and at most this many slots
      are occupied (0: never).
    batch: stop once this many outputs are buffered (what the host scores).

  Returns:
    (carry, int32 [buffer rows, reservoir ptr, occupied slots, iterations,
    occupied slot-iterations]).
  """
  a = attack._merge(dyn) if dyn is not None else attack
  models = a._models(apply, params, dyn)
  out_rows = carry["out_ids"].shape[0]
  roll = lambda v: jnp.roll(v, -consumed, axis=0)   # noqa: E731
  c = dict(carry, out=jax.tree.map(roll, carry["out"]), out_ids=roll(carry["out_ids"]),
           count=count - consumed, ptr=ptr, i=jnp.int32(0), live=jnp.int32(0))
  c = _exchange(a, c, res_n, out_rows)

  def cond(c):
    occ = c["ids"] >= 0
    n = occ.sum(dtype=jnp.int32)
    dry = c["ptr"] >= res_n
    starving = more & dry & jnp.any(~occ)
    small = ~more & dry & (n <= shrink_at)
    return ((c["count"] < batch) & (n > 0) & ~starving & ~small
            & (c["i"] < MAX_LAUNCH_STEPS))

  def body(c):
    n = (c["ids"] >= 0).sum(dtype=jnp.int32)
    c = dict(c, state=base.run(a, models, c["state"], chunk_steps), i=c["i"] + chunk_steps,
             live=c["live"] + n * chunk_steps)
    return _exchange(a, c, res_n, out_rows)

  c = jax.lax.while_loop(cond, body, c)
  info = jnp.stack([c["count"], c["ptr"], (c["ids"] >= 0).sum(dtype=jnp.int32), c["i"],
                    c["live"]])
  return {k: c[k] for k in carry}, info


@functools.partial(jax.jit, static_argnames=("size",))   # smaller: no buffer to reuse
def _shrink(state, ids, size):
  """The occupied slots (at most ``size``) moved into a set of ``size`` slots."""
  order = jnp.argsort(ids < 0, stable=True)[:size]
  return _rows(state, order), ids[order]


@functools.partial(jax.jit, static_argnames=("batch",))
def _take(out, out_ids, start, batch):
  """Buffer rows start, start + 1, ... (batch of them, wrapping around the buffer's
  end: a slice would be shifted back to fit, and the rows past the finished ones
  only pad the scoring batch)."""
  idx = (start + jnp.arange(batch)) % out_ids.shape[0]
  return _rows(out, idx), out_ids[idx]


@functools.partial(jax.jit, static_argnames=("attack", "apply"))
def _finish(attack, apply, params, dyn, images, labels, raw, mask):
  a = attack._merge(dyn) if dyn is not None else attack
  return base.finalize(a.threat, a._models(apply, params, dyn), images, labels, raw, mask)


def _placeholders(shapes, n, put):
  """n finished, empty rows of a state (or output) structure: zeros, 'done' True."""
  def fill(path, sd):
    done = getattr(path[-1], "key", None) == "done"
    return put((np.ones if done else np.zeros)((n,) + sd.shape[1:], sd.dtype))
  return jax.tree_util.tree_map_with_path(fill, shapes)


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
  """How full the compiled slots stayed."""
  chunks: int = 0            # launches of the slot program
  slot_steps: int = 0        # slots x iterations executed
  live_slot_steps: int = 0   # of which held an example
  examples: int = 0
  shrinks: int = 0           # compactions into a smaller slot set

  @property
  def occupancy(self) -> float:
    return self.live_slot_steps / max(self.slot_steps, 1)


class Slots:
  """Compiled slots running an iterative attack, fed from a device reservoir.

  The building block of :func:`run` and of the runner's refill pass
  (:mod:`jaxbench.engine.refill`). The host loop is::

      while True:
        while slots.room() and <examples left>: slots.add(<up to batch_size examples>)
        slots.advance(more=<examples left>)
        for ids, raw, n in slots.ready(): <score raw's first n rows (examples ids)>
        if slots.idle() and not <examples left>: break
      for ids, raw, n in slots.ready(final=True): <score>

  Examples are named by caller-chosen int ids (>= 0, < 2**31).

  Args:
    attack: an :class:`~jaxbench.attacks.base.Iterative` attack, bound to the
      model (``for_model``/``prepare``).
    apply, params: the victim (``apply`` hashable: it keys the compiled steps).
    batch_size: slots and the reservoir's top-up batch.
    chunk_steps: iterations between exchanges of finished examples.
    hold: scoring batches a launch runs for (:meth:`ready` hands out
      ``hold * batch_size`` examples at a time): every launch of a program
      costs a constant on top of its work (~25 ms on a loaded 2-core CPU for a
      small CNN), so fewer, longer launches pay it less often.
    put: host array -> device array for batch-leading arrays (e.g. a
      ``device_put`` to ``NamedSharding(mesh, P('data'))``).
    prep: optional hashable function applied to the images inside the compiled
      top-up (e.g. uint8 -> [0, 1] floats: XLA folds that conversion into the
      attack-space normalisation exactly as in a batched step, so results stay
      bit-identical to it).
    multiple: slot sets stay multiples of this (the mesh's data size).
  """

  def __init__(self, attack: base.Iterative, apply, params, *, batch_size: int,
               chunk_steps: int = 1, put=None, prep=None, multiple: int = 1,
               hold: int = 2):
    if not isinstance(attack, base.Iterative):
      raise base.AttackInputError(f"refill needs an iterative attack, got {attack.name!r}")
    if int(chunk_steps) < 1:
      raise base.AttackInputError(f"refill: chunk_steps={chunk_steps!r}: expected an int >= 1")
    static, self.dyn = attack._split()
    # eps travels as an array: one compiled program serves every radius.
    self.static = static.erase_eps()
    self.eps_value = np.float32(attack.eps_array(1)[0])
    self.apply, self.params = apply, params
    self.batch_size, self.chunk_steps = int(batch_size), int(chunk_steps)
    self.put = put if put is not None else jnp.asarray
    self.prep = prep
    b, m = self.batch_size, max(1, int(multiple))
    self.hold = max(1, int(hold))
    self.score_batch = self.hold * b   # rows per scoring batch (ready())
    # Compiled slot sets for the tail: halves while they stay multiples of m.
    self.sizes = [b]
    while (len(self.sizes) <= MAX_SHRINKS and self.sizes[-1] % 2 == 0
           and (self.sizes[-1] // 2) % m == 0):
      self.sizes.append(self.sizes[-1] // 2)
    self.size = b
    self.carry = None
    self.count = 0      # output buffer rows in use
    self.consumed = 0   # of which taken for scoring (dropped at the next launch)
    self.ptr = 0        # first unused reservoir row
    self.res_n = 0      # reservoir rows filled
    self.occupied = 0
    self.stats = Stats()

  def room(self) -> bool:
    """Whether the reservoir can take a batch of ``batch_size`` more examples."""
    return self.res_n - self.ptr <= self.score_batch

  def idle(self) -> bool:
    """No example in a slot or in the reservoir."""
    return self.occupied == 0 and self.ptr >= self.res_n

  def _create(self, images, labs, kds, eps, tgs):
    b, put = self.batch_size, self.put
    rows = self.score_batch + b   # reservoir and output buffer
    x = jax.eval_shape(self.prep, images) if self.prep is not None else images
    shapes = jax.eval_shape(self.static.init, x, labs, kds, eps, tgs, np.zeros((b,), bool))
    raw = jax.eval_shape(self.static.output, shapes)
    self.carry = {"state": _placeholders(shapes, b, put), "ids": put(np.full((b,), -1, np.int32)),
                  "res": _placeholders(shapes, rows, put),
                  "res_ids": put(np.full((rows,), -1, np.int32)),
                  "out": _placeholders(raw, rows, put),
                  "out_ids": put(np.full((rows,), -1, np.int32))}

  def add(self, ids, images, labels, keys, targets=None, mask=None) -> None:
    """Puts examples into the reservoir (initialised there, on the device).

    Args:
      ids: (m,) int ids, m <= ``batch_size`` (and :meth:`room` True).
      images: (m, H, W, C) float32 in [0, 1] (or what ``prep`` turns into them).
      labels: (m,) int32.
      keys: (m, 2) uint32 raw per-example key data.
      targets: (m,) int32 or None (-1: no given target).
      mask: (m,) bool or None; False marks an example the attack must leave
        untouched (an unreadable file): it finishes at once, as in a batch.
    """
    m, b = len(ids), self.batch_size
    if m == 0:
      return
    if m > b or not self.room():
      raise ValueError(f"refill: {m} examples for a reservoir with {self.res_n - self.ptr} "
                       f"of {self.score_batch + b} rows in use: expected at most batch_size={b} examples, "
                       "added while Slots.room() is True")
    images = np.asarray(images, None if self.prep is not None else np.float32)
    keys = np.asarray(keys)
    pad = lambda a, v: np.concatenate(   # noqa: E731
        [a, np.full((b - m,) + a.shape[1:], v, a.dtype)]) if m < b else a
    imgs = pad(images, 0)
    labs = pad(np.asarray(labels, np.int32), 0)
    kds = pad(keys, 0)
    tgs = pad(np.full((m,), -1, np.int32) if targets is None
              else np.asarray(targets, np.int32), -1)
    mks = pad(np.ones((m,), bool) if mask is None else np.asarray(mask, bool), False)
    eps = np.full((b,), self.eps_value, np.float32)
    put = self.put
    if self.carry is None:
      self._create(imgs, labs, kds, eps, tgs)
    left = self.res_n - self.ptr
    res, res_ids = _topup(self.static, self.prep, self.carry["res"], self.carry["res_ids"],
                          np.int32(self.ptr), np.int32(left), put(imgs), put(labs), put(kds),
                          put(eps), put(tgs), put(mks), put(pad(np.asarray(ids, np.int32), -1)))
    self.carry.update(res=jax.tree.map(put, res), res_ids=put(res_ids))
    self.ptr, self.res_n = 0, left + m

  def advance(self, more: bool) -> None:
    """One launch of the slot program (see the module docstring).

    Args:
      more: whether examples beyond the reservoir's may still be added.
    """
    if self.carry is None:
      return
    if self.count - self.consumed >= self.score_batch:   # the buffer could overflow
      raise ValueError(f"refill: {self.count - self.consumed} finished examples not taken: "
                       "expected ready() to hand out every full scoring batch before advance()")
    smaller = [s for s in self.sizes if s < self.size]
    shrink_at = 0 if more or not smaller else smaller[0]
    carry, info = _launch(self.static, self.apply, self.params, self.dyn, self.carry,
                          np.int32(self.consumed), np.int32(self.count), np.int32(self.ptr),
                          np.int32(self.res_n), np.bool_(more), np.int32(shrink_at),
                          chunk_steps=self.chunk_steps, batch=self.score_batch)
    self.carry = jax.tree.map(self.put, carry)
    self.count, self.ptr, self.occupied, steps, live = (int(v) for v in jax.device_get(info))
    self.consumed = 0
    st = self.stats
    st.chunks += 1
    st.slot_steps += self.size * steps
    st.live_slot_steps += live
    if not more and self.ptr >= self.res_n and 0 < self.occupied <= shrink_at:
      # The tail: survivors into the smallest compiled slot set that holds them.
      self.size = min(s for s in self.sizes if s >= self.occupied)
      state, ids = _shrink(self.carry["state"], self.carry["ids"], self.size)
      self.carry.update(state=jax.tree.map(self.put, state), ids=self.put(ids))
      st.shrinks += 1

  def ready(self, final: bool = False) -> Iterator[tuple[np.ndarray, dict, int]]:
    """Finished examples, ``score_batch`` at a time (``final``: also the rest).

    Yields:
      (ids (n,) int, raw outputs: dict of (score_batch, ...) device arrays whose
      first n rows belong to ``ids``, n).
    """
    b = self.score_batch
    while self.count - self.consumed >= b or (final and self.count > self.consumed):
      n = min(b, self.count - self.consumed)
      raw, ids = _take(self.carry["out"], self.carry["out_ids"], np.int32(self.consumed), b)
      self.consumed += n
      self.stats.examples += n
      yield np.asarray(jax.device_get(ids))[:n], jax.tree.map(self.put, raw), n


def run(attack: base.Iterative, apply, params, batches: Iterable[dict], *,
        batch_size: int, chunk_steps: int = 1, sharding=None):
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
  multiple = len(sharding.device_set) if sharding is not None else 1
  slots = Slots(attack, apply, params, batch_size=batch_size, chunk_steps=chunk_steps,
                put=put, multiple=multiple)
  stream = _stream(batches)
  inputs: dict[int, tuple] = {}
  parts: list[tuple] = []
  exhausted = False

  def finish(ids, raw, n):
    size = slots.score_batch
    rows = list(ids) + [int(ids[0])] * (size - n)
    imgs = np.stack([inputs[e][0] for e in rows])
    labs = np.asarray([inputs[e][1] for e in rows], np.int32)
    res = _finish(slots.static, apply, params, slots.dyn, put(imgs), put(labs), raw,
                  put(np.arange(size) < n))
    parts.append((ids, jax.tree.map(lambda a: np.asarray(a)[:n], jax.device_get(res))))

  while True:
    while not exhausted and slots.room():
      fresh = []
      for ex in stream:
        fresh.append(ex)
        if len(fresh) == batch_size:
          break
      exhausted = len(fresh) < batch_size
      ids = list(range(len(inputs), len(inputs) + len(fresh)))
      inputs.update(zip(ids, fresh))
      if fresh:
        slots.add(ids, np.stack([e[0] for e in fresh]), np.asarray([e[1] for e in fresh]),
                  np.stack([e[2] for e in fresh]), np.asarray([e[3] for e in fresh]))
    slots.advance(more=not exhausted)
    for batch in slots.ready():
      finish(*batch)
    if exhausted and slots.idle():
      break
  for batch in slots.ready(final=True):
    finish(*batch)
  if not parts:
    raise base.AttackInputError("refill: the stream held no examples")
  order = np.argsort(np.concatenate([ids for ids, _ in parts]))   # stream order
  return jax.tree.map(lambda *xs: np.concatenate(xs)[order], *[r for _, r in parts]), \
      slots.stats


def run_ensemble(attack: ensemble.Ensemble, apply, params, images, labels, keys=None, *,
                 batch_size: int, chunk_steps: int = 1, sharding=None):
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
