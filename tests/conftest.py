"""Test-wide settings: 8 simulated CPU devices, float32 matmuls, a private HF cache.

XLA_FLAGS must be set before JAX initialises its backend, so it lives here.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # noqa: E402

# Fidelity tests compare against PyTorch fp32 at 1e-4: use exact fp32 matmuls.
jax.config.update("jax_default_matmul_precision", "highest")

import pytest  # noqa: E402


def make_tiny_clip(out_dir, *, image_size=32, patch_size=8, seed=0, width=48, text_width=32,
                   layers=2, projection_dim=16, hidden_act="quick_gelu"):
  """Saves a random transformers CLIPModel (safetensors) + real CLIP BPE tokenizer files.

  Returns the torch model (eval mode) for reference computations.
  """
  import torch
  from transformers import CLIPConfig, CLIPModel
  from jaxbench.zeroshot import tokenizer
  cfg = CLIPConfig(
      text_config=dict(hidden_size=text_width, intermediate_size=2 * text_width,
                       num_attention_heads=4, num_hidden_layers=layers, vocab_size=49408,
                       hidden_act=hidden_act),
      vision_config=dict(hidden_size=width, intermediate_size=2 * width,
                         num_attention_heads=4, num_hidden_layers=layers,
                         image_size=image_size, patch_size=patch_size, hidden_act=hidden_act),
      projection_dim=projection_dim)
  torch.manual_seed(seed)
  model = CLIPModel(cfg).eval()
  # Non-trivial LayerNorm and bias values so a mis-mapped tensor cannot hide.
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(out_dir)
  tokenizer.write_transformers_files(out_dir)
  import json, os
  with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
    json.dump({"crop_size": {"height": image_size, "width": image_size},
               "size": {"shortest_edge": image_size}, "resample": 3, "do_center_crop": True,
               "image_mean": [0.48145466, 0.4578275, 0.40821073],
               "image_std": [0.26862954, 0.26130258, 0.27577711]}, f)
  return model


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
  """(directory, torch reference model) of a tiny random CLIP in transformers layout."""
  d = str(tmp_path_factory.mktemp("tiny_clip"))
  ref = make_tiny_clip(d)
  return d, ref
