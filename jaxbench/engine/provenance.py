"""What a row records about where it came from: versions, devices, mesh, seed, decoding."""
from __future__ import annotations

import os
import platform
import subprocess

import jax

from jaxbench.engine import keys


def git_revision() -> str:
  """The checkout's commit ('unknown' outside a git checkout)."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    return subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=5).stdout.strip() or "unknown"
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def provenance(config, mesh) -> dict:
  """The provenance dict every row of a run carries."""
  import flax
  from importlib import metadata
  try:
    version = metadata.version("jaxbench")
  except metadata.PackageNotFoundError:
    version = "unknown"
  devices = jax.devices()
  return {"jaxbench": version, "git": git_revision(), "jax": jax.__version__,
          "flax": flax.__version__, "python": platform.python_version(),
          "device_kind": devices[0].device_kind, "device_count": len(devices),
          "process_count": jax.process_count(), "mesh": dict(mesh.shape),
          "seed": int(config.seed),
          # decode mode: "exact" (default) or "jpeg_draft" (reduced DCT, not pixel-exact)
          "decode": "jpeg_draft" if keys.get(config, "jpeg_draft") else "exact",
          # where resize + crop ran: "host" or "device:N" (N x N canvas; same pixels)
          "resize": resize_mode(config)}


def resize_mode(config) -> str:
  """'host' or 'device:N' (``config.device_resize``, PIL-exact on the device)."""
  n = int(keys.get(config, "device_resize") or 0)
  return f"device:{n}" if n > 0 else "host"
