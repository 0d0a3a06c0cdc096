r"""Generates ImageNet-T / CIFAR-10-T to an image-folder dataset plus a manifest.

    python -m jaxbench.typographic --src=~/data/imagenet/val --dst=~/data/imagenet_t \
        --kind=imagenet_t --seed=0 [--variant=roz --variant="typo(count=4)"] [--workers=8]

Sources (``--src``):
  * an image folder ``<class>/<image>``; the class folder is an ImageNet wnid
    or an integer index (imagenet_t), or a CIFAR-10 class name or index
    (cifar10_t); example ids are the relative paths;
  * CIFAR-10's binary test batch (``test_batch.bin`` or a folder holding it,
    e.g. ``cifar-10-batches-bin``); ids ``test_%05d`` as TFDS;
  * an ``.npz`` with ``images`` (N, H, W, 3) uint8 and ``labels`` (N,); ids
    ``%05d``.

Output (``--dst``):
  * ``<variant>/<class folder>/<name>.JPEG|.png``: one image folder per
    variant (ImageNet: the source's wnid folders and file names, JPEG quality
    95 as RoZ's cv2.imwrite; CIFAR-10-T: class-name folders, RoZ's 960x720 JPEG
    figures at quality 95 by default, lossless PNG at 32x32 for variant 'on_image');
  * ``manifest.jsonl``: one line per (variant, source image): id, source id,
    file, true label, written label, text, placements, box, ink boxes, source
    mode and size, or ``skipped`` with the reason;
  * ``dataset.json``: kind, seed, variants with their font settings, the
    source's path and digest, counts (written, skipped by reason, converted
    colour modes) and ``complete``. Written first with ``complete: false`` and
    rewritten at the end.

RoZ's own sets (``--roz_record``): RoZ published which class it wrote on each image,
``imgNet_record.pickle`` ({ImageNet val file name: written class index}; images it
skipped are absent) and ``cifar10_record.pickle`` ([(true class, written class)] in
test-set order). :func:`read_roz_record` reads them with an unpickler that builds
only dicts, lists, tuples, strings and ints and refuses any other object (a pickle
can run code on load); with a record the 'other_class' variants write exactly RoZ's
class on exactly RoZ's images (others: skipped 'not_in_roz_record'), so the set's
labels are RoZ's. Positions are drawn as usual (RoZ did not record them).

A second run with the same settings is a no-op; an interrupted run is redone
(generation is deterministic, files are replaced atomically). A ``--dst``
holding a set made with another seed, kind, variant list or source is refused,
as is a non-empty folder that is not a typographic set: a set is never mixed.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

from jaxbench import registry as registry_lib
from jaxbench.shifts import typographic as typo

FORMAT = "jaxbench.typographic/1"
HEADER = "dataset.json"
MANIFEST = "manifest.jsonl"
_IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
_CIFAR_RECORD = 1 + 32 * 32 * 3


# ----------------------------------------------------------------------------
# Sources.


@dataclasses.dataclass(frozen=True)
class Item:
  """One source example: id, true label, class folder, and where to read it."""
  id: str
  label: int
  folder: str
  path: str = ""     # file sources
  index: int = -1    # array sources


class SourceError(typo.TypographicError):
  """A source that cannot be read as the requested kind."""


def _label_of_folder(folder: str, vocab: typo.Vocabulary, src: str) -> int:
  if vocab.wnids and folder in vocab.wnids:
    return vocab.wnids.index(folder)
  if folder in vocab.words:
    return vocab.words.index(folder)
  if folder.isdigit() and int(folder) < vocab.num_classes:
    return int(folder)
  expected = ("an ImageNet wnid (n01440764) or an index 0..999" if vocab.kind == "imagenet_t"
              else f"a CIFAR-10 class name {list(vocab.words)} or an index 0..9")
  raise SourceError(f"{src}: class folder {folder!r} is not {expected}")


def _cifar_bin_path(src: str) -> Optional[str]:
  if os.path.isfile(src) and src.endswith(".bin"):
    return src
  for cand in ("test_batch.bin", os.path.join("cifar-10-batches-bin", "test_batch.bin")):
    p = os.path.join(src, cand)
    if os.path.isfile(p):
      return p
  return None


def list_source(src: str, kind: str) -> list[Item]:
  """Lists a source's examples in a stable (sorted) order.

  Raises:
    SourceError: naming the path and what was expected.
  """
  vocab = typo.vocabulary(kind)
  src = os.path.abspath(os.path.expanduser(src))
  if not os.path.exists(src):
    raise SourceError(f"--src {src} does not exist")
  if src.endswith(".npz"):
    with np.load(src) as d:
      if "images" not in d or "labels" not in d:
        raise SourceError(f"{src}: expected arrays 'images' (N,H,W,3) uint8 and 'labels' (N,), "
                          f"found {sorted(d.keys())}")
      images, labels = d["images"], d["labels"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
      raise SourceError(f"{src}: 'images' must be uint8 (N, H, W, 3) RGB, got "
                        f"{images.dtype} {images.shape}")
    if labels.shape != images.shape[:1]:
      raise SourceError(f"{src}: 'labels' shape {labels.shape}, expected ({images.shape[0]},)")
    return [Item(f"{i:05d}", _check_label(int(l), vocab, src), _folder(vocab, int(l)), index=i)
            for i, l in enumerate(labels)]
  if kind == "cifar10_t" and (path := _cifar_bin_path(src)):
    size = os.path.getsize(path)
    if size % _CIFAR_RECORD:
      raise SourceError(f"{path}: size {size} is not a multiple of {_CIFAR_RECORD} bytes "
                        "(CIFAR-10 binary records: 1 label byte + 3072 pixel bytes)")
    labels = np.fromfile(path, np.uint8).reshape(-1, _CIFAR_RECORD)[:, 0]
    return [Item(f"test_{i:05d}", _check_label(int(l), vocab, path), _folder(vocab, int(l)),
                 path=path, index=i) for i, l in enumerate(labels)]
  if not os.path.isdir(src):
    raise SourceError(f"--src {src}: expected an image folder <class>/<image>, a CIFAR-10 "
                      "test_batch.bin or an .npz with images/labels")
  items = []
  for folder in sorted(os.listdir(src)):
    full = os.path.join(src, folder)
    if not os.path.isdir(full):
      continue
    label = _label_of_folder(folder, vocab, src)
    for name in sorted(os.listdir(full)):
      if name.lower().endswith(_IMAGE_EXTS):
        items.append(Item(f"{folder}/{name}", label, folder, path=os.path.join(full, name)))
  if not items:
    raise SourceError(f"--src {src}: no images found in <class>/<image> folders "
                      f"(extensions {_IMAGE_EXTS})")
  return items


def _check_label(label: int, vocab: typo.Vocabulary, src: str) -> int:
  if not 0 <= label < vocab.num_classes:
    raise SourceError(f"{src}: label {label} outside 0..{vocab.num_classes - 1}")
  return label


def _folder(vocab: typo.Vocabulary, label: int) -> str:
  return vocab.wnids[label] if vocab.wnids else vocab.words[label]


@functools.lru_cache(maxsize=4)
def _array(path: str) -> np.ndarray:
  if path.endswith(".npz"):
    with np.load(path) as d:
      return d["images"]
  recs = np.memmap(path, np.uint8, "r").reshape(-1, _CIFAR_RECORD)
  return recs


def load_item(item: Item, src: str) -> tuple[np.ndarray, str]:
  """Reads one example as uint8 RGB and its original colour mode.

  Raises:
    SourceError: undecodable file (the generator records it as a skip).
  """
  if item.index >= 0 and not item.path:           # npz
    return np.ascontiguousarray(_array(src)[item.index]), "RGB"
  if item.index >= 0:                               # CIFAR binary, CHW planes
    rec = np.asarray(_array(item.path)[item.index, 1:])
    return np.ascontiguousarray(rec.reshape(3, 32, 32).transpose(1, 2, 0)), "RGB"
  with open(item.path, "rb") as f:
    data = f.read()
  try:
    return typo.decode_rgb(data)
  except Exception as e:  # PIL raises several types for broken files
    raise SourceError(f"{item.path}: cannot decode image: {e}") from e


# ----------------------------------------------------------------------------
# Generation.


class _PlainUnpickler(pickle.Unpickler):
  """Builds only the pickle protocol's own containers and scalars; no globals."""

  def find_class(self, module, name):
    raise typo.TypographicError(
        f"{self.path}: refuses to load {module}.{name}: a RoZ record holds only "
        "dicts, lists, tuples, strings and ints")

  def persistent_load(self, pid):
    raise typo.TypographicError(f"{self.path}: refuses persistent id {pid!r}")


def _plain(obj, path: str, where: str = "record"):
  if isinstance(obj, bool) or not isinstance(obj, (dict, list, tuple, str, int)):
    raise typo.TypographicError(f"{path}: {where} is a {type(obj).__name__}; a RoZ record "
                                "holds only dicts, lists, tuples, strings and ints")
  if isinstance(obj, dict):
    for k, v in obj.items():
      _plain(k, path, f"{where} key"), _plain(v, path, f"{where}[{k!r}]")
  elif isinstance(obj, (list, tuple)):
    for i, v in enumerate(obj):
      _plain(v, path, f"{where}[{i}]")


def read_roz_record(path: str, kind: str) -> dict:
  """RoZ's published record as {example id or file name: (true label or None, written)}.

  Args:
    path: ``imgNet_record.pickle`` (kind 'imagenet_t': {file name: written class};
      keys are matched to source file names) or ``cifar10_record.pickle`` (kind
      'cifar10_t': [(true, written)]; keys 'test_%05d' as the CIFAR binary source).
    kind: 'imagenet_t' or 'cifar10_t'.

  Raises:
    TypographicError: the file holds anything but the plain types (no object is
      built: globals are refused before construction), or the wrong structure.
  """
  with open(path, "rb") as f:
    up = _PlainUnpickler(f)
    up.path = path
    try:
      obj = up.load()
    except typo.TypographicError:
      raise
    except Exception as e:  # truncated or not a pickle
      raise typo.TypographicError(f"{path}: not a readable pickle ({e})") from e
  _plain(obj, path)
  k = typo.vocabulary(kind).num_classes
  if kind == "imagenet_t":
    if not isinstance(obj, dict) or not all(
        isinstance(n, str) and isinstance(c, int) and 0 <= c < k for n, c in obj.items()):
      raise typo.TypographicError(f"{path}: expected {{image file name: class index "
                                  f"0..{k - 1}}} (imgNet_record.pickle)")
    return {n: (None, c) for n, c in obj.items()}
  if not isinstance(obj, (list, tuple)) or not all(
      isinstance(t, (list, tuple)) and len(t) == 2 and all(0 <= v < k for v in t)
      for t in obj):
    raise typo.TypographicError(f"{path}: expected [(true class, written class)] with "
                                f"classes 0..{k - 1} (cifar10_record.pickle)")
  return {f"test_{i:05d}": (int(t), int(w)) for i, (t, w) in enumerate(obj)}


@dataclasses.dataclass(frozen=True)
class _Job:
  """Everything one worker needs to write one source example (picklable)."""
  src: str
  dst: str
  kind: str
  seed: int
  variants: tuple[tuple[str, typo.Variant], ...]
  items: tuple[Item, ...]
  fmts: tuple[str, ...]
  jpeg_quality: int
  record: Optional[dict] = None      # read_roz_record's output, or None

  def __call__(self, index: int) -> list[dict]:
    item = self.items[index]
    vocab = typo.vocabulary(self.kind)
    base = {"source_id": item.id, "label": item.label}
    try:
      image, mode = load_item(item, self.src)
    except SourceError as e:
      return [dict(base, id=f"{name}/{item.id}", variant=name, skipped="decode_error",
                   error=str(e)) for name, _ in self.variants]
    lines = []
    entry = None
    if self.record is not None:
      entry = self.record.get(item.id.split("/")[-1] if self.kind == "imagenet_t" else item.id)
      if entry is not None and entry[0] is not None and entry[0] != item.label:
        raise SourceError(f"{item.id}: RoZ's record says true class {entry[0]}, the source "
                          f"{item.label}; not the source RoZ used")
    for (name, variant), fmt in zip(self.variants, self.fmts):
      forced = None
      if self.record is not None and variant.text == "other_class":
        if entry is None:
          lines.append(dict(base, id=f"{name}/{item.id}", variant=name, source_mode=mode,
                            source_size=[int(image.shape[1]), int(image.shape[0])],
                            skipped="not_in_roz_record"))
          continue
        forced = entry[1]
      # Fresh streams per variant: every variant sees the same draws (paired).
      rend = typo.render(image, variant, vocab, item.label,
                         typo.example_rng(self.seed, item.id, "label"),
                         typo.example_rng(self.seed, item.id, "place"), written_label=forced)
      line = dict(base, id=f"{name}/{item.id}", variant=name, source_mode=mode,
                  source_size=[int(image.shape[1]), int(image.shape[0])],
                  **rend.manifest_fields())
      if variant.policy == "large" and not rend.skipped:
        line["font"] = rend.font  # the scale is fitted to each image
      if not rend.skipped:
        stem = os.path.splitext(item.id.split("/")[-1])[0]
        ext = ".png" if fmt == "png" else ".JPEG"
        rel = f"{name}/{item.folder}/{stem}{ext}"
        _write_atomic(os.path.join(self.dst, rel),
                      typo.encode(rend.image, fmt, self.jpeg_quality))
        line["file"] = rel
        line["image_size"] = [int(rend.image.shape[1]), int(rend.image.shape[0])]
      lines.append(line)
    return lines


def _write_atomic(path: str, data: bytes):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


def _write_json(path: str, obj):
  _write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _default_format(kind: str, variant: typo.Variant, image_format: str) -> str:
  if variant.renderer == "roz_matplotlib":
    return "jpeg_matplotlib"
  if image_format != "auto":
    return image_format
  return "jpeg" if kind == "imagenet_t" else "png"


def _source_digest(items: Sequence[Item]) -> str:
  h = hashlib.sha256()
  for it in items:
    h.update(f"{it.id}\t{it.label}\n".encode())
  return h.hexdigest()


def read_header(dst: str) -> Optional[dict]:
  """The dataset.json of a generated set, or None when there is none."""
  path = os.path.join(dst, HEADER)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    try:
      header = json.load(f)
    except json.JSONDecodeError as e:
      raise typo.TypographicError(f"{path} is not valid JSON: {e}") from e
  if header.get("format") != FORMAT:
    raise typo.TypographicError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
  return header


def _settings(header: dict) -> dict:
  keys = ("kind", "seed", "variants", "image_formats", "jpeg_quality", "source_digest",
          "num_source")
  return {k: header.get(k) for k in keys}


def _check_dst(dst: str, header: dict) -> bool:
  """True when ``dst`` already holds this exact complete set; raises when it
  holds anything else."""
  old = read_header(dst)
  if old is None:
    if os.path.isdir(dst) and os.listdir(dst):
      raise typo.TypographicError(
          f"--dst {dst} is not empty and has no {HEADER}: refusing to write a typographic set "
          "into a folder holding other files")
    return False
  if old.get("seed") != header["seed"]:
    raise typo.TypographicError(
        f"--dst {dst} holds a typographic set generated with seed={old.get('seed')}, but "
        f"seed={header['seed']} was asked for; use another --dst or delete it")
  a, b = _settings(old), _settings(header)
  diff = sorted(k for k in a if a[k] != b[k])
  if diff:
    def show(settings, k):
      v = settings[k]
      if k == "variants" and isinstance(v, dict):  # names and specs, not every field
        return {n: d.get("spec") for n, d in v.items()}
      return v
    what = "; ".join(f"{k}: has {show(a, k)!r}, asked {show(b, k)!r}" for k in diff)
    raise typo.TypographicError(
        f"--dst {dst} holds a typographic set with different settings ({what}); "
        "use another --dst")
  return bool(old.get("complete"))


def generate(src: str, dst: str, kind: str, seed: int = 0,
             variants: Sequence[str] = ("roz",), workers: int = 0, max_examples: int = -1,
             image_format: str = "auto", jpeg_quality: int = 95,
             log: Optional[Callable[[str], None]] = print,
             roz_record: Optional[str] = None) -> dict:
  """Generates a typographic set (no-op when ``dst`` already holds it).

  Args:
    src: source path (see the module docstring).
    dst: output folder.
    kind: 'imagenet_t' or 'cifar10_t'.
    seed: generation seed; with the example id it fixes every random choice.
    variants: variant specs (:func:`jaxbench.shifts.typographic.parse_variant`).
    workers: grain worker processes (0 = in this process). The output does not
      depend on it.
    max_examples: use only the first N source examples (sorted order); -1 = all.
    image_format: 'auto' (ImageNet JPEG, CIFAR PNG), 'jpeg' or 'png'.
    jpeg_quality: OpenCV JPEG quality (RoZ: cv2.imwrite default 95).
    log: progress printer or None.
    roz_record: RoZ's imgNet_record.pickle / cifar10_record.pickle: the
      'other_class' variants write RoZ's class on RoZ's images (module docstring).

  Returns:
    the dataset.json header (counts included) plus, when it generated,
    'timing': {'first_s': seconds to the first finished image (worker
    start-up), 'total_s'} (not written to disk).
  """
  log = log or (lambda s: None)
  dst = os.path.abspath(os.path.expanduser(dst))
  src = os.path.abspath(os.path.expanduser(src))
  if not isinstance(seed, int) or isinstance(seed, bool):
    raise typo.TypographicError(f"seed must be an int, got {seed!r}")
  parsed = [typo.parse_variant(v, kind) for v in variants]
  names = [n for n, _ in parsed]
  if len(set(names)) != len(names) or not names:
    raise typo.TypographicError(f"variants {list(variants)}: need at least one, names unique")
  items = list_source(src, kind)
  if max_examples >= 0:
    items = items[:max_examples]
  stems: dict[tuple[str, str], str] = {}
  for it in items:  # output names drop the extension: x.JPEG and x.png would collide
    key = (it.folder, os.path.splitext(it.id.split("/")[-1])[0])
    if key in stems:
      raise SourceError(f"{src}: {stems[key]!r} and {it.id!r} would write the same output "
                        "file (same name, different extension); rename one")
    stems[key] = it.id
  fmts = [_default_format(kind, v, image_format) for _, v in parsed]
  record, record_info = None, None
  if roz_record:
    roz_record = os.path.abspath(os.path.expanduser(roz_record))
    record = read_roz_record(roz_record, kind)
    with open(roz_record, "rb") as f:
      record_info = {"path": roz_record, "sha256": hashlib.sha256(f.read()).hexdigest(),
                     "entries": len(record)}
  header = {
      "format": FORMAT, "kind": kind, "seed": seed, "source": src,
      "source_digest": _source_digest(items), "num_source": len(items),
      "variants": {n: {"spec": registry_lib.canonical(s), **dataclasses.asdict(v)}
                   for (n, v), s in zip(parsed, variants)},
      "image_formats": dict(zip(names, fmts)), "jpeg_quality": jpeg_quality,
      "label_space": "imagenet1k" if kind == "imagenet_t" else "cifar10",
      "complete": False,
  }
  if record_info:
    header["roz_record"] = record_info
  # JSON round trip so tuples compare equal to what a reader loads.
  header = json.loads(json.dumps(header))
  if _check_dst(dst, header):
    log(f"typographic: {dst} already holds this set (seed={seed}); nothing to do")
    return read_header(dst)
  os.makedirs(dst, exist_ok=True)
  _write_json(os.path.join(dst, HEADER), header)
  job = _Job(src, dst, kind, seed, tuple(parsed), tuple(items), tuple(fmts), jpeg_quality,
             record)
  t0 = time.perf_counter()
  lines, first = _run(job, len(items), workers, log)
  lines.sort(key=lambda l: (names.index(l["variant"]), l["source_id"]))
  _write_atomic(os.path.join(dst, MANIFEST),
                "".join(json.dumps(l, sort_keys=True) + "\n" for l in lines).encode())
  header.update(complete=True, counts=_counts(lines, names),
                fonts={n: _font_facts(v) for n, v in parsed})
  _write_json(os.path.join(dst, HEADER), header)
  c = header["counts"]
  log(f"typographic: wrote {c['written']} images to {dst} "
      f"({len(items)} sources x {len(names)} variants), skipped {c['skipped']}")
  return dict(header, timing={"first_s": first - t0, "total_s": time.perf_counter() - t0})


def _run(job: _Job, n: int, workers: int, log) -> tuple[list[dict], float]:
  """Runs ``job`` over 0..n-1, in process or on grain workers, with progress.

  Returns:
    (manifest lines, perf_counter time of the first finished example).
  """
  t0, last, done, skipped, out = time.time(), 0.0, 0, 0, []
  first = time.perf_counter()
  if workers > 0:
    import grain  # pylint: disable=g-import-not-at-top
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags in workers
      flags.FLAGS.mark_as_parsed()
    ds = grain.MapDataset.range(n).map(job).to_iter_dataset()
    it = iter(ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers)))
  else:
    it = (job(i) for i in range(n))
  for lines in it:
    if not done:
      first = time.perf_counter()
    out.extend(lines)
    done += 1
    skipped += sum("skipped" in l for l in lines)
    now = time.time()
    if now - last > 5 or done == n:
      last = now
      log(f"typographic: {done}/{n} source images ({done / max(now - t0, 1e-9):.1f}/s), "
          f"{skipped} variant renders skipped")
  return out, first


def _counts(lines: list[dict], names: list[str]) -> dict:
  per = {n: {"written": 0, "skipped": {}} for n in names}
  modes: dict[str, int] = {}
  for l in lines:
    p = per[l["variant"]]
    if "skipped" in l:
      p["skipped"][l["skipped"]] = p["skipped"].get(l["skipped"], 0) + 1
    else:
      p["written"] += 1
    if l["variant"] == names[0] and l.get("source_mode", "RGB") != "RGB":
      modes[l["source_mode"]] = modes.get(l["source_mode"], 0) + 1
  return {"written": sum(p["written"] for p in per.values()),
          "skipped": sum(sum(p["skipped"].values()) for p in per.values()),
          "per_variant": per, "converted_to_rgb": modes}


def _font_facts(v: typo.Variant) -> dict:
  if v.renderer == "roz_matplotlib":
    return {"renderer": "matplotlib", "family": "Times New Roman", "size": 20, "dpi": 150,
            "resolved": typo.roz_matplotlib_font()}
  return {"renderer": typo.renderer_name(v.font), "face": v.font,
          "scale": v.scale, "thickness": v.thickness, "measure_thickness": v.measure_thickness,
          "color": list(v.color), "outline": v.outline, "outline_color": list(v.outline_color),
          "supersample": v.supersample, "line_type": "LINE_8"}


# ----------------------------------------------------------------------------
# Command line.


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise SystemExit(f"unexpected arguments: {argv[1:]}")
  try:
    generate(f.src, f.dst, f.kind, seed=f.seed, variants=f.variant or ["roz"],
             workers=f.workers, max_examples=f.max_examples, image_format=f.image_format,
             jpeg_quality=f.jpeg_quality, roz_record=f.roz_record)
  except typo.TypographicError as e:
    print(f"error: {e}", file=sys.stderr)
    raise SystemExit(1) from e


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("src", None, "source: image folder, CIFAR-10 test_batch.bin or .npz")
  flags.DEFINE_string("dst", None, "output folder")
  flags.DEFINE_enum("kind", None, list(typo.KINDS), "which set to generate")
  flags.DEFINE_integer("seed", 0, "generation seed")
  flags.DEFINE_multi_string("variant", [], "variant spec, repeatable (default 'roz'): a "
                            f"preset {sorted(typo.PRESETS)} or typo(field=value, ...)")
  flags.DEFINE_integer("workers", 0, "grain worker processes (0 = in process)")
  flags.DEFINE_integer("max_examples", -1, "first N source examples only (-1 = all)")
  flags.DEFINE_enum("image_format", "auto", ["auto", "jpeg", "png"], "output image format")
  flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality (RoZ: cv2.imwrite default 95)")
  flags.DEFINE_string("roz_record", None, "RoZ's imgNet_record.pickle / cifar10_record.pickle:"
                      " write RoZ's class on RoZ's images")
  flags.mark_flags_as_required(["src", "dst", "kind"])


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
