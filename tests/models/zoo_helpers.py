"""Helpers for the model-zoo fidelity tests: random PyTorch references, saved in each layout.

Every parameter *and* buffer is re-drawn (BatchNorm running statistics too, and
the zero-initialised last BN of each residual block), so that a wrong name map,
a transposed kernel or a BatchNorm in the wrong mode changes the outputs.
"""
from __future__ import annotations

import json
import os

import numpy as np


def randomize(module, seed: int = 0, gain: float = 1.0):
  """Redraws the float params/buffers of a torch module in place and sets eval mode.

  Vectors (biases, norm weights, BN statistics) are always redrawn: biases and
  running means ~ N(0, 0.1), norm weights and running variances ~ U(0.5, 1.5).
  Matrices and kernels keep the library's random init (already scaled for O(1)
  activations; redrawing 100M+ weights costs seconds) unless it is constant
  (zero-initialised last BNs, projections), then ~ N(0, gain / fan_in).
  """
  import torch
  g = torch.Generator().manual_seed(seed)
  saved = set(module.state_dict())   # persistent only: not causal masks and the like
  with torch.no_grad():
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
      if not t.is_floating_point() or name not in saved:
        continue
      leaf = name.rsplit(".", 1)[-1]
      if t.ndim >= 2 and t.numel() > 1 and bool(t.std() > 0):
        continue
      if leaf == "running_var" or (t.ndim == 1 and leaf == "weight"):
        t.copy_(torch.rand(t.shape, generator=g) + 0.5)
      elif leaf in ("running_mean", "bias") or t.ndim <= 1:
        t.copy_(torch.randn(t.shape, generator=g) * 0.1)
      else:
        fan_in = t.shape[-1] if t.ndim == 2 else t[0].numel()
        t.copy_(torch.randn(t.shape, generator=g) * (gain / fan_in) ** 0.5)
  module.eval()
  return module


def images(n: int, size: int, seed: int = 0) -> np.ndarray:
  """float32 (n, size, size, 3) images in [0, 1]."""
  return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def to_nchw(x01: np.ndarray, mean, std):
  """What the PyTorch reference sees: normalised NCHW tensors."""
  import torch
  x = (x01 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def save_safetensors(state_dict, path: str):
  from safetensors.torch import save_file
  save_file({k: v.detach().contiguous().clone() for k, v in state_dict.items()}, path)


def save_openclip(model, model_cfg: dict, d: str, preprocess_cfg=None):
  """OpenCLIP hub layout: open_clip_config.json + open_clip_model.safetensors."""
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "open_clip_config.json"), "w") as f:
    json.dump({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711]}}, f)
  save_safetensors(model.state_dict(), os.path.join(d, "open_clip_model.safetensors"))
  return d


def register_openclip_config(cfg_dir: str, name: str, model_cfg: dict) -> str:
  """Writes ``model_cfg`` as ``cfg_dir/name.json`` and adds ``cfg_dir`` to open_clip's
  model configs, so ``open_clip.create_model(name)`` builds it; returns ``name``."""
  import open_clip
  os.makedirs(cfg_dir, exist_ok=True)
  with open(os.path.join(cfg_dir, name + ".json"), "w") as f:
    json.dump(model_cfg, f)
  open_clip.add_model_config(cfg_dir)
  return name


def save_timm(model, d: str):
  """timm hub layout (timm's own exporter): config.json + model.safetensors."""
  from timm.models._hub import save_for_hf
  save_for_hf(model, d, safe_serialization=True)
  return d


def max_abs(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def token_ids(n: int, length: int, vocab: int, seed: int = 0, pad: int = 0) -> np.ndarray:
  """(n, length) int32 ids: random tokens, then the end token (the largest id, where
  argmax pooling finds it) at positions 1..length-1, then ``pad``."""
  rng = np.random.default_rng(seed)
  ids = np.full((n, length), pad, np.int32)
  for i in range(n):
    end = 1 + i % (length - 1)
    ids[i, :end] = rng.integers(1, vocab - 1, end)
    ids[i, end] = vocab - 1
  return ids
