"""Exact cosine top-k of every query among a streamed corpus, in JAX, sharded.

The corpus is streamed in steps of ``chunk`` rows per process; each step's rows are split
over the mesh's 'data' axis (``NamedSharding``), queries are replicated. The full Q x N
similarity matrix never exists: a device holds one (query block x its slice of one step)
tile at a time.

**Running top-k of blocks.** Instead of a top-k over every similarity of every step (a
per-row selection that costs as much as the matmul on a CPU), each device keeps, per query,
the ``k`` best *blocks* of ``block`` consecutive corpus rows, ranked by their maximum:

* every one of the exact top-k rows lies in one of the top-k blocks (a block ranked above
  the block of the j-th best row contains a row ranked above it, so fewer than j blocks can
  rank above; with ties ranked by (score desc, row asc) this holds exactly), and
* top-k of blocks is mergeable, so a running state (block maxima, block ids, block
  contents: ``(Q, k)``, ``(Q, k)``, ``(Q, k, block)``) is updated per step with one
  ``lax.top_k`` over ``k + rows/block`` maxima and two small gathers.

At the end each device selects its top-k rows from its ``k * block`` candidates, and the
host merges devices and then processes (:func:`merge`), ordering by (score desc, ordinal
asc). Ordinals come from the corpus (:mod:`jaxbench.overlap.corpus`) and do not depend on
how it was chunked or split, so the result is the same for any chunk size, device count and
process count (up to float rounding of the dot products themselves).

Each process passes only its own share of the corpus (process-local data); the per-device
states never leave their devices until the final (Q, k) results.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench.overlap.embed import data_mesh, process_all


@dataclasses.dataclass
class TopK:
  """Nearest corpus rows of each query, best first.

  Attributes:
    scores: float32 (Q, k) cosine similarities in [-1, 1]; -inf where the corpus has
      fewer than k rows.
    ordinals: int64 (Q, k) corpus ordinals; -1 where there is no neighbour.
  """
  scores: np.ndarray
  ordinals: np.ndarray

  @property
  def k(self) -> int:
    return self.scores.shape[1]


def merge(parts: Sequence[TopK], k: int) -> TopK:
  """Merges top-k lists over disjoint corpus shares: (score desc, ordinal asc), first k.

  Args:
    parts: TopK results with the same queries (Q rows each).
    k: how many to keep.
  """
  s = np.concatenate([p.scores for p in parts], axis=1)
  o = np.concatenate([p.ordinals for p in parts], axis=1)
  # Missing neighbours sort last whatever their ordinal.
  o_key = np.where(o < 0, np.iinfo(np.int64).max, o)
  order = np.lexsort((o_key, -s.astype(np.float64)), axis=1)[:, :k]
  s = np.take_along_axis(s, order, 1)
  o = np.take_along_axis(o, order, 1)
  o = np.where(np.isneginf(s), -1, o)
  if s.shape[1] < k:  # fewer candidates than k
    pad = k - s.shape[1]
    s = np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf)
    o = np.pad(o, ((0, 0), (0, pad)), constant_values=-1)
  return TopK(s.astype(np.float32), o.astype(np.int64))


def _l2n(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Searcher:
  """Exact cosine k-NN of fixed queries over a corpus streamed in steps.

  Args:
    queries: float (Q, D) query embeddings (normalised here).
    k: neighbours per query.
    chunk: corpus rows per step per process (rounded up to a multiple of
      ``block * local devices``). Does not change results, only memory and speed.
    block: rows per candidate block (see module docstring); a speed knob.
    query_block: queries per tile; bounds the (query_block x rows/device) similarity
      tile. 512 x 8192 rows (16 MB) stays in a CPU's last-level cache, which measured
      fastest on CPU (faster than one untiled matmul); raise both on accelerators.
    mesh: mesh with a 'data' axis (default: all devices).
  """

  def __init__(self, queries: np.ndarray, k: int, *, chunk: int = 8192, block: int = 64,
               query_block: int = 512, mesh: Optional[Mesh] = None):
    queries = np.asarray(queries, np.float32)
    if queries.ndim != 2 or queries.shape[0] == 0:
      raise ValueError(f"queries must be a non-empty (Q, D) array, got {queries.shape}")
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    self.k, self.dim = int(k), queries.shape[1]
    self.mesh = data_mesh(mesh)
    self.n_dev = self.mesh.shape["data"]
    self.n_local = self.n_dev // jax.process_count()
    self.block = max(1, min(int(block), int(chunk)))
    per_dev = -(-int(chunk) // self.n_local)
    self.rows_dev = -(-per_dev // self.block) * self.block
    self.rows_step = self.rows_dev * self.n_local  # per process
    self.nq = queries.shape[0]
    qb = min(int(query_block), -(-self.nq // 8) * 8)
    self.qb = qb
    self.nqb = -(-self.nq // qb)
    q = np.zeros((self.nqb * qb, self.dim), np.float32)
    q[:self.nq] = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    self._queries = jax.device_put(q.reshape(self.nqb, qb, self.dim),
                                   NamedSharding(self.mesh, P()))
    self._dev = NamedSharding(self.mesh, P("data"))
    self._step = _build_step(self.mesh, self.k, self.block, self.rows_dev)
    self._final = _build_final(self.mesh, self.k, self.block)

  def _init_state(self):
    shape = (self.n_dev, self.nqb, self.qb, self.k)
    bm = jax.device_put(np.full(shape, -np.inf, np.float32), self._dev)
    bi = jax.device_put(np.full(shape, -1, np.int32), self._dev)
    bv = jax.device_put(np.full(shape + (self.block,), -np.inf, np.float32), self._dev)
    return bm, bi, bv

  # ------------------------------------------------------------------ host loop
  def _steps(self, chunks: Iterable) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Re-cuts arbitrary (emb, ordinals) chunks into steps of exactly rows_step rows."""
    buf_e, buf_o, n = [], [], 0
    for emb, ords in chunks:
      emb = np.asarray(emb)
      if emb.ndim != 2 or emb.shape[1] != self.dim:
        raise ValueError(f"corpus embeddings have shape {emb.shape}; queries have width "
                         f"{self.dim}: embed both with the same model")
      buf_e.append(emb)
      buf_o.append(np.asarray(ords, np.int64))
      n += emb.shape[0]
      while n >= self.rows_step:
        # One buffered block (the usual case when files are a multiple of the step) is
        # sliced, not copied.
        e = buf_e[0] if len(buf_e) == 1 else np.concatenate(buf_e)
        o = buf_o[0] if len(buf_o) == 1 else np.concatenate(buf_o)
        yield e[:self.rows_step], o[:self.rows_step]
        buf_e, buf_o, n = [e[self.rows_step:]], [o[self.rows_step:]], n - self.rows_step
    if n:
      yield np.concatenate(buf_e), np.concatenate(buf_o)

  def search(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> TopK:
    """Runs the search over this process's share of the corpus.

    Args:
      chunks: (emb float (n, D), ordinals int64 (n,)) blocks of the process-local corpus
        share, in ordinal order.

    Returns:
      The global :class:`TopK` (merged over devices and processes), the same on every
      process.

    Raises:
      ValueError: the corpus is empty on every process.
    """
    state = self._init_state()
    ords_log: list[np.ndarray] = []
    steps = self._steps(chunks)
    done, step, total = False, 0, 0
    zeros = np.zeros((self.rows_step, self.dim), np.float32)
    while True:
      got = None if done else next(steps, None)
      done = got is None
      if process_all(done):
        break
      emb, ords = got if got is not None else (zeros[:0], np.zeros(0, np.int64))
      n = emb.shape[0]
      total += n
      host = zeros.copy() if n < self.rows_step else None
      if host is not None:
        host[:n] = emb
      else:
        host = emb.astype(np.float32, copy=False)
      padded = np.full(self.rows_step, -1, np.int64)
      padded[:n] = ords
      ords_log.append(padded)
      base = step * self.rows_step
      j = np.arange(self.n_local)
      row0 = (base + j * self.rows_dev).astype(np.int32)
      nvalid = np.clip(n - j * self.rows_dev, 0, self.rows_dev).astype(np.int32)
      put = lambda a: jax.make_array_from_process_local_data(self._dev, a)
      state = self._step(*state, self._queries, put(host), put(row0), put(nvalid))
      step += 1
    if process_all(total == 0):
      raise ValueError("empty corpus: no embeddings to search")
    s, r = self._final(*state)
    local = self._local_merge(s, r, ords_log)
    return self._process_merge(local)

  def _local_merge(self, s, r, ords_log) -> TopK:
    all_ords = np.concatenate(ords_log) if ords_log else np.zeros(0, np.int64)
    parts = []
    for sh_s, sh_r in zip(_by_device(s), _by_device(r)):
      sc = sh_s.reshape(-1, self.k)[:self.nq]
      rw = sh_r.reshape(-1, self.k)[:self.nq]
      o = np.where(rw >= 0, all_ords[np.maximum(rw, 0)] if all_ords.size else -1, -1)
      parts.append(TopK(sc, o))
    return merge(parts, self.k)

  def _process_merge(self, local: TopK) -> TopK:
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils
    s = np.asarray(multihost_utils.process_allgather(local.scores))
    # Ordinals are int64; without jax_enable_x64 a gather would truncate them to int32,
    # so they travel as pairs of int32 words.
    words = np.ascontiguousarray(local.ordinals, np.int64).view(np.int32)
    o = np.ascontiguousarray(multihost_utils.process_allgather(words), np.int32)
    o = o.view(np.int64)
    return merge([TopK(s[i], o[i]) for i in range(s.shape[0])], self.k)


# --------------------------------------------------------------------------- device code
@functools.lru_cache(maxsize=None)
def _build_step(mesh: Mesh, k: int, b: int, rows: int):
  """One search step (cached: every Searcher with these shapes shares one compilation)."""
  nb = rows // b

  def local(bm, bi, bv, q, c, row0, nvalid):
    # bm, bi: (1, nqb, qb, k); bv: (1, nqb, qb, k, b); c: (rows, D) this device's rows.
    c = _l2n(c.astype(jnp.float32))
    valid = lax.iota(jnp.int32, rows) < nvalid[0]
    blk0 = row0[0] // b

    def tile(args):
      bm_q, bi_q, bv_q, qq = args
      sims = jnp.dot(qq, c.T, preferred_element_type=jnp.float32)
      sims = jnp.where(valid, sims, -jnp.inf).reshape(qq.shape[0], nb, b)
      # State first: on equal maxima the earlier (lower-row) block wins, as top_k
      # keeps the lower position.
      new_m, pos = lax.top_k(jnp.concatenate([bm_q, sims.max(-1)], axis=1), k)
      from_state = pos < k
      ps = jnp.minimum(pos, k - 1)
      pc = jnp.maximum(pos - k, 0)
      vals = jnp.where(from_state[..., None],
                       jnp.take_along_axis(bv_q, ps[..., None], axis=1),
                       jnp.take_along_axis(sims, pc[..., None], axis=1))
      ids = jnp.where(from_state, jnp.take_along_axis(bi_q, ps, axis=1), pc + blk0)
      return new_m, ids, vals

    out = lax.map(tile, (bm[0], bi[0], bv[0], q))
    return tuple(o[None] for o in out)

  spec = P("data")
  fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec, P(), spec, spec, spec),
                     out_specs=(spec, spec, spec))
  return jax.jit(fn, donate_argnums=(0, 1, 2))


@functools.lru_cache(maxsize=None)
def _build_final(mesh: Mesh, k: int, b: int):
  """Per-device selection of the top-k rows from the k best blocks."""

  def local(bm, bi, bv):
    del bm
    bi, bv = bi[0], bv[0]  # (nqb, qb, k), (nqb, qb, k, b)
    # Blocks in row order, so that on equal scores top_k keeps the lower row.
    order = jnp.argsort(jnp.where(bi < 0, jnp.iinfo(jnp.int32).max, bi), axis=-1)
    bi = jnp.take_along_axis(bi, order, axis=-1)
    bv = jnp.take_along_axis(bv, order[..., None], axis=-2)
    rows = (bi[..., None] * b + jnp.arange(b, dtype=jnp.int32)).reshape(*bi.shape[:2], -1)
    s, p = lax.top_k(bv.reshape(*bv.shape[:2], -1), k)
    r = jnp.take_along_axis(rows, p, axis=-1)
    r = jnp.where(jnp.isneginf(s), -1, r)
    return s[None], r[None]

  spec = P("data")
  return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 3,
                               out_specs=(spec, spec)))


def _by_device(x: jax.Array) -> list[np.ndarray]:
  """The addressable per-device blocks of an array sharded on axis 0, one per device."""
  seen = {}
  for s in x.addressable_shards:
    seen.setdefault(s.index[0].start or 0, np.asarray(s.data)[0])
  return [seen[i] for i in sorted(seen)]


def search(queries: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray]], k: int,
           **kw) -> TopK:
  """One-shot :meth:`Searcher.search` (see :class:`Searcher` for the options)."""
  return Searcher(queries, k, **kw).search(chunks)


def exact_topk_reference(queries: np.ndarray, corpus: np.ndarray, ordinals: np.ndarray,
                         k: int) -> TopK:
  """Brute-force NumPy float64 reference (tests and small corpora)."""
  q = np.asarray(queries, np.float64)
  c = np.asarray(corpus, np.float64)
  q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
  c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
  sims = q @ c.T
  return merge([TopK(sims.astype(np.float32),
                     np.broadcast_to(np.asarray(ordinals, np.int64), sims.shape))], k)
