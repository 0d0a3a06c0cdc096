"""Shared layers (jaxbench/models/layers.py): the patch embedding as one matmul.

(Moved from tests/test_accel.py.)
"""
import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxbench.models import layers


@pytest.mark.parametrize("size,bias", [(32, False), (35, True)])
def test_patch_embed_equals_the_strided_convolution(size, bias):
  """PatchEmbed (one matmul) == nn.Conv(p x p, stride p, VALID) on the same params,
  values and input gradients, a partial border dropped as VALID drops it."""
  x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
  conv = nn.Conv(16, (8, 8), strides=(8, 8), padding="VALID", use_bias=bias)
  patch = layers.PatchEmbed(16, 8, use_bias=bias)
  params = conv.init(jax.random.key(0), x)
  if bias:
    params = jax.tree.map(lambda a: a + 0.5, params)
  # Same parameter tree and same seeded init.
  assert jax.tree.map(np.shape, patch.init(jax.random.key(0), x)) == \
      jax.tree.map(np.shape, params)
  np.testing.assert_array_equal(patch.init(jax.random.key(0), x)["params"]["kernel"],
                                conv.init(jax.random.key(0), x)["params"]["kernel"])
  with jax.default_matmul_precision("highest"):
    want, got = conv.apply(params, x), patch.apply(params, x)
    gw = jax.grad(lambda x: (conv.apply(params, x) ** 2).sum())(x)
    gg = jax.grad(lambda x: (patch.apply(params, x) ** 2).sum())(x)
  assert got.shape == want.shape == (2, size // 8, size // 8, 16)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(gg, gw, atol=1e-4, rtol=1e-5)
