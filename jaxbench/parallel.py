"""Mesh, shardings and host <-> global array helpers: one code path from 1 CPU to a pod.

Everything runs under ``jax.jit`` with ``NamedSharding``: batches are split over
the ``data`` axis; parameters are replicated, or sharded over the ``model`` axis
by a rule for towers too large to replicate.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def initialize(coordinator: str = "", num_processes: int = 0, process_id: int = -1,
               timeout_s: int = 300) -> None:
  """Starts JAX's multi-host runtime when asked or when the cluster says so.

  With explicit flags, connects to ``coordinator`` (host:port). Otherwise
  JAX's own detection (TPU VM metadata, SLURM variables) is used when present.
  A single process needs nothing.
  """
  if coordinator or num_processes > 1:
    if os.environ.get("JAX_PLATFORMS", "") == "cpu" or jax.config.jax_platforms == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator and process_id > 0:
      # JAX's client aborts the process (no exception) when the coordinator never
      # answers; probe it first so the user gets a bounded wait and a message.
      wait_for_coordinator(coordinator, timeout_s)
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)
  elif "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    jax.distributed.initialize(initialization_timeout=timeout_s)
  elif os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0:
    jax.distributed.initialize(initialization_timeout=timeout_s)


def wait_for_coordinator(address: str, timeout_s: float) -> None:
  """Waits until ``host:port`` accepts TCP connections, or raises TimeoutError."""
  import socket
  import time
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout_s
  last = None
  while time.monotonic() < deadline:
    try:
      with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
        return
    except OSError as e:
      last = e
      time.sleep(0.5)
  raise TimeoutError(f"coordinator {address} did not answer within {timeout_s}s ({last}); "
                     "is process 0 running and reachable?")


def make_mesh(data: int = -1, model: int = 1, devices=None) -> Mesh:
  """A ('data', 'model') mesh; ``data=-1`` takes all devices left after ``model``."""
  devices = list(devices if devices is not None else jax.devices())
  if data == -1:
    if len(devices) % model:
      raise ValueError(f"mesh model={model} does not divide the {len(devices)} devices")
    data = len(devices) // model
  if data * model > len(devices):
    raise ValueError(f"mesh data={data} x model={model} needs {data * model} devices, "
                     f"{len(devices)} available")
  grid = np.asarray(devices[:data * model]).reshape(data, model)
  return Mesh(grid, ("data", "model"))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


PARAM_SHARDINGS = ("replicate", "fsdp")


def param_shardings(params: Any, mesh: Mesh, rule: str = "replicate") -> Any:
  """Shardings for a parameter pytree: 'replicate' or 'fsdp' over the model axis."""
  if rule not in PARAM_SHARDINGS:
    raise ValueError(f"param_sharding {rule!r}: use one of {PARAM_SHARDINGS}")
  if rule == "replicate" or mesh.shape["model"] == 1:
    return jax.tree.map(lambda _: replicated(mesh), params)
  from jaxbench.models import sharding as model_sharding
  return model_sharding.param_shardings(params, mesh)


def put_params(params: Any, mesh: Mesh, rule: str = "replicate") -> Any:
  shardings = param_shardings(params, mesh, rule)
  return jax.tree.map(lambda x, s: jax.device_put(x, s), params, shardings)


def to_global(local: dict, mesh: Mesh) -> dict:
  """Process-local batch arrays -> global arrays sharded over 'data'."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def to_host(tree: Any) -> Any:
  """Global arrays -> full NumPy arrays on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, jax.device_get(tree))
  return jax.tree.map(lambda x: np.asarray(
      multihost_utils.process_allgather(x, tiled=True)), tree)


def is_writer() -> bool:
  """Only process 0 writes files."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def assert_same_across_hosts(value: str, what: str) -> None:
  """Refuses to run when hosts disagree (config, plan, package version)."""
  if jax.process_count() == 1:
    return
  import hashlib
  digest = np.frombuffer(hashlib.sha256(value.encode()).digest()[:8], np.uint32)
  allv = np.asarray(multihost_utils.process_allgather(digest))
  if not (allv == allv[0]).all():
    raise RuntimeError(f"hosts disagree on the {what}: every host must run the same "
                       f"config and package version (digests {allv.tolist()})")
