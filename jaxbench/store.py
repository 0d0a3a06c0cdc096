"""The results store: results.jsonl rows, per-example outputs, progress checkpoints.

Layout of a workdir::

    results.jsonl              one row per (model, dataset, transform, metric)
    config.json                the config the workdir was created with (written when
                               the first pass starts)
    .lock                      pid and host of the run using the workdir (WorkdirLock)
    heads/head_<key>.npz       cached zero-shot heads
    passes/<pass_id>/
      meta.json                pass spec (model, dataset, transform) and plan, with
                               the source's fingerprint (without its file list)
      source_files.json.gz     the file list (path -> size, mtime) of that fingerprint
      chunk_<k>.npz            per-example outputs of finished batches
      outputs.npz              all per-example outputs once the pass is done

Every write is atomic (temporary file + ``os.replace``, through :mod:`jaxbench.atomic`),
so a run killed at any instant leaves either the old or the new file, never half of one.
Chunks are written before the progress they record is relied on: a resumed pass reads
all complete chunks, and the examples they hold are not evaluated again.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import time
from typing import Iterable, Optional

import numpy as np

from jaxbench.atomic import (
    WriteError, atomic_savez, atomic_write_bytes, atomic_write_json, json_default, take_over)

ROW_KEYS = ("model", "dataset", "transform", "metric")


def row_key(model: str, dataset: str, transform: str, metric: str) -> str:
  return "|".join((model, dataset, transform, metric))


def pass_id(model: str, dataset: str, transform: str, extra: str = "") -> str:
  """Directory name of a pass: readable prefix + content hash."""
  h = hashlib.sha256("|".join((model, dataset, transform, extra)).encode()).hexdigest()[:16]
  return h


class Store:
  """Reads and writes one workdir. Only the writer process (0) writes."""

  def __init__(self, workdir: str, writer: bool = True, create: bool = True):
    self.workdir = os.path.abspath(os.path.expanduser(workdir))
    self.writer = writer
    if create:
      try:
        os.makedirs(self.workdir, exist_ok=True)
      except OSError as e:
        raise WriteError(e.errno, f"cannot create workdir {self.workdir}: "
                         f"{e.strerror or e}") from e
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

  def read_meta(self, pid: str) -> Optional[dict]:
    path = os.path.join(self.pass_dir(pid), "meta.json")
    try:
      with open(path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return None

  def write_source_fingerprint(self, pid: str, fp: dict) -> dict:
    """Stores a source fingerprint with a pass; returns it without the file lists.

    The file list (``{path: [size, mtime_ns]}``, megabytes for large sets) goes
    to ``source_files.json.gz`` beside meta.json, so a later mismatch can name
    the files added, removed and modified; the rest belongs in meta.json.
    """
    slim, files = _split_files(fp)
    if self.writer and files:
      atomic_write_bytes(os.path.join(self.pass_dir(pid), "source_files.json.gz"),
                         gzip.compress(json.dumps(files, sort_keys=True).encode(), mtime=0))
    return slim

  def read_source_fingerprint(self, pid: str) -> Optional[dict]:
    """The fingerprint stored with a pass (file lists put back), or None."""
    meta = self.read_meta(pid)
    if not meta or "source" not in meta:
      return None
    fp = meta["source"]
    try:
      with open(os.path.join(self.pass_dir(pid), "source_files.json.gz"), "rb") as f:
        files = json.loads(gzip.decompress(f.read()))
    except (OSError, ValueError):
      files = {}
    return _join_files(fp, files)

  def clear_pass(self, pid: str) -> None:
    """Removes a pass's progress (chunks, outputs, meta), to start it over."""
    if self.writer and os.path.isdir(self.pass_dir(pid)):
      shutil.rmtree(self.pass_dir(pid))

  def outputs(self, pid: str) -> Optional[dict[str, np.ndarray]]:
    path = os.path.join(self.pass_dir(pid), "outputs.npz")
    if not os.path.exists(path):
      return None
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}


def _split_files(fp: dict, path: str = "") -> tuple[dict, dict]:
  """(fingerprint without 'files' lists, {nesting path: files}) ('inner' nests)."""
  slim = {k: v for k, v in fp.items() if k not in ("files", "inner")}
  files = {path: fp["files"]} if "files" in fp else {}
  if "inner" in fp:
    slim["inner"], inner_files = _split_files(fp["inner"], path + "/inner")
    files.update(inner_files)
  return slim, files


def _join_files(fp: dict, files: dict, path: str = "") -> dict:
  out = dict(fp)
  if path in files:
    out["files"] = files[path]
  if "inner" in fp:
    out["inner"] = _join_files(fp["inner"], files, path + "/inner")
  return out


class WorkdirLocked(RuntimeError):
  """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:   # exists, owned by someone else
    return True
  return True


class WorkdirLock:
  """``WORKDIR/.lock``: one run at a time per workdir.

  The lock file holds the owner's pid, host and start time; it is created with
  O_EXCL, so two runs cannot both take it. A lock left by a dead process on this
  host is taken over; one from another host cannot be checked from here, and the
  message says which file to delete once that run is known to be gone.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, ".lock")
    self.held = False

  def _read(self) -> Optional[dict]:
    try:
      with open(self.path) as f:
        return json.loads(f.read() or "null")
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}

  def acquire(self) -> None:
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(50):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        other = self._read()
        if other is None:          # released meanwhile: try again
          continue
        if not other:              # being written right now by its owner
          time.sleep(0.05)
          other = self._read()
          if other is None:
            continue
        if other and other.get("host") == me["host"] and not _alive(int(other["pid"])):
          # Stale: its process is gone. Rename (atomic) so one taker wins.
          take_over(self.path)
          continue
        who = (f"process {other.get('pid')} on host {other.get('host')} (since "
               f"{other.get('since')})" if other else "another process")
        raise WorkdirLocked(
            f"workdir {os.path.dirname(self.path)} is in use by {who}: wait for that run to "
            f"end, use another --workdir, or delete {self.path} if that run is gone")
      except OSError as e:
        raise WriteError(e.errno, f"cannot write {self.path}: {e.strerror or e}") from e
      with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me))
      self.held = True
      return
    raise WorkdirLocked(f"could not take {self.path}: it keeps changing hands")

  def release(self) -> None:
    if self.held and (self._read() or {}).get("pid") == os.getpid():
      try:
        os.remove(self.path)
      except OSError:
        pass
    self.held = False


def _json_default(o):
  """Result rows hold numpy values as Python ones and anything else as its str."""
  try:
    return json_default(o)
  except TypeError:
    return str(o)
