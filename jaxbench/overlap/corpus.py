"""Pretraining corpora for the overlap search: webdataset tar shards, image folders, embeddings.

Three on-disk forms are read, all streamed so a corpus never has to fit in memory:

* **tar shards** as img2dataset writes them (``00000.tar`` ... holding ``KEY.jpg`` next to
  ``KEY.txt``/``KEY.json``). Read with :mod:`tarfile` in stream mode, members are never
  extracted to disk: bytes are decoded in memory, so a hostile member name cannot write
  anywhere. Truncated or malformed members, non-image samples, duplicate keys, links and
  path-traversal names (``../evil.jpg``, ``/etc/x.jpg``) are skipped and recorded in
  :attr:`Corpus.problems`.
* **image folders**: every image file under a root (recursively, sorted); ids are paths
  relative to the root.
* **embedding files**: a directory written by :class:`jaxbench.overlap.embed.EmbeddingStore`
  (``manifest.json`` + chunk files), or user files ``NAME.npy`` (float (N, D)) with
  ``NAME.ids.txt`` (one id per line) or ``NAME.ids.json`` (a list), loaded without pickle.

Every item carries an **ordinal**, an int64 that orders the whole corpus the same way on any
number of processes: ``(source index << 32) | position in source``. Ties in the search are
broken by ordinal, so results do not depend on how the corpus was split.

Process-local shares (:meth:`Corpus.shard`) split by source file (shards, embedding files)
or by item (folders), so each host reads only its share.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import tarfile
from typing import Iterator, Optional, Sequence

import numpy as np

from jaxbench.data import decode as decode_lib

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
# A member larger than this is not a web image; reading it would only exhaust memory.
MAX_MEMBER_BYTES = 64 << 20
_ORDINAL_SHIFT = 32


class CorpusError(ValueError):
  """A corpus that cannot be used at all (missing, empty, inconsistent embedding files)."""


@dataclasses.dataclass
class Item:
  """One corpus image.

  Attributes:
    id: unique id: ``SHARD/KEY`` for tar shards (``SHARD`` is the file stem), the
      relative path for folders.
    ordinal: int64 global order key (see module docstring).
    data: the encoded image bytes.
    meta: caption ('txt') and parsed 'json' members when present.
  """
  id: str
  ordinal: int
  data: bytes
  meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Problem:
  """A skipped member or file: where it was, what it was called, and why."""
  source: str
  name: str
  reason: str

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


class Problems:
  """Collects skipped inputs; keeps every record (a run's audit trail) and counts by reason."""

  def __init__(self):
    self.records: list[Problem] = []

  def add(self, source: str, name: str, reason: str):
    self.records.append(Problem(str(source), str(name), reason))

  def counts(self) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in self.records:
      kind = p.reason.split(":")[0]
      out[kind] = out.get(kind, 0) + 1
    return out

  def __len__(self) -> int:
    return len(self.records)

  def to_json(self) -> list[dict]:
    return [p.to_json() for p in self.records]


def ordinal(source_index: int, position: int) -> int:
  return (int(source_index) << _ORDINAL_SHIFT) | int(position)


def decode_image(data: bytes, name: Optional[str] = None) -> np.ndarray:
  """Decodes encoded image bytes to uint8 (H, W, 3) RGB (every PIL mode, as the
  eval pipeline: :func:`jaxbench.data.decode.decode`).

  Raises:
    ValueError: the bytes are not a decodable image (the message says why).
  """
  return decode_lib.decode_array(data, name)


def _end_of_archive_problem(tf: tarfile.TarFile) -> Optional[str]:
  """Why a stream-mode tar ended without its end-of-archive block, or None.

  ``tarfile`` reports the end of a stream (``next()`` is None) the same way for
  the two zero blocks that close an archive, for a stream cut *inside* a
  512-byte header (a partial header is ignored past the first member) and for
  one cut exactly between members. The bytes it read for that last header tell
  them apart: a whole (zero) block, part of one, or nothing.
  """
  try:
    read = tf.fileobj.tell() - tf.offset
  except (AttributeError, OSError, ValueError):
    return None
  if read >= tarfile.BLOCKSIZE:
    return None
  if read > 0:
    return (f"truncated shard: the file ends inside a tar header ({read} of "
            f"{tarfile.BLOCKSIZE} bytes at offset {tf.offset})")
  return (f"truncated shard: no end-of-archive block after offset {tf.offset} (the file "
          "ends between members)")


def unsafe_name(name: str) -> Optional[str]:
  """Why a member name could escape a directory if extracted, or None if it is safe."""
  if not name or "\x00" in name:
    return "empty or NUL in name"
  if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
    return "absolute path"
  parts = re.split(r"[\\/]+", name)
  if ".." in parts:
    return "parent directory ('..') in path"
  return None


def _split_key(name: str) -> tuple[str, str]:
  """webdataset's rule: the key is the path up to the first dot of the basename."""
  head, base = os.path.split(name)
  stem, dot, ext = base.partition(".")
  key = f"{head}/{stem}" if head else stem
  return key, ext.lower() if dot else ""


class Corpus:
  """Base class: a stream of :class:`Item` (image corpora) or embedding chunks."""

  kind = "images"

  def __init__(self, spec: str):
    self.spec = spec
    self.problems = Problems()

  def items(self, after: int = -1) -> Iterator[Item]:
    """Yields items in ordinal order, skipping those with ordinal <= ``after`` (resume)."""
    raise NotImplementedError

  def shard(self, index: int, count: int) -> "Corpus":
    """The share process ``index`` of ``count`` reads."""
    raise NotImplementedError

  def fetch(self, ids: Sequence[str]) -> dict[str, bytes]:
    """Encoded bytes of the given ids (for the review gallery); missing ids are left out."""
    return {}

  def describe(self) -> dict:
    return {"spec": self.spec, "kind": self.kind}


# --------------------------------------------------------------------------- tar shards
class TarShards(Corpus):
  """img2dataset / webdataset tar shards.

  Args:
    paths: shard files, in corpus order.
    spec: how the user named the corpus (recorded).
    indices: each path's index in the full shard list (for ordinals); defaults to 0..n-1.
  """

  kind = "tar"

  def __init__(self, paths: Sequence[str], spec: str, indices: Optional[Sequence[int]] = None):
    super().__init__(spec)
    self.paths = list(paths)
    self.indices = list(indices) if indices is not None else list(range(len(self.paths)))

  def shard(self, index: int, count: int) -> "TarShards":
    return TarShards(self.paths[index::count], self.spec, self.indices[index::count])

  def describe(self) -> dict:
    return {**super().describe(), "shards": len(self.paths)}

  def items(self, after: int = -1) -> Iterator[Item]:
    for path, sidx in zip(self.paths, self.indices):
      if ordinal(sidx + 1, 0) <= after + 1:  # the whole shard is before the resume point
        continue
      yield from self._shard_items(path, sidx, after)

  def _shard_items(self, path: str, sidx: int, after: int) -> Iterator[Item]:
    stem = os.path.basename(path).split(".")[0]
    for pos, (key, members) in enumerate(self._groups(path)):
      o = ordinal(sidx, pos)
      if o <= after:
        continue
      image_ext = next((e for e in IMAGE_EXTS if e in members), None)
      if image_ext is None:
        self.problems.add(path, key, "no image member: sample has only "
                          f"{sorted(members) or ['(nothing)']}")
        continue
      meta = {}
      if "txt" in members:
        meta["caption"] = members["txt"].decode("utf-8", errors="replace")
      if "json" in members:
        try:
          meta["json"] = json.loads(members["json"].decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
          self.problems.add(path, f"{key}.json", f"bad json member: {e}")
      yield Item(id=f"{stem}/{key}", ordinal=o, data=members[image_ext], meta=meta)

  def _groups(self, path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yields (key, {ext: bytes}) for each sample of one shard, skipping bad members.

    Members of a sample are adjacent in a webdataset shard; a key seen again later is a
    duplicate and is skipped (the first occurrence wins).
    """
    try:
      tf = tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as e:
      self.problems.add(path, "", f"unreadable shard: {type(e).__name__}: {e}")
      return
    seen: set[str] = set()
    key, members, skip = None, {}, None
    last = ""
    try:
      while True:
        try:
          m = tf.next()
        except (tarfile.TarError, OSError, EOFError) as e:
          self.problems.add(path, f"after {last!r}" if last else "",
                            f"truncated or malformed shard: {type(e).__name__}: {e}")
          break
        if m is None:
          cut = _end_of_archive_problem(tf)
          if cut:   # samples read so far are whole (every member's bytes were read)
            self.problems.add(path, f"after {last!r}" if last else "", cut)
          break
        last = m.name
        if m.isdir():
          continue
        why = unsafe_name(m.name)
        if why:
          self.problems.add(path, m.name, f"unsafe member name: {why}")
          continue
        if not m.isreg():
          self.problems.add(path, m.name, "not a regular file: links and devices are skipped")
          continue
        if m.size > MAX_MEMBER_BYTES:
          self.problems.add(path, m.name, f"member too large: {m.size} bytes > "
                            f"{MAX_MEMBER_BYTES}")
          continue
        k, ext = _split_key(m.name)
        if k != key:
          if key is not None and members:
            yield key, members
          key, members = k, {}
          if k in seen:
            self.problems.add(path, m.name, "duplicate key: an earlier sample has this key")
            skip = k
            continue
          seen.add(k)
          skip = None
        elif skip == k:
          continue  # further members of a skipped duplicate sample
        if ext in members:
          self.problems.add(path, m.name, "duplicate key: member repeated within a sample")
          continue
        try:
          f = tf.extractfile(m)
          data = f.read() if f is not None else b""
        except (tarfile.TarError, OSError, EOFError) as e:
          self.problems.add(path, m.name, f"truncated member: {type(e).__name__}: {e}")
          key = None
          break  # a stream cannot continue past a short read
        if len(data) != m.size:
          self.problems.add(path, m.name, f"truncated member: read {len(data)} of "
                            f"{m.size} bytes")
          key = None
          break
        members[ext] = data
      if key is not None and skip != key and members:
        yield key, members
    finally:
      tf.close()

  def fetch(self, ids: Sequence[str]) -> dict[str, bytes]:
    by_stem: dict[str, set[str]] = {}
    for i in ids:
      stem, _, key = i.partition("/")
      by_stem.setdefault(stem, set()).add(key)
    out = {}
    for path in self.paths:
      stem = os.path.basename(path).split(".")[0]
      want = by_stem.get(stem)
      if not want:
        continue
      quiet = TarShards([path], self.spec)  # a throwaway problem log
      for key, members in quiet._groups(path):
        if key in want:
          ext = next((e for e in IMAGE_EXTS if e in members), None)
          if ext:
            out[f"{stem}/{key}"] = members[ext]
    return out


# --------------------------------------------------------------------------- folders
class ImageFolder(Corpus):
  """Every image file under ``root`` (recursive, sorted, symlinks must stay inside root)."""

  kind = "folder"

  def __init__(self, root: str, spec: str, files: Optional[Sequence[str]] = None,
               indices: Optional[Sequence[int]] = None):
    super().__init__(spec)
    self.root = os.path.abspath(os.path.expanduser(root))
    if files is None:
      files = list_images(self.root, self.problems)
    self.files = list(files)
    self.indices = list(indices) if indices is not None else list(range(len(self.files)))

  def shard(self, index: int, count: int) -> "ImageFolder":
    return ImageFolder(self.root, self.spec, self.files[index::count],
                       self.indices[index::count])

  def describe(self) -> dict:
    return {**super().describe(), "files": len(self.files)}

  def items(self, after: int = -1) -> Iterator[Item]:
    for rel, idx in zip(self.files, self.indices):
      o = ordinal(0, idx)
      if o <= after:
        continue
      try:
        with open(os.path.join(self.root, rel), "rb") as f:
          data = f.read(MAX_MEMBER_BYTES + 1)
      except OSError as e:
        self.problems.add(self.root, rel, f"unreadable file: {e}")
        continue
      if len(data) > MAX_MEMBER_BYTES:
        self.problems.add(self.root, rel, f"file too large: > {MAX_MEMBER_BYTES} bytes")
        continue
      yield Item(id=rel, ordinal=o, data=data)

  def fetch(self, ids: Sequence[str]) -> dict[str, bytes]:
    out = {}
    allowed = set(self.files)
    for i in ids:
      if i in allowed:  # never open a path that was not listed under root
        with open(os.path.join(self.root, i), "rb") as f:
          out[i] = f.read()
    return out


def list_images(root: str, problems: Optional[Problems] = None) -> list[str]:
  """Sorted relative paths of image files under root; symlinks leaving root are skipped."""
  root = os.path.abspath(root)
  real_root = os.path.realpath(root)
  out = []
  for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
    dirnames.sort()
    for name in sorted(filenames):
      if name.rsplit(".", 1)[-1].lower() not in IMAGE_EXTS or "." not in name:
        continue
      full = os.path.join(dirpath, name)
      rel = os.path.relpath(full, root).replace(os.sep, "/")
      real = os.path.realpath(full)
      if os.path.commonpath([real, real_root]) != real_root:
        if problems is not None:
          problems.add(root, rel, "unsafe member name: symlink points outside the folder")
        continue
      out.append(rel)
  out.sort()
  return out


# --------------------------------------------------------------------------- embeddings
@dataclasses.dataclass
class EmbeddingChunk:
  """A block of precomputed embeddings.

  Attributes:
    emb: float (n, D) (float16 or float32 as stored; memory-mapped when possible).
    ids: n unique ids.
    ordinals: int64 (n,).
    hashes: optional {'phash': uint64 (n,), 'dhash': uint64 (n,)}.
  """
  emb: np.ndarray
  ids: list[str]
  ordinals: np.ndarray
  hashes: dict = dataclasses.field(default_factory=dict)


class EmbeddingFiles(Corpus):
  """Precomputed embeddings: ``(npy path, ids path or None, extra)`` chunk descriptions.

  Files are validated when read: 2-D float arrays, one id per row, ids unique within a
  file, all files the same width, finite values.
  """

  kind = "embeddings"

  def __init__(self, chunks: Sequence[dict], spec: str, manifest: Optional[dict] = None,
               indices: Optional[Sequence[int]] = None):
    super().__init__(spec)
    self.chunk_specs = list(chunks)
    self.manifest = manifest or {}
    self.indices = list(indices) if indices is not None else list(range(len(self.chunk_specs)))

  def shard(self, index: int, count: int) -> "EmbeddingFiles":
    return EmbeddingFiles(self.chunk_specs[index::count], self.spec, self.manifest,
                          self.indices[index::count])

  @property
  def dim(self) -> int:
    if "dim" in self.manifest:
      return int(self.manifest["dim"])
    if not self.chunk_specs:
      raise CorpusError(f"embedding corpus {self.spec!r} has no files")
    arr = np.load(self.chunk_specs[0]["emb"], mmap_mode="r", allow_pickle=False)
    return int(arr.shape[1]) if arr.ndim == 2 else -1

  def describe(self) -> dict:
    return {**super().describe(), "files": len(self.chunk_specs),
            "model": self.manifest.get("model")}

  def chunks(self) -> Iterator[EmbeddingChunk]:
    dim = None
    for spec, fidx in zip(self.chunk_specs, self.indices):
      chunk = _read_chunk(spec, fidx)
      if dim is None:
        dim = chunk.emb.shape[1]
      elif chunk.emb.shape[1] != dim:
        raise CorpusError(f"embedding file {spec['emb']} has width {chunk.emb.shape[1]}, "
                          f"earlier files have {dim}: all files must come from one model")
      yield chunk

  def items(self, after: int = -1):
    raise CorpusError(f"corpus {self.spec!r} holds embeddings, not images")

  def fetch(self, ids):
    src = self.manifest.get("images")
    if src:  # the store remembers which image corpus it was computed from
      try:
        return open_corpus(src).fetch(ids)
      except CorpusError:
        return {}
    return {}


def _read_ids(path: str) -> list[str]:
  with open(path, encoding="utf-8") as f:
    if path.endswith(".json"):
      ids = json.load(f)
      if not isinstance(ids, list):
        raise CorpusError(f"ids file {path}: expected a JSON list of strings, got "
                          f"{type(ids).__name__}")
      return [str(i) for i in ids]
    return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def _read_chunk(spec: dict, fidx: int) -> EmbeddingChunk:
  path = spec["emb"]
  try:
    emb = np.load(path, mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError) as e:
    raise CorpusError(f"embedding file {path}: cannot read as a .npy array without "
                      f"pickle: {e}") from e
  if emb.ndim != 2 or emb.dtype.kind != "f":
    raise CorpusError(f"embedding file {path}: expected a float (N, D) array, got "
                      f"{emb.dtype} {emb.shape}")
  if spec.get("ids") is None:
    raise CorpusError(f"embedding file {path}: no ids file next to it (expected "
                      f"{path[:-4]}.ids.txt or {path[:-4]}.ids.json)")
  ids = _read_ids(spec["ids"])
  if len(ids) != emb.shape[0]:
    raise CorpusError(f"embedding file {path} has {emb.shape[0]} rows but its ids file "
                      f"{spec['ids']} has {len(ids)} ids")
  if len(set(ids)) != len(ids):
    dup = next(i for i in ids if ids.count(i) > 1)
    raise CorpusError(f"ids file {spec['ids']}: duplicate id {dup!r}")
  if not np.all(np.isfinite(emb)):
    raise CorpusError(f"embedding file {path}: contains NaN or inf")
  if spec.get("ordinals"):
    ords = np.load(spec["ordinals"], allow_pickle=False).astype(np.int64)
  else:
    ords = np.asarray([ordinal(fidx, i) for i in range(len(ids))], np.int64)
  hashes = {name: np.load(p, allow_pickle=False)
            for name, p in spec.get("hashes", {}).items()}
  return EmbeddingChunk(emb=emb, ids=ids, ordinals=ords, hashes=hashes)


def _npy_pair(npy: str) -> dict:
  base = npy[:-4]
  for cand in (base + ".ids.txt", base + ".ids.json", base + ".txt"):
    if os.path.exists(cand):
      return {"emb": npy, "ids": cand}
  return {"emb": npy, "ids": None}


# --------------------------------------------------------------------------- opening
def expand_braces(pattern: str) -> list[str]:
  """Expands webdataset/img2dataset shard patterns: ``dir/{00000..00009}.tar``."""
  m = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
  if not m:
    return [pattern]
  lo, hi = m.group(1), m.group(2)
  width = len(lo)
  out = []
  for i in range(int(lo), int(hi) + 1):
    out.extend(expand_braces(pattern[:m.start()] + str(i).zfill(width) + pattern[m.end():]))
  return out


# --- finished embedding stores -------------------------------------------------------
# The format a store's manifest.json declares. The writer (overlap.embed.EmbeddingStore)
# sits above this module; the reader lives here, with the other corpus readers.
STORE_FORMAT = "jaxbench.overlap.embeddings/1"


@dataclasses.dataclass
class StoredEmbeddings:
  """A finished embedding store: its directory and its top-level manifest."""
  root: str
  manifest: dict

  def as_corpus(self, spec: Optional[str] = None) -> EmbeddingFiles:
    join = lambda p: os.path.join(self.root, p)
    chunks = [{"emb": join(c["emb"]), "ids": join(c["ids"]), "ordinals": join(c["ordinals"]),
               "hashes": {h: join(p) for h, p in c.get("hashes", {}).items()}}
              for c in self.manifest["chunks"]]
    if not chunks:
      raise CorpusError(f"empty corpus: embedding store {self.root} has no rows")
    return EmbeddingFiles(chunks, spec or self.root, self.manifest)


def open_store(root: str) -> StoredEmbeddings:
  """The finished embedding store at ``root``.

  Raises:
    CorpusError: ``root/manifest.json`` does not declare :data:`STORE_FORMAT`.
  """
  with open(os.path.join(root, "manifest.json")) as f:
    manifest = json.load(f)
  if manifest.get("format") != STORE_FORMAT:
    raise CorpusError(f"{root}/manifest.json is not a jaxbench embedding "
                      f"store (format {manifest.get('format')!r})")
  return StoredEmbeddings(root, manifest)


def open_corpus(spec) -> Corpus:
  """Opens a corpus from a path, a shard pattern or a list of shard paths.

  Args:
    spec: a directory (of tar shards, of images, or an embedding store with
      ``manifest.json``), a ``.tar`` file, a pattern (``shards/{00000..00099}.tar``,
      ``shards/*.tar``), a ``.npy`` embedding file, or a list of tar paths.

  Raises:
    CorpusError: nothing usable is found (an empty corpus is an error).
  """
  if isinstance(spec, (list, tuple)):
    paths = [os.path.expanduser(p) for p in spec]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise CorpusError(f"corpus shards not found: {missing[:5]}")
    if not paths:
      raise CorpusError("empty corpus: the shard list is empty")
    return TarShards(paths, ",".join(spec))
  spec = str(spec)
  path = os.path.expanduser(spec)
  if "{" in path or any(c in path for c in "*?["):
    paths = sorted({p for pat in expand_braces(path) for p in glob.glob(pat)})
    if not paths:
      raise CorpusError(f"empty corpus: no files match {spec!r}")
    if all(p.endswith(".npy") for p in paths):
      return EmbeddingFiles([_npy_pair(p) for p in paths], spec)
    return TarShards(paths, spec)
  if not os.path.exists(path):
    raise CorpusError(f"corpus {spec!r} does not exist")
  if os.path.isfile(path):
    if path.endswith(".npy"):
      return EmbeddingFiles([_npy_pair(path)], spec)
    if path.endswith(".tar"):
      return TarShards([path], spec)
    raise CorpusError(f"corpus file {spec!r}: expected a .tar shard or a .npy embedding "
                      "file")
  manifest = os.path.join(path, "manifest.json")
  if os.path.exists(manifest):
    return open_store(path).as_corpus(spec)
  names = sorted(os.listdir(path))
  tars = [os.path.join(path, n) for n in names if n.endswith(".tar")]
  if tars:
    return TarShards(tars, spec)
  npys = [os.path.join(path, n) for n in names if n.endswith(".npy")]
  if npys:
    return EmbeddingFiles([_npy_pair(p) for p in npys], spec)
  folder = ImageFolder(path, spec)
  if not folder.files:
    raise CorpusError(f"empty corpus: {spec!r} holds no .tar shards, no .npy embedding "
                      f"files and no images ({', '.join(IMAGE_EXTS)})")
  return folder
