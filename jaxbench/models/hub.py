"""Weights from Hugging Face repos or local directories: download, cache, hash, read.

Everything goes through ``huggingface_hub`` so ``HF_HOME``, ``HF_HUB_OFFLINE`` and
``revision=`` behave as users expect. Weights are read from safetensors only;
pickle checkpoints are refused with a pointer to the converter.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Optional

import numpy as np

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class WeightsError(FileNotFoundError):
  """Weights that cannot be found, fetched or read."""


def is_local(ref: str) -> bool:
  return os.path.isdir(os.path.expanduser(ref))


def resolve(ref: str, filenames: Iterable[str], *, revision: Optional[str] = None,
            optional: Iterable[str] = ()) -> dict[str, str]:
  """Local paths of ``filenames`` (and of those in ``optional`` that exist).

  Args:
    ref: a local directory or a Hugging Face repo id ("openai/clip-vit-base-patch32").
    filenames: files that must exist.
    revision: branch, tag or commit for hub repos.
    optional: files fetched when present.

  Returns:
    {filename: local path}.

  Raises:
    WeightsError: naming the repo, the file and whether the hub was offline.
  """
  out = {}
  if is_local(ref):
    root = os.path.expanduser(ref)
    for name in list(filenames) + list(optional):
      path = os.path.join(root, name)
      if os.path.exists(path):
        out[name] = path
      elif name not in optional:
        raise WeightsError(f"{path} not found: directory {root!r} holds "
                           f"{sorted(os.listdir(root))}, expected {name!r}")
    return out
  import huggingface_hub as hf
  from huggingface_hub import errors as hf_errors
  offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
  for name in list(filenames) + list(optional):
    try:
      out[name] = hf.hf_hub_download(ref, name, revision=revision)
    except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError,
            hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError,
            OSError, ValueError) as e:
      if name in optional and not isinstance(e, hf_errors.LocalEntryNotFoundError):
        continue
      if name in optional and offline:
        continue
      hint = (" (HF_HUB_OFFLINE is set and the file is not in the cache at "
              f"{hf.constants.HF_HUB_CACHE}; run once online or pass a local directory)"
              if offline else "")
      raise WeightsError(f"cannot get {name!r} from Hugging Face repo {ref!r}"
                         f"{'@' + revision if revision else ''}{hint}: {e}") from e
  return out


_CONFIG_CACHE: dict = {}


def config_json(ref: str, revision: Optional[str] = None, name: str = "config.json") -> dict:
  """A repo's or directory's JSON config ({} when absent), cached per process."""
  key = (ref, revision, name)
  if key not in _CONFIG_CACHE:
    try:
      path = resolve(ref, [], revision=revision, optional=[name]).get(name)
    except WeightsError:
      path = None
    _CONFIG_CACHE[key] = read_json(path) if path else {}
  return _CONFIG_CACHE[key]


def list_files(ref: str, revision: Optional[str] = None) -> list[str]:
  """File names in a local directory or hub repo (cache-only when offline)."""
  if is_local(ref):
    root = os.path.expanduser(ref)
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)
  import huggingface_hub as hf
  try:
    return sorted(hf.list_repo_files(ref, revision=revision))
  except Exception:  # offline: look in the cache snapshot
    try:
      path = hf.snapshot_download(ref, revision=revision, local_files_only=True)
    except Exception as e:
      offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
      hint = (" (HF_HUB_OFFLINE is set: run once online to fill the cache, or pass a local "
              "directory)" if offline else "")
      raise WeightsError(f"Hugging Face repo {ref!r} is not reachable and not cached{hint}: "
                         f"{e}") from e
    return list_files(path)


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()


def read_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise WeightsError(f"{path} is not valid JSON: {e}") from e


def load_safetensors(paths: Iterable[str]) -> dict[str, np.ndarray]:
  """All tensors of one or more safetensors files as float32/int NumPy arrays."""
  from safetensors.numpy import load_file
  tensors = {}
  for path in paths:
    if path.endswith(PICKLE_SUFFIXES):
      raise WeightsError(f"{path} is a pickle checkpoint; jaxbench never unpickles. "
                         "Convert it once with `python -m jaxbench.convert --src "
                         f"{path}` (needs torch) and load the safetensors it writes.")
    try:
      loaded = load_file(path)
    except Exception as e:  # safetensors raises its own error types
      # bf16 tensors are not representable in NumPy: read through ml_dtypes.
      if "bf16" in str(e).lower() or "bfloat16" in str(e).lower():
        loaded = _load_bf16(path)
      else:
        raise WeightsError(f"cannot read safetensors file {path}: {e}") from e
    tensors.update(loaded)
  return {k: (v.astype(np.float32, copy=False)
              if v.dtype.kind == "f" or str(v.dtype) == "bfloat16" else v)
          for k, v in tensors.items()}


def _load_bf16(path: str) -> dict[str, np.ndarray]:
  import ml_dtypes
  from safetensors import safe_open
  out = {}
  with safe_open(path, framework="flax") as f:
    for k in f.keys():
      out[k] = np.asarray(f.get_tensor(k)).astype(np.float32)
  del ml_dtypes
  return out


def provenance(ref: str, files: dict[str, str], revision: Optional[str] = None,
               layout: str = "") -> dict:
  """What every result row records about where weights came from."""
  weights = {n: sha256(p) for n, p in sorted(files.items())
             if n.endswith((".safetensors",))}
  commit = None
  for p in files.values():
    parts = os.path.normpath(p).split(os.sep)
    if "snapshots" in parts:
      commit = parts[parts.index("snapshots") + 1]
      break
  return {"source": os.path.abspath(os.path.expanduser(ref)) if is_local(ref) else ref,
          "revision": revision or commit, "layout": layout, "sha256": weights}


def find_weight_files(ref: str, revision: Optional[str] = None,
                      preferred: tuple[str, ...] = ("model.safetensors",)) -> list[str]:
  """Names of the safetensors weight files of a repo (sharded index aware).

  Raises:
    WeightsError: when only pickle checkpoints exist (names the converter).
  """
  names = list_files(ref, revision)
  for p in preferred:
    if p in names:
      return [p]
  index = [n for n in names if n.endswith(".safetensors.index.json")]
  if index:
    path = resolve(ref, [index[0]], revision=revision)[index[0]]
    return sorted(set(read_json(path)["weight_map"].values()))
  st = [n for n in names if n.endswith(".safetensors")]
  if st:
    return st
  pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
  if pickles:
    raise WeightsError(
        f"{ref!r} holds only pickle checkpoints {pickles}; jaxbench never unpickles. "
        f"Convert once with `python -m jaxbench.convert --src {ref} --dst DIR` (needs torch) "
        "and load DIR.")
  raise WeightsError(f"no weight files in {ref!r}; files: {names}")
