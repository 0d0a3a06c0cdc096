"""Per-example keys: accepted forms, clear errors, folding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench.attacks import keys
from jaxbench.attacks.threat import AttackInputError
from attack_helpers import keys as example_keys


def test_per_example_keys_become_their_raw_data():
  k = example_keys(5)
  np.testing.assert_array_equal(np.asarray(keys.key_data(k, 5)),
                                np.asarray(jax.random.key_data(k)))


def test_raw_key_data_is_accepted_unchanged():
  raw = jax.random.key_data(example_keys(5))
  np.testing.assert_array_equal(np.asarray(keys.key_data(raw, 5)), np.asarray(raw))


def test_single_key_is_split_by_position():
  k = jax.random.key(3)
  np.testing.assert_array_equal(np.asarray(keys.key_data(k, 4)),
                                np.asarray(jax.random.key_data(jax.random.split(k, 4))))


def test_no_key_means_key_zero():
  np.testing.assert_array_equal(np.asarray(keys.key_data(None, 2)),
                                np.asarray(keys.key_data(jax.random.key(0), 2)))


@pytest.mark.parametrize("bad,match", [
    (np.zeros((5, 2), np.float32), r"expected a typed key array \(N,\) or raw uint32"),
    (None, r"expected shape \(5,\) \(one per example\)"),
], ids=["float_data", "wrong_count"])
def test_bad_keys_raise_clear_errors(bad, match):
  bad = example_keys(3) if bad is None else bad
  with pytest.raises(AttackInputError, match=match):
    keys.key_data(bad, 5)


def test_fold_equals_fold_in_per_example():
  raw = jax.random.key_data(example_keys(3))
  got = jax.random.key_data(keys.fold(raw, keys.TAG_STEP, jnp.arange(3)))
  want = [jax.random.key_data(jax.random.fold_in(jax.random.fold_in(k, keys.TAG_STEP), i))
          for i, k in enumerate(example_keys(3))]
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_tags_give_independent_keys():
  raw = jax.random.key_data(example_keys(3))
  a = np.asarray(jax.random.key_data(keys.fold(raw, keys.TAG_START)))
  b = np.asarray(jax.random.key_data(keys.fold(raw, keys.TAG_STEP)))
  assert not np.any(np.all(a == b, axis=1))
