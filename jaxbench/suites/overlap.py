"""Data overlap: the clean passes, then near-duplicates of the evaluation images in a
pretraining corpus (:func:`jaxbench.overlap.run.search`), with their own rows.

The clean passes give the clean top-1 rows and the per-example correctness that the
accuracy split (overlapping vs clean examples) needs.
"""
from __future__ import annotations

import os

from jaxbench import registry
from jaxbench.engine import keys as keys_lib, plan as plan_lib, provenance, rows as rows_lib
from jaxbench.engine.keys import Key
from jaxbench.model_setup import ConfigError, load_model
from jaxbench.suites.base import SUITES, Suite

SECTIONS = {
    "overlap": Key({
        # Tar shards (a dir, 'dir/{00000..00099}.tar', 'dir/*.tar'), an image folder, a .npy
        # embedding file (+ NAME.ids.txt) or an embedding store directory.
        "corpus": Key("~/data/pretraining/{00000..00009}.tar", "the corpus to search"),
        "k": Key(10, "neighbours kept per evaluation image"),
        "threshold": Key(None, "cosine threshold; None = calibrate on synthetic "
                         "near-duplicates of eval images", type=float),
        "chunk": Key(8192, "corpus rows per search step per process"),
        "detector": Key("", "model spec of the duplicate detector; '' = models[0]"),
        "mode": Key("auto", "'image' (encode_image), 'features' (apply), 'auto'"),
        "hashes": Key(("phash", "dhash"), "perceptual hashes searched too"),
        "hash_radius": Key(None, "{'phash': 4, ...}; None = calibrate", type=dict,
                           free=True),
        "block": Key(64, "rows per candidate block in the search (speed knob)"),
        "query_block": Key(512, "queries per search tile (CPU cache; raise on GPU/TPU)"),
        "store_chunk": Key(65536, "rows per embedding file"),
        "store_dtype": Key("float32", "dtype of stored embeddings"),
        "calibration": Key({"num": 256, "fpr": 0.0, "max_hash_distance": 12,
                            "transforms": ("resize", "jpeg", "crop", "jitter")},
                           "calibration on synthetic near-duplicates"),
        "gallery": Key(200, "pairs shown in the HTML review page (0 = none)"),
        "workers": Key(4, "host threads decoding corpus images"),
    }, "overlap search"),
}

def _section(config) -> dict:
  return dict(config.overlap) if "overlap" in config else {}

class Overlap(Suite):
  name = "overlap"
  sections = SECTIONS

  def search_phases(self, config, workdir) -> list[str]:
    """The search after the passes, in words (dry run)."""
    ov = _section(config)
    detector = ov.get("detector") or config.models[0]
    root = os.path.join(os.path.abspath(os.path.expanduser(workdir)) if workdir
                        else "WORKDIR", "overlap")
    thr = ov.get("threshold")
    radius = dict(ov.get("hash_radius") or {})
    cal = dict(ov.get("calibration") or {})
    hashes = tuple(ov.get("hashes", ()))
    out = [f"overlap: embed corpus {ov.get('corpus')!r} with detector {detector} "
           f"(mode {ov.get('mode', 'auto')!r}) into {root}/embeddings/ (resumed; an "
           "embedding store is used as is)",
           f"overlap: embed and hash ({', '.join(hashes) or 'no hashes'}) the "
           f"{len(config.datasets)} evaluation set(s)"]
    if thr is None or any(h not in radius for h in hashes):
      out.append(f"overlap: calibrate the threshold and hash radii on about "
                 f"{cal.get('num', 256)} synthetic near-duplicates "
                 f"({', '.join(cal.get('transforms', ()))}), fpr {cal.get('fpr', 0.0)}")
    if thr is not None:
      out.append(f"overlap: cosine threshold {thr}")
    out.append(f"overlap: exact {ov.get('k', 10)}-NN search over the corpus and Hamming "
               f"search; per set: pairs, overlap rate, accuracy split of "
               f"{len(config.models)} model(s), gallery of {ov.get('gallery', 200)} pairs "
               f"under {root}/")
    return out

  def correctness(self, config, workdir, model_spec, dataset_spec, evalset) -> dict:
    """Per-example top-1 correctness from the stored clean pass (id -> bool)."""
    from jaxbench import store as store_lib
    pid = plan_lib.pass_id_for(plan_lib.PassSpec(registry.canonical(model_spec),
                                                 registry.canonical(dataset_spec),
                                                 "clean"), config)
    out = store_lib.Store(workdir, writer=False).outputs(pid)
    if out is None:
      raise RuntimeError(f"no per-example outputs for {model_spec} on {dataset_spec} in "
                         f"{workdir}/passes/{pid}: the clean pass did not finish")
    return {str(evalset.source[int(i)]["id"]): bool(c)
            for i, c, bad in zip(out["index"], out["correct1"], out["bad"]) if not bad}

  def run(self, config, workdir, *, dry_run=False, print_fn=print):
    self.validate(config)
    if dry_run:
      super().run(config, workdir, dry_run=True, print_fn=print_fn)
      for line in self.search_phases(config, workdir):
        print_fn(line)
      return []
    from jaxbench import parallel
    ov = _section(config)
    if not ov.get("corpus"):
      raise ConfigError("config.overlap.corpus is empty: name the pretraining shards, "
                        "image folder or embedding files to search")
    if [t for t in keys_lib.get(config, "transforms") if t != "clean"]:
      raise ConfigError("the overlap suite evaluates clean images only; set "
                        "config.transforms=('clean',)")
    # Every model's clean pass: clean top-1 rows and the per-example correctness the
    # accuracy split needs (resumable, cached in the workdir).
    clean_rows = super().run(config, workdir, print_fn=print_fn)
    from jaxbench.overlap import run as overlap_run
    detector_spec = ov.get("detector") or config.models[0]
    detector = load_model(detector_spec, config)
    models = [(m, rows_lib.model_label(m, mm, config), mm)
              for m, mm in ((m, load_model(m, config)) for m in config.models)]
    mesh_cfg = dict(keys_lib.get(config, "mesh") or {})
    mesh = parallel.make_mesh(int(mesh_cfg.get("data", -1)), 1)
    rows = overlap_run.search(
        config, workdir, detector=detector,
        detector_label=rows_lib.model_label(detector_spec, detector, config),
        models=models, prov=provenance.provenance(config, mesh),
        correctness=lambda m, d, es: self.correctness(config, workdir, m, d, es),
        writer=parallel.is_writer())
    # Process 0 returns the rows it wrote; the others searched their share only.
    return clean_rows + rows if parallel.is_writer() else []

  def results(self, config, workdir, written):
    return written

SUITES.register("overlap", Overlap)
