"""transformers ViT / ResNet image classifiers against their PyTorch models on identical weights."""
import json
import os

import jax
import numpy as np
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import models
from jaxbench.models import hf_vision, layers, resnet, vit


def _compare(model, ref, size, n=2, seed=0):
  x = H.images(n, size, seed)
  with torch.no_grad():
    want = ref(pixel_values=H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).logits
  want = want.numpy()
  got = np.asarray(jax.jit(model.apply)(model.params, x))
  assert got.shape == want.shape
  return H.max_abs(got, want), np.abs(want).max()


def test_small_vit_matches_transformers(tmp_path):
  from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
  torch.manual_seed(0)
  ref = ViTForImageClassification(ViTConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
      image_size=32, patch_size=8, num_labels=5))
  H.randomize(ref, 1)
  ref.save_pretrained(str(tmp_path))
  ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(tmp_path))
  model = models.load(str(tmp_path))
  assert model.provenance["layout"] == "transformers-vit" and model.num_classes == 5
  assert (model.preprocess.size, model.preprocess.crop) == (32, "squash")
  assert model.preprocess.mean == (0.5, 0.5, 0.5)
  err, scale = _compare(model, ref, 32)
  assert err < 1e-4 * max(1.0, scale) and scale > 1e-2


@pytest.mark.parametrize("layer_type", ["bottleneck", "basic"])
def test_small_resnet_matches_transformers(tmp_path, layer_type):
  from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification
  torch.manual_seed(0)
  ref = ResNetForImageClassification(ResNetConfig(
      embedding_size=16, hidden_sizes=[16, 32, 48, 64], depths=[1, 2, 1, 1],
      layer_type=layer_type, num_labels=7))
  H.randomize(ref, 2)
  ref.save_pretrained(str(tmp_path))
  ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(
      str(tmp_path))
  model = models.load(f"hf:{tmp_path}")
  assert model.provenance["layout"] == "transformers-resnet" and model.num_classes == 7
  assert (model.preprocess.size, model.preprocess.resize) == (64, 73)
  err, scale = _compare(model, ref, 64)
  assert err < 1e-4 * max(1.0, scale) and scale > 1e-2


def _meta_shapes(ref):
  return {k: tuple(v.shape) for k, v in ref.state_dict().items()
          if not k.endswith("num_batches_tracked")}


def _our_shapes(module, src, size):
  shapes = layers.param_shapes(module, jax.numpy.zeros((1, size, size, 3)))
  got = {}
  for path, sds in jax.tree_util.tree_leaves_with_path(shapes):
    s = src(tuple(str(getattr(k, "key", k)) for k in path), tuple(sds.shape))
    got[s.key] = s.want(tuple(sds.shape))
  return got


def _saved_names(ref, tmp_path):
  """Tensor names as save_pretrained writes them (transformers 5 renames some in memory)."""
  from safetensors import safe_open
  ref.save_pretrained(str(tmp_path))
  with safe_open(os.path.join(tmp_path, "model.safetensors"), "np") as f:
    return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()
            if not k.endswith("num_batches_tracked")}


# microsoft/resnet-50 and google/vit-base-patch16-224 configurations (transformers'
# defaults): every tensor name and shape of the saved checkpoint is read, none is left.
#
# With the small numeric tests above this covers the transformers layouts at full size:
# the modules they map onto run the full ResNet-50 and ViT-B numerically against timm
# (test_timm_layout.py) and open_clip (test_openclip.py).


def test_full_resnet50_has_the_checkpoint_tensors(tmp_path):
  from transformers import ResNetConfig, ResNetForImageClassification
  torch.manual_seed(0)
  r = ResNetForImageClassification(ResNetConfig(num_labels=1000))
  want = _saved_names(r, tmp_path / "r")
  got = _our_shapes(resnet.ResNet(resnet.hf_config(r.config.to_dict())),
                    hf_vision._resnet_src, 224)
  assert got == want


def test_full_vit_b16_has_the_checkpoint_tensors(tmp_path):
  from transformers import ViTConfig, ViTForImageClassification
  torch.manual_seed(0)
  v = ViTForImageClassification(ViTConfig(num_labels=1000))
  want = _saved_names(v, tmp_path / "v")
  got = _our_shapes(vit.ViT(vit.hf_config(v.config.to_dict())), vit.hf_src, 224)
  assert got == {k: s for k, s in want.items() if not k.startswith("vit.pooler")}


def test_processor_configs_give_the_processors_crops():
  """Our Preprocess reproduces what the transformers processors do to a non-square image:
  ViT squashes to size x size; ConvNext (microsoft/resnet-50) resizes the short side to
  size / crop_pct and center-crops."""
  from PIL import Image
  from transformers import ConvNextImageProcessor, ViTImageProcessor
  rng = np.random.default_rng(0)
  img = Image.fromarray(rng.integers(0, 256, (90, 140, 3), dtype=np.uint8))

  def ours(p):
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[p.interpolation]
    if p.crop == "squash":
      out = img.resize((p.resize, p.resize), filt)
    else:
      w, h = img.size
      s = p.resize / min(w, h)
      out = img.resize((round(w * s), round(h * s)), filt)
    w, h = out.size
    l, t = (w - p.size) // 2, (h - p.size) // 2
    a = np.asarray(out.crop((l, t, l + p.size, t + p.size)), np.float32) / 255
    return (a - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)

  for proc in (ViTImageProcessor(), ConvNextImageProcessor(size={"shortest_edge": 224},
                                                          crop_pct=0.875, resample=3)):
    cfg = json.loads(proc.to_json_string())
    p = hf_vision.preprocess_from_processor(cfg, 224, (0.5,) * 3, (0.5,) * 3)
    want = proc(img, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    assert want.shape == (224, 224, 3)
    np.testing.assert_allclose(ours(p), want, atol=0.02)   # 1 grey level
