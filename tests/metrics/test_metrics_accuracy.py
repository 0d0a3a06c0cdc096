"""Top-k accumulators against hand-computed counts and a NumPy argsort reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench.metrics import accuracy


def test_hand_computed_top1_top5_with_mask_and_unlabelled():
  logits = jnp.array([
      [9., 1., 2., 3., 4., 5.],    # label 0: top-1 right
      [0., 1., 2., 3., 4., 5.],    # label 1: 5th highest -> top-5 right, top-1 wrong
      [0., 1., 2., 3., 4., 5.],    # label 0: 6th -> wrong at 1 and 5
      [0., 1., 2., 3., 4., 5.],    # unlabelled (-1): not counted
      [0., 1., 2., 3., 4., 5.]])   # padding (mask False): not counted
  labels = jnp.array([0, 1, 0, -1, 5])
  mask = jnp.array([True, True, True, True, False])
  state = accuracy.update(accuracy.init(), logits, labels, mask)
  assert accuracy.finalize(state) == {"n": 3, "top1": 1 / 3, "top5": 2 / 3}
  np.testing.assert_array_equal(accuracy.topk_correct(logits, labels, 5),
                                [True, True, False, False, True])


def test_ties_break_towards_the_lower_index_like_argmax():
  logits = jnp.zeros((3, 4))
  labels = jnp.array([0, 1, 2])
  np.testing.assert_array_equal(accuracy.predictions(logits), [0, 0, 0])
  np.testing.assert_array_equal(accuracy.topk_correct(logits, labels, 1), [True, False, False])
  np.testing.assert_array_equal(accuracy.topk_correct(logits, labels, 2), [True, True, False])


def test_multi_hot_labels_count_any_label():
  logits = jnp.array([[0., 1., 5., 2., 0., 4.], [3., 0., 0., 0., 0., 0.],
                      [0., 0., 0., 0., 0., 1.]])
  labels = jnp.array([[0, 0, 1, 0, 0, 1],     # two labels, prediction 2 is one of them
                      [0, 1, 0, 0, 0, 0],     # prediction 0 is not; 1 is 2nd (tie -> low index)
                      [0, 0, 0, 0, 0, 0]], bool)  # no labels: not counted
  state = accuracy.update(accuracy.init(ks=(1, 2)), logits, labels)
  assert accuracy.finalize(state) == {"n": 2, "top1": 0.5, "top2": 1.0}


def _numpy_topk(logits, labels, k):
  order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
  return (order == labels[:, None]).any(axis=1)


def test_matches_numpy_and_is_independent_of_batching_and_sharding():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(64, 20)).astype(np.float32)
  labels = rng.integers(0, 20, size=64)
  expected = {"n": 64, "top1": _numpy_topk(logits, labels, 1).mean(),
              "top5": _numpy_topk(logits, labels, 5).mean()}
  update = jax.jit(accuracy.update)
  for batch in (1, 7):
    state = accuracy.init()
    for start in range(0, 64, batch):
      stop = min(start + batch, 64)
      # Pad every batch to `batch` rows; padding is masked out.
      x = np.zeros((batch, 20), np.float32)
      y = np.full((batch,), 3)
      m = np.zeros((batch,), bool)
      x[:stop - start], y[:stop - start], m[:stop - start] = logits[start:stop], \
          labels[start:stop], True
      state = update(state, x, y, m)
    got = accuracy.finalize(state)
    assert got["n"] == 64
    assert got["top1"] == pytest.approx(expected["top1"], abs=0)
    assert got["top5"] == pytest.approx(expected["top5"], abs=0)
  # Split in two and merged = one pass.
  a = accuracy.update(accuracy.init(), logits[:20], labels[:20])
  b = accuracy.update(accuracy.init(), logits[20:], labels[20:])
  assert accuracy.finalize(accuracy.merge(a, b)) == accuracy.finalize(
      accuracy.update(accuracy.init(), logits, labels))
  # Sharded over 8 devices along the batch.
  mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
  shard = NamedSharding(mesh, P("data"))
  state = update(accuracy.init(), jax.device_put(logits, shard),
                 jax.device_put(labels, shard), jax.device_put(np.ones(64, bool), shard))
  assert accuracy.finalize(state)["top1"] == pytest.approx(expected["top1"], abs=0)


def test_errors_and_empty_state():
  assert np.isnan(accuracy.finalize(accuracy.init())["top1"])
  with pytest.raises(ValueError, match="k >= 1"):
    accuracy.init(ks=(0,))
  with pytest.raises(ValueError, match="cannot merge"):
    accuracy.merge(accuracy.init(), accuracy.init(ks=(1,)))
  with pytest.raises(ValueError, match="multi-hot labels"):
    accuracy.topk_correct(jnp.zeros((2, 3)), jnp.zeros((2, 4), bool), 1)
