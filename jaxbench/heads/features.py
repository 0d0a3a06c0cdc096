"""Frozen-backbone image features: which features, computed once, stored, resumable.

A probe is only meaningful on the features it was trained on, so every feature
set carries an *identity*: the backbone spec, its preprocessing string, which
features ('embedding': a zero-shot model's image embedding, as CLIP's
linear-probe code takes ``encode_image``; 'penultimate': a supervised model's
pooled features before its classifier) and whether they are L2-normalised.
:func:`check_identity` refuses a mismatch, naming both sides.

:func:`compute` encodes a labelled source in chunks of ``shard_size`` examples,
each written to its own ``.npz`` as soon as it is done (batches sharded over the
mesh's ``data`` axis), so an interrupted run resumes at the first missing chunk
and a regularisation sweep reads the stored features instead of re-encoding.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models.api import Model, l2_normalize

FORMAT = 1


class FeatureMismatch(ValueError):
  """Features (or a backbone) other than the ones a head was trained on."""


def identity(model: Model, *, normalize: bool = False) -> dict:
  """What a feature vector of ``model`` is: recorded with features and heads."""
  return {"model": model.name, "preprocess": model.preprocess.spec(),
          "features": "embedding" if model.is_zeroshot else "penultimate",
          "normalize": bool(normalize), "precision": model.precision}


def describe(ident: dict) -> str:
  return (f"{ident.get('features')} features of {ident.get('model')!r} "
          f"(preprocess {ident.get('preprocess')}, normalize={ident.get('normalize')}, "
          f"precision {ident.get('precision')})")


def check_identity(expected: dict, got: dict, what: str = "features") -> None:
  """Raises FeatureMismatch unless ``got`` names the same features as ``expected``."""
  keys = ("model", "preprocess", "features", "normalize")
  diff = [k for k in keys if expected.get(k) != got.get(k)]
  if diff:
    raise FeatureMismatch(
        f"{what}: the head was trained on {describe(expected)} but was given "
        f"{describe(got)} (differs in {', '.join(diff)})")


def feature_fn(model: Model, *, normalize: bool = False) -> Callable:
  """``(net_params, x_normalised (N, H, W, 3)) -> float32 (N, D)`` features of ``model``.

  Zero-shot models: the image embedding (``net_image``). Supervised models: the
  same network built with ``num_classes=0`` (its pooled features), reading the
  same parameters (the classifier's are simply unused).

  Raises:
    ValueError: a supervised architecture without a ``cfg.num_classes`` switch.
  """
  if model.is_zeroshot:
    base = model.net_image
  else:
    arch = model.arch
    cfg = getattr(arch, "cfg", None)
    if arch is None or not dataclasses.is_dataclass(cfg) or not hasattr(cfg, "num_classes"):
      raise ValueError(f"model {model.name!r}: cannot take penultimate features from its "
                       f"architecture ({type(arch).__name__}); probes need a zero-shot model "
                       "or a zoo network with a cfg.num_classes switch")
    trunk = arch.clone(cfg=dataclasses.replace(cfg, num_classes=0))

    def base(p, x):
      return trunk.apply({"params": p}, x)

  dtype = model._compute_dtype()

  def fn(p, x):
    z = base(p, x.astype(dtype)).astype(jnp.float32)
    return l2_normalize(z) if normalize else z
  return fn


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSet:
  """Stored features of a labelled source.

  Attributes:
    features: float32 (N, D); labels: int32 (N,); ids: N example ids (str).
    identity: see :func:`identity`.
    source: the dataset spec/name they were computed from.
  """
  features: np.ndarray
  labels: np.ndarray
  ids: tuple
  identity: dict
  source: str = ""


def ids_hash(ids) -> str:
  """sha256 of the example ids in order (what a head records about its data)."""
  h = hashlib.sha256()
  for i in ids:
    h.update(str(i).encode())
    h.update(b"\0")
  return h.hexdigest()


def cache_dir(root: str, ident: dict, source_name: str, n: int, shard_size: int) -> str:
  """``root/features-<hash>``: one directory per (features, source, size, chunking)."""
  key = hashlib.sha256(json.dumps([ident, source_name, n, int(shard_size)],
                                  sort_keys=True).encode())
  return os.path.join(root, f"features-{key.hexdigest()[:16]}")


@functools.partial(jax.jit, static_argnames=("fn",))
def _encode(fn, net, images, mean, std):
  x = (images.astype(jnp.float32) / 255.0 - mean) / std
  return fn(net, x)


def encode_source(model: Model, source, indices: np.ndarray, encode: Callable, *,
                  name: str = "train", batch_size: int = 128, mesh=None, num_threads: int = 8,
                  num_processes: int = 0, canvas: int = 0,
                  what: str = "image") -> tuple[np.ndarray, np.ndarray]:
  """Encodes the records ``indices`` of ``source``: the one image-encoding loop over a
  dataset (frozen backbones here, CLIP-Auto's training features in
  :mod:`jaxbench.zeroshot.learned.clip_auto`).

  Args:
    model: its preprocessing (resize, crop) decodes the images.
    source: random-access labelled records ('id', 'label', image bytes).
    indices: int (N,) records to encode; this process reads its share of them.
    encode: ``uint8 (B, S, S, 3) -> (B, D)`` on device (jitted by the caller); with a
      mesh, batches come sharded over its 'data' axis.
    name: the source's name (in error messages).
    batch_size: global batch, a multiple of the mesh's data size.
    mesh: ('data', 'model') mesh, or None for one device.
    num_threads, num_processes: decoding threads and worker processes
      (:func:`jaxbench.data.pipeline.batches`; ``config.num_workers``/``decode_processes``).
    canvas: > 0: the host only decodes and PIL's resize + crop runs on the device
      (``config.device_resize``, see :func:`input_settings`); same pixels.
    what: what a record is called in the error message ('image', 'training image').

  Returns:
    (features (N, D) as ``encode`` returns them, labels int32 (N,)) in ``indices`` order.

  Raises:
    ValueError: a record that cannot be decoded (named by id).
  """
  from jaxbench import parallel
  from jaxbench.data import evalset, pipeline, resample
  es = evalset.EvalSet(name=name, source=source, num_classes=0)
  the_plan = pipeline.plan(np.asarray(indices), batch_size, jax.process_index(),
                           jax.process_count())
  keep = ("image", "index", "label") + resample.TABLE_KEYS    # tables: canvas > 0
  feats, labels = {}, {}
  for batch in pipeline.batches(es, model.preprocess, the_plan, num_threads=num_threads,
                                num_processes=num_processes, canvas=canvas):
    if batch["bad"].any():
      i = int(batch["index"][np.argmax(batch["bad"])])
      raise ValueError(f"{what} {source[i].get('id')!r} ({name}) cannot be decoded: "
                       f"{pipeline.describe_error(es, i)}")
    local = {k: batch[k] for k in keep if k in batch}
    if mesh is not None:
      g = resample.finish(parallel.to_global(local, mesh))
      z = encode(g["image"])
      z, idx, lab = parallel.to_host((z, g["index"], g["label"]))
    else:
      z = np.asarray(encode(resample.finish(local)["image"]))
      idx, lab = local["index"], local["label"]
    for zi, ii, li in zip(np.asarray(z), np.asarray(idx), np.asarray(lab)):
      if ii >= 0:
        feats[int(ii)], labels[int(ii)] = zi, int(li)
  return (np.stack([feats[int(i)] for i in indices]),
          np.asarray([labels[int(i)] for i in indices], np.int32))


def input_settings(config, model: Model) -> dict:
  """The run's decoding settings for :func:`encode_source`/:func:`compute`: threads and
  worker processes (``config.num_workers``, ``decode_processes``) and the device resize
  (``config.device_resize``, checked as the evaluation passes check it). Features do not
  depend on them (same pixels).

  Raises:
    ValueError: ``config.device_resize`` is not 0 or an integer >= the crop size, or the
      model's interpolation has no exact device form.
    RuntimeError: the installed Pillow resamples in an order the device does not know.
  """
  from jaxbench.data import resample
  canvas = resample.check_canvas(config.get("device_resize", 0), model.preprocess)
  if canvas:
    resample.pillow_order()          # refuses a Pillow whose resampling it does not know
  return {"num_threads": int(config.get("num_workers", 8)),
          "num_processes": int(config.get("decode_processes", 0)), "canvas": canvas}


def compute(model: Model, source, *, out_dir: str, name: str = "train", batch_size: int = 128,
            mesh=None, normalize: bool = False, shard_size: int = 4096, num_threads: int = 8,
            num_processes: int = 0, canvas: int = 0, print_fn=print) -> FeatureSet:
  """Encodes every record of ``source`` once; stores and resumes by chunk.

  Args:
    model: the frozen backbone (its preprocessing applies).
    source: random-access labelled records ('id', 'label', image bytes).
    out_dir: directory for ``meta.json`` and ``shard_XXXXX.npz`` (created).
    name: the source's name (recorded; part of error messages).
    batch_size: global batch, a multiple of the mesh's data size.
    mesh: ('data', 'model') mesh; batches are sharded over 'data'.
    normalize: L2-normalise the features.
    shard_size: examples per stored chunk (the resume granularity).
    num_threads, num_processes, canvas: how images are decoded (:func:`encode_source`).

  Returns:
    :class:`FeatureSet` in source order.

  Raises:
    FeatureMismatch: ``out_dir`` holds features of another model/preprocessing.
    ValueError: a record that cannot be decoded (named by id).
  """
  from jaxbench import atomic, parallel
  ident = identity(model, normalize=normalize)
  n = len(source)
  meta_path = os.path.join(out_dir, "meta.json")
  meta = {"format": FORMAT, "identity": ident, "source": name, "n": n,
          "shard_size": int(shard_size)}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      old = json.load(f)
    check_identity(old["identity"], ident, f"stored features in {out_dir}")
    if old.get("n") != n or old.get("source") != name or old.get("shard_size") != shard_size:
      raise ValueError(f"{meta_path} holds features of {old.get('source')!r} "
                       f"(n={old.get('n')}, shard_size={old.get('shard_size')}), not of "
                       f"{name!r} (n={n}, shard_size={shard_size}): use another directory")
  elif parallel.is_writer():
    os.makedirs(out_dir, exist_ok=True)
    atomic.atomic_write_json(meta_path, meta)
  fn = feature_fn(model, normalize=normalize)
  mean = jnp.asarray(model.preprocess.mean, jnp.float32)
  std = jnp.asarray(model.preprocess.std, jnp.float32)
  net = model.params["net"]
  chunks = [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]
  for c, (lo, hi) in enumerate(chunks):
    path = os.path.join(out_dir, f"shard_{c:05d}.npz")
    if os.path.exists(path):
      continue
    feats, labels = encode_source(model, source, np.arange(lo, hi),
                                  lambda x: _encode(fn, net, x, mean, std), name=name,
                                  batch_size=batch_size, mesh=mesh, num_threads=num_threads,
                                  num_processes=num_processes, canvas=canvas)
    if parallel.is_writer():
      atomic.atomic_savez(path, features=feats.astype(np.float32), labels=labels,
                          ids=np.asarray([_example_id(source, i) for i in range(lo, hi)],
                                         dtype=str))
    parallel.sync(f"features-{out_dir}-{c}")
    print_fn(f"features: {name} {hi}/{n} -> {path}")
  return load(out_dir)


def load_images(model: Model, source, *, name: str = "train", batch_size: int = 128,
                num_threads: int = 8) -> tuple[np.ndarray, np.ndarray, tuple]:
  """(uint8 (N, S, S, 3) preprocessed images, int32 labels, ids) of a whole source, in
  host memory: for training that must run the backbone every step (train-mode
  BatchNorm). CIFAR-10's 50,000 images at 224 px take 7.5 GB.

  Raises:
    ValueError: a record that cannot be decoded (named by id).
  """
  from jaxbench.data import evalset, pipeline
  n = len(source)
  es = evalset.EvalSet(name=name, source=source, num_classes=0)
  s = model.preprocess.size
  images = np.zeros((n, s, s, 3), np.uint8)
  labels = np.zeros(n, np.int32)
  for batch in pipeline.batches(es, model.preprocess, pipeline.plan(np.arange(n), batch_size),
                                num_threads=num_threads):
    if batch["bad"].any():
      i = int(batch["index"][np.argmax(batch["bad"])])
      raise ValueError(f"image {source[i].get('id')!r} ({name}) cannot be decoded: "
                       f"{pipeline.describe_error(es, i)}")
    ok = batch["index"] >= 0
    images[batch["index"][ok]] = batch["image"][ok]
    labels[batch["index"][ok]] = batch["label"][ok]
  return images, labels, tuple(_example_id(source, i) for i in range(n))


def _example_id(source, index: int) -> str:
  if hasattr(source, "example_id"):
    return str(source.example_id(index))
  return str(source[index]["id"])


def load(out_dir: str) -> FeatureSet:
  """Reads a complete feature directory written by :func:`compute`.

  Raises:
    FileNotFoundError: ``meta.json`` or a chunk is missing (named).
  """
  meta_path = os.path.join(out_dir, "meta.json")
  if not os.path.exists(meta_path):
    raise FileNotFoundError(f"{meta_path}: no stored features here")
  with open(meta_path) as f:
    meta = json.load(f)
  n, size = int(meta["n"]), int(meta["shard_size"])
  parts = []
  for c in range((n + size - 1) // size):
    path = os.path.join(out_dir, f"shard_{c:05d}.npz")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path}: chunk {c} of {meta['source']!r} features is missing "
                              "(run features.compute again to finish it)")
    with np.load(path) as z:
      parts.append((z["features"], z["labels"], z["ids"]))
  feats = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 0), np.float32)
  labels = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
  ids = tuple(str(i) for p in parts for i in p[2])
  return FeatureSet(feats, labels, ids, meta["identity"], meta["source"])
