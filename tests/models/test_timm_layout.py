"""timm-layout checkpoints (ResNet, VGG, EfficientNet, ViT) against timm's PyTorch models."""
import jax
import numpy as np
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import models
from jaxbench.models import layers, timm_layout


def _timm(name, seed=0, **kwargs):
  import timm
  from timm.models.efficientnet import _gen_efficientnet
  if "channel_multiplier" in kwargs:        # timm's factory fixes these per name
    arch = name.split(".")[0]
    m = _gen_efficientnet(arch, pretrained=False, **kwargs)
    m.pretrained_cfg = timm.models.get_pretrained_cfg(name).to_dict()
  else:
    m = timm.create_model(name, pretrained=False, **kwargs)
  return H.randomize(m, seed)


def _save(m, d, model_args=None):
  from timm.models._hub import save_for_hf
  save_for_hf(m, d, safe_serialization=True, model_args=model_args)
  return d


def _compare(model, ref, size, n=2, seed=0):
  x = H.images(n, size, seed)
  with torch.no_grad():
    want = ref(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
  got = np.asarray(jax.jit(model.apply)(model.params, x))
  assert got.shape == want.shape
  return H.max_abs(got, want), np.abs(want).max()


SMALL = [
    ("resnet50.tv_in1k", dict(layers=[1, 1, 1, 1], num_classes=10), 64),
    ("resnet18.tv_in1k", dict(layers=[1, 1, 1, 1], num_classes=10), 64),
    ("vgg11_bn.tv_in1k", dict(mlp_ratio=0.01, num_classes=10), 32),   # 1x1 map -> adaptive pool
    ("efficientnet_b3.ra2_in1k", dict(channel_multiplier=0.25, depth_multiplier=0.3,
                                      num_classes=10), 64),
    ("vit_base_patch32_384.augreg_in21k_ft_in1k",
     dict(depth=2, embed_dim=64, num_heads=4, img_size=64, num_classes=10), 64),
    ("vit_base_patch32_384.augreg_in21k_ft_in1k",
     dict(depth=1, embed_dim=32, num_heads=2, img_size=64, num_classes=10, global_pool="avg"), 64),
]


@pytest.mark.parametrize("name,kwargs,size", SMALL,
                         ids=["resnet50", "resnet18", "vgg11_bn", "effnet_b3", "vit", "vit_avg"])
def test_small_configs_match_timm(tmp_path, name, kwargs, size):
  ref = _timm(name, **kwargs)
  extra = {k: kwargs[k] for k in ("channel_multiplier", "depth_multiplier") if k in kwargs}
  d = _save(ref, str(tmp_path), model_args=extra or None)
  model = models.load(d)                        # a directory: detected as the timm layout
  assert model.kind == "supervised" and model.num_classes == 10
  assert model.provenance["layout"] == "timm"
  err, scale = _compare(model, ref, size)
  assert err < 1e-4 * max(1.0, scale), (err, scale)
  assert scale > 1e-2
  if name.startswith("vit") and "global_pool" not in kwargs:
    # bf16 params and compute: logits within 5% of their scale of fp32 (stated tolerance).
    bf16 = models.load(d, precision="bfloat16")
    x = H.images(2, size, 5)
    a = np.asarray(jax.jit(model.apply)(model.params, x))
    b = np.asarray(jax.jit(bf16.apply)(bf16.params, x))
    assert b.dtype == np.float32 and 0 < H.max_abs(a, b) < 0.05 * np.abs(a).max()


FULL = [
    ("resnet50.tv_in1k", 224),
    ("vgg16.tv_in1k", 224),
    ("efficientnet_b3.ra2_in1k", 288),
    ("vit_base_patch32_384.augreg_in21k_ft_in1k", 384),
]


@pytest.mark.parametrize("name,size", FULL, ids=["resnet50", "vgg16", "effnet_b3", "vit_b32_384"])
def test_full_size_configs_match_timm(tmp_path, name, size):
  """One full-size RoZ baseline per family, 1000 classes, batch 1, fp32 within 1e-4."""
  ref = _timm(name, seed=1)
  model = models.load(f"timm:{_save(ref, str(tmp_path))}")
  assert model.preprocess.size == size and model.label_space == "imagenet1k"
  err, scale = _compare(model, ref, size, n=1, seed=1)
  assert err < 1e-4 * max(1.0, scale), (err, scale)


def _timm_eval_transform(name, use_test_size=False):
  """(resize, crop, interpolation, mean, std) of timm's own eval transform."""
  import timm
  from torchvision import transforms as T
  cfg = timm.data.resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg(
      name).to_dict(), use_test_size=use_test_size)
  t = timm.data.create_transform(**cfg, is_training=False)
  resize = next(s for s in t.transforms if isinstance(s, T.Resize))
  crop = next(s for s in t.transforms if isinstance(s, T.CenterCrop))
  norm = next(s for s in t.transforms if isinstance(s, T.Normalize))
  size = resize.size if isinstance(resize.size, int) else resize.size[0]
  return (size, crop.size[0], resize.interpolation.value, tuple(float(v) for v in norm.mean),
          tuple(float(v) for v in norm.std))


@pytest.mark.parametrize("name", ["resnet50.tv_in1k", "vgg16.tv_in1k", "efficientnet_b3.ra2_in1k",
                                  "vit_base_patch32_384.augreg_in21k_ft_in1k",
                                  "vit_base_patch16_224.augreg2_in21k_ft_in1k"])
def test_preprocess_matches_timm_eval_transform(name):
  import timm
  pc = timm.models.get_pretrained_cfg(name).to_dict()
  for test_size in (False, True):
    p = timm_layout.preprocess_from_timm(pc, use_test_size=test_size)
    resize, crop, interp, mean, std = _timm_eval_transform(name, test_size)
    assert (p.resize, p.size, p.interpolation, p.crop) == (resize, crop, interp, "center")
    np.testing.assert_allclose(p.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(p.std, std, rtol=1e-6)


def test_tv_weights_preprocessing_is_torchvisions():
  """resnet50.tv_in1k: bilinear resize to 256, crop 224, ImageNet mean/std."""
  import timm
  p = timm_layout.preprocess_from_timm(timm.models.get_pretrained_cfg("resnet50.tv_in1k").to_dict())
  assert (p.resize, p.size, p.interpolation) == (256, 224, "bilinear")
  assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)


ARCHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
         "resnext50_32x4d", "vgg16", "vgg19", "vgg16_bn", "efficientnet_b0", "efficientnet_b2",
         "efficientnet_b3", "vit_base_patch32_384", "vit_base_patch16_224",
         "vit_base_patch16_clip_quickgelu_224"]


@pytest.mark.parametrize("arch", ARCHS)
def test_full_architectures_have_timm_tensor_shapes(arch):
  """Every tensor of the full architecture, by name and shape, as timm builds it.

  timm builds on the meta device (no memory); we derive the tensor each Flax
  leaf reads and the shape it must have, with no weights anywhere.
  """
  import timm
  with torch.device("meta"):
    ref = timm.create_model(arch, pretrained=False)
  want = {k: tuple(v.shape) for k, v in ref.state_dict().items()
          if not k.endswith("num_batches_tracked")}
  config = {"architecture": arch, "num_classes": ref.num_classes, "pretrained_cfg": {}}
  fam, cfg, module = timm_layout.build(config)
  size = getattr(cfg, "image_size", 224)
  shapes = layers.param_shapes(module, jax.numpy.zeros((1, size, size, 3)))
  src = fam.src(cfg)
  got = {}
  for path, sds in jax.tree_util.tree_leaves_with_path(shapes):
    p = tuple(str(getattr(k, "key", k)) for k in path)
    s = src(p, tuple(sds.shape))
    got[s.key] = s.want(tuple(sds.shape))
  assert got == want
