"""Bad checkpoints and specs fail with messages that say what is wrong; names; the converter."""
import json
import os
import shutil
import sys

import jax
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from tests.models import zoo_helpers as H
from jaxbench import convert, models, registry
from jaxbench.models import hub, layers, zoo


@pytest.fixture(scope="module")
def timm_dir(tmp_path_factory):
  """A small timm ResNet-50 (one block per stage, 10 classes) in the timm layout."""
  import timm
  d = str(tmp_path_factory.mktemp("zoo_err") / "resnet")
  ref = H.randomize(timm.create_model("resnet50.tv_in1k", pretrained=False, layers=[1, 1, 1, 1],
                                      num_classes=10))
  H.save_timm(ref, d)
  return d, ref


def _edit(src, dst, fn):
  shutil.copytree(src, dst)
  path = os.path.join(dst, "model.safetensors")
  tensors = load_file(path)
  fn(tensors)
  save_file(tensors, path)
  return dst


def test_missing_tensor_is_named_with_its_shape(timm_dir, tmp_path):
  d = _edit(timm_dir[0], str(tmp_path / "m"), lambda t: t.pop("layer2.0.conv2.weight"))
  with pytest.raises(layers.CheckpointMismatch,
                     match=r"missing tensors \[layer2\.0\.conv2\.weight \(expected shape "
                           r"\(128, 128, 3, 3\)\)\]"):
    models.load(d)


def test_mismatched_shape_error_names_the_tensor_and_both_shapes(timm_dir, tmp_path):
  def shrink(t):
    t["fc.weight"] = t["fc.weight"][:7]
  d = _edit(timm_dir[0], str(tmp_path / "s"), shrink)
  with pytest.raises(layers.CheckpointMismatch) as e:
    models.load(d)
  assert "fc.weight: expected (10, 2048), found (7, 2048)" in str(e.value)
  assert "timm resnet50" in str(e.value) and d in str(e.value)


def test_unexpected_tensor_is_named(timm_dir, tmp_path):
  def extra(t):
    t["layer5.0.conv1.weight"] = np.zeros((4, 4, 1, 1), np.float32)
  d = _edit(timm_dir[0], str(tmp_path / "u"), extra)
  with pytest.raises(layers.CheckpointMismatch,
                     match=r"unexpected tensors \[layer5\.0\.conv1\.weight\]"):
    models.load(d)


def test_renamed_tensor_reports_both_names(timm_dir, tmp_path):
  def rename(t):
    t["head.weight"] = t.pop("fc.weight")
  d = _edit(timm_dir[0], str(tmp_path / "r"), rename)
  with pytest.raises(layers.CheckpointMismatch) as e:
    models.load(d)
  assert "missing tensors [fc.weight" in str(e.value)
  assert "unexpected tensors [head.weight]" in str(e.value)


def _with_config(src, dst, edit):
  shutil.copytree(src, dst)
  path = os.path.join(dst, "config.json")
  with open(path) as f:
    c = json.load(f)
  edit(c)
  with open(path, "w") as f:
    json.dump(c, f)
  return dst


def test_unknown_timm_architecture_lists_known(timm_dir, tmp_path):
  d = _with_config(timm_dir[0], str(tmp_path / "a"),
                   lambda c: c.update(architecture="convnext_tiny"))
  with pytest.raises(layers.UnknownArchitecture) as e:
    models.load(d)
  msg = str(e.value)
  assert "'convnext_tiny' is not implemented" in msg
  for known in ("resnet50", "resnet152", "vgg16", "efficientnet_b3", "vit_{"):
    assert known in msg


def test_unknown_timm_model_args_are_refused(timm_dir, tmp_path):
  d = _with_config(timm_dir[0], str(tmp_path / "x"),
                   lambda c: c["model_args"].update(stem_type="deep"))
  with pytest.raises(layers.UnknownArchitecture, match=r"model_args \['stem_type'\]"):
    models.load(d)


def test_unknown_transformers_model_type_lists_known(tmp_path):
  d = str(tmp_path)
  with open(os.path.join(d, "config.json"), "w") as f:
    json.dump({"model_type": "convnext", "architectures": ["ConvNextForImageClassification"]}, f)
  save_file({"w": np.zeros(2, np.float32)}, os.path.join(d, "model.safetensors"))
  with pytest.raises(layers.UnknownArchitecture) as e:
    models.load(d)
  for known in ("'convnext'", "clip", "siglip", "vit", "resnet"):
    assert known in str(e.value)


def test_unsupported_openclip_options_are_named(tmp_path):
  d = str(tmp_path)
  # convnext_base is built since issue 20; a timm trunk outside the table is still refused,
  # named, with the closest implemented one.
  cfg = {"model_cfg": {"embed_dim": 8, "vision_cfg": {"timm_model_name": "resnet50d",
                                                      "layers": 2, "width": 32},
                       "text_cfg": {"width": 16, "heads": 2, "layers": 1}}}
  with open(os.path.join(d, "open_clip_config.json"), "w") as f:
    json.dump(cfg, f)
  with pytest.raises(layers.UnknownArchitecture,
                     match="timm trunk 'resnet50d' is not implemented.*closest"):
    models.load(d)


def test_pickle_only_repos_point_to_the_converter(timm_dir, tmp_path):
  # timm layout
  d = str(tmp_path / "timm")
  os.makedirs(d)
  shutil.copy(os.path.join(timm_dir[0], "config.json"), d)
  torch.save(timm_dir[1].state_dict(), os.path.join(d, "pytorch_model.bin"))
  with pytest.raises(hub.WeightsError, match=r"python -m jaxbench\.convert --src .*timm"):
    models.load(d)
  # OpenCLIP layout: a timm model.safetensors beside it must not be taken for the CLIP weights
  o = str(tmp_path / "oc")
  os.makedirs(o)
  with open(os.path.join(o, "open_clip_config.json"), "w") as f:
    json.dump({"model_cfg": {"embed_dim": 8, "vision_cfg": {"layers": 1, "width": 16,
                                                            "patch_size": 8, "image_size": 16,
                                                            "head_width": 8},
                             "text_cfg": {"width": 16, "heads": 2, "layers": 1}}}, f)
  open(os.path.join(o, "open_clip_pytorch_model.bin"), "wb").close()
  save_file({"w": np.zeros(2, np.float32)}, os.path.join(o, "model.safetensors"))
  with pytest.raises(hub.WeightsError, match=r"OpenCLIP weights only as pickle.*jaxbench\.convert"):
    models.load(o)


def test_converter_round_trip(timm_dir, tmp_path):
  """python -m jaxbench.convert on a pickle-only directory, then load: same logits as timm."""
  src = str(tmp_path / "pickled")
  os.makedirs(src)
  shutil.copy(os.path.join(timm_dir[0], "config.json"), src)
  sd = {"module." + k: v for k, v in timm_dir[1].state_dict().items()}   # DDP-style prefix
  torch.save({"state_dict": sd}, os.path.join(src, "pytorch_model.bin"))
  dst = str(tmp_path / "converted")
  assert convert.main(["--src", src, "--dst", dst]) == 0
  assert sorted(os.listdir(dst)) == ["config.json", "model.safetensors"]
  model = models.load(dst)
  x = H.images(2, 64)
  with torch.no_grad():
    want = timm_dir[1](H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
  assert H.max_abs(jax.jit(model.apply)(model.params, x), want) < 1e-4


def test_converter_without_torch_says_so(tmp_path, monkeypatch, capsys):
  f = str(tmp_path / "w.pt")
  open(f, "wb").close()
  monkeypatch.setitem(sys.modules, "torch", None)      # import torch -> ImportError
  with pytest.raises(convert.ConvertError, match="needs PyTorch.*pip install torch"):
    convert.convert(f, str(tmp_path / "out"))
  assert convert.main(["--src", f, "--dst", str(tmp_path / "out")]) == 1
  assert "needs PyTorch" in capsys.readouterr().err


def test_bad_options_are_refused(timm_dir):
  with pytest.raises(ValueError, match="unknown precision 'float16'.*bfloat16"):
    models.load(timm_dir[0], precision="float16")
  with pytest.raises(ValueError, match=r"unknown options for a timm model: \['colour'\]"):
    models.load(timm_dir[0], colour="red")


def test_registry_names_map_to_layout_specs():
  known = models.known()
  for name in zoo.ROZ_CLIP + zoo.ROZ_SUPERVISED + ("siglip_b16", "hf_vit_b16", "hf_resnet50",
                                                     "vit_b16", "clip_rn50x64",
                                                     "openclip_laion_vit_b32"):
    assert name in known
  prefixes = {"clip_rn50": "openclip:timm/resnet50_clip.openai",
              "resnet50_tv": "timm:timm/resnet50.tv_in1k",
              "vgg16_tv": "timm:timm/vgg16.tv_in1k",
              "effnet_b3": "timm:timm/efficientnet_b3.ra2_in1k",
              "vit_b32_384": "timm:timm/vit_base_patch32_384.augreg_in21k_ft_in1k",
              "siglip_b16": "hf:google/siglip-base-patch16-224"}
  for name, target in prefixes.items():
    spec = models.NAMES.factory(name)()
    ref, _, kwargs = registry.parse(spec)
    assert ref == target
    layout_prefix = ref.split(":")[0]
    assert layout_prefix in {l.prefix for l in models.LAYOUTS.values()}
  assert registry.parse(models.NAMES.factory("clip_rn50")())[2] == {"quick_gelu": True}
  with pytest.raises(registry.SpecError, match="unknown model 'clip_rn51'.*clip_rn50"):
    models.load("clip_rn51")


def test_preprocess_override(timm_dir):
  model = models.load(timm_dir[0])
  assert model.preprocess.mean == (0.485, 0.456, 0.406) and model.preprocess.resize == 256
  clipped = zoo.override_preprocess(model, "clip")
  p = clipped.preprocess
  assert (p.size, p.resize, p.interpolation, p.crop) == (224, 224, "bicubic", "center")
  assert p.mean == (0.48145466, 0.4578275, 0.40821073)
  assert "0.48145466" in clipped.describe()["preprocess"]
  assert zoo.override_preprocess(model, "") is model
  assert zoo.override_preprocess(model, "clip_bilinear").preprocess.interpolation == "bilinear"
  with pytest.raises(ValueError, match="unknown preprocess override 'imagenet'.*'clip'"):
    zoo.override_preprocess(model, "imagenet")


def test_registry_name_loads_from_the_offline_hub_cache(timm_dir, tmp_path, monkeypatch):
  """'resnet50_tv' -> timm:timm/resnet50.tv_in1k, read from a Hugging Face cache offline;
  provenance records the snapshot commit and the weights' SHA-256."""
  import huggingface_hub as hf
  commit = "0123456789abcdef0123456789abcdef01234567"
  repo = tmp_path / "hub" / "models--timm--resnet50.tv_in1k"
  snap = repo / "snapshots" / commit
  shutil.copytree(timm_dir[0], snap)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(commit)
  monkeypatch.setattr(hf.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setattr(hf.constants, "HF_HUB_OFFLINE", True)
  hub._CONFIG_CACHE.clear()
  model = models.load("resnet50_tv")
  assert model.name == "resnet50_tv" and model.num_classes == 10
  prov = model.provenance
  assert (prov["source"], prov["revision"], prov["layout"]) == (
      "timm/resnet50.tv_in1k", commit, "timm")
  assert prov["sha256"]["model.safetensors"] == hub.sha256(
      os.path.join(timm_dir[0], "model.safetensors"))
