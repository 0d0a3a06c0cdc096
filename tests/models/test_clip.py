"""Flax CLIP against transformers' PyTorch CLIPModel on identical weights."""
import json
import os

import numpy as np
import pytest
import torch

from jaxbench import models
from jaxbench.models import hub


def _torch_features(ref, x01, ids, mean, std):
  xt = torch.tensor((x01 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))
  xt = xt.permute(0, 3, 1, 2)
  with torch.no_grad():
    out = ref(pixel_values=xt, input_ids=torch.tensor(ids, dtype=torch.long))
  return out.image_embeds.numpy(), out.text_embeds.numpy(), out.logits_per_image.numpy()


def _check_against_torch(model, ref, size, tol):
  rng = np.random.default_rng(0)
  x = rng.random((3, size, size, 3), dtype=np.float32)
  ids = model.tokenize(["a photo of a dog.", "a bad photo of the great white shark.",
                        "itap of a tench."])
  zi = np.asarray(model.encode_image(model.params, x))
  zt = np.asarray(model.encode_text(model.params, ids))
  ri, rt, rlogits = _torch_features(ref, x, ids, model.preprocess.mean, model.preprocess.std)
  # transformers returns normalised embeddings; ours are raw (normalise to compare).
  n = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
  assert np.abs(n(zi) - ri).max() < tol
  assert np.abs(n(zt) - rt).max() < tol
  scale = float(np.exp(np.asarray(model.params["net"]["logit_scale"])))
  logits = scale * n(zi) @ n(zt).T
  assert np.abs(logits - rlogits).max() < tol * scale
  # Raw projections too: the projection weights must not be off by a scale.
  with torch.no_grad():
    raw = ref.get_image_features(pixel_values=torch.tensor(
        (x - np.asarray(model.preprocess.mean, np.float32)) /
        np.asarray(model.preprocess.std, np.float32)).permute(0, 3, 1, 2))
  raw = getattr(raw, "pooler_output", raw).numpy()
  assert np.abs(zi - raw).max() < tol * max(1.0, np.abs(raw).max())


def test_tiny_clip_matches_pytorch(tiny_clip):
  d, ref = tiny_clip
  model = models.load(d)
  assert model.kind == "zeroshot" and model.preprocess.size == 32
  assert model.preprocess.interpolation == "bicubic"
  assert set(model.provenance["sha256"]) == {"model.safetensors"}
  assert model.provenance["sha256"]["model.safetensors"] == hub.sha256(
      os.path.join(d, "model.safetensors"))
  _check_against_torch(model, ref, 32, 1e-5)


def test_gelu_variant_matches_pytorch(tmp_path):
  """LAION's HF-format CLIPs use exact GELU instead of quick_gelu."""
  from conftest import make_tiny_clip
  ref = make_tiny_clip(str(tmp_path), hidden_act="gelu", seed=3)
  _check_against_torch(models.load(str(tmp_path)), ref, 32, 1e-5)


def test_full_vit_b32_matches_pytorch(tmp_path):
  """The full ViT-B/32 configuration (random weights), fp32, within 1e-4."""
  from transformers import CLIPConfig, CLIPModel
  from jaxbench.zeroshot import tokenizer
  torch.manual_seed(0)
  ref = CLIPModel(CLIPConfig()).eval()   # defaults = openai/clip-vit-base-patch32
  ref.save_pretrained(str(tmp_path))
  tokenizer.write_transformers_files(str(tmp_path))
  model = models.load(str(tmp_path))
  assert model.preprocess.size == 224
  _check_against_torch(model, ref, 224, 1e-4)


def test_mismatched_tensor_is_named(tmp_path, tiny_clip):
  from safetensors.numpy import load_file, save_file
  d, _ = tiny_clip
  tensors = load_file(os.path.join(d, "model.safetensors"))
  key = "vision_model.encoder.layers.1.mlp.fc1.weight"
  tensors[key] = tensors[key][:-1]
  for f in os.listdir(d):
    if f != "model.safetensors":
      with open(os.path.join(d, f), "rb") as src, open(tmp_path / f, "wb") as dst:
        dst.write(src.read())
  save_file(tensors, str(tmp_path / "model.safetensors"))
  with pytest.raises(ValueError, match=r"layers_1/fc1/kernel: expected \(48, 96\), found "
                                       r"\(48, 95\)"):
    models.load(str(tmp_path))


def test_pickle_only_checkpoint_is_refused(tmp_path, tiny_clip):
  d, _ = tiny_clip
  with open(os.path.join(d, "config.json")) as f:
    cfg = json.load(f)
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
  with pytest.raises(hub.WeightsError, match="never unpickles.*jaxbench.convert"):
    models.load(str(tmp_path))


def test_unknown_model_suggests_the_closest():
  from jaxbench import registry
  with pytest.raises(registry.SpecError, match="unknown model 'no_such_model'.*clip_vit_b32"):
    models.load("no_such_model")


def test_offline_hub_miss_names_hf_hub_offline(monkeypatch, tmp_path):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setenv("HF_HOME", str(tmp_path))
  import huggingface_hub.constants as c
  monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
  with pytest.raises(hub.WeightsError, match="HF_HUB_OFFLINE"):
    models.load("hf:openai/clip-vit-base-patch32")


def test_hub_cache_repo_loads_offline_with_its_revision(tmp_path, tiny_clip, monkeypatch):
  """A repo in the Hugging Face cache loads offline; the revision is recorded."""
  import shutil
  d, _ = tiny_clip
  commit = "0123456789abcdef0123456789abcdef01234567"
  repo = tmp_path / "hub" / "models--someone--tiny-clip"
  snap = repo / "snapshots" / commit
  snap.mkdir(parents=True)
  for f in os.listdir(d):
    shutil.copy(os.path.join(d, f), snap / f)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(commit)
  import huggingface_hub.constants as c
  monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  hub._CONFIG_CACHE.clear()
  model = models.load("hf:someone/tiny-clip")
  assert model.provenance["revision"] == commit
  assert model.provenance["source"] == "someone/tiny-clip"
