"""Flax CLIP params -> a transformers-layout checkpoint directory.

The inverse of :func:`jaxbench.models.clip.params_from_transformers` and
:func:`jaxbench.models.clip.config_from_transformers`: the demo saves what it
trains exactly as a Hugging Face CLIP repo looks (``model.safetensors`` with
transformers' ``CLIPModel`` tensor names and layouts, ``config.json``,
``preprocessor_config.json`` and the CLIP BPE tokenizer files), so it is loaded
back through :func:`jaxbench.models.load` like any downloaded checkpoint, and
``transformers.CLIPModel.from_pretrained`` reads it too.
"""
from __future__ import annotations

import json
import os

import numpy as np

from jaxbench.models import api
from jaxbench.models.clip import ClipConfig

# Flax module names that transformers nests one level deeper.
_EMBEDDINGS = {"patch_embedding", "class_embedding", "position_embedding", "token_embedding"}
_MLP = {"fc1", "fc2"}


def _torch_name(path: list[str]) -> tuple[str, str]:
  """(transformers tensor name, how to lay the array out) of a Flax param path."""
  parts: list[str] = []
  for p in path[:-1]:
    if p.startswith("layers_"):
      parts += ["layers", p.split("_", 1)[1]]
    elif p in _EMBEDDINGS and path[0] in ("vision_model", "text_model"):
      parts += ["embeddings", p]
    elif p in _MLP:
      parts += ["mlp", p]
    else:
      parts.append(p)
  leaf = path[-1]
  mod = path[-2] if len(path) > 1 else ""
  if leaf == "kernel":
    return ".".join(parts + ["weight"]), ("conv" if mod == "patch_embedding" else "dense")
  if leaf in ("scale", "embedding"):
    return ".".join(parts + ["weight"]), "same"
  if leaf == "bias":
    return ".".join(parts + ["bias"]), "same"
  if leaf == "position_embedding":   # a bare param in our modules, an nn.Embedding there
    return ".".join(parts + ["embeddings", leaf, "weight"]), "same"
  if leaf == "class_embedding":
    return ".".join(parts + ["embeddings", leaf]), "same"
  return ".".join(parts + [leaf]), "same"


def state_dict(params: dict) -> dict[str, np.ndarray]:
  """transformers ``CLIPModel`` state dict (float32 NumPy) of Flax CLIP params.

  Args:
    params: the ``params`` collection of :class:`jaxbench.models.clip.CLIP`.

  Returns:
    {tensor name: array}: Dense kernels transposed to (out, in), the patch conv
    to (out, in, kh, kw), everything else as it is.
  """
  out: dict[str, np.ndarray] = {}

  def walk(tree, path):
    if isinstance(tree, dict) or hasattr(tree, "items"):
      for k, v in tree.items():
        walk(v, path + [str(k)])
      return
    name, how = _torch_name(path)
    a = np.asarray(tree, np.float32)
    if how == "dense":
      a = a.T
    elif how == "conv":
      a = np.transpose(a, (3, 2, 0, 1))
    if name in out:
      raise ValueError(f"two parameters map to {name!r}")
    out[name] = np.array(a, dtype=np.float32, order="C")   # keeps 0-d shapes

  walk(params, [])
  return out


def config_json(cfg: ClipConfig) -> dict:
  """transformers ``CLIPConfig`` dict that :func:`config_from_transformers` maps back to ``cfg``."""
  if cfg.legacy_argmax_pool:
    eos = 2
  else:
    eos = cfg.eos_token_id

  def tower(t):
    return {"hidden_size": t.width, "intermediate_size": t.mlp_dim,
            "num_attention_heads": t.heads, "num_hidden_layers": t.layers,
            "hidden_act": t.act, "layer_norm_eps": t.eps}
  text = {**tower(cfg.text), "vocab_size": cfg.vocab_size,
          "max_position_embeddings": cfg.context_length, "eos_token_id": eos,
          "bos_token_id": 49406, "pad_token_id": 1, "projection_dim": cfg.embed_dim}
  vision = {**tower(cfg.vision), "image_size": cfg.image_size, "patch_size": cfg.patch_size,
            "num_channels": 3, "projection_dim": cfg.embed_dim}
  return {"model_type": "clip", "architectures": ["CLIPModel"],
          "projection_dim": cfg.embed_dim, "logit_scale_init_value": 2.6592,
          "text_config": text, "vision_config": vision}


def preprocessor_json(image_size: int, mean=api.CLIP_MEAN, std=api.CLIP_STD) -> dict:
  """CLIPImageProcessor settings: bicubic resize of the short side, centre crop."""
  return {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
          "size": {"shortest_edge": image_size}, "resample": 3, "do_center_crop": True,
          "crop_size": {"height": image_size, "width": image_size}, "do_rescale": True,
          "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(mean),
          "image_std": list(std), "do_convert_rgb": True}


def write_json(path: str, obj) -> None:
  with open(path, "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True)


def save_transformers(out_dir: str, params: dict, cfg: ClipConfig, *,
                      tokenizer_files: bool = True) -> list[str]:
  """Writes a transformers-layout CLIP checkpoint into ``out_dir``.

  Args:
    out_dir: directory (created).
    params: Flax CLIP params.
    cfg: their config.
    tokenizer_files: also write the CLIP BPE tokenizer files.

  Returns:
    the file names written.
  """
  from safetensors.numpy import save_file
  os.makedirs(out_dir, exist_ok=True)
  save_file(state_dict(params), os.path.join(out_dir, "model.safetensors"),
            metadata={"format": "pt"})
  write_json(os.path.join(out_dir, "config.json"), config_json(cfg))
  write_json(os.path.join(out_dir, "preprocessor_config.json"),
             preprocessor_json(cfg.image_size))
  names = ["model.safetensors", "config.json", "preprocessor_config.json"]
  if tokenizer_files:
    from jaxbench.zeroshot import tokenizer
    names += tokenizer.write_transformers_files(out_dir, context_length=cfg.context_length)
  return names
