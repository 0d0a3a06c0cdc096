"""Top-k accumulators against hand-computed counts and a NumPy argsort reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench.metrics import accuracy


# Five rows against six classes: hand-worked top-1/top-5 outcomes.
HAND_LOGITS = jnp.array([
      [9., 1., 2., 3., 4., 5.],    # label 0: top-1 right
      [0., 1., 2., 3., 4., 5.],    # label 1: 5th highest -> top-5 right, top-1 wrong
      [0., 1., 2., 3., 4., 5.],    # label 0: 6th -> wrong at 1 and 5
      [0., 1., 2., 3., 4., 5.],    # unlabelled (-1): not counted
      [0., 1., 2., 3., 4., 5.]])   # padding (mask False): not counted
HAND_LABELS = jnp.array([0, 1, 0, -1, 5])


def test_hand_computed_top1_top5_skip_padding_and_unlabelled():
  mask = jnp.array([True, True, True, True, False])
  state = accuracy.update(accuracy.init(), HAND_LOGITS, HAND_LABELS, mask)
  assert accuracy.finalize(state) == {"n": 3, "top1": 1 / 3, "top5": 2 / 3}


def test_topk_correct_per_example_by_hand():
  np.testing.assert_array_equal(accuracy.topk_correct(HAND_LOGITS, HAND_LABELS, 5),
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


_RNG = np.random.default_rng(0)
LOGITS = _RNG.normal(size=(64, 20)).astype(np.float32)
LABELS = _RNG.integers(0, 20, size=64)
EXPECTED = {"n": 64, "top1": _numpy_topk(LOGITS, LABELS, 1).mean(),
            "top5": _numpy_topk(LOGITS, LABELS, 5).mean()}


@pytest.mark.parametrize("batch", [1, 7])
def test_padded_batches_match_numpy(batch):
  logits, labels, expected = LOGITS, LABELS, EXPECTED
  update = jax.jit(accuracy.update)
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


def test_merged_halves_equal_one_pass():
  logits, labels = LOGITS, LABELS
  a = accuracy.update(accuracy.init(), logits[:20], labels[:20])
  b = accuracy.update(accuracy.init(), logits[20:], labels[20:])
  assert accuracy.finalize(accuracy.merge(a, b)) == accuracy.finalize(
      accuracy.update(accuracy.init(), logits, labels))


def test_batch_sharded_over_eight_devices_matches_numpy():
  logits, labels, expected = LOGITS, LABELS, EXPECTED
  update = jax.jit(accuracy.update)
  mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
  shard = NamedSharding(mesh, P("data"))
  state = update(accuracy.init(), jax.device_put(logits, shard),
                 jax.device_put(labels, shard), jax.device_put(np.ones(64, bool), shard))
  assert accuracy.finalize(state)["top1"] == pytest.approx(expected["top1"], abs=0)


def test_empty_state_finalizes_to_nan():
  assert np.isnan(accuracy.finalize(accuracy.init())["top1"])


def test_init_refuses_k_below_one():
  with pytest.raises(ValueError, match="k >= 1"):
    accuracy.init(ks=(0,))


def test_merge_refuses_states_with_different_ks():
  with pytest.raises(ValueError, match="cannot merge"):
    accuracy.merge(accuracy.init(), accuracy.init(ks=(1,)))


def test_topk_correct_refuses_mismatched_multi_hot_labels():
  with pytest.raises(ValueError, match="multi-hot labels"):
    accuracy.topk_correct(jnp.zeros((2, 3)), jnp.zeros((2, 4), bool), 1)
