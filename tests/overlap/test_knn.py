"""Exact streamed k-NN: brute-force reference, chunk/device/host invariance, ties, edges."""
import numpy as np
import jax
import pytest
from jax.sharding import Mesh

from jaxbench.overlap import knn

Q, N, D, K = 37, 1000, 16, 5


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  q = rng.standard_normal((Q, D)).astype(np.float32)
  c = rng.standard_normal((N, D)).astype(np.float32) * rng.uniform(0.5, 3, (N, 1)).astype(
      np.float32)  # unnormalised rows: cosine, not dot product
  # Exact duplicates make ties: query 3 equals corpus rows 10, 500 and 700 (up to scale).
  c[500] = c[10]
  c[700] = 2 * c[10]
  q[3] = c[10]
  # Seven identical rows, some in one block, others in other blocks, steps and devices,
  # tie across the k boundary: query 5 must get the five with the lowest ordinals.
  c[[21, 22, 120, 121, 620, 621]] = c[20]
  q[5] = c[20]
  ords = (np.arange(N) * 3 + 7).astype(np.int64)  # ordinals need not be contiguous
  return q, c, ords


def _chunks(c, ords, size):
  for i in range(0, len(c), size):
    yield c[i:i + size], ords[i:i + size]


def _mesh(n):
  return Mesh(np.asarray(jax.devices()[:n]), ("data",))


def _bruteforce(q, c, ords, k):
  """float64 cosine, sorted by (score desc, ordinal asc), written out independently."""
  qn = q / np.linalg.norm(q, axis=1, keepdims=True)
  cn = c / np.linalg.norm(c, axis=1, keepdims=True)
  sims = qn.astype(np.float64) @ cn.astype(np.float64).T
  out_s, out_o = [], []
  for row in sims:
    order = sorted(range(len(row)), key=lambda j: (-round(row[j], 6), ords[j]))[:k]
    out_s.append(row[order])
    out_o.append(ords[order])
  return np.asarray(out_s), np.asarray(out_o)


@pytest.mark.parametrize("devices,chunk,block,input_chunk", [
    (1, 64, 16, 33), (8, 100, 8, 77), (8, 7, 4, 1000)])
def test_matches_bruteforce_whatever_the_chunking_and_devices(data, devices, chunk, block,
                                                              input_chunk):
  q, c, ords = data
  ref_s, ref_o = _bruteforce(q, c, ords, K)
  top = knn.search(q, _chunks(c, ords, input_chunk), K, chunk=chunk, block=block,
                   query_block=16, mesh=_mesh(devices))
  np.testing.assert_array_equal(top.ordinals, ref_o)
  np.testing.assert_allclose(top.scores, ref_s, atol=2e-6)
  # The three tied duplicates of query 3 come first, by ordinal; of the seven tied rows
  # of query 5 the five lowest ordinals are kept.
  np.testing.assert_array_equal(top.ordinals[3, :3], ords[[10, 500, 700]])
  np.testing.assert_array_equal(top.ordinals[5], ords[[20, 21, 22, 120, 121]])


def test_process_local_shares_merge_to_the_global_result(data):
  """Two simulated hosts: each searches its own share of the corpus, then merge()."""
  q, c, ords = data
  single = knn.search(q, _chunks(c, ords, 1000), K, chunk=64, block=16, query_block=16,
                      mesh=_mesh(1))
  # Shares as corpus.shard would cut files: alternate 100-row files.
  parts = []
  for p in range(2):
    rows = np.concatenate([np.arange(i, min(i + 100, N)) for i in range(100 * p, N, 200)])
    parts.append(knn.search(q, _chunks(c[rows], ords[rows], 50), K, chunk=100, block=8,
                            query_block=16, mesh=_mesh(8)))
  merged = knn.merge(parts, K)
  np.testing.assert_array_equal(merged.ordinals, single.ordinals)
  np.testing.assert_allclose(merged.scores, single.scores, atol=1e-6)


def test_fewer_rows_than_k_are_padded_with_minus_one(data):
  q, c, ords = data
  top = knn.search(q[:2], [(c[:3], ords[:3])], K, chunk=100, block=8, mesh=_mesh(8))
  assert (top.ordinals[:, 3:] == -1).all() and np.isneginf(top.scores[:, 3:]).all()
  assert sorted(top.ordinals[0, :3]) == sorted(ords[:3])


def test_search_refuses_an_empty_corpus(data):
  q, _, _ = data
  with pytest.raises(ValueError, match="empty corpus"):
    knn.search(q, iter([]), K, chunk=100, block=8, mesh=_mesh(8))


def test_search_refuses_a_corpus_of_another_width(data):
  q, c, ords = data
  with pytest.raises(ValueError, match="width 16"):
    knn.search(q, [(c[:, :8], ords)], K, chunk=100, block=8, mesh=_mesh(8))


def test_searcher_refuses_no_queries():
  with pytest.raises(ValueError, match="non-empty"):
    knn.Searcher(np.zeros((0, 4)), K)
