"""CLIP ModifiedResNet (OpenCLIP layout) against open_clip's PyTorch model on identical weights."""
import os

import jax
import numpy as np
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import models

TEXT = dict(context_length=12, vocab_size=64, width=32, heads=2, layers=1)


def _make(d, vision_cfg, embed_dim, quick_gelu=True, seed=0):
  """open_clip.create_model(pretrained=None) on a custom config, randomised, saved."""
  import open_clip
  cfg = dict(embed_dim=embed_dim, quick_gelu=quick_gelu, vision_cfg=vision_cfg, text_cfg=TEXT)
  name = f"zoo-test-{os.path.basename(d)}"
  H.register_openclip_config(d + "_cfg", name, cfg)
  ref = open_clip.create_model(name, pretrained=None)
  H.randomize(ref, seed)
  H.save_openclip(ref, cfg, d)
  return ref


@pytest.fixture(scope="module")
def small_rn(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("zoo_rn") / "small")
  vision = dict(image_size=64, layers=[1, 2, 1, 1], width=16, patch_size=None)
  return d, _make(d, vision, embed_dim=24)


def _ref_features(ref, model, x, ids):
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long)).numpy()
  return zi, zt


def _ids(n, length, vocab, seed=0):
  """Token ids with an end token (the largest id) at varied positions, zero padded."""
  rng = np.random.default_rng(seed)
  ids = np.zeros((n, length), np.int32)
  for i in range(n):
    end = 2 + i % (length - 2)
    ids[i, :end] = rng.integers(1, vocab - 1, end)
    ids[i, end] = vocab - 1
  return ids


@pytest.fixture(scope="module")
def small_fp32(small_rn):
  """The small model loaded in fp32 and its jitted image embeddings of fixed images."""
  d, _ = small_rn
  model = models.load(d)                      # a directory: detected as the OpenCLIP layout
  x = H.images(3, 64)
  return model, x, np.asarray(jax.jit(model.encode_image)(model.params, x))


def test_small_modified_resnet_matches_open_clip(small_rn, small_fp32):
  d, ref = small_rn
  model, x, got_i = small_fp32
  assert model.kind == "zeroshot" and model.provenance["layout"] == "openclip"
  assert model.provenance["architecture"] == "openclip-resnet"
  assert model.preprocess.size == 64 and model.preprocess.interpolation == "bicubic"
  ids = _ids(3, 12, 64)
  zi, zt = _ref_features(ref, model, x, ids)
  got_t = jax.jit(model.encode_text)(model.params, ids)
  assert H.max_abs(got_i, zi) < 1e-4 and np.abs(zi).max() > 0.1
  assert H.max_abs(got_t, zt) < 1e-4
  # The logit scale is the checkpoint's, not a default.
  np.testing.assert_allclose(float(model.params["net"]["logit_scale"]),
                             float(ref.logit_scale.detach()), rtol=1e-6)


def test_bf16_close_to_fp32(small_rn, small_fp32):
  """bf16 params and compute: embeddings within 5% of their scale of fp32 (stated tolerance)."""
  d, _ = small_rn
  fp32, x, a = small_fp32
  bf16 = models.load(d, precision="bfloat16")
  assert bf16.precision == "bfloat16" and bf16.describe()["precision"] == "bfloat16"
  assert fp32.describe()["precision"] == "float32"
  assert jax.tree.leaves(bf16.params)[0].dtype == jax.numpy.bfloat16
  b = np.asarray(jax.jit(bf16.encode_image)(bf16.params, x))
  assert H.max_abs(a, b) < 0.05 * np.abs(a).max()
  assert H.max_abs(a, b) > 0                # it did run in bf16


def test_full_rn50_image_tower_matches_open_clip(tmp_path):
  """RN50's full image tower (OpenAI config: layers 3-4-6-3, width 64, 224 px), batch 1."""
  d = str(tmp_path / "rn50")
  vision = dict(image_size=224, layers=[3, 4, 6, 3], width=64, patch_size=None)
  ref = _make(d, vision, embed_dim=1024, seed=1)
  model = models.load(f"openclip:{d}")
  x = H.images(1, 224, seed=2)
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
  got = jax.jit(model.encode_image)(model.params, x)
  assert got.shape == (1, 1024)
  assert H.max_abs(got, zi) < 1e-4 * max(1.0, np.abs(zi).max())
