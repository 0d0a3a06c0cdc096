"""The overlap search: corpus embeddings -> search -> pairs, rates, accuracy split.

:func:`search` is the work of the overlap suite (:mod:`jaxbench.suites.overlap`, which
``configs/overlap.py`` selects: ``python -m jaxbench.main --config=configs/overlap.py``
or ``python -m jaxbench.overlap``) after the engine's clean passes:

1. open the corpus (``config.overlap.corpus``) and embed it with the detector model
   (``config.overlap.detector``, default ``config.models[0]``) into
   ``WORKDIR/overlap/embeddings/...`` (reused and resumed across runs; a corpus that
   already is an embedding store is used as is);
2. embed every evaluation set (``config.datasets``) and hash its images;
3. calibrate the cosine threshold and hash radii on synthetic near-duplicates of a sample
   of evaluation images, unless ``config.overlap.threshold`` is set;
4. one streamed pass of exact k-NN over the corpus for all evaluation sets together, and
   a multi-index Hamming search for hash duplicates;
5. per evaluation set: flagged pairs (``pairs.jsonl``), overlap rate, the accuracy split
   of each model in ``config.models`` (per-example correctness from the engine's clean
   passes, which run first and also write the clean ``top1`` rows), an HTML review
   gallery, and rows (suite 'overlap') added to ``WORKDIR/results.jsonl``.

Only process 0 writes; every process reads and searches its own share of the corpus.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import jax
import numpy as np
from PIL import Image

from jaxbench import atomic, registry
from jaxbench.data.evalset import EvalSet
from jaxbench.model_setup import ConfigError
from jaxbench.overlap import analysis, calibrate, corpus as corpus_lib, embed, gallery
from jaxbench.overlap import hashes as hashes_lib, knn


def slug(text: str) -> str:
  """A file-name-safe, collision-resistant name for a spec (no '/', no '..')."""
  clean = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60] or "x"
  return f"{clean}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


# --------------------------------------------------------------------------- inputs
def _payload(rec: dict, evalset: EvalSet):
  """The record's image as bytes or uint8 RGB, after the set's pre-transform."""
  if "image" in rec:
    img = np.asarray(rec["image"], np.uint8)
    if evalset.pre_transform is None:
      return img
    return np.asarray(evalset.pre_transform(Image.fromarray(img)).convert("RGB"), np.uint8)
  if evalset.pre_transform is None:
    return rec["image_bytes"]
  try:
    img = corpus_lib.decode_image(rec["image_bytes"])
  except ValueError:
    return rec["image_bytes"]  # reported as undecodable downstream
  return np.asarray(evalset.pre_transform(Image.fromarray(img)).convert("RGB"), np.uint8)


def _num_examples(evalset: EvalSet, config) -> int:
  m = int(config.get("max_examples", -1))
  return len(evalset) if m < 0 else min(len(evalset), m)


def eval_records(evalset: EvalSet, n: int):
  for i in range(n):
    rec = evalset.source[i]
    yield str(rec["id"]), i, _payload(rec, evalset)


# --------------------------------------------------------------------------- outputs
def _json(path: str, obj):
  atomic.atomic_write_bytes(path, json.dumps(obj, indent=1, default=str).encode())


def _resolve_ids(corpus: corpus_lib.EmbeddingFiles, ordinals: set[int]) -> dict[int, str]:
  """ordinal -> id for the wanted ordinals (reads only the ids/ordinals files)."""
  out = {}
  for spec, fidx in zip(corpus.chunk_specs, corpus.indices):
    ids = corpus_lib._read_ids(spec["ids"])
    ords = (np.load(spec["ordinals"], allow_pickle=False) if spec.get("ordinals")
            else np.asarray([corpus_lib.ordinal(fidx, i) for i in range(len(ids))]))
    for j in np.nonzero(np.isin(ords, list(ordinals)))[0]:
      out[int(ords[j])] = ids[j]
  return out


# --------------------------------------------------------------------------- the suite
def _calibration_images(evalsets, config, num: int):
  """About ``num`` images spread evenly over every set (sets are often sorted by class)."""
  imgs, ids = [], []
  per = max(1, num // len(evalsets))
  for es in evalsets:
    n = _num_examples(es, config)
    for i in np.unique(np.linspace(0, n - 1, min(per, n)).round().astype(int)):
      rec = es.source[int(i)]
      p = _payload(rec, es)
      try:
        img = p if isinstance(p, np.ndarray) else corpus_lib.decode_image(p)
      except ValueError:
        continue
      imgs.append(img)
      ids.append(f"{es.name}/{rec['id']}")
  return imgs, ids


def search(config, workdir: str, *, detector, detector_label: str, models, prov: dict,
           correctness, writer: bool = True) -> list[dict]:
  """Searches the corpus for near-duplicates of the evaluation sets; returns the rows
  written (by the writer process; others get []).

  Args:
    config: the overlap config (``config.overlap``, ``config.datasets``, ...).
    workdir: the run's workdir (``overlap/`` is written under it).
    detector: the loaded duplicate-detector model; ``detector_label`` its row label.
    models: [(spec, row label, loaded model)] of ``config.models``.
    prov: the run's provenance (the search's settings are added).
    correctness: (model spec, dataset spec, evalset) -> {example id: top-1 correct},
      from the clean passes.
    writer: whether this process writes (process 0).
  """
  from jaxbench import parallel, store as store_lib
  from jaxbench.data import catalog

  ov = dict(config.overlap)
  k = int(ov.get("k", 10))
  store = store_lib.Store(workdir, writer=writer)
  out_dir = os.path.join(store.workdir, "overlap")
  mesh_cfg = dict(config.get("mesh", {}) or {})
  # The search shards over 'data' only; a 'model' axis would just repeat the work.
  mesh = parallel.make_mesh(int(mesh_cfg.get("data", -1)), 1)
  embedder = embed.Embedder(detector, mode=ov.get("mode", "auto") or "auto",
                            batch_size=int(config.batch_size), mesh=mesh,
                            hashes=tuple(ov.get("hashes", ("phash", "dhash"))),
                            workers=int(ov.get("workers", 4)))

  # 1. corpus embeddings
  corpus = corpus_lib.open_corpus(ov["corpus"])
  if isinstance(corpus, corpus_lib.EmbeddingFiles):
    made_by = corpus.manifest.get("model")
    if made_by and made_by != detector.name:
      raise ConfigError(
          f"embedding corpus {corpus.spec!r} was made with {made_by!r}, not the detector "
          f"{detector.name!r}: similarities across models are meaningless")
    corpus_emb = corpus
  else:
    root = os.path.join(out_dir, "embeddings", slug(f"{detector.name}|{corpus.spec}"))
    corpus_emb = embed.embed_corpus(embedder, corpus, root,
                                    chunk=int(ov.get("store_chunk", 65536)),
                                    dtype=ov.get("store_dtype", "float32"))

  # 2. evaluation sets: embeddings and hashes (every process embeds every set: they are
  # small next to the corpus, and every process then holds all queries)
  specs = list(config.datasets)
  evalsets, queries = [], []
  for spec in specs:
    es = catalog.get(spec, data_root=config.get("data_root", None) or None)
    problems = corpus_lib.Problems()
    b = embedder.embed_all(eval_records(es, _num_examples(es, config)), problems=problems,
                           source=es.name)
    if not b.ids:
      raise ValueError(f"evaluation set {spec!r} has no decodable images")
    evalsets.append(es)
    queries.append((b, problems))

  # 3. thresholds
  thr = ov.get("threshold")
  hash_radius = dict(ov.get("hash_radius") or {})
  cal = None
  if thr is None or any(h not in hash_radius for h in embedder.hashes):
    cal_cfg = dict(ov.get("calibration") or {})
    imgs, ids = _calibration_images(evalsets, config, int(cal_cfg.get("num", 256)))
    cal = calibrate.calibrate(
        lambda ims: embedder.embed_all((str(j), j, im) for j, im in enumerate(ims)).emb,
        imgs, ids, seed=int(config.seed),
        transforms=tuple(cal_cfg.get("transforms", calibrate.TRANSFORMS)),
        fpr=float(cal_cfg.get("fpr", 0.0)), hashes=embedder.hashes,
        max_hash_distance=int(cal_cfg.get("max_hash_distance", 12)))
    thr = cal.threshold if thr is None else thr
    for h in embedder.hashes:
      hash_radius.setdefault(h, cal.hash_radius[h])
  thr = float(thr)

  # 4. one exact k-NN pass over the corpus for all evaluation sets together
  searcher = knn.Searcher(np.concatenate([b.emb for b, _ in queries]), k,
                          chunk=int(ov.get("chunk", 8192)), block=int(ov.get("block", 64)),
                          query_block=int(ov.get("query_block", 512)), mesh=mesh)
  share = corpus_emb.shard(jax.process_index(), jax.process_count())
  top = searcher.search((c.emb, c.ordinals) for c in share.chunks())
  if not writer:
    return []

  # hash duplicates: host only, process 0 reads the hash files of the whole corpus
  hash_pairs = [[] for _ in queries]
  for chunk in corpus_emb.chunks():
    for h in embedder.hashes:
      if h not in chunk.hashes:
        continue
      for si, (b, _) in enumerate(queries):
        qi, ci, d = hashes_lib.match(b.hashes[h], chunk.hashes[h], hash_radius[h])
        hash_pairs[si].extend(analysis.hash_pairs(b.ids, chunk.ids, qi, ci, d, h))

  # 5. per evaluation set: pairs, rate, accuracy split, gallery, rows
  offsets = np.cumsum([0] + [len(b.ids) for b, _ in queries])
  ids_of = _resolve_ids(corpus_emb, {int(o) for o in top.ordinals[top.scores >= thr]
                                     if o >= 0})
  transform = registry.format_spec("overlap", kwargs={
      "corpus": corpus.spec, "detector": detector_label, "k": k,
      "threshold": "auto" if ov.get("threshold") is None else thr})
  prov = {**prov,
          "overlap": {"corpus": corpus_emb.describe(), "detector": detector_label,
                      "threshold": thr, "hash_radius": hash_radius,
                      "calibrated": cal is not None}}
  if cal is not None:
    _json(os.path.join(out_dir, "calibration.json"), cal.to_json())
  _json(os.path.join(out_dir, "corpus_problems.json"),
        corpus.problems.to_json() or corpus_emb.manifest.get("skipped", []))
  # model_info as the runner recorded it (zero-shot heads included), so the report puts
  # these rows on the same line as the model's clean rows.
  infos = {(r["model"], r["dataset"]): r.get("model_info", {}) for r in store.rows()
           if r.get("transform") == "clean" and r.get("metric") == "top1"}
  rows = []
  for si, (spec, es) in enumerate(zip(specs, evalsets)):
    b, problems = queries[si]
    sub = knn.TopK(top.scores[offsets[si]:offsets[si + 1]],
                   top.ordinals[offsets[si]:offsets[si + 1]])
    pairs = analysis.embedding_pairs(b.ids, sub, ids_of, thr) + hash_pairs[si]
    summary = analysis.overlap_summary(b.ids, pairs)
    summary["skipped_examples"] = len(problems)
    d = os.path.join(out_dir, slug(es.name))
    os.makedirs(d, exist_ok=True)
    ranked = sorted(pairs, key=lambda p: (-p.score, p.query_id, p.corpus_id))
    with open(os.path.join(d, "pairs.jsonl"), "w") as f:
      for p in ranked:
        f.write(json.dumps(p.to_json()) + "\n")
    _json(os.path.join(d, "summary.json"),
          {**summary, "threshold": thr, "hash_radius": hash_radius, "k": k,
           "skipped": problems.to_json()})
    limit = int(ov.get("gallery", 200))
    if limit > 0:
      shown = ranked[:limit]
      want = {p.query_id for p in shown}
      q_imgs = {rid: img for rid, _, img in eval_records(es, _num_examples(es, config))
                if rid in want}
      c_imgs = corpus.fetch(sorted({p.corpus_id for p in shown}))
      gallery.write(os.path.join(d, "gallery.html"), pairs, q_imgs, c_imgs,
                    title=f"overlap: {es.name} vs {corpus.spec}",
                    summary={"overlap rate": f"{summary['overlap_rate']:.4f}",
                             "threshold": f"{thr:.4f}", "detector": detector_label,
                             "hash radius": hash_radius}, limit=limit)
    flagged = analysis.overlapping(pairs)
    details = {"gallery": os.path.join(d, "gallery.html") if limit > 0 else None,
               "pairs_file": os.path.join(d, "pairs.jsonl")}
    rows += analysis.result_rows(
        model=detector_label, dataset=es.name, transform=transform,
        model_info=infos.get((detector_label, es.name)) or detector.describe(),
        provenance=prov, summary=summary, details=details)
    for mspec, label, m in models:
      split = analysis.accuracy_split(correctness(mspec, spec, es), flagged)
      _json(os.path.join(d, f"accuracy-{slug(label)}.json"), split)
      rows += analysis.result_rows(
          model=label, dataset=es.name, transform=transform,
          model_info=infos.get((label, es.name)) or m.describe(),
          provenance=prov, split=split, details=details,
          summary=summary if label != detector_label else None)
  store.add_rows(rows)
  return rows
