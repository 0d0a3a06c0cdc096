"""Generates ImageNet-T / CIFAR-10-T to an image-folder dataset plus a manifest.

:func:`generate` (``python -m jaxbench.typographic``, or a set spec with ``src``)
reads a source (:mod:`.source`), writes every variant of every example
(:func:`~jaxbench.typographic.render.render`) and records what it did.

Output (``dst``):
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

With RoZ's record (``roz_record``, :mod:`.roz_record`) the 'other_class'
variants write exactly RoZ's class on exactly RoZ's images (others: skipped
'not_in_roz_record'), so the set's labels are RoZ's. Positions are drawn as
usual (RoZ did not record them).

A second run with the same settings is a no-op; an interrupted run is redone
(generation is deterministic, files are replaced atomically). A ``dst``
holding a set made with another seed, kind, variant list or source is refused,
as is a non-empty folder that is not a typographic set: a set is never mixed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Callable, Optional, Sequence

from jaxbench import registry as registry_lib
from jaxbench import store
from jaxbench.typographic.codec import encode
from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.render import render, roz_matplotlib_font
from jaxbench.typographic.hershey import renderer_name
from jaxbench.typographic.roz_record import read_roz_record
from jaxbench.typographic.source import Item, SourceError, list_source, load_item
from jaxbench.typographic.text import example_rng
from jaxbench.typographic.variants import Variant, parse_variant
from jaxbench.typographic.vocabulary import vocabulary

FORMAT = "jaxbench.typographic/1"
HEADER = "dataset.json"
MANIFEST = "manifest.jsonl"


@dataclasses.dataclass(frozen=True)
class _Job:
  """Everything one worker needs to write one source example (picklable)."""
  src: str
  dst: str
  kind: str
  seed: int
  variants: tuple[tuple[str, Variant], ...]
  items: tuple[Item, ...]
  fmts: tuple[str, ...]
  jpeg_quality: int
  record: Optional[dict] = None      # read_roz_record's output, or None

  def __call__(self, index: int) -> list[dict]:
    item = self.items[index]
    vocab = vocabulary(self.kind)
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
      rend = render(image, variant, vocab, item.label,
                         example_rng(self.seed, item.id, "label"),
                         example_rng(self.seed, item.id, "place"), written_label=forced)
      line = dict(base, id=f"{name}/{item.id}", variant=name, source_mode=mode,
                  source_size=[int(image.shape[1]), int(image.shape[0])],
                  **rend.manifest_fields())
      if variant.policy == "large" and not rend.skipped:
        line["font"] = rend.font  # the scale is fitted to each image
      if not rend.skipped:
        stem = os.path.splitext(item.id.split("/")[-1])[0]
        ext = ".png" if fmt == "png" else ".JPEG"
        rel = f"{name}/{item.folder}/{stem}{ext}"
        store.atomic_write_bytes(os.path.join(self.dst, rel),
                                 encode(rend.image, fmt, self.jpeg_quality))
        line["file"] = rel
        line["image_size"] = [int(rend.image.shape[1]), int(rend.image.shape[0])]
      lines.append(line)
    return lines


def _write_json(path: str, obj):
  store.atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _default_format(kind: str, variant: Variant, image_format: str) -> str:
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
      raise TypographicError(f"{path} is not valid JSON: {e}") from e
  if header.get("format") != FORMAT:
    raise TypographicError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
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
      raise TypographicError(
          f"--dst {dst} is not empty and has no {HEADER}: refusing to write a typographic set "
          "into a folder holding other files")
    return False
  if old.get("seed") != header["seed"]:
    raise TypographicError(
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
    raise TypographicError(
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
    variants: variant specs (:func:`jaxbench.typographic.variants.parse_variant`).
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
    raise TypographicError(f"seed must be an int, got {seed!r}")
  parsed = [parse_variant(v, kind) for v in variants]
  names = [n for n, _ in parsed]
  if len(set(names)) != len(names) or not names:
    raise TypographicError(f"variants {list(variants)}: need at least one, names unique")
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
  store.atomic_write_bytes(os.path.join(dst, MANIFEST),
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


def _font_facts(v: Variant) -> dict:
  if v.renderer == "roz_matplotlib":
    return {"renderer": "matplotlib", "family": "Times New Roman", "size": 20, "dpi": 150,
            "resolved": roz_matplotlib_font()}
  return {"renderer": renderer_name(v.font), "face": v.font,
          "scale": v.scale, "thickness": v.thickness, "measure_thickness": v.measure_thickness,
          "color": list(v.color), "outline": v.outline, "outline_color": list(v.outline_color),
          "supersample": v.supersample, "line_type": "LINE_8"}
