"""Converts pickle checkpoints (``.bin``/``.pt``/``.pth``) to safetensors, once.

jaxbench never unpickles while evaluating: a pickle can run arbitrary code. A
repo that only offers pickles is converted here, explicitly, with PyTorch's
restricted loader (``torch.load(weights_only=True)``, tensors and containers
only), and loaded from the output directory afterwards::

  python -m jaxbench.convert --src timm/some_model --dst ~/ckpt/some_model
  python -m jaxbench.convert --src ./pytorch_model.bin --dst ./model_dir

``--src`` is a Hugging Face repo id, a local directory or one pickle file.
Directories and repos are copied file by file: non-pickle files as they are,
pickles renamed to their layout's safetensors name (``pytorch_model.bin`` ->
``model.safetensors``, ``open_clip_pytorch_model.bin`` ->
``open_clip_model.safetensors``; sharded ``*.bin.index.json`` rewritten). A
single file becomes ``DST/model.safetensors`` unless ``--dst`` ends in
``.safetensors``. Needs torch; without it the command says so and stops.

``--openclip_config NAME`` writes ``open_clip_config.json`` with open_clip's built-in
config ``NAME`` (needs ``open_clip``), for OpenCLIP repos that ship only the pickle and
no config (LAION's CoCa repos)::

  python -m jaxbench.convert --src laion/CoCa-ViT-L-14-laion2B-s13B-b90k \\
      --dst ~/ckpt/coca_l14 --openclip_config coca_ViT-L-14
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Optional

from jaxbench.models import hub

RENAMES = {"pytorch_model.bin": "model.safetensors",
           "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


class ConvertError(RuntimeError):
  """The conversion cannot run (no torch, nothing to convert, unreadable pickle)."""


def _torch():
  try:
    import torch
  except ImportError as e:
    raise ConvertError("converting a pickle checkpoint needs PyTorch, which is not installed: "
                       "`pip install torch` (CPU build is enough), then rerun "
                       "`python -m jaxbench.convert`") from e
  if torch is None:  # a stubbed-out import (tests, minimal installs)
    raise ConvertError("converting a pickle checkpoint needs PyTorch, which is not installed: "
                       "`pip install torch`")
  return torch


def target_name(name: str) -> str:
  """Safetensors file name for a pickle file name (keeps directories)."""
  d, base = os.path.split(name)
  if base in RENAMES:
    out = RENAMES[base]
  elif base.startswith("pytorch_model-") and base.endswith(".bin"):
    out = "model-" + base[len("pytorch_model-"):-len(".bin")] + ".safetensors"
  else:
    out = os.path.splitext(base)[0] + ".safetensors"
  return os.path.join(d, out)


def state_dict(path: str) -> dict:
  """The tensors of a pickle checkpoint, read with torch's weights-only unpickler.

  Accepts a bare state dict or one nested under 'state_dict'/'model'/'module';
  strips DistributedDataParallel's 'module.' prefix.
  """
  torch = _torch()
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:
    raise ConvertError(f"{path}: torch.load(weights_only=True) refused or failed ({e}); "
                       "only plain tensor checkpoints are converted") from e
  for key in ("state_dict", "model", "module"):
    if isinstance(obj, dict) and isinstance(obj.get(key), dict):
      obj = obj[key]
  if not isinstance(obj, dict):
    raise ConvertError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
  tensors = {}
  for k, v in obj.items():
    if isinstance(v, torch.Tensor):
      k = k[len("module."):] if k.startswith("module.") else k
      # safetensors refuses shared storage: give every tensor its own.
      tensors[k] = v.detach().contiguous().clone()
  if not tensors:
    raise ConvertError(f"{path}: no tensors found (keys: {sorted(obj)[:10]})")
  return tensors


def convert_file(src: str, dst: str) -> dict:
  """One pickle file -> one safetensors file. Returns {'tensors': n, 'dst': dst}."""
  from safetensors.torch import save_file
  tensors = state_dict(src)
  os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
  save_file(tensors, dst, metadata={"format": "pt", "converted_from": os.path.basename(src),
                                    "source_sha256": hub.sha256(src)})
  return {"tensors": len(tensors), "dst": dst}


def convert(src: str, dst: str, revision: Optional[str] = None) -> list[dict]:
  """Converts a repo, directory or file (see module docstring).

  Returns:
    One dict per converted pickle.

  Raises:
    ConvertError: nothing to convert, or no torch.
  """
  if os.path.isfile(os.path.expanduser(src)):
    src = os.path.expanduser(src)
    out = dst if dst.endswith(".safetensors") else os.path.join(dst, "model.safetensors")
    return [convert_file(src, out)]
  names = hub.list_files(src, revision)
  pickles = [n for n in names if n.endswith(hub.PICKLE_SUFFIXES)]
  if not pickles:
    raise ConvertError(f"{src!r} holds no pickle checkpoints to convert; files: {names}")
  _torch()
  paths = hub.resolve(src, names, revision=revision)
  os.makedirs(dst, exist_ok=True)
  done = []
  for n in names:
    if n in pickles:
      done.append(convert_file(paths[n], os.path.join(dst, target_name(n))))
    elif n.endswith(".bin.index.json"):
      index = hub.read_json(paths[n])
      index["weight_map"] = {k: target_name(v) for k, v in index["weight_map"].items()}
      # pytorch_model.bin.index.json -> model.safetensors.index.json
      out = os.path.join(dst, target_name(n[:-len(".index.json")]) + ".index.json")
      with open(out, "w") as f:
        json.dump(index, f, indent=2)
    else:
      os.makedirs(os.path.dirname(os.path.join(dst, n)) or dst, exist_ok=True)
      shutil.copyfile(paths[n], os.path.join(dst, n))
  return done


def write_openclip_config(name: str, dst: str) -> str:
  """Writes ``dst/open_clip_config.json`` from open_clip's built-in model config ``name``.

  Raises:
    ConvertError: open_clip missing, ``name`` unknown (closest names listed), or ``dst``
      already holding a config (the repo's own wins; nothing is overwritten).
  """
  try:
    import open_clip
  except ImportError as e:
    raise ConvertError("--openclip_config needs open_clip: `pip install open_clip_torch`") from e
  out = os.path.join(dst, "open_clip_config.json")
  if os.path.exists(out):
    raise ConvertError(f"{out} exists (the repo ships its own config); drop --openclip_config")
  cfg = open_clip.get_model_config(name)
  if cfg is None:
    import difflib
    close = difflib.get_close_matches(name, open_clip.list_models(), n=3, cutoff=0.0)
    raise ConvertError(f"--openclip_config {name!r} is not an open_clip model config; "
                       f"closest: {close}")
  os.makedirs(dst, exist_ok=True)
  with open(out, "w") as f:
    json.dump({"model_cfg": cfg}, f, indent=2)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxbench.convert", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--src", required=True, help="HF repo id, directory or pickle file")
  parser.add_argument("--dst", required=True, help="output directory (or .safetensors file)")
  parser.add_argument("--revision", default=None, help="branch, tag or commit of a hub repo")
  parser.add_argument("--openclip_config", default=None,
                      help="open_clip model config to write as open_clip_config.json")
  args = parser.parse_args(argv)
  try:
    done = convert(args.src, args.dst, args.revision)
    if args.openclip_config:
      print(f"wrote {write_openclip_config(args.openclip_config, args.dst)}")
  except (ConvertError, hub.WeightsError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for d in done:
    print(f"wrote {d['dst']} ({d['tensors']} tensors)")
  print(f"load it with jaxbench.models.load({args.dst!r})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
