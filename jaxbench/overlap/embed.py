"""Streams images through a model's image tower; stores embeddings on disk in chunks.

:class:`Embedder` turns a stream of records ``(id, ordinal, payload)`` (payload: encoded
bytes or a uint8 HWC RGB array) into L2-normalised float32 embeddings:

* host side, in a thread pool with one batch of look-ahead: decode (bad images are skipped
  and recorded), perceptual hashes of the full decoded image, the model's resize and centre
  crop;
* device side: one ``jax.jit`` step whose batch is sharded over the mesh's 'data' axis with
  ``NamedSharding`` (parameters replicated), fed as uint8 and scaled to [0, 1] on device.
  ``mode='image'`` uses ``Model.encode_image`` (zero-shot towers), ``mode='features'`` uses
  ``Model.apply`` (a supervised model's logits as features).

The last batch is padded and the padding dropped, so every record is embedded exactly once.
With several processes each one feeds its own share (``make_array_from_process_local_data``)
and all take the same number of steps (a process that runs out feeds padding).

:class:`EmbeddingStore` writes ``manifest.json`` plus chunk files (embeddings ``.npy``, ids
``.json``, ordinals and hashes ``.npy``), atomically, and resumes an interrupted run from its
last complete chunk. A finished store is itself a corpus (:mod:`jaxbench.overlap.corpus`),
so a large pretraining set is embedded once and searched many times.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Iterable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from PIL import Image

from jaxbench import atomic
from jaxbench.models.api import Model, Preprocess, l2_normalize
from jaxbench.overlap import corpus as corpus_lib
from jaxbench.overlap import hashes as hashes_lib

STORE_FORMAT = corpus_lib.STORE_FORMAT   # the reader (corpus.open_store) checks it
_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR,
            "nearest": Image.NEAREST, "lanczos": Image.LANCZOS, "box": Image.BOX}


def data_mesh(mesh: Optional[Mesh] = None) -> Mesh:
  """The given mesh, or a 1-D 'data' mesh over every device."""
  if mesh is not None:
    if "data" not in mesh.axis_names:
      raise ValueError(f"overlap needs a mesh with a 'data' axis, got {mesh.axis_names}")
    return mesh
  return Mesh(np.asarray(jax.devices()), ("data",))


def prepare(image: np.ndarray, preprocess: Preprocess) -> np.ndarray:
  """The model's host-side transform: resize the short side, centre-crop a square.

  Args:
    image: uint8 (H, W, 3) RGB.
    preprocess: the model's :class:`Preprocess`.

  Returns:
    uint8 (size, size, 3).
  """
  im = Image.fromarray(image)
  w, h = im.size
  s = preprocess.resize / min(w, h)
  nw, nh = max(preprocess.size, round(w * s)), max(preprocess.size, round(h * s))
  im = im.resize((nw, nh), _FILTERS.get(preprocess.interpolation, Image.BICUBIC))
  left, top = (nw - preprocess.size) // 2, (nh - preprocess.size) // 2
  im = im.crop((left, top, left + preprocess.size, top + preprocess.size))
  return np.asarray(im, np.uint8)


@dataclasses.dataclass
class Batch:
  """Embeddings of one batch of valid records (padding already dropped).

  Attributes:
    ids: n ids.
    ordinals: int64 (n,).
    emb: float32 (n, D), unit L2 norm.
    hashes: {'phash': uint64 (n,), 'dhash': uint64 (n,)} for the requested hashes.
    images: uint8 (n, S, S, 3) model inputs, only when ``keep_images`` was set.
  """
  ids: list[str]
  ordinals: np.ndarray
  emb: np.ndarray
  hashes: dict
  images: Optional[np.ndarray] = None


def process_all(flag: bool) -> bool:
  """True when ``flag`` holds on every process (one tiny collective when multi-process)."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils
  flags = multihost_utils.process_allgather(np.asarray([int(flag)], np.int32))
  return bool(np.all(flags))


def local_rows(x: jax.Array) -> np.ndarray:
  """This process's rows of an array sharded along axis 0, in order."""
  if x.is_fully_addressable:
    return np.asarray(x)
  shards = {}
  for s in x.addressable_shards:
    shards.setdefault(s.index[0].start or 0, s)
  return np.concatenate([np.asarray(shards[k].data) for k in sorted(shards)], axis=0)


class Embedder:
  """Embeds record streams with one model, batch sharded over the 'data' mesh axis.

  Args:
    model: any :class:`Model`.
    mode: 'image' (``encode_image``), 'features' (``apply``) or 'auto' (image for
      zero-shot models, features otherwise); all three are L2-normalised. 'logits' is
      ``post(apply(...))`` unnormalised, for scoring the model itself.
    batch_size: global batch; rounded up to a multiple of the 'data' axis size.
    mesh: a mesh with a 'data' axis (default: all devices).
    hashes: perceptual hashes computed on each decoded image ('phash', 'dhash').
    workers: host threads for decoding and resizing (PIL releases the GIL).
  """

  def __init__(self, model: Model, *, mode: str = "auto", batch_size: int = 64,
               mesh: Optional[Mesh] = None, hashes: Sequence[str] = ("phash", "dhash"),
               workers: int = 4, post=None):
    if mode == "auto":
      mode = "image" if model.is_zeroshot else "features"
    if mode not in ("image", "features", "logits"):
      raise ValueError(f"embedding mode {mode!r}: expected 'image', 'features', 'logits' "
                       "or 'auto'")
    if mode == "image" and not model.is_zeroshot:
      raise ValueError(f"mode='image' needs a zero-shot model; {model.name!r} is "
                       f"{model.kind}: use mode='features'")
    unknown = set(hashes) - set(hashes_lib.HASHES)
    if unknown:
      raise ValueError(f"unknown hashes {sorted(unknown)}; known: {sorted(hashes_lib.HASHES)}")
    self.model, self.mode, self.hashes = model, mode, tuple(hashes)
    self.mesh = data_mesh(mesh)
    n = self.mesh.shape["data"]
    self.batch_size = -(-int(batch_size) // n) * n
    if self.batch_size % jax.process_count():
      raise ValueError(f"batch size {self.batch_size} is not divisible by the "
                       f"{jax.process_count()} processes")
    self.local_batch = self.batch_size // jax.process_count()
    self.workers = workers
    self._data = NamedSharding(self.mesh, P("data"))
    self._params = jax.device_put(model.params, NamedSharding(self.mesh, P()))
    encode = model.encode_image if mode == "image" else model.apply

    def step(params, images_u8):
      z = encode(params, images_u8.astype(jnp.float32) / 255.0).astype(jnp.float32)
      if mode == "logits":
        return post(z) if post is not None else z
      return l2_normalize(z)

    self._step = jax.jit(step, in_shardings=(NamedSharding(self.mesh, P()), self._data),
                         out_shardings=self._data)

  def describe(self) -> dict:
    return {"model": self.model.name, "mode": self.mode,
            "preprocess": self.model.preprocess.spec(), "precision": self.model.precision,
            "hashes": list(self.hashes)}

  # ------------------------------------------------------------------ host side
  def _host(self, rec):
    rid, o, payload = rec
    try:
      img = payload if isinstance(payload, np.ndarray) else corpus_lib.decode_image(payload)
      if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"undecodable image: expected uint8 (H, W, 3), got {img.dtype} "
                         f"{img.shape}")
      hs = {h: hashes_lib.HASHES[h](img) for h in self.hashes}
      return rid, o, prepare(img, self.model.preprocess), hs, None
    except ValueError as e:
      return rid, o, None, None, str(e)

  def _host_batches(self, records: Iterator, problems, source):
    """Background producer of prepared host batches (one batch of look-ahead)."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce():
      try:
        with ThreadPoolExecutor(self.workers) as pool:
          while not stop.is_set():
            raw = list(islice(records, self.local_batch))
            if not raw:
              break
            q.put(list(pool.map(self._host, raw)))
        q.put(None)
      except BaseException as e:  # surfaced in the consumer
        q.put(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
      while True:
        got = q.get()
        if got is None:
          return
        if isinstance(got, BaseException):
          raise got
        good = []
        for rid, o, img, hs, err in got:
          if err is not None:
            if problems is not None:
              problems.add(source, rid, err)
          else:
            good.append((rid, o, img, hs))
        yield good
    finally:
      stop.set()
      while t.is_alive():  # unblock a producer waiting on a full queue
        try:
          q.get_nowait()
        except queue.Empty:
          t.join(0.05)

  # ------------------------------------------------------------------ device side
  def embed(self, records: Iterable[tuple[str, int, Any]], *,
            problems: Optional[corpus_lib.Problems] = None, source: str = "",
            keep_images: bool = False) -> Iterator[Batch]:
    """Embeds a record stream.

    Args:
      records: ``(id, ordinal, payload)`` with payload encoded bytes or uint8 (H, W, 3).
      problems: where undecodable images are recorded (skipped otherwise silently).
      source: the name recorded with each problem.
      keep_images: also return the uint8 model inputs (for galleries and calibration).

    Yields:
      :class:`Batch` per step with at least one valid record on this process.
    """
    size = self.model.preprocess.size
    host = self._host_batches(iter(records), problems, source)
    done = False
    while True:
      good = [] if done else next(host, None)
      if good is None:
        done, good = True, []
      if process_all(done):
        return
      if not good and jax.process_count() == 1:
        continue
      images = np.zeros((self.local_batch, size, size, 3), np.uint8)
      for j, (_, _, img, _) in enumerate(good):
        images[j] = img
      arr = jax.make_array_from_process_local_data(self._data, images)
      emb = local_rows(self._step(self._params, arr))[:len(good)]
      if not good:
        continue
      yield Batch(
          ids=[g[0] for g in good],
          ordinals=np.asarray([g[1] for g in good], np.int64),
          emb=np.asarray(emb, np.float32),
          hashes={h: np.asarray([g[3][h] for g in good], np.uint64) for h in self.hashes},
          images=images[:len(good)].copy() if keep_images else None)

  def embed_all(self, records, **kw) -> Batch:
    """All of a (small) record stream's embeddings in one :class:`Batch`."""
    parts = list(self.embed(records, **kw))
    if not parts:
      d = jax.eval_shape(self._step, self._params, jax.ShapeDtypeStruct(
          (self.batch_size, self.model.preprocess.size, self.model.preprocess.size, 3),
          jnp.uint8)).shape[-1]
      return Batch([], np.zeros((0,), np.int64), np.zeros((0, d), np.float32),
                   {h: np.zeros((0,), np.uint64) for h in self.hashes})
    imgs = [p.images for p in parts]
    return Batch(
        ids=[i for p in parts for i in p.ids],
        ordinals=np.concatenate([p.ordinals for p in parts]),
        emb=np.concatenate([p.emb for p in parts]),
        hashes={h: np.concatenate([p.hashes[h] for p in parts]) for h in self.hashes},
        images=np.concatenate(imgs) if imgs[0] is not None else None)


# --------------------------------------------------------------------------- store
def _save_npy(path: str, arr: np.ndarray):
  atomic.atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def _save_json(path: str, obj):
  atomic.atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


class EmbeddingStore:
  """Chunked embeddings on disk, written by one or several processes.

  Layout::

    ROOT/manifest.json                      written when every part is complete
    ROOT/parts/pIIIII-of-NNNNN/manifest.json
    ROOT/parts/pIIIII-of-NNNNN/{emb,ids,ord,phash,dhash}-CCCCC.{npy,json}

  Args:
    root: the store directory.
    meta: what the embeddings are (model, preprocess, mode, corpus); a part whose meta
      differs is an error, not silently mixed.
    chunk: rows per chunk file.
    dtype: 'float32' or 'float16' (halves the disk; scores then carry ~1e-3 error).
  """

  def __init__(self, root: str, meta: dict, *, chunk: int = 65536, dtype: str = "float32",
               process_index: Optional[int] = None, process_count: Optional[int] = None):
    self.root = root
    self.meta = dict(meta, format=STORE_FORMAT)
    self.chunk = int(chunk)
    self.dtype = np.dtype(dtype)
    self.pi = jax.process_index() if process_index is None else process_index
    self.pc = jax.process_count() if process_count is None else process_count
    self.part_dir = os.path.join(root, "parts", f"p{self.pi:05d}-of-{self.pc:05d}")
    os.makedirs(self.part_dir, exist_ok=True)
    mpath = os.path.join(self.part_dir, "manifest.json")
    self.part = {"meta": self.meta, "chunks": [], "complete": False, "last_ordinal": -1,
                 "skipped": []}
    if os.path.exists(mpath):
      with open(mpath) as f:
        old = json.load(f)
      if old.get("meta") != self.meta:
        raise corpus_lib.CorpusError(
            f"embedding store {root} was written for {old.get('meta')}, not {self.meta}: "
            "use another directory")
      self.part = old
    self._buf: list[Batch] = []

  @property
  def complete(self) -> bool:
    return bool(self.part["complete"])

  @property
  def last_ordinal(self) -> int:
    return int(self.part["last_ordinal"])

  def append(self, batch: Batch):
    self._buf.append(batch)
    while sum(len(b.ids) for b in self._buf) >= self.chunk:
      self._flush(self.chunk)

  def _flush(self, n: Optional[int] = None):
    if not self._buf:
      return
    ids = [i for b in self._buf for i in b.ids]
    ords = np.concatenate([b.ordinals for b in self._buf])
    emb = np.concatenate([b.emb for b in self._buf])
    hs = {h: np.concatenate([b.hashes[h] for b in self._buf]) for h in self._buf[0].hashes}
    n = len(ids) if n is None else n
    if n == 0:
      self._buf = []
      return
    c = len(self.part["chunks"])
    name = lambda kind, ext: os.path.join(self.part_dir, f"{kind}-{c:05d}.{ext}")
    spec = {"emb": name("emb", "npy"), "ids": name("ids", "json"),
            "ordinals": name("ord", "npy"), "rows": n, "hashes": {}}
    _save_npy(spec["emb"], emb[:n].astype(self.dtype))
    _save_json(spec["ids"], ids[:n])
    _save_npy(spec["ordinals"], ords[:n])
    for h, v in hs.items():
      spec["hashes"][h] = name(h, "npy")
      _save_npy(spec["hashes"][h], v[:n])
    # Paths are stored relative to the store so it can be moved.
    rel = {k: os.path.relpath(v, self.root) for k, v in spec.items()
           if k in ("emb", "ids", "ordinals")}
    rel["hashes"] = {h: os.path.relpath(p, self.root) for h, p in spec["hashes"].items()}
    rel["rows"] = n
    self.part["chunks"].append(rel)
    self.part["last_ordinal"] = int(ords[n - 1])
    _save_json(os.path.join(self.part_dir, "manifest.json"), self.part)
    rest = Batch(ids[n:], ords[n:], emb[n:], {h: v[n:] for h, v in hs.items()})
    self._buf = [rest] if rest.ids else []

  def close(self, problems: Optional[corpus_lib.Problems] = None):
    """Flushes the last chunk and marks this part complete; process 0 writes the manifest."""
    self._flush()
    if problems is not None:
      self.part["skipped"] = self.part.get("skipped", []) + problems.to_json()
    self.part["complete"] = True
    _save_json(os.path.join(self.part_dir, "manifest.json"), self.part)
    if self.pc > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("overlap-store-close")
    if self.pi == 0:
      self.write_manifest(self.root, self.pc)
    if self.pc > 1:
      multihost_utils.sync_global_devices("overlap-store-manifest")

  @staticmethod
  def write_manifest(root: str, count: int):
    chunks, skipped, meta = [], [], None
    for i in range(count):
      with open(os.path.join(root, "parts", f"p{i:05d}-of-{count:05d}", "manifest.json")) as f:
        part = json.load(f)
      if not part["complete"]:
        raise corpus_lib.CorpusError(f"embedding store {root}: part {i} is incomplete")
      meta = part["meta"]
      chunks.extend(part["chunks"])
      skipped.extend(part.get("skipped", []))
    # Corpus order: by each chunk's first ordinal, so a store reads the same on any split.
    def first(c):
      return int(np.load(os.path.join(root, c["ordinals"]), mmap_mode="r")[0])
    chunks.sort(key=first)
    dim = int(np.load(os.path.join(root, chunks[0]["emb"]), mmap_mode="r").shape[1]) \
        if chunks else 0
    _save_json(os.path.join(root, "manifest.json"),
               {**meta, "dim": dim, "rows": sum(c["rows"] for c in chunks),
                "chunks": chunks, "skipped": skipped, "complete": True})

  @staticmethod
  def open(root: str) -> "corpus_lib.StoredEmbeddings":
    """The finished store at ``root`` (its reader lives in :mod:`corpus`, below this writer)."""
    return corpus_lib.open_store(root)


def embed_corpus(embedder: Embedder, corpus: corpus_lib.Corpus, root: str, *,
                 chunk: int = 65536, dtype: str = "float32") -> corpus_lib.EmbeddingFiles:
  """Embeds an image corpus into a store under ``root`` (or reuses/resumes one there).

  Each process embeds its own share (``corpus.shard``); the finished store lists all.

  Raises:
    CorpusError: the corpus yields no valid image at all (an empty corpus).
  """
  meta = {"images": corpus.spec, "corpus": corpus.describe(), **embedder.describe()}
  done_manifest = os.path.join(root, "manifest.json")
  if os.path.exists(done_manifest):
    stored = EmbeddingStore.open(root)
    if {k: stored.manifest.get(k) for k in meta} == meta:
      return stored.as_corpus(corpus.spec)
  store = EmbeddingStore(root, meta, chunk=chunk, dtype=dtype)
  share = corpus.shard(jax.process_index(), jax.process_count())
  if not store.complete:
    records = ((it.id, it.ordinal, it.data) for it in share.items(after=store.last_ordinal))
    for batch in embedder.embed(records, problems=share.problems, source=corpus.spec):
      store.append(batch)
    store.close(share.problems)
  elif jax.process_index() == 0:
    EmbeddingStore.write_manifest(root, jax.process_count())
  corpus.problems.records.extend(share.problems.records)
  stored = EmbeddingStore.open(root)
  if stored.manifest["rows"] == 0:
    counts = corpus_lib.Problems()
    counts.records = [corpus_lib.Problem(**p) for p in stored.manifest["skipped"]]
    raise corpus_lib.CorpusError(
        f"empty corpus: {corpus.spec!r} yielded no valid image (skipped: {counts.counts()})")
  return stored.as_corpus(corpus.spec)
