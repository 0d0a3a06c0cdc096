"""OpenCLIP-layout ViT CLIPs against open_clip's PyTorch model on identical weights."""
import os

import jax
import numpy as np
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import models
from jaxbench.models import openclip

TEXT = dict(context_length=16, vocab_size=64, width=32, heads=4, layers=2)


def _make(d, model_cfg, seed=0):
  import open_clip
  name = f"zoo-test-{os.path.basename(d)}"
  H.register_openclip_config(d + "_cfg", name, model_cfg)
  ref = open_clip.create_model(name, pretrained=None)
  H.randomize(ref, seed)
  H.save_openclip(ref, model_cfg, d, preprocess_cfg={"mean": [0.5, 0.4, 0.3],
                                                    "std": [0.2, 0.25, 0.3],
                                                    "interpolation": "bilinear"})
  return ref


_ids = H.token_ids


@pytest.fixture(scope="module")
def small_vit(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("zoo_oc") / "vit")
  cfg = dict(embed_dim=24, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8,
                                           head_width=16), text_cfg=TEXT)
  return d, _make(d, cfg)


def _check(model, ref, n=3, image=True):
  s = model.preprocess.size
  x = H.images(n, s, seed=4)
  ids = _ids(n, TEXT["context_length"], TEXT["vocab_size"])
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long)).numpy()
  gi = jax.jit(model.encode_image)(model.params, x) if image else np.full_like(zi, np.inf)
  gt = jax.jit(model.encode_text)(model.params, ids)
  return H.max_abs(gi, zi), H.max_abs(gt, zt), np.abs(zi).max()


def test_small_vit_matches_open_clip(small_vit):
  d, ref = small_vit
  model = models.load(f"openclip:{d}")
  assert model.provenance["architecture"] == "openclip-vit"
  assert model.provenance["quick_gelu"] is False        # LAION-style: exact GELU
  # preprocess_cfg of the checkpoint, not CLIP's defaults.
  assert model.preprocess.mean == (0.5, 0.4, 0.3) and model.preprocess.std == (0.2, 0.25, 0.3)
  assert model.preprocess.interpolation == "bilinear" and model.preprocess.size == 32
  di, dt, scale = _check(model, ref)
  assert di < 1e-4 and dt < 1e-4 and scale > 0.1


def test_quick_gelu_option_changes_the_network(small_vit):
  """The spec option really switches the activation (OpenAI weights need QuickGELU)."""
  d, ref = small_vit
  model = models.load(f"openclip:{d}(quick_gelu=True)")
  assert model.provenance["quick_gelu"] is True
  _, dt, _ = _check(model, ref, image=False)
  assert dt > 1e-3


def test_openai_quick_gelu_checkpoint_matches(tmp_path):
  """An OpenAI-style config (quick_gelu in model_cfg) with a 2-layer text tower."""
  d = str(tmp_path / "qg")
  cfg = dict(embed_dim=16, quick_gelu=True, vision_cfg=dict(image_size=32, layers=1, width=32,
                                                            head_width=16,
                                                            patch_size=16), text_cfg=TEXT)
  ref = _make(d, cfg, seed=5)
  di, dt, _ = _check(models.load(d), ref, n=2)
  assert di < 1e-4 and dt < 1e-4


def test_full_vit_b16_image_tower_matches_open_clip(tmp_path):
  """ViT-B/16's full image tower (width 768, 12 layers, 224 px), batch 1."""
  d = str(tmp_path / "vitb16")
  cfg = dict(embed_dim=512, quick_gelu=True,
             vision_cfg=dict(image_size=224, layers=12, width=768, patch_size=16),
             text_cfg=dict(TEXT, layers=1))
  ref = _make(d, cfg, seed=6)
  model = models.load(d)
  x = H.images(1, 224, seed=7)
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
  got = jax.jit(model.encode_image)(model.params, x)
  assert H.max_abs(got, zi) < 1e-4 * max(1.0, np.abs(zi).max())


def test_clip_bpe_tokenizer_matches_open_clip(tmp_path):
  """No tokenizer files: CLIP's BPE (jaxbench's shipped vocabulary) tokenises as open_clip does."""
  import open_clip
  tok = openclip.OpenClipTokenizer(str(tmp_path), {}, 77, files=[])
  assert tok.describe.startswith("clip-bpe")
  texts = ["a photo of a dog.", "itap of a Tench!", "a bad photo of the great white shark.",
           "a sculpture of a hammerhead, 3 times", "x " * 100]
  ref = open_clip.tokenize(texts, context_length=77).numpy()
  got = tok(texts)
  assert got.dtype == np.int32 and got.shape == (5, 77)
  np.testing.assert_array_equal(got, ref)
  assert got[-1, -1] == 49407                  # truncation keeps the end token
