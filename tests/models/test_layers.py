"""Shared layers (jaxbench/models/layers.py): the patch embedding as one matmul, the
depthwise convolution as shifted multiply-adds.

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


@pytest.mark.parametrize("k,bias", [(7, True), (3, False)])
def test_depthwise_conv_equals_the_grouped_convolution(k, bias):
  """DepthwiseConv (shifted multiply-adds on CPU) == nn.Conv(feature_group_count=C) on the
  same params (same tree, same seeded init), values and input gradients, and == PyTorch's
  conv2d(groups=C) on the same weights."""
  import torch
  c = 6
  x = np.random.default_rng(1).normal(size=(2, 9, 11, c)).astype(np.float32)
  conv = nn.Conv(c, (k, k), padding=((k // 2, k // 2),) * 2, feature_group_count=c,
                 use_bias=bias)
  dw = layers.DepthwiseConv(k, use_bias=bias)
  params = conv.init(jax.random.key(0), x)
  got_init = dw.init(jax.random.key(0), x)
  assert jax.tree.map(np.shape, got_init) == jax.tree.map(np.shape, params)
  np.testing.assert_array_equal(got_init["params"]["kernel"], params["params"]["kernel"])
  if bias:
    params = jax.tree.map(lambda a: a + 0.5, params)
  with jax.default_matmul_precision("highest"):
    want, got = conv.apply(params, x), dw.apply(params, x)
    gw = jax.grad(lambda x: (conv.apply(params, x) ** 2).sum())(x)
    gg = jax.grad(lambda x: (dw.apply(params, x) ** 2).sum())(x)
  assert got.shape == x.shape
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(gg, gw, atol=1e-4, rtol=1e-5)
  p = params["params"]
  wt = torch.from_numpy(np.asarray(p["kernel"]).transpose(3, 2, 0, 1).copy())
  bt = torch.from_numpy(np.asarray(p["bias"])) if bias else None
  ref = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), wt, bt,
                                   padding=k // 2, groups=c).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal,masked", [(False, False), (True, False), (False, True)])
def test_attention_equals_the_softmax_formula_and_torch(causal, masked):
  """layers.attention (heads-major, deferred normalisation on CPU) == softmax(q k^T/sqrt(d)) v
  written out in NumPy float64 and == PyTorch's scaled_dot_product_attention, with a causal
  or a key-padding mask; input gradients == jax.nn.dot_product_attention's."""
  import torch
  rng = np.random.default_rng(2)
  n, t, h, d = 2, 5, 3, 4
  q, k, v = (rng.normal(size=(n, t, h, d)).astype(np.float32) * 2 for _ in range(3))
  keep = np.ones((n, 1, 1, t), bool)
  keep[1, ..., 3:] = False                      # second example: last two keys are padding
  mask = keep if masked else None
  got = np.asarray(layers.attention(q, k, v, is_causal=causal, mask=mask))
  s = np.einsum("nthd,nshd->nhts", q.astype(np.float64), k) / np.sqrt(d)
  allowed = np.ones((t, t), bool)
  if causal:
    allowed = np.tril(allowed)
  if masked:
    allowed = allowed & keep
  s = np.where(allowed, s, -np.inf)
  p = np.exp(s - s.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  want = np.einsum("nhts,nshd->nthd", p, v)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  th = lambda a: torch.from_numpy(a.transpose(0, 2, 1, 3).copy())
  ref = torch.nn.functional.scaled_dot_product_attention(
      th(q), th(k), th(v), is_causal=causal,
      attn_mask=torch.from_numpy(keep) if masked else None).numpy().transpose(0, 2, 1, 3)
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
  loss = lambda f: lambda q, k, v: (f(q, k, v) ** 3).sum()
  ours = jax.grad(loss(lambda *a: layers.attention(*a, is_causal=causal, mask=mask)),
                  argnums=(0, 1, 2))(q, k, v)
  theirs = jax.grad(loss(lambda *a: jax.nn.dot_product_attention(*a, is_causal=causal,
                                                                 mask=mask)),
                    argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_gelu_is_pytorchs_exact_and_tanh_gelu():
  """layers.gelu (erf form) == x * Phi(x) in float64 and == torch's gelu, both forms."""
  import math
  import torch
  x = np.concatenate([np.linspace(-12, 12, 2001), [0.0, -1e-8, 1e-8]]).astype(np.float32)
  phi = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
  got = np.asarray(layers.gelu(x))
  np.testing.assert_allclose(got, x * phi, atol=2e-6, rtol=2e-6)
  xt = torch.from_numpy(x)
  np.testing.assert_allclose(got, torch.nn.functional.gelu(xt).numpy(), atol=2e-6, rtol=2e-6)
  np.testing.assert_allclose(np.asarray(layers.gelu(x, approximate=True)),
                             torch.nn.functional.gelu(xt, approximate="tanh").numpy(),
                             atol=2e-6, rtol=2e-6)
