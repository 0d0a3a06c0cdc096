"""Trained-model cache: complete checkpoints, half-written ones, resumable training state.

A model trained by the demo lives in ``<cache>/<kind>-<hash>/`` where the hash
is over its whole training config, so two configs never share a directory. The
directory is complete when its marker ``COMPLETE.json`` exists, names the same
training config and lists the SHA-256 of every other file, which still match.

Writing order makes a half-written checkpoint impossible to mistake for a
finished one: files are written into ``<dir>.tmp-<pid>``, the marker is written
last (atomically), and only then is the temporary directory renamed to its
final name. A directory without a valid marker (a copy interrupted half-way, a
file edited or truncated later) is reported, removed and rebuilt.

Training itself checkpoints its state (parameters, optimiser state, step) to
``<dir>.state.npz`` every few hundred steps (atomic replace), so a run killed
during training resumes from the last checkpoint instead of starting over;
every random draw of a training step is a function of (seed, step), so a
resumed run ends with the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any, Callable, Optional

import jax
import numpy as np
from absl import logging

from jaxbench import atomic

MARKER = "COMPLETE.json"
DEFAULT_CACHE = "runs/demo/models"
CACHE_ENV = "JAXBENCH_DEMO_CACHE"


def cache_root(cache: Optional[str]) -> str:
  """The cache directory: ``cache``, else $JAXBENCH_DEMO_CACHE, else runs/demo/models."""
  root = cache or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
  return os.path.abspath(os.path.expanduser(root))


def config_hash(config: dict) -> str:
  return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


def model_dir(cache: Optional[str], kind: str, config: dict) -> str:
  return os.path.join(cache_root(cache), f"{kind}-{config_hash(config)}")


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def check_complete(path: str, config: dict) -> tuple[bool, str]:
  """(complete, why not) for a checkpoint directory."""
  if not os.path.isdir(path):
    return False, "does not exist"
  marker = os.path.join(path, MARKER)
  if not os.path.exists(marker):
    return False, f"no {MARKER} (training or saving was interrupted)"
  try:
    with open(marker) as f:
      m = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    return False, f"{MARKER} is unreadable ({e})"
  if m.get("config") != config:
    diff = sorted(k for k in set(m.get("config", {})) | set(config)
                  if m.get("config", {}).get(k) != config.get(k))
    return False, f"{MARKER} names another training config (differs in {diff})"
  for name, digest in m.get("files", {}).items():
    p = os.path.join(path, name)
    if not os.path.exists(p):
      return False, f"{name} is missing"
    if _sha256(p) != digest:
      return False, f"{name} does not match its SHA-256 in {MARKER}"
  return True, ""


def ensure(path: str, config: dict, build: Callable[[str], list], *, what: str) -> str:
  """Returns ``path`` holding a complete checkpoint, building it when needed.

  Args:
    path: the checkpoint directory (``model_dir(...)``).
    config: the training config (JSON-able dict) the marker must name.
    build: ``build(tmp_dir) -> file names`` trains and writes the checkpoint
      files into ``tmp_dir``.
    what: a description for log messages.

  Returns:
    ``path``.
  """
  ok, why = check_complete(path, config)
  if ok:
    logging.info("%s: using the cached checkpoint %s", what, path)
    return path
  if os.path.exists(path):
    logging.warning("%s: %s is a half-written checkpoint (%s); removing it and rebuilding",
                    what, path, why)
    shutil.rmtree(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  _remove_stale_tmp(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  names = build(tmp)
  files = {n: _sha256(os.path.join(tmp, n)) for n in names}
  atomic.atomic_write_bytes(os.path.join(tmp, MARKER), json.dumps(
      {"config": config, "files": files}, indent=1, sort_keys=True).encode())
  # Another process may have finished the same checkpoint first: keep theirs if complete.
  atomic.atomic_rename_dir(tmp, path, complete=lambda p: check_complete(p, config)[0])
  state = state_path(path)
  if os.path.exists(state):
    os.remove(state)
  return path


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _remove_stale_tmp(path: str) -> None:
  """Removes ``<path>.tmp-<pid>`` directories of this process or of dead processes."""
  parent, base = os.path.split(path)
  for name in os.listdir(parent):
    if not name.startswith(base + ".tmp-"):
      continue
    pid = name.rsplit("-", 1)[1]
    if pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
      full = os.path.join(parent, name)
      logging.info("removing the unfinished checkpoint directory %s", full)
      shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)


# --- resumable training state ----------------------------------------------------------

def state_path(path: str) -> str:
  return path + ".state.npz"


def save_state(path: str, state: Any, step: int, config: dict) -> None:
  """Atomically saves a pytree of arrays with its step and training config."""
  leaves = jax.tree.leaves(jax.device_get(state))
  arrays = {f"leaf_{i:05d}": np.asarray(a) for i, a in enumerate(leaves)}
  atomic.atomic_savez(path, step=np.int64(step),
                      config=np.array(json.dumps(config, sort_keys=True)), **arrays)


def load_state(path: str, like: Any, config: dict) -> Optional[tuple[Any, int]]:
  """(state, step) saved by :func:`save_state`, or None when absent or unusable.

  ``like`` is a pytree with the expected structure and shapes (a fresh state);
  a file from another config or with other shapes is ignored (with a warning).
  """
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as z:
      saved = json.loads(str(z["config"]))
      step = int(z["step"])
      leaves = [z[f"leaf_{i:05d}"] for i in range(len([k for k in z.files
                                                          if k.startswith("leaf_")]))]
  except Exception as e:  # noqa: BLE001 -- a torn or foreign file is just not used
    logging.warning("ignoring unreadable training state %s: %s", path, e)
    return None
  if saved != config:
    logging.warning("ignoring training state %s: it belongs to another training config", path)
    return None
  want, treedef = jax.tree.flatten(like)
  if len(want) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(want, leaves)):
    logging.warning("ignoring training state %s: its arrays do not fit the model", path)
    return None
  leaves = [np.asarray(b, dtype=np.asarray(a).dtype) for a, b in zip(want, leaves)]
  return jax.tree.unflatten(treedef, leaves), step
