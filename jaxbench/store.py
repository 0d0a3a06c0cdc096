"""The results store: results.jsonl rows, per-example outputs, progress checkpoints.

Layout of a workdir::

    results.jsonl              one row per (model, dataset, transform, metric)
    config.json                the config the workdir was created with
    heads/head_<key>.npz       cached zero-shot heads
    passes/<pass_id>/
      meta.json                pass spec (model, dataset, transform) and plan
      chunk_<k>.npz            per-example outputs of finished batches
      outputs.npz              all per-example outputs once the pass is done

Every write is atomic (temporary file + ``os.replace``), so a run killed at any
instant leaves either the old or the new file, never half of one. Chunks are
written before the progress they record is relied on: a resumed pass reads all
complete chunks, and the examples they hold are not evaluated again.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Iterable, Optional

import numpy as np

ROW_KEYS = ("model", "dataset", "transform", "metric")


def row_key(model: str, dataset: str, transform: str, metric: str) -> str:
  return "|".join((model, dataset, transform, metric))


def pass_id(model: str, dataset: str, transform: str, extra: str = "") -> str:
  """Directory name of a pass: readable prefix + content hash."""
  h = hashlib.sha256("|".join((model, dataset, transform, extra)).encode()).hexdigest()[:16]
  return h


def atomic_write_bytes(path: str, data: bytes) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def atomic_write_json(path: str, obj) -> None:
  atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def atomic_savez(path: str, **arrays) -> None:
  import io
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  atomic_write_bytes(path, buf.getvalue())


class Store:
  """Reads and writes one workdir. Only the writer process (0) writes."""

  def __init__(self, workdir: str, writer: bool = True):
    self.workdir = os.path.abspath(os.path.expanduser(workdir))
    self.writer = writer
    os.makedirs(self.workdir, exist_ok=True)
    self.results_path = os.path.join(self.workdir, "results.jsonl")

  # --- result rows -------------------------------------------------------------
  def rows(self) -> list[dict]:
    if not os.path.exists(self.results_path):
      return []
    out = []
    with open(self.results_path) as f:
      for line in f:
        line = line.strip()
        if line:
          out.append(json.loads(line))
    return out

  def finished_keys(self) -> set[str]:
    return {r["key"] for r in self.rows()}

  def add_rows(self, rows: Iterable[dict]) -> None:
    """Appends rows (replacing rows with the same key), atomically."""
    rows = list(rows)
    if not self.writer or not rows:
      return
    existing = {r["key"]: r for r in self.rows()}
    for r in rows:
      r.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%S"))
      existing[r["key"]] = r
    data = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n"
                   for r in existing.values())
    atomic_write_bytes(self.results_path, data.encode())

  # --- passes --------------------------------------------------------------------
  def pass_dir(self, pid: str) -> str:
    return os.path.join(self.workdir, "passes", pid)

  def load_chunks(self, pid: str) -> dict[str, np.ndarray]:
    """Concatenated per-example outputs of all complete chunks of a pass."""
    d = self.pass_dir(pid)
    if not os.path.isdir(d):
      return {}
    final = os.path.join(d, "outputs.npz")
    files = [final] if os.path.exists(final) else sorted(
        os.path.join(d, f) for f in os.listdir(d)
        if f.startswith("chunk_") and f.endswith(".npz"))
    parts = []
    for path in files:
      try:
        with np.load(path, allow_pickle=False) as z:
          parts.append({k: z[k] for k in z.files})
      except Exception:  # noqa: BLE001 -- a torn file from a dead process: redo it
        continue
    if not parts:
      return {}
    keys = set.intersection(*(set(p) for p in parts))
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}

  def write_chunk(self, pid: str, k: int, outputs: dict[str, np.ndarray]) -> None:
    if self.writer:
      atomic_savez(os.path.join(self.pass_dir(pid), f"chunk_{k:06d}.npz"), **outputs)

  def finish_pass(self, pid: str, outputs: dict[str, np.ndarray]) -> None:
    """Writes outputs.npz then removes the chunks it supersedes."""
    if not self.writer:
      return
    d = self.pass_dir(pid)
    atomic_savez(os.path.join(d, "outputs.npz"), **outputs)
    for f in os.listdir(d):
      if f.startswith("chunk_"):
        os.remove(os.path.join(d, f))

  def write_meta(self, pid: str, meta: dict) -> None:
    if self.writer:
      atomic_write_json(os.path.join(self.pass_dir(pid), "meta.json"), meta)

  def outputs(self, pid: str) -> Optional[dict[str, np.ndarray]]:
    path = os.path.join(self.pass_dir(pid), "outputs.npz")
    if not os.path.exists(path):
      return None
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)
