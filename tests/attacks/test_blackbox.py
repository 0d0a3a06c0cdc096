"""Score-based attacks: gradient estimates, chunking, query accounting."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks
from jaxbench.attacks import blackbox, threat
from attack_helpers import keys, linear_apply, toy2d

RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.normal(size=(48, 8)).astype(np.float32))
X = jnp.asarray(RNG.uniform(size=(3, 4, 4, 3)).astype(np.float32))


def smooth_loss(x):
  """A smooth nonlinear scalar per example: (N, ...) -> (N,)."""
  h = jnp.sin(x.reshape(x.shape[0], -1) @ A)
  return jnp.sum(h * h + h, axis=-1)


@functools.partial(jax.jit, static_argnames=("q", "dist", "chunk"))
def _estimate(x, k, q, dist, chunk):
  loss = lambda xs: jax.vmap(smooth_loss, in_axes=1, out_axes=1)(xs)
  return blackbox.estimate_gradient(loss, x, k, q, 1e-3, dist, chunk)


@pytest.mark.parametrize("dist", ["gaussian", "rademacher"])
def test_estimate_converges_to_true_gradient(dist):
  true = jax.vmap(jax.grad(lambda x: smooth_loss(x[None])[0]))(X)
  est = _estimate(X, keys(3), 4000, dist, 500)
  t = np.asarray(true).reshape(3, -1)
  e = np.asarray(est).reshape(3, -1)
  cos = (t * e).sum(1) / np.linalg.norm(t, axis=1) / np.linalg.norm(e, axis=1)
  assert np.all(cos > 0.9), cos


def test_estimate_depends_only_on_the_example_key():
  a = np.asarray(_estimate(X, keys(3), 4000, "rademacher", 500))
  # Example 1 alone (its own key), all directions in one chunk: same estimate.
  c = np.asarray(_estimate(X[1:2], keys(1, offset=1), 4000, "rademacher", 4000))
  np.testing.assert_allclose(a[1:2], c, rtol=1e-4, atol=1e-4)


def test_estimate_independent_of_chunk():
  a = np.asarray(_estimate(X, keys(3), 4000, "rademacher", 500))
  c = np.asarray(_estimate(X, keys(3), 4000, "rademacher", 4000))
  np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)


def test_estimate_independent_of_batch():
  a = np.asarray(_estimate(X, keys(3), 4000, "rademacher", 500))
  c = np.asarray(_estimate(X[1:2], keys(1, offset=1), 4000, "rademacher", 500))
  np.testing.assert_allclose(a[1:2], c, rtol=1e-4, atol=1e-4)


def test_estimates_differ_between_examples():
  a = np.asarray(_estimate(X, keys(3), 4000, "rademacher", 500))
  assert np.abs(a[0] - a[1]).max() > 1e-2


def test_nes_query_accounting():
  # Same spec and toy as the property table (compiled once per session).
  x, p = toy2d(n=32)
  labels = np.asarray(linear_apply(p, x)).argmax(-1)
  labels[:3] = 1 - labels[:3]
  a = attacks.get("nes(eps=0.15)")
  r = a(linear_apply, p, x, labels, keys(32))
  checks = np.asarray(r.diagnostics["steps"])       # victim forwards at the iterates
  q = np.asarray(r.queries)
  # Each check but the last is followed by a 2q-query estimate.
  np.testing.assert_array_equal(q, checks + 2 * a.q * np.maximum(checks - 1, 0))
  np.testing.assert_array_equal(q[:3], 1)           # misclassified: the clean query only
  n_steps = threat.roz_steps(0.15)                    # RoZ's rule: 42 at eps = 0.15
  assert n_steps == 42
  succ = np.asarray(r.success)
  assert np.all(checks[3:][~succ[3:]] == n_steps + 1)
  assert np.all(checks[succ] <= n_steps + 1)
