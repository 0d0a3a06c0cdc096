"""Carlini & Wagner L2 against the exact distance to a linear decision boundary."""
import numpy as np

from jaxbench import attacks
from attack_helpers import keys, linear_apply, toy2d


def test_cw_minimal_l2_matches_distance_to_hyperplane():
  # Same toy and spec as the property table (compiled once per session).
  x, p = toy2d(n=32)
  clean = np.asarray(linear_apply(p, x))
  labels = clean.argmax(-1)
  labels[:3] = 1 - labels[:3]
  r = attacks.get("cw(eps=0.15, steps=60, binary_steps=6, lr=0.05)")(
      linear_apply, p, x, labels, keys(32))
  dw = np.asarray(p["w"])[:, 0] - np.asarray(p["w"])[:, 1]
  dist = np.abs(clean[:, 0] - clean[:, 1]) / np.linalg.norm(dw)
  found = np.asarray(r.diagnostics["min_eps"])
  np.testing.assert_array_equal(found[:3], 0.0)        # misclassified: 0 (RoZ)
  ok = np.isfinite(found[3:])
  assert ok.mean() >= 0.8
  # Never below the true minimum (that would not be adversarial), close above it.
  assert np.all(found[3:][ok] >= dist[3:][ok] * (1 - 1e-4))
  np.testing.assert_allclose(found[3:][ok], dist[3:][ok], rtol=0.05)
