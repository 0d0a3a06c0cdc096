"""A run's workdir: which config wrote it, whether hosts share it, which passes finished."""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from jaxbench import parallel, store as store_lib
from jaxbench.engine import keys
from jaxbench.model_setup import ConfigError


def config_identity(config) -> dict:
  """The part of a config that defines results (compared across reruns)."""
  d = json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") \
      else dict(config)
  return {k: v for k, v in d.items() if k not in keys.VOLATILE}


def check_workdir_config(store: store_lib.Store, config) -> None:
  """Refuses a workdir whose finished rows came from a different config, naming the
  differences. Writes nothing: :func:`write_workdir_config` does, when the first pass
  starts, so a run that fails before any work leaves the workdir reusable; a workdir
  with no finished rows (every earlier run failed or was stopped before finishing a
  pass) is reused by any config."""
  path = os.path.join(store.workdir, "config.json")
  ident = config_identity(config)
  if os.path.exists(path) and store.rows():
    with open(path) as f:
      old = json.load(f)
    if old != ident and keys.get(config, "workdir_policy") == "strict":
      diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
      detail = "; ".join(f"{k}: workdir has {old.get(k)!r}, config has {ident.get(k)!r}"
                         for k in diff[:6])
      raise ConfigError(f"workdir {store.workdir} was written by a different config ({detail}). "
                        "Use another --workdir, or --config.workdir_policy=extend to add "
                        "results to it anyway")


def write_workdir_config(store: store_lib.Store, config) -> None:
  """Records the config identity (config.json) when a run starts its first pass
  (:func:`check_workdir_config` has allowed it: same config, no finished rows, or
  workdir_policy='extend')."""
  path = os.path.join(store.workdir, "config.json")
  ident = config_identity(config)
  if not store.writer:
    return
  if os.path.exists(path):
    with open(path) as f:
      if json.load(f) == ident:
        return
  store_lib.atomic_write_json(path, ident)


def check_shared_workdir(store: store_lib.Store) -> None:
  """Multi-host runs need one workdir that every host sees (resume reads it)."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils
  token = os.path.join(store.workdir, ".hosts_check")
  nonce = np.asarray(multihost_utils.broadcast_one_to_all(
      np.asarray(int(time.time() * 1e6) % (2**31), np.int64)))
  if store.writer:
    store_lib.atomic_write_bytes(token, str(int(nonce)).encode())
  parallel.sync("workdir-check")
  try:
    with open(token) as f:
      ok = f.read().strip() == str(int(nonce))
  except OSError:
    ok = False
  oks = np.asarray(multihost_utils.process_allgather(np.asarray([ok])))
  if not oks.all():
    bad = [i for i, v in enumerate(oks.reshape(-1)) if not v]
    raise ConfigError(f"workdir {store.workdir} is not shared between hosts: processes {bad} "
                      "do not see process 0's files there. Use a shared filesystem "
                      "(NFS, GCS FUSE) for --workdir")


def pass_done(store: store_lib.Store, pid: str, finished: set) -> bool:
  """Whether pass ``pid`` finished (done.json) and all its rows are in results.jsonl."""
  path = os.path.join(store.pass_dir(pid), "done.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    row_keys = json.load(f).get("keys", [])
  return bool(row_keys) and all(k in finished for k in row_keys)
