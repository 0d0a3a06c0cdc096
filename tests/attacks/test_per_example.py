"""Per-example array helpers against NumPy."""
import jax.numpy as jnp
import numpy as np

from jaxbench.attacks import per_example

_RNG = np.random.default_rng(0)
A = _RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
B = _RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
PRED = np.array([True, False, False, True])


def test_expand_appends_unit_axes():
  v = jnp.arange(4.0)
  e = per_example.expand(v, 4)
  assert e.shape == (4, 1, 1, 1)
  np.testing.assert_allclose(np.asarray(e * A), np.arange(4.0)[:, None, None, None] * A,
                             rtol=1e-6)


def test_select_takes_rows_per_example():
  got = np.asarray(per_example.select(jnp.asarray(PRED), jnp.asarray(A), jnp.asarray(B)))
  want = B.copy()
  want[PRED] = A[PRED]
  np.testing.assert_array_equal(got, want)


def test_select_maps_over_pytrees_of_any_rank():
  new = {"x": jnp.asarray(A), "t": jnp.arange(4)}
  old = {"x": jnp.asarray(B), "t": -jnp.arange(4)}
  got = per_example.select(jnp.asarray(PRED), new, old)
  np.testing.assert_array_equal(np.asarray(got["t"]), [0, -1, -2, 3])
  np.testing.assert_array_equal(np.asarray(got["x"])[1], B[1])


def test_norms_match_numpy():
  linf, l2 = per_example.norms(jnp.asarray(A))
  flat = A.reshape(4, -1)
  np.testing.assert_allclose(np.asarray(linf), np.abs(flat).max(1), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(l2), np.linalg.norm(flat, axis=1), rtol=1e-6)


def test_zero_fraction_counts_exact_zeros():
  g = np.ones((2, 4), np.float32)
  g[0, :3] = 0.0
  np.testing.assert_allclose(np.asarray(per_example.zero_fraction(jnp.asarray(g))), [0.75, 0.0])
