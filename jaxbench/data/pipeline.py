"""The grain input pipeline: records -> decoded, resized, cropped uint8 batches.

For one pass over an :class:`~jaxbench.data.evalset.EvalSet` on this process:

1. :func:`plan` splits example indices across processes (example ``i`` goes to
   process ``i % process_count``) and pads every process to the same number of
   batches with index -1, so all hosts run the same number of steps and every
   example is counted exactly once.
2. :class:`LoadExample` (a grain ``MapTransform``) reads a record, decodes it with
   :func:`jaxbench.data.decode.decode` (every PIL mode to 8-bit RGB: CMYK,
   grayscale, 16-bit, RGBA, palette, PNG-named-JPEG), applies the set's ``pre_transform`` and any host-side shift, then
   resizes the short side and center-crops as the model's :class:`Preprocess`
   says. A file that cannot be decoded yields a zero image with ``mask=False``
   and ``bad=True``: the runner lists it in the results row, the run goes on.
3. ``grain.MapDataset`` batches, threads and prefetches; batches travel to the
   devices as uint8.

With ``canvas`` > 0 (``config.device_resize``) :class:`LoadExample` decodes only: the
image goes top-left onto a ``canvas x canvas`` uint8 array with its resampling table
(:mod:`jaxbench.data.resample`), and the resize + crop run on the device, giving the
same pixels; images the device cannot reproduce are resized here and passed through.

Each element carries ``index`` (position in the source, -1 for padding) and
``uid`` (a uint32 hash of the example id) from which all randomness derives.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import zlib
from typing import Callable, Iterator, Optional

import grain
import numpy as np
from PIL import Image

from jaxbench.data import decode as decode_lib
from jaxbench.data import resample
from jaxbench.data.evalset import EvalSet
from jaxbench.models.api import Preprocess

_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
            "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def example_uid(example_id: str) -> int:
  """A stable uint32 for an example id (seeds its randomness)."""
  return zlib.crc32(example_id.encode("utf-8")) & 0xFFFFFFFF


def decode(image_bytes: bytes, name: Optional[str] = None,
           draft: Optional[int] = None) -> Image.Image:
  """Decodes any PIL-readable image to RGB (:func:`jaxbench.data.decode.decode`).

  Raises:
    DecodeError: corrupt, truncated or empty data, or no defined 8-bit scale.
  """
  return decode_lib.decode(image_bytes, name, draft)


def resize_crop(img: Image.Image, pp: Preprocess) -> np.ndarray:
  """torchvision's Resize(short side) + CenterCrop, with PIL filters.

  ``pp.crop == 'squash'`` (transformers' ViT/SigLIP processors, timm's squash
  mode) resizes both sides to ``pp.resize`` (aspect ratio not kept), then
  center-crops to ``pp.size``.

  Returns:
    uint8 (size, size, 3).
  """
  if pp.crop == "squash":
    if img.size != (pp.resize, pp.resize):
      img = img.resize((pp.resize, pp.resize), _FILTERS[pp.interpolation])
    off = (pp.resize - pp.size) // 2
    return np.asarray(img.crop((off, off, off + pp.size, off + pp.size)), dtype=np.uint8)
  w, h = img.size
  short, long_ = (w, h) if w <= h else (h, w)
  new_short = pp.resize
  new_long = int(new_short * long_ / short)
  new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
  if (new_w, new_h) != (w, h):
    img = img.resize((new_w, new_h), _FILTERS[pp.interpolation])
  s = pp.size
  if new_w < s or new_h < s:   # torchvision pads small images with zeros
    canvas = Image.new("RGB", (max(s, new_w), max(s, new_h)))
    canvas.paste(img, ((max(s, new_w) - new_w) // 2, (max(s, new_h) - new_h) // 2))
    img, new_w, new_h = canvas, max(s, new_w), max(s, new_h)
  top = int(round((new_h - s) / 2.0))
  left = int(round((new_w - s) / 2.0))
  return np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.uint8)


def record_image(record: dict, pre_transform: Optional[Callable] = None,
                 draft: Optional[int] = None) -> Image.Image:
  """A record's image as RGB PIL, after the set's ``pre_transform`` (raises if undecodable).

  ``draft``: opt-in reduced-DCT JPEG decoding (:func:`jaxbench.data.decode.open_image`).
  """
  if "image_bytes" in record:
    img = decode(record["image_bytes"], str(record["id"]) if "id" in record else None, draft)
  else:
    arr = np.asarray(record["image"])
    if arr.ndim == 2:
      arr = np.repeat(arr[..., None], 3, axis=-1)
    img = Image.fromarray(arr.astype(np.uint8)).convert("RGB")
  if pre_transform is not None:
    img = pre_transform(img)
  return img


@dataclasses.dataclass(frozen=True)
class Plan:
  """Which source indices this process reads, batch by batch.

  Attributes:
    indices: int64 (num_batches * local_batch,), -1 where padded.
    num_batches: steps every process runs.
    local_batch: examples per step on this process.
  """
  indices: np.ndarray
  num_batches: int
  local_batch: int


def plan(todo: np.ndarray, global_batch: int, process_index: int = 0,
         process_count: int = 1) -> Plan:
  """Splits ``todo`` (source indices still to evaluate) across processes.

  Args:
    todo: int64 indices, in evaluation order.
    global_batch: examples per step over all processes; a multiple of
      ``process_count``.
  """
  if global_batch % process_count:
    raise ValueError(f"batch_size {global_batch} is not a multiple of the process count "
                     f"{process_count}")
  local_batch = global_batch // process_count
  mine = np.asarray(todo, np.int64)[process_index::process_count]
  per_process = -(-len(todo) // process_count)
  num_batches = -(-per_process // local_batch) if len(todo) else 0
  padded = np.full(num_batches * local_batch, -1, np.int64)
  padded[:len(mine)] = mine
  return Plan(padded, num_batches, local_batch)


class LoadExample(grain.transforms.Map):
  """index -> {'image' uint8 (S,S,3), 'label', 'index', 'uid', 'mask', 'bad'[, 'labels']}.

  With ``canvas`` > 0 (decode-only mode) 'image' is uint8 (canvas, canvas, 3) and the
  element also holds the resampling table (``resample.TABLE_KEYS``): the decoded image
  top-left with its table, or, where the device cannot give PIL's pixels (larger than
  the canvas, padded by the crop, a host-side shift), the host-resized (S,S,3) pixels
  with an identity table.
  """

  def __init__(self, evalset: EvalSet, preprocess: Preprocess, *, seed: int = 0,
               host_shift: Optional[Callable] = None, draft: Optional[int] = None,
               canvas: int = 0):
    self.evalset = evalset
    self.draft = draft
    self.pp = preprocess
    self.seed = seed
    self.host_shift = host_shift
    self.stage = getattr(host_shift, "stage", "model_input") if host_shift else None
    self.canvas = int(canvas)
    self.taps = resample.max_taps(self.canvas, preprocess) if self.canvas else 0

  def __getstate__(self):
    # Worker processes (``num_processes``) get the records and the host-side rules,
    # not the set's device-side callables (``project`` may close over jax arrays).
    state = dict(self.__dict__)
    state["evalset"] = dataclasses.replace(self.evalset, project=None,
                                           sequence_metric_fn=None)
    return state

  def _empty(self, index: int, bad: bool) -> dict:
    s = self.pp.size
    out = {"image": np.zeros((s, s, 3), np.uint8), "label": np.int32(-1),
           "index": np.int64(index), "uid": np.uint32(0), "mask": np.bool_(False),
           "bad": np.bool_(bad)}
    if self.canvas:   # zeros through an identity table: the same zero image
      out.update(image=np.zeros((self.canvas, self.canvas, 3), np.uint8),
                 **resample.identity_table(s, self.taps))
    if self.evalset.multilabel:
      out["labels"] = np.zeros(self.evalset.num_classes, np.bool_)
    return out

  def load_for_device(self, record: dict, rng: Optional[np.random.Generator]) -> dict:
    """Decode-only mode: {'image': uint8 (canvas, canvas, 3), table keys}."""
    if self.host_shift is None:
      img = record_image(record, self.evalset.pre_transform, self.draft)
      table = resample.image_table(img.size[0], img.size[1], self.pp, self.canvas,
                                   self.taps)
      if table is not None:
        return {"image": resample.on_canvas(np.asarray(img, np.uint8), self.canvas), **table}
      pixels = resize_crop(img, self.pp)   # the device cannot: PIL here, passed through
    else:
      pixels = self.load_image(record, rng)
    return {"image": resample.on_canvas(pixels, self.canvas),
            **resample.identity_table(self.pp.size, self.taps)}

  def load_image(self, record: dict, rng: Optional[np.random.Generator]) -> np.ndarray:
    img = record_image(record, self.evalset.pre_transform, self.draft)
    if self.stage == "raw":
      img = Image.fromarray(np.asarray(self.host_shift(np.asarray(img), rng), np.uint8))
    out = resize_crop(img, self.pp)
    if self.stage == "model_input":
      out = np.asarray(self.host_shift(out, rng), np.uint8)
    return out

  def map(self, index):
    index = int(index)
    if index < 0:
      return self._empty(index, bad=False)
    record = self.evalset.source[index]
    uid = example_uid(str(record["id"]))
    rng = np.random.default_rng([self.seed, uid]) if self.host_shift else None
    try:
      pixels = self.load_for_device(record, rng) if self.canvas else \
          {"image": self.load_image(record, rng)}
    except Exception:  # noqa: BLE001 -- any undecodable file is skipped and recorded
      return self._empty(index, bad=True)
    out = {**pixels, "label": np.int32(record.get("label", -1)),
           "index": np.int64(index), "uid": np.uint32(uid), "mask": np.bool_(True),
           "bad": np.bool_(False)}
    if self.evalset.multilabel:
      out["labels"] = np.asarray(record["labels"], np.bool_)
    return out


def describe_error(evalset: EvalSet, index: int) -> str:
  """Why example ``index`` could not be decoded (re-tried on the host, for the row)."""
  record = evalset.source[index]
  if record.get("error"):   # the source could not read it (names the file)
    return str(record["error"])
  try:
    if "image_bytes" in record:
      decode(record["image_bytes"], str(record.get("id", index)))
  except decode_lib.DecodeError as e:
    return str(e)   # one line naming the decoder's reason, no object reprs
  except Exception as e:  # noqa: BLE001 -- a pre_transform or shift failed
    return decode_lib.reason(e)
  return "unknown"


def batches(evalset: EvalSet, preprocess: Preprocess, the_plan: Plan, *,
            start_batch: int = 0, seed: int = 0, host_shift=None,
            num_threads: int = 8, prefetch: int = 4, num_processes: int = 0,
            draft: Optional[int] = None, canvas: int = 0):
  """Iterator over local batches (dicts of NumPy arrays) from ``start_batch`` on.

  Args:
    num_threads: reader threads (per process when ``num_processes`` > 0).
    num_processes: 0 decodes in this process's threads; N > 0 decodes in N worker
      processes (grain's ``mp_prefetch``: spawned, so each imports jaxbench once;
      batch b is made by worker b % N and the order is kept). Outputs are the same.
    draft: opt-in reduced-DCT JPEG decoding to >= ``draft`` pixels a side
      (``config.jpeg_draft``); None (default) decodes at full size.
    canvas: > 0: decode-only batches for the device resize (``config.device_resize``):
      'image' uint8 (B, canvas, canvas, 3) plus the tables; finish them with
      :func:`jaxbench.data.resample.finish`.
  """
  ds = grain.MapDataset.source(the_plan.indices).map(
      LoadExample(evalset, preprocess, seed=seed, host_shift=host_shift, draft=draft,
                  canvas=canvas))
  batch = the_plan.local_batch
  if num_processes > 0:
    from absl import flags
    if not flags.FLAGS.is_parsed():
      # grain's worker start-up reads its absl flags; as a library (tests,
      # notebooks) nobody parsed them: take their defaults.
      flags.FLAGS.mark_as_parsed()
    # Whole batches travel from the workers (one pickle each, not one per image);
    # each worker's threads decode their own batches, one batch in flight per
    # thread (grain counts the prefetch buffer in elements: here batches).
    ds = ds.batch(batch, drop_remainder=False).slice(slice(start_batch, None))
    read = grain.ReadOptions(num_threads=max(1, num_threads),
                             prefetch_buffer_size=max(1, num_threads))
    it = ds.to_iter_dataset(read).mp_prefetch(grain.MultiprocessingOptions(
        num_workers=int(num_processes), per_worker_buffer_size=1))
    return iter(it)
  # In-process: grain's elements are whole batches (per-image elements measured ~10x
  # slower on a 16-core host: grain's per-element overhead), and each batch's
  # images are spread over one pool of ``num_threads`` decoding threads, so the
  # first batch arrives after batch/threads decodes, not a whole batch's worth
  # (a thread per batch made a 512-image first batch wait ~7 s on a GPU host).
  # At most ``max(prefetch, in_flight)`` batches are read ahead of the consumer
  # (grain counts its buffer in elements, i.e. batches): a slow model never
  # makes the readers hold the whole set in memory.
  in_flight = max(2, -(-max(1, num_threads) // max(1, batch)))
  batched = grain.MapDataset.range(start_batch, the_plan.num_batches).map(
      DecodeBatch(LoadExample(evalset, preprocess, seed=seed, host_shift=host_shift,
                              draft=draft, canvas=canvas), the_plan.indices, batch,
                  num_threads))
  read = grain.ReadOptions(num_threads=in_flight,
                           prefetch_buffer_size=max(prefetch, in_flight))
  return iter(batched.to_iter_dataset(read))


class DecodeBatch(grain.transforms.Map):
  """batch number -> the batch's examples (``LoadExample``) stacked, decoded by a
  shared thread pool (first come, first served: earlier batches finish first).

  Args:
    load: the per-example transform.
    indices: the plan's padded source indices.
    batch: examples per batch.
    num_threads: decoding threads (PIL releases the GIL while it decodes and
      resizes).
  """

  def __init__(self, load: LoadExample, indices: np.ndarray, batch: int, num_threads: int):
    from concurrent import futures
    self.load, self.indices, self.batch = load, indices, batch
    # Threads end when the pool is garbage collected with the pass's iterator.
    self.pool = futures.ThreadPoolExecutor(max(1, num_threads),
                                           thread_name_prefix="jaxbench-decode")

  def map(self, b):
    b = int(b)
    items = list(self.pool.map(self.load.map, self.indices[b * self.batch:(b + 1) * self.batch]))
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def prefetched(items: Iterator, depth: int = 2, fn: Optional[Callable] = None) -> Iterator:
  """``fn(item)`` for each item of ``items``, computed ``depth`` ahead in a daemon thread.

  Used to read cached batches and to start host-to-device copies of the next
  batches while the current step runs. Errors are re-raised in the consumer.
  """
  q: queue.Queue = queue.Queue(maxsize=max(1, depth))
  done = object()

  def work():
    try:
      for item in items:
        q.put((fn(item) if fn is not None else item, None))
    except BaseException as e:  # noqa: BLE001 -- handed to the consumer
      q.put((None, e))
    q.put((done, None))

  threading.Thread(target=work, daemon=True, name="jaxbench-prefetch").start()
  while True:
    item, error = q.get()
    if error is not None:
      raise error
    if item is done:
      return
    yield item
