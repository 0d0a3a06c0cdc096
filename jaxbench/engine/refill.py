"""Survivor refill as a runner mode: an attack pass that keeps its batch full.

With ``config.attack.refill = True`` an attack pass whose attack stops per
example (a :class:`~jaxbench.attacks.base.Iterative` attack: BIM/MIM/DIM/PGD
with early stop, NES/SPSA, Square, DeepFool, APGD, min_eps searches, transfer)
does not run the runner's fixed per-batch step, in which a batch lasts as long
as its slowest example. Its examples stream instead through the
``batch_size`` slots of :class:`jaxbench.attacks.refill.Slots`: every
``config.attack.chunk_steps`` iterations, inside one compiled program,
finished examples leave for a device-side output buffer and fresh ones take
their slots from a device-side reservoir that the host tops up a batch at a
time; the pass's tail is compacted into smaller slot sets. Finished examples
are then scored in full batches by :func:`_score`, which does what the fixed
step does after its attack: re-evaluate the clean image (``clean_correct1``),
project and re-evaluate the adversarial image once (``finalize``), score it
(top-1/top-5, finiteness) and keep the attack's per-example diagnostics
(``atk_*``).

Per-example outputs equal the fixed loop's (same keys, values and dtypes):
every example owns its keys (``fold_in(key(seed), uid)``, never its slot),
iteration counter and state, and the attack step leaves finished examples
untouched. Unreadable files (mask False) enter a slot finished, as they sit
in a fixed batch. Checkpoints hold whole finished examples only, so a pass
stopped by SIGTERM resumes from the examples still missing; examples that
were in flight are simply attacked again.

Not covered (the fixed loop runs, and the row says why): attacks that do not
stop per example (ensembles, C&W) and multi-host runs (slots are filled from
this host's examples only).

This module takes everything it needs as arguments: :func:`jaxbench.engine.loop.run_pass`
calls :func:`plan` with the suite's settings (``Hooks.refill``: the adv suite reads
``config.attack``) and, when it returns settings, :func:`run`.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Iterable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxbench import precision as precision_lib, stopping, transforms
from jaxbench.attacks import base, refill
from jaxbench.engine import step as step_lib
from jaxbench.model_setup import ConfigError


@dataclasses.dataclass(frozen=True)
class Settings:
  """``config.attack.refill`` / ``config.attack.chunk_steps``."""
  refill: bool = False
  chunk_steps: int = 1


def settings(section) -> Settings:
  """The refill settings of an attack section (``config.attack``; off when None/empty).

  Raises:
    ConfigError: ``refill`` not a bool or ``chunk_steps`` not an int >= 1.
  """
  if not section:
    return Settings()
  on = section.get("refill", False)
  chunk = section.get("chunk_steps", Settings.chunk_steps)
  if not isinstance(on, (bool, np.bool_)):
    raise ConfigError(f"config.attack.refill={on!r}: expected True or False")
  if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
    raise ConfigError(f"config.attack.chunk_steps={chunk!r}: expected an int >= 1 "
                      "(attack iterations between refills)")
  return Settings(bool(on), int(chunk))


def why_not(attack) -> Optional[str]:
  """Why an attack pass cannot refill (None: it can)."""
  if not isinstance(attack, base.Iterative):
    return f"{getattr(attack, 'name', type(attack).__name__)} does not stop per example"
  if jax.process_count() > 1:
    return "multi-host run (slots are filled from one host's examples)"
  return None


def plan(transform, s: Optional[Settings]) -> tuple[Optional[Settings], Optional[dict]]:
  """(settings to run refill with, or None for the fixed loop; what the row records).

  Args:
    transform: the pass's bound transform.
    s: the suite's refill settings (None: the suite has none, the fixed loop runs).

  The record is None for passes that are not attacks or whose suite does not
  ask for refill, so their rows are unchanged.
  """
  attack = getattr(transform, "obj", None)
  if s is None or not isinstance(attack, base.Attack) or not s.refill:
    return None, None
  reason = why_not(attack)
  if reason is not None:
    return None, {"ran": False, "reason": reason}
  return s, None


# --- scoring finished examples (what the fixed step does after its attack) ----------

def to_unit(images):
  """uint8 -> [0, 1] float32, as the runner's step. Applied inside every compiled
  function that takes images (never ahead of them): XLA folds it into the
  attack-space normalisation exactly as in the fixed step, which keeps results
  bit-identical to it."""
  return images.astype(jnp.float32) / 255.0


@functools.partial(jax.jit, static_argnames=("seed",))
def _keys(uids, seed):
  """Raw per-example keys ``fold_in(key(seed), uid)``, as the runner's step."""
  return jax.random.key_data(transforms.example_keys(seed, uids))


@functools.partial(jax.jit, static_argnames=("attack", "score"))
def _score(attack, score, params, dyn, counts, ex, raw):
  """Finished examples -> the fixed step's per-example outputs and updated counts.

  Args:
    ex: 'image' (n, H, W, C) uint8 clean images, 'label', optional 'labels',
      'mask', 'index', 'bad'.
    raw: the attack's raw outputs (``attack.output``) of these examples.
  """
  x, mask = to_unit(ex["image"]), ex["mask"]
  out = {}
  _, clean1, _ = score.correctness(score(params, x), ex)
  out["clean_correct1"] = clean1 & mask
  a = attack._merge(dyn) if dyn is not None else attack
  result = base.finalize(a.threat, a._models(score, params, dyn), x, ex["label"], raw, mask)
  out.update(transforms.attack_extras(result, x.shape[0]))
  logits, finite = score.scored_and_finite(params, result.adv_images)
  logits = jnp.where(finite[:, None], logits, -jnp.inf)
  top, c1, c5 = score.correctness(logits, ex)
  c1, c5 = c1 & finite & mask, c5 & finite & mask
  out.update({"index": ex["index"], "bad": ex["bad"], "pred": top[:, 0], "top5": top,
              "correct1": c1, "correct5": c5, "finite": finite | ~mask})
  counts = {"n": counts["n"] + mask.sum(), "correct1": counts["correct1"] + c1.sum(),
            "correct5": counts["correct5"] + c5.sum()}
  return out, counts


# --- the pass loop -------------------------------------------------------------------

_EXAMPLE_KEYS = ("image", "label", "labels", "mask", "index", "bad")


def run(s: Settings, attack: base.Iterative, model, params, batches: Iterable[dict], *,
        batch_size: int, seed: int, mesh, project, multilabel: bool, num_classes: int,
        counts: dict, store, pid: str, chunk_id: int, checkpoint_every: int,
        stop_agreed: Callable[[], bool], bar=None, what: str = "") -> tuple:
  """Runs an attack pass with survivor refill.

  Args:
    s: :func:`plan`'s settings.
    attack: the bound attack (``Transform.bind``).
    model, params: the victim (``params`` already on ``mesh``).
    batches: the pass's host batches (``runner.input_batches``): dicts of
      'image' uint8 (b, S, S, 3), 'label', 'index' (-1: padding), 'uid',
      'mask', 'bad'[, 'labels'].
    batch_size: slots (the global batch, a multiple of the mesh's data size).
    seed: the run seed (keys ``fold_in(key(seed), uid)``).
    mesh: slots and scoring batches are sharded over its 'data' axis.
    project, multilabel, num_classes: the set's label space, as the step's.
    counts: the device counters so far ({'n', 'correct1', 'correct5'}).
    store, pid, chunk_id: finished examples are written with
      ``store.write_chunk(pid, chunk_id + i, outputs)``, i = 0, 1, ...
    checkpoint_every: batch_size examples written per chunk, times this.
    stop_agreed: the preemption check (True: write what is finished and stop).
    bar: optional :class:`jaxbench.progress.PassBar`.
    what: the pass, for the preemption message.

  Returns:
    (list of per-example output dicts written, updated counts,
    {'ran': True, 'chunk_steps', 'occupancy', 'chunks' (launches of the slot
    program), 'slot_steps', 'live_slot_steps', 'shrinks' (tail compactions)}).

  Raises:
    jaxbench.stopping.Preempted: after SIGTERM, once finished examples are written.
  """
  sharding = NamedSharding(mesh, P("data"))
  put = lambda a: jax.device_put(a, sharding)   # noqa: E731
  # The fixed step's scorer: finished examples are scored exactly as it scores them.
  score = step_lib.scorer(model, project, num_classes, multilabel)
  with precision_lib.scope(model.precision):
    slots = refill.Slots(attack, score, params, batch_size=batch_size,
                         chunk_steps=s.chunk_steps, put=put, prep=to_unit,
                         multiple=mesh.shape["data"])
  bsz = slots.batch_size
  every = max(1, int(checkpoint_every))
  stream = iter(batches)
  pending: list[dict] = []      # examples read, not yet in the reservoir
  inputs: dict[int, dict] = {}  # examples in the reservoir, a slot or finished, by id
  buffer, parts = [], []
  state = {"batches": 0, "scored": 0, "seen": 0, "chunks": 0, "next": 0}
  exhausted = False

  def read() -> bool:
    try:
      b = next(stream)
    except StopIteration:
      return False
    state["batches"] += 1
    kd = np.asarray(jax.device_get(_keys(jnp.asarray(b["uid"]), seed)))
    for i in np.flatnonzero(np.asarray(b["index"]) >= 0):
      ex = {k: np.asarray(b[k][i]) for k in _EXAMPLE_KEYS if k in b}
      ex["key"] = kd[i]
      pending.append(ex)
    return True

  def write(flush: bool) -> None:
    # Every checkpoint_every batches' worth of examples, as the fixed loop.
    if buffer and (flush or sum(len(p["index"]) for p in buffer) >= every * bsz):
      chunk = {k: np.concatenate([p[k] for p in buffer]) for k in buffer[0]}
      store.write_chunk(pid, chunk_id + state["chunks"], chunk)
      state["chunks"] += 1
      parts.append(chunk)
      buffer.clear()

  def score_finished(ids, raw, n: int) -> None:
    nonlocal counts
    if bar is not None and state["scored"] == 0:
      bar.first_batch(0, time.perf_counter() - t_first, True)
    rows = [inputs.pop(int(i)) for i in ids]
    pad = rows[0] | {"mask": np.bool_(False), "index": np.int64(-1)}
    rows += [pad] * (slots.score_batch - n)
    ex = {k: put(np.stack([r[k] for r in rows])) for k in _EXAMPLE_KEYS if k in rows[0]}
    with precision_lib.scope(model.precision):
      out, counts = _score(slots.static, score, params, slots.dyn, counts, ex, raw)
    out = jax.tree.map(np.asarray, jax.device_get(out))
    keep = out["index"] >= 0
    buffer.append({k: v[keep] for k, v in out.items()})
    state["scored"] += 1
    state["seen"] += int(keep.sum())
    if bar is not None:
      bar.update(state["batches"], state["seen"])

  t_first = time.perf_counter()
  while True:
    # The device reservoir takes a batch whenever it has room for one.
    while slots.room() and (pending or not exhausted):
      while not exhausted and len(pending) < bsz:
        exhausted = not read()
      fresh, pending[:] = pending[:bsz], pending[bsz:]
      if not fresh:
        break
      ids = list(range(state["next"], state["next"] + len(fresh)))
      state["next"] += len(fresh)
      inputs.update(zip(ids, fresh))
      with precision_lib.scope(model.precision):
        slots.add(ids, np.stack([e["image"] for e in fresh]),
                  np.asarray([e["label"] for e in fresh], np.int32),
                  np.stack([e["key"] for e in fresh]),
                  mask=np.asarray([e["mask"] for e in fresh], bool))
    more = bool(pending) or not exhausted
    with precision_lib.scope(model.precision):
      slots.advance(more)
    for batch in slots.ready():
      score_finished(*batch)
      write(flush=False)
    if not more and slots.idle():
      break
    if stop_agreed():
      for batch in slots.ready(final=True):
        score_finished(*batch)
      write(flush=True)
      raise stopping.Preempted(
          f"stopped by SIGTERM during the refill pass of {what} ({state['seen']} new "
          "examples checkpointed); rerun the same command to resume")
  for batch in slots.ready(final=True):
    score_finished(*batch)
  write(flush=True)
  st = slots.stats
  info = {"ran": True, "chunk_steps": s.chunk_steps, "occupancy": round(st.occupancy, 4),
          "chunks": st.chunks, "slot_steps": st.slot_steps,
          "live_slot_steps": st.live_slot_steps, "shrinks": st.shrinks}
  return parts, counts, info
