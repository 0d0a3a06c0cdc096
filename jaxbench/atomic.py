"""Atomic file writes: a file (or a directory) appears complete or not at all.

The one home of jaxbench's "temporary file + ``os.replace``" writes, so a run killed
at any instant leaves either the old or the new file, never half of one. It sits on
the lowest floor (standard library and numpy only): the data readers' caches, the
results store (:mod:`jaxbench.store`), heads and suites all write through it.

* :func:`atomic_write` streams into ``<path>.tmp<pid>`` (fsync'd), then renames it
  over ``path``; :func:`atomic_write_bytes`, :func:`atomic_write_json` and
  :func:`atomic_savez` are its common cases.
* :func:`atomic_rename_dir` moves a fully written directory to its final name in
  one rename, letting a concurrent writer that finished first win.
* :func:`take_over` claims a file that several processes may race for (a stale
  lock): exactly one of them renames it away.

A failed write raises :class:`WriteError`, one line naming the path and the reason
(disk full, quota, read-only, permission), and leaves no temporary file behind.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from typing import BinaryIO, Callable

import numpy as np


class WriteError(OSError):
  """The workdir cannot be written (read-only, full, over quota): one line naming the
  path and the reason."""


def atomic_write(path: str, write: Callable[[BinaryIO], object]) -> None:
  """Writes ``path`` atomically: ``write(f)`` fills a temporary file, then it replaces
  ``path`` (its directory is created).

  Args:
    path: the file to (re)write.
    write: called once with the temporary file, opened for binary writing.

  Raises:
    WriteError: the file system refused (the temporary file is removed).
  """
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(tmp, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    try:
      os.remove(tmp)   # a partial temporary file would only take more space
    except OSError:
      pass
    if not isinstance(e, OSError) or isinstance(e, WriteError):
      raise
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
              errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied"}.get(e.errno, e.strerror or str(e))
    raise WriteError(e.errno, f"cannot write {path}: {reason}") from e


def atomic_write_bytes(path: str, data: bytes) -> None:
  atomic_write(path, lambda f: f.write(data))


def json_default(o):
  """``json.dumps(default=...)`` for numpy values: scalars and arrays as Python ones.

  Raises:
    TypeError: anything else (JSON cannot hold it).
  """
  if isinstance(o, np.integer):
    return int(o)
  if isinstance(o, np.floating):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str, obj) -> None:
  """``obj`` as indented JSON with sorted keys; values JSON cannot hold become str."""
  atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def atomic_savez(path: str, **arrays) -> None:
  """``np.savez`` of ``arrays``, streamed into the temporary file (no suffix added)."""
  atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_rename_dir(tmp: str, final: str, *,
                      complete: Callable[[str], bool] = os.path.exists) -> bool:
  """Moves the fully written directory ``tmp`` to ``final`` in one rename.

  Args:
    tmp: the finished directory (on the same file system as ``final``).
    final: its name once complete; must not exist yet.
    complete: whether a ``final`` that another process made is usable (then ``tmp``
      is dropped instead of raising).

  Returns:
    True when ``tmp`` became ``final``; False when a concurrent writer's complete
    ``final`` was there first (``tmp`` is removed).

  Raises:
    OSError: the rename failed and ``final`` is not a complete directory.
  """
  try:
    os.rename(tmp, final)
    return True
  except OSError:
    if not complete(final):
      raise
    shutil.rmtree(tmp, ignore_errors=True)
    return False


def take_over(path: str) -> bool:
  """Removes ``path`` so that, among processes racing to, exactly one succeeds.

  The file is first renamed to a name private to this process (a rename is
  atomic: one taker gets it), then deleted.

  Returns:
    True when this process took it; False when it was already gone.
  """
  private = f"{path}.stale{os.getpid()}"
  try:
    os.rename(path, private)
  except FileNotFoundError:
    return False
  os.remove(private)
  return True
