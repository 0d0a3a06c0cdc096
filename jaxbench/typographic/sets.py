"""ImageNet-T and CIFAR-10-T as evaluation sets, read from a generated folder.

``python -m jaxbench.typographic`` (or these factories, given ``src``) writes a
set: ``dataset.json``, ``manifest.jsonl`` and one image folder per variant. The
reader returns an ordinary :class:`~jaxbench.data.evalset.EvalSet` whose
records carry, besides 'id', 'label' and 'image_bytes', the metadata
'written_label' (-1 for non-class text), 'variant' and 'typographic_text'.
The set's ``sequence_metric_fn`` turns per-example predictions into the attack
success rate and the per-variant breakdown (:mod:`jaxbench.metrics.typographic`).

Dataset specs, registered in :data:`jaxbench.data.catalog.DATASETS` when this
module is imported (the catalog imports it when a spec names a set it does not
know yet, through the package root's plugin table ``jaxbench.PLUGINS['datasets']``;
see :mod:`jaxbench.typographic`):
  imagenet_t(root='~/data/imagenet_t', src='~/data/imagenet/val', seed=0)
  cifar10_t(root='~/data/cifar10_t', src='~/data/cifar-10-batches-bin', seed=0,
            variants=('roz', 'true_class'))
With ``src`` the set is generated first when ``root`` does not hold it yet
(generation is deterministic and refuses a root holding a different set); on
several hosts process 0 generates and the others wait for ``complete``, so
``root`` must be on a filesystem they share.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional, Sequence

import jax

from jaxbench import registry as registry_lib
from jaxbench.data import catalog as catalog_lib
from jaxbench.data import sources
from jaxbench.data.evalset import EvalSet
from jaxbench.metrics import typographic as typo_metrics
from jaxbench.typographic import generate as generator
from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.variants import parse_variant
from jaxbench.typographic.vocabulary import vocabulary


class ManifestSource:
  """Random-access records of a generated set (grain RandomAccessDataSource)."""

  def __init__(self, root: str, lines: Sequence[dict]):
    self._root = root
    self._lines = list(lines)

  def __len__(self) -> int:
    return len(self._lines)

  def example_id(self, index: int) -> str:
    """The id of record ``index`` without reading its image (the runner's hook)."""
    return self._lines[index]["id"]

  def fingerprint(self) -> dict:
    """The image files of the manifest (path, size, mtime) and the manifest lines."""
    return sources.files_fingerprint("manifest", self._root, [l["file"] for l in self._lines],
                                     n=len(self), lines=sources.digest(self._lines))

  def table(self) -> dict:
    """id -> (label, written_label, variant) for every record."""
    return {l["id"]: (int(l["label"]), int(l["written_label"]), l["variant"])
            for l in self._lines}

  def __getitem__(self, index: int) -> dict:
    line = self._lines[index]
    with open(os.path.join(self._root, line["file"]), "rb") as f:
      data = f.read()
    return {"id": line["id"], "label": int(line["label"]), "image_bytes": data,
            "written_label": int(line["written_label"]), "variant": line["variant"],
            "typographic_text": line["text"]}

  def __repr__(self) -> str:
    return f"ManifestSource({self._root!r}, {len(self)} records)"


def read_manifest(root: str) -> tuple[dict, list[dict]]:
  """(header, manifest lines) of a complete generated set.

  Raises:
    TypographicError: missing or incomplete set, malformed lines, missing files.
  """
  root = os.path.abspath(os.path.expanduser(root))
  header = generator.read_header(root)
  if header is None:
    raise TypographicError(
        f"{root} holds no typographic set ({generator.HEADER} missing); generate it with "
        "python -m jaxbench.typographic or pass src=")
  if not header.get("complete"):
    raise TypographicError(
        f"{root}: generation did not finish ({generator.HEADER} has complete=false); rerun it")
  path = os.path.join(root, generator.MANIFEST)
  lines = []
  with open(path) as f:
    for n, text in enumerate(f, 1):
      try:
        line = json.loads(text)
      except json.JSONDecodeError as e:
        raise TypographicError(f"{path}:{n}: not JSON: {e}") from e
      need = ("id", "label", "written_label", "variant", "text")
      miss = [k for k in need if k not in line] if "skipped" not in line else []
      if miss or ("skipped" not in line and "file" not in line):
        raise TypographicError(f"{path}:{n}: missing keys {miss or ['file']}")
      lines.append(line)
  return header, lines


def example_table(evalset: EvalSet) -> dict:
  """id -> (label, written_label, variant) for every record of ``evalset``."""
  if not isinstance(evalset.source, ManifestSource):
    raise TypographicError(f"{evalset.name} is not a typographic set")
  return evalset.source.table()


def load(root: str, variants: Optional[Sequence[str]] = None, seed: Optional[int] = None,
         kind: Optional[str] = None, name: Optional[str] = None) -> EvalSet:
  """Reads a generated set.

  Args:
    root: the generated folder.
    variants: variant names to include (None = all in the set).
    seed, kind: when given, the set must have been generated with them.
    name: the EvalSet name (default: a spec string built from the arguments).

  Returns:
    an EvalSet over the written (not skipped) examples; metadata has kind, seed,
    variants, counts (including skipped images by reason) and the root.
  """
  root = os.path.abspath(os.path.expanduser(root))
  header, lines = read_manifest(root)
  if seed is not None and header["seed"] != seed:
    raise TypographicError(f"{root} was generated with seed={header['seed']}, "
                           f"expected seed={seed}")
  if kind is not None and header["kind"] != kind:
    raise TypographicError(f"{root} holds {header['kind']}, expected {kind}")
  have = list(header["variants"])
  chosen = list(variants) if variants is not None else have
  unknown = [v for v in chosen if v not in have]
  if unknown:
    raise TypographicError(f"{root}: variants {unknown} not in the set (it has {have})")
  keep = [l for l in lines if l["variant"] in chosen and "skipped" not in l]
  missing = [l["file"] for l in keep if not os.path.isfile(os.path.join(root, l["file"]))]
  if missing:
    raise TypographicError(f"{root}: {len(missing)} image files listed in the manifest are "
                           f"missing, e.g. {missing[:3]}")
  vocab = vocabulary(header["kind"])
  if header["kind"] == "imagenet_t":
    from jaxbench.zeroshot import prompts  # pylint: disable=g-import-not-at-top
    class_names, space = prompts.classnames("imagenet"), "imagenet1k"
  else:
    class_names, space = vocab.words, "cifar10"
  metric_names = ("success_rate",)
  if len(chosen) > 1:
    metric_names += tuple(f"{m}/{v}" for v in sorted(chosen) for m in ("top1", "success_rate"))
  counts = header["counts"]["per_variant"]
  name = name or registry_lib.format_spec(
      header["kind"], (), {"root": root, "seed": header["seed"], "variants": tuple(chosen)})
  source = ManifestSource(root, keep)
  return EvalSet(
      name=name,
      source=source,
      num_classes=vocab.num_classes,
      class_names=tuple(class_names),
      model_label_space=space,
      sequence_metrics=metric_names,
      sequence_metric_fn=SequenceMetrics(source.table()),
      metadata={"kind": header["kind"], "seed": header["seed"], "root": root,
                "variants": {v: header["variants"][v]["spec"] for v in chosen},
                "counts": {v: counts[v] for v in chosen},
                "skipped": sum(sum(counts[v]["skipped"].values()) for v in chosen),
                "converted_to_rgb": header["counts"]["converted_to_rgb"],
                "fonts": {v: header["fonts"][v] for v in chosen}})


class SequenceMetrics:
  """EvalSet.sequence_metric_fn of a typographic set.

  ``__call__(ids, preds, correct)`` -> metric name -> value: 'success_rate'
  and, with several variants, 'top1/<v>' and 'success_rate/<v>' ('top1' is
  the runner's own accumulator, same value). ``details(ids, preds)`` -> the
  full :func:`jaxbench.metrics.typographic.summarize` breakdown (with counts
  per variant; NaN as None) for the row's details.
  """

  def __init__(self, table: dict):
    self.table = table

  def __call__(self, ids, preds, correct=None) -> dict:
    del correct  # recomputed from the manifest's labels
    out = typo_metrics.flat_metrics(typo_metrics.from_ids(list(ids), preds, self.table))
    out.pop("top1")
    return out

  def details(self, ids, preds) -> dict:
    summary = typo_metrics.from_ids(list(ids), preds, self.table)
    return json.loads(json.dumps(summary).replace("NaN", "null"))


def _make(kind: str, root: str, src: Optional[str], seed: int, variants, workers: int,
          max_examples: int, roz_record: Optional[str] = None) -> EvalSet:
  variants = (variants,) if isinstance(variants, str) else tuple(variants)
  if src is not None:
    if jax.process_index() == 0:
      generator.generate(src, root, kind, seed=seed, variants=variants, workers=workers,
                         max_examples=max_examples, roz_record=roz_record)
    else:  # multi-host: process 0 writes the set, the others wait for it
      _wait_complete(root)
  names = [parse_variant(v, kind)[0] for v in variants]
  # The results key says what the set is, not where it lives (as the catalog).
  what = {"seed": seed, "variants": tuple(names)}
  if max_examples >= 0:
    what["max_examples"] = max_examples
  if roz_record:   # RoZ's written labels: a different set, a different results key
    what["roz_record"] = os.path.basename(roz_record)
  return load(root, variants=names, seed=seed, kind=kind,
              name=registry_lib.format_spec(kind, (), what))


def _wait_complete(root: str, poll_s: float = 10.0, timeout_s: float = 48 * 3600):
  root = os.path.abspath(os.path.expanduser(root))
  t0 = time.time()
  while True:
    try:
      header = generator.read_header(root)
    except TypographicError:
      header = None  # being rewritten
    if header is not None and header.get("complete"):
      return
    if time.time() - t0 > timeout_s:
      raise TypographicError(f"{root}: waited {timeout_s:.0f} s for process 0 to "
                             "generate the typographic set")
    time.sleep(poll_s)


@catalog_lib.register("imagenet_t")
def imagenet_t(root: str, src: Optional[str] = None, seed: int = 0,
               variants: Sequence[str] = ("roz",), workers: int = 0,
               max_examples: int = -1, roz_record: Optional[str] = None) -> EvalSet:
  """ImageNet-T (1000-way ImageNet label space); generated from ``src`` if needed
  (with ``roz_record``: RoZ's imgNet_record.pickle, RoZ's labels on RoZ's images)."""
  return _make("imagenet_t", root, src, seed, variants, workers, max_examples, roz_record)


@catalog_lib.register("cifar10_t")
def cifar10_t(root: str, src: Optional[str] = None, seed: int = 0,
              variants: Sequence[str] = ("roz",), workers: int = 0,
              max_examples: int = -1, roz_record: Optional[str] = None) -> EvalSet:
  """CIFAR-10-T (10-way CIFAR label space); generated from ``src`` if needed
  (with ``roz_record``: RoZ's cifar10_record.pickle)."""
  return _make("cifar10_t", root, src, seed, variants, workers, max_examples, roz_record)
