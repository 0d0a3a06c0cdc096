"""Prepared-set cache: decode once, evaluate many.

The decoded, resized and center-cropped uint8 pixels of one evaluation set for one
preprocessing spec (size, resize rule, interpolation, crop), written once as
memory-mapped ``.npy`` shards and read by every later pass (any model, any
precision) that uses the same spec. Layout of one cache entry::

  <cache root>/<key>/
    images-00000.npy ...  uint8 (rows, S, S, 3) each, SHARD_ROWS rows per shard
    label.npy             int32 (N,)   label, -1 for undecodable files
    uid.npy               uint32 (N,)  example_uid of the id (0 for undecodable)
    bad.npy               bool (N,)    file could not be decoded
    labels.npy            bool (N, K)  multi-hot labels (multi-label sets only)
    ids.json              N example ids
    errors.json           {index: error text} for undecodable files
    manifest.json         written LAST: version, key parts, N, every file's byte
                          size and CRC32

``key`` hashes the cache format version, the set's name (its spec string, which
fixes ``pre_transform``), a fingerprint of its source (paths + sizes + mtimes +
labels for files; path + size + mtime or the bytes for arrays; a source's own
``fingerprint()`` when it has one) and the preprocessing spec. Mean/std are not
part of it: normalisation happens on device, inside the model.

A cache entry is built in a temporary sibling directory and renamed into place
only once its manifest is written, so a killed build leaves no entry under the
final name; an entry whose manifest is missing, unreadable, from another format
version, or whose files' sizes disagree with it, is never read: it is removed and
rebuilt. File sizes are checked on every open; CRC32 checksums by
:func:`verify` (``python -m jaxbench.data.prepare --verify``), since hashing
gigabytes on every pass would cost more than reading them.

A cache that cannot be written (read-only or full disk, a path that is not a
directory) logs one warning and the pass reads uncached, with identical results.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from typing import Iterator, Optional, Sequence

import grain
import numpy as np
from absl import logging

from jaxbench import atomic
from jaxbench.data import decode as decode_lib, pipeline
from jaxbench.data.evalset import EvalSet
from jaxbench.models.api import Preprocess

FORMAT_VERSION = 1
SHARD_ROWS = 4096


def spec_of(pp: Preprocess) -> dict:
  """The part of a :class:`Preprocess` that fixes the cached pixels."""
  return {"size": int(pp.size), "resize": int(pp.resize), "interpolation": pp.interpolation,
          "crop": getattr(pp, "crop", "center")}


def fingerprint(source, computed: Optional[dict] = None) -> Optional[str]:
  """A hash that changes when the source's examples, files or labels change.

  The source's own ``fingerprint()`` digest (:mod:`jaxbench.data.sources`: file
  lists with sizes and mtimes, TFDS name/version/split, array files), the same
  one a resumed pass checks its saved progress against.

  Returns:
    hex digest, or None for a source without a ``fingerprint()`` (then no cache
    is used for it: a generic summary cannot tell changed pixels apart).
  """
  if hasattr(source, "fingerprint"):
    # ``computed``: the same fingerprint already taken for this pass (one stat of
    # every file per pass, not two).
    return str((computed or source.fingerprint())["digest"])
  return None


def cache_key(evalset: EvalSet, pp: Preprocess, fp: Optional[str] = None) -> Optional[str]:
  """The entry name for (set, source fingerprint, preprocessing spec, format version)."""
  fp = fp if fp is not None else fingerprint(evalset.source)
  if fp is None:
    return None
  ident = json.dumps({"version": FORMAT_VERSION, "set": evalset.name, "n": len(evalset),
                      "multilabel": bool(evalset.multilabel), "fingerprint": fp,
                      "preprocess": spec_of(pp)}, sort_keys=True)
  return hashlib.sha256(ident.encode()).hexdigest()[:32]


class InvalidCache(Exception):
  """A cache entry that must not be read (partial, corrupt, other version)."""


def _crc32(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    while chunk := f.read(1 << 24):
      crc = zlib.crc32(chunk, crc)
  return crc


@dataclasses.dataclass
class PreparedSet:
  """An opened, size-checked cache entry.

  Attributes:
    path: the entry directory.
    n: examples.
    size: S, the cropped image side.
    shards: uint8 (rows, S, S, 3) memory maps, SHARD_ROWS rows each (last shorter).
    label, uid, bad: per-example arrays (N,).
    labels: bool (N, K) multi-hot, or None.
    manifest: the parsed manifest.
  """
  path: str
  n: int
  size: int
  shards: list
  label: np.ndarray
  uid: np.ndarray
  bad: np.ndarray
  labels: Optional[np.ndarray]
  manifest: dict

  @classmethod
  def open(cls, path: str, key: Optional[str] = None) -> "PreparedSet":
    """Opens ``path``; raises :class:`InvalidCache` saying what is wrong."""
    mpath = os.path.join(path, "manifest.json")
    try:
      with open(mpath) as f:
        manifest = json.load(f)
    except FileNotFoundError:
      raise InvalidCache(f"{path}: no manifest.json (build interrupted)") from None
    except (OSError, ValueError) as e:
      raise InvalidCache(f"{mpath}: unreadable manifest ({e})") from None
    if manifest.get("version") != FORMAT_VERSION:
      raise InvalidCache(f"{mpath}: format version {manifest.get('version')!r}, this "
                         f"jaxbench reads {FORMAT_VERSION}")
    if key is not None and manifest.get("key") != key:
      raise InvalidCache(f"{mpath}: key {manifest.get('key')!r}, expected {key!r}")
    for name, info in manifest["files"].items():
      fpath = os.path.join(path, name)
      try:
        got = os.path.getsize(fpath)
      except OSError:
        raise InvalidCache(f"{fpath}: listed in the manifest but missing") from None
      if got != info["bytes"]:
        raise InvalidCache(f"{fpath}: {got} bytes, manifest says {info['bytes']}")
    try:
      shards = [np.load(os.path.join(path, s), mmap_mode="r") for s in manifest["shards"]]
      arr = {k: np.load(os.path.join(path, f"{k}.npy")) for k in ("label", "uid", "bad")}
      labels = np.load(os.path.join(path, "labels.npy")) if manifest["multilabel"] else None
    except (OSError, ValueError) as e:
      raise InvalidCache(f"{path}: unreadable array ({e})") from None
    n, s = int(manifest["n"]), int(manifest["preprocess"]["size"])
    if sum(len(x) for x in shards) != n or any(x.shape[1:] != (s, s, 3) for x in shards):
      raise InvalidCache(f"{path}: shard shapes disagree with the manifest (n={n}, size={s})")
    return cls(path, n, s, shards, arr["label"], arr["uid"], arr["bad"], labels, manifest)

  def errors(self) -> dict:
    """{index: error text} of undecodable examples."""
    with open(os.path.join(self.path, "errors.json")) as f:
      return {int(k): v for k, v in json.load(f).items()}

  def read(self, indices: np.ndarray) -> dict:
    """One batch, exactly as :class:`jaxbench.data.pipeline.LoadExample` + batching gives it.

    Args:
      indices: int64 (B,) source indices, -1 for padding.

    Returns:
      {'image' uint8 (B,S,S,3), 'label' int32, 'index' int64, 'uid' uint32,
       'mask' bool, 'bad' bool[, 'labels' bool (B,K)]}.
    """
    indices = np.asarray(indices, np.int64)
    b = len(indices)
    real = indices >= 0
    safe = np.where(real, indices, 0)
    bad = self.bad[safe] & real
    ok = real & ~bad
    shard_of = safe // SHARD_ROWS
    lo = int(safe[0]) - int(shard_of[0]) * SHARD_ROWS
    if ok.all() and np.all(np.diff(indices) == 1) and shard_of[0] == shard_of[-1]:
      # The common case (a fresh pass in order): a view of the memory map, no copy
      # here; the host-to-device transfer reads the page cache directly.
      image = self.shards[int(shard_of[0])][lo:lo + b]
    else:
      image = self._gather(ok, safe, shard_of, b)
    out = {"image": image, "label": np.where(ok, self.label[safe], -1).astype(np.int32),
           "index": indices, "uid": np.where(ok, self.uid[safe], 0).astype(np.uint32),
           "mask": ok, "bad": bad}
    if self.labels is not None:
      out["labels"] = np.where(ok[:, None], self.labels[safe], False)
    return out

  def _gather(self, ok, safe, shard_of, b):
    s = self.size
    image = np.zeros((b, s, s, 3), np.uint8)
    for sh in np.unique(shard_of[ok]):
      sel = np.nonzero(ok & (shard_of == sh))[0]
      rows = safe[sel] - sh * SHARD_ROWS
      lo, hi = int(rows.min()), int(rows.max()) + 1
      if hi - lo == len(rows) and np.all(np.diff(rows) == 1):
        image[sel] = self.shards[sh][lo:hi]       # contiguous: one slice copy
      else:
        image[sel] = self.shards[sh][rows]
    return image

  def batches(self, the_plan: pipeline.Plan, *, start_batch: int = 0,
              prefetch: int = 2) -> Iterator[dict]:
    """Local batches of ``the_plan`` from ``start_batch`` on, read ``prefetch`` ahead
    by a background thread."""
    lb = the_plan.local_batch
    return pipeline.prefetched((self.read(the_plan.indices[b * lb:(b + 1) * lb])
                        for b in range(start_batch, the_plan.num_batches)), prefetch)


class _DecodeMulti(grain.transforms.Map):
  """index -> (index, [uint8 (S,S,3) per spec] or None, error text) from ONE decode."""

  def __init__(self, evalset: EvalSet, pps: Sequence[Preprocess]):
    self.source = evalset.source
    self.pre_transform = evalset.pre_transform
    self.pps = list(pps)

  def map(self, index):
    index = int(index)
    record = self.source[index]
    # Error texts as pipeline.describe_error gives them for uncached passes.
    if record.get("error"):   # the source could not read it (names the file)
      return index, record, None, str(record["error"])
    try:
      img = pipeline.record_image(record, self.pre_transform)
      images = [pipeline.resize_crop(img, pp) for pp in self.pps]
      return index, record, images, ""
    except decode_lib.DecodeError as e:
      return index, record, None, str(e)
    except Exception as e:  # noqa: BLE001 -- recorded, like the uncached pipeline
      return index, record, None, decode_lib.reason(e)


def _reserve(path: str) -> None:
  """Allocates a (sparse) shard's blocks now: a full disk then raises OSError here,
  instead of SIGBUS on a later write through the memory map."""
  fd = os.open(path, os.O_RDWR)
  try:
    os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
  except OSError as e:
    if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
      raise
  finally:
    os.close(fd)


def build(root: str, evalset: EvalSet, pps: Sequence[Preprocess], *,
          num_threads: int = 8) -> list[str]:
  """Writes the cache entries of ``evalset`` for every spec in ``pps`` from one decode.

  Returns:
    the entry directories, one per spec (existing valid entries are kept).

  Raises:
    OSError: the cache root cannot be written.
    ValueError: a source that cannot be fingerprinted.
  """
  root = os.path.expanduser(root)
  fp = fingerprint(evalset.source)
  if fp is None:
    raise ValueError(f"{evalset.name!r}: source {evalset.source!r} has no fingerprint; it "
                     "cannot be cached")
  keys = [cache_key(evalset, pp, fp) for pp in pps]
  finals = [os.path.join(root, k) for k in keys]
  todo = []
  for pp, key, final in zip(pps, keys, finals):
    if os.path.exists(final):
      try:
        PreparedSet.open(final, key)
        continue
      except InvalidCache as e:
        logging.warning("prepared cache: %s; removing and rebuilding it", e)
        shutil.rmtree(final)
    todo.append((pp, key, final))
  if not todo:
    return finals
  os.makedirs(root, exist_ok=True)
  n = len(evalset)
  tmps = [tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=root) for _, key, _ in todo]
  try:
    nshards = -(-n // SHARD_ROWS)
    shard_names = [f"images-{i:05d}.npy" for i in range(nshards)]
    maps = [[np.lib.format.open_memmap(
        os.path.join(tmp, shard_names[i]), mode="w+", dtype=np.uint8,
        shape=(min(SHARD_ROWS, n - i * SHARD_ROWS), pp.size, pp.size, 3))
        for i in range(nshards)] for (pp, _, _), tmp in zip(todo, tmps)]
    for m in maps:
      for a in m:
        _reserve(a.filename)
    label = np.full(n, -1, np.int32)
    uid = np.zeros(n, np.uint32)
    bad = np.zeros(n, bool)
    labels = np.zeros((n, evalset.num_classes), bool) if evalset.multilabel else None
    ids, errors = [""] * n, {}
    ds = grain.MapDataset.source(np.arange(n, dtype=np.int64)).map(
        _DecodeMulti(evalset, [pp for pp, _, _ in todo]))
    read = grain.ReadOptions(num_threads=max(1, num_threads), prefetch_buffer_size=256)
    for index, record, images, error in ds.to_iter_dataset(read):
      ids[index] = str(record["id"])
      if images is None:
        bad[index] = True
        errors[str(index)] = error
        continue
      label[index] = int(record.get("label", -1))
      uid[index] = pipeline.example_uid(ids[index])
      if labels is not None:
        labels[index] = np.asarray(record["labels"], bool)
      for m, img in zip(maps, images):
        m[index // SHARD_ROWS][index % SHARD_ROWS] = img
    for (pp, key, final), tmp, m in zip(todo, tmps, maps):
      for a in m:
        a.flush()
      del m[:]
      np.save(os.path.join(tmp, "label.npy"), label)
      np.save(os.path.join(tmp, "uid.npy"), uid)
      np.save(os.path.join(tmp, "bad.npy"), bad)
      if labels is not None:
        np.save(os.path.join(tmp, "labels.npy"), labels)
      with open(os.path.join(tmp, "ids.json"), "w") as f:
        json.dump(ids, f)
      with open(os.path.join(tmp, "errors.json"), "w") as f:
        json.dump(errors, f)
      files = {name: {"bytes": os.path.getsize(os.path.join(tmp, name)),
                      "crc32": _crc32(os.path.join(tmp, name))}
               for name in sorted(os.listdir(tmp))}
      manifest = {"version": FORMAT_VERSION, "key": key, "set": evalset.name, "n": n,
                  "fingerprint": fp, "preprocess": spec_of(pp),
                  "multilabel": bool(evalset.multilabel), "n_bad": int(bad.sum()),
                  "shards": shard_names, "shard_rows": SHARD_ROWS, "files": files}
      # manifest last, atomically; then the entry appears complete or not at all (a
      # concurrent writer that finished first wins the race)
      atomic.atomic_write_bytes(os.path.join(tmp, "manifest.json"),
                                json.dumps(manifest, indent=1).encode())
      atomic.atomic_rename_dir(tmp, final)
      logging.info("prepared cache: wrote %s (%d examples, %dpx, %d undecodable)", final, n,
                   pp.size, int(bad.sum()))
  finally:
    for tmp in tmps:
      shutil.rmtree(tmp, ignore_errors=True)
  return finals


def verify(path: str) -> None:
  """Checks every file's CRC32 against the manifest; raises :class:`InvalidCache`."""
  ps = PreparedSet.open(path)
  for name, info in ps.manifest["files"].items():
    got = _crc32(os.path.join(path, name))
    if got != info["crc32"]:
      raise InvalidCache(f"{os.path.join(path, name)}: CRC32 {got:#x}, manifest says "
                         f"{info['crc32']:#x}")


def get_or_build(root: str, evalset: EvalSet, pp: Preprocess, *, num_threads: int = 8,
                 source_fingerprint: Optional[dict] = None) -> Optional[PreparedSet]:
  """The cache entry of (set, spec) under ``root``, built first if absent or invalid.

  ``source_fingerprint``: ``evalset.fingerprint()`` when the caller already took it.

  Returns:
    the opened entry, or None -- after one logged warning -- when the set cannot
    be cached or the cache cannot be written; the caller then reads uncached.
  """
  root = os.path.expanduser(root)
  try:
    key = cache_key(evalset, pp, fingerprint(evalset.source, source_fingerprint))
  except OSError as e:
    logging.warning("prepared cache: cannot fingerprint %s (%s); reading uncached",
                    evalset.name, e)
    return None
  if key is None:
    logging.warning("prepared cache: %s (%r) cannot be fingerprinted; reading uncached",
                    evalset.name, evalset.source)
    return None
  path = os.path.join(root, key)
  if os.path.exists(path):
    try:
      return PreparedSet.open(path, key)
    except InvalidCache as e:
      logging.warning("prepared cache: %s; rebuilding", e)
  try:
    build(root, evalset, [pp], num_threads=num_threads)
    return PreparedSet.open(path, key)
  except (OSError, InvalidCache) as e:
    logging.warning("prepared cache %r cannot be used for %s (%s: %s); reading uncached, "
                    "results are the same", root, evalset.name, type(e).__name__, e)
    return None
