"""The learning phase of ``configs/linear_probe.py``: features, fit, head file, per backbone.

``config.linear_probe`` names the backbones (``backbones``), the training set
(``train``, any :mod:`jaxbench.data.catalog` spec, e.g. ``cifar10_train``), the
method and its settings:

* ``method='logreg'``: the CLIP paper's linear probe (:mod:`logreg`): C swept over
  ``Cs`` on a validation split of ``val_fraction`` carved by (``split_seed``,
  example id), refit on train + validation;
* ``method='head'``: AdamW head training (:mod:`train_head`), ``preset`` 'clean'
  (epoch chosen on the validation split, BatchNorm frozen) or 'roz' (on ``test``,
  BatchNorm in train mode via :mod:`bn_train` when the backbone has any: the
  training images are then held in memory and the backbone runs every step).

``k > 0`` trains on a k-shot split (:func:`jaxbench.data.kshot.draw`, nested in k).
Features are stored under ``WORKDIR/features/`` (resumable); each head is written
to ``WORKDIR/heads/<backbone>.safetensors``, and the evaluation passes run on the
models ``probe:WORKDIR/heads/<backbone>.safetensors`` (:func:`eval_config` puts
them in ``config.models``), so every suite evaluates the trained heads.
"""
from __future__ import annotations

import dataclasses
import os
import re

import ml_collections
import numpy as np

from jaxbench.heads import artifact as artifact_lib
from jaxbench.heads import features as features_lib
from jaxbench.heads import bn_train, logreg, train_head

KEYS = {"backbones", "train", "test", "method", "preset", "k", "split_seed", "val_fraction",
        "Cs", "normalize", "feature_batch_size", "shard_size", "overwrite", "max_iter", "tol",
        "epochs", "lr", "batch_size"}


def head_path(workdir: str, backbone: str) -> str:
  """Where the head trained on ``backbone`` lives (absolute)."""
  safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", backbone).strip("_")[:120]
  # A dry run may have no --workdir: the plan then names the place symbolically.
  root = os.path.abspath(os.path.expanduser(workdir)) if workdir else "WORKDIR"
  return os.path.join(root, "heads", f"{safe}.safetensors")


def _settings(config) -> dict:
  lp = dict(config.linear_probe)
  bad = sorted(set(lp) - KEYS)
  if bad:
    raise ValueError(f"unknown config.linear_probe keys {bad}; known: {sorted(KEYS)}")
  if lp.get("method") not in ("logreg", "head"):
    raise ValueError(f"config.linear_probe.method must be 'logreg' or 'head', got "
                     f"{lp.get('method')!r}")
  if not lp.get("train"):
    raise ValueError("config.linear_probe.train must name the training set, e.g. 'cifar10_train'")
  lp["backbones"] = tuple(lp.get("backbones") or config.models)
  if not lp["backbones"]:
    raise ValueError("config.linear_probe.backbones (or config.models) is empty: name the "
                     "frozen backbones")
  if lp["method"] == "head":
    train_head.recipe(lp.get("preset", "clean"))   # validates the preset name
    if lp.get("preset") == "roz" and not lp.get("test"):
      raise ValueError("config.linear_probe.preset='roz' selects the epoch on the test set: "
                       "set config.linear_probe.test (e.g. 'cifar10')")
  return lp


def eval_config(config, workdir: str):
  """A copy of ``config`` whose models are the heads' ``probe:PATH`` specs."""
  lp = _settings(config)
  c = ml_collections.ConfigDict(config.to_dict())
  c.linear_probe.backbones = tuple(lp["backbones"])
  c.models = tuple(f"probe:{head_path(workdir, b)}" for b in lp["backbones"])
  return c


def describe(config, workdir: str) -> list[str]:
  """The learning phase in words (``--dry_run``)."""
  lp = _settings(config)
  what = (f"logreg C sweep {tuple(lp.get('Cs') or logreg.DEFAULT_CS)} on a "
          f"{lp.get('val_fraction', 0.2)} validation split, refit on train+val"
          if lp["method"] == "logreg" else
          f"AdamW head, preset {lp.get('preset', 'clean')!r}")
  k = int(lp.get("k", 0) or 0)
  out = [f"learn: {lp['method']} on {lp['train']}" + (f" ({k}-shot)" if k else "") +
         f": {what}"]
  for b in lp["backbones"]:
    path = head_path(workdir, b)
    state = "exists, kept" if os.path.exists(path) and not lp.get("overwrite") else "to train"
    out.append(f"  backbone={b} -> {path} ({state})")
  return out


def learn(config, workdir: str, *, mesh=None, print_fn=print) -> dict[str, str]:
  """Trains one head per backbone of ``config.linear_probe``; the runner's hook.

  Returns:
    {backbone spec: head file}.
  """
  from jaxbench import model_setup, parallel
  from jaxbench.data import catalog, kshot
  lp = _settings(config)
  seed = int(config.seed) if "seed" in config else 0
  split_seed = int(lp.get("split_seed", seed))
  data_root = (config.data_root if "data_root" in config else None) or None
  tfds_dir = (config.tfds_dir if "tfds_dir" in config else None) or None
  train = catalog.get(lp["train"], data_root=data_root, tfds_dir=tfds_dir)
  test = catalog.get(lp["test"], data_root=data_root, tfds_dir=tfds_dir) \
      if lp.get("test") else None
  if test is not None and test.model_label_space != train.model_label_space:
    raise ValueError(f"linear_probe.test {lp['test']!r} has label space "
                     f"{test.model_label_space!r}, the training set {lp['train']!r} "
                     f"{train.model_label_space!r}")
  source, k = train.source, int(lp.get("k", 0) or 0)
  root = os.path.abspath(os.path.expanduser(workdir))
  if k:
    split = kshot.draw(train.source, k, split_seed, num_classes=train.num_classes,
                       name=lp["train"], cache_dir=os.path.join(root, "features"))
    source = kshot.SubsetSource(train.source, split)
  if mesh is None:
    mcfg = dict(config.mesh) if "mesh" in config else {}
    mesh = parallel.make_mesh(int(mcfg.get("data", -1)), int(mcfg.get("model", 1)))
  batch = int(lp.get("feature_batch_size", 0) or config.batch_size)
  normalize = bool(lp.get("normalize", False))
  paths = {}
  for spec in lp["backbones"]:
    path = head_path(workdir, spec)
    paths[spec] = path
    if os.path.exists(path) and not lp.get("overwrite", False):
      print_fn(f"linear_probe: {path} exists; keeping it (set linear_probe.overwrite=True)")
      continue
    model = model_setup.load_model(spec, config)
    ident = features_lib.identity(model, normalize=normalize)

    def feats_of(src, name):
      size = int(lp.get("shard_size", 4096))
      d = features_lib.cache_dir(os.path.join(root, "features"), ident, name, len(src), size)
      return features_lib.compute(model, src, out_dir=d, name=name, batch_size=batch,
                                  mesh=mesh, normalize=normalize, shard_size=size,
                                  print_fn=print_fn, **features_lib.input_settings(config, model))
    backbone_state = {}
    fs = feats_of(source, lp["train"] + (f"/k{k}_seed{split_seed}" if k else ""))
    val = logreg.validation_mask(fs.ids, split_seed, float(lp.get("val_fraction", 0.2)))
    data = {"train": lp["train"], "n": len(fs.ids), "k": k, "split_seed": split_seed,
            "ids_sha256": features_lib.ids_hash(fs.ids),
            "val_ids_sha256": features_lib.ids_hash(np.asarray(fs.ids)[val]),
            "val_fraction": float(lp.get("val_fraction", 0.2))}
    if lp["method"] == "logreg":
      res = logreg.sweep(fs.features, fs.labels, train.num_classes, val_mask=val,
                         Cs=tuple(lp.get("Cs") or logreg.DEFAULT_CS),
                         max_iter=int(lp.get("max_iter", 1000)),
                         tol=float(lp.get("tol", 1e-6)), mesh=mesh)
      w, b = res.final.weights, res.final.bias
      recipe = {"method": "logreg", "solver": "lbfgs", "Cs": [float(c) for c in res.val_accuracy],
                "best_C": res.best_C, "val_accuracy": [res.val_accuracy[c] for c in
                                                       res.val_accuracy],
                "refit": "train+val", "selection": "val", "iterations": res.final.iterations}
      print_fn(f"linear_probe: {spec}: best C {res.best_C:g} (val accuracy "
               f"{res.val_accuracy[res.best_C]:.4f})")
    else:
      over = {k_: lp[k_] for k_ in ("epochs", "lr", "batch_size") if lp.get(k_)}
      r = train_head.recipe(lp.get("preset", "clean"), **over)
      note = ""
      if r.batchnorm == "train" and not bn_train.has_batchnorm(model):
        r = dataclasses.replace(r, batchnorm="frozen")
        note = "the backbone has no BatchNorm: train mode is the same as frozen"
      if r.batchnorm == "train":   # RoZ: the backbone runs every step, statistics update
        imgs, labels, _ = features_lib.load_images(model, source, name=lp["train"],
                                                   batch_size=batch)
        data_sets = (imgs, labels)
        test_set = (features_lib.load_images(model, test.source, name=lp["test"],
                                             batch_size=batch)[:2]
                    if test is not None else None)
      else:
        data_sets = (fs.features, fs.labels)
        test_set = None
        if test is not None:
          ts = feats_of(test.source, lp["test"])
          test_set = (ts.features, ts.labels)
      evals = {}
      if r.select == "val":
        x, y = data_sets[0][~val], data_sets[1][~val]
        evals["val"] = (data_sets[0][val], data_sets[1][val])
      else:
        x, y = data_sets
      if test_set is not None:
        evals["test"] = test_set
      if r.batchnorm == "train":
        res = bn_train.train(model, x, y, train.num_classes, r, seed=seed, eval_sets=evals,
                             normalize=normalize)
        backbone_state = res.bn
      else:
        res = train_head.train(x, y, train.num_classes, r, seed=seed, eval_sets=evals)
      w, b = res.weight, res.bias
      recipe = {**res.recipe, "best_epoch": res.best_epoch, "history": res.history}
      if note:
        recipe["batchnorm_note"] = note
      print_fn(f"linear_probe: {spec}: best epoch {res.best_epoch} ({r.select}, "
               f"BatchNorm {r.batchnorm})")
    art = artifact_lib.HeadArtifact(
        weight=w, bias=b, backbone=spec,
        preprocess=artifact_lib.preprocess_record(model.preprocess), features=ident,
        label_space=train.model_label_space, class_names=tuple(train.class_names or ()),
        data=data, seed=seed, recipe=recipe, backbone_state=backbone_state)
    if parallel.is_writer():
      artifact_lib.save(art, path)
    parallel.sync(f"linear_probe-{spec}")
    print_fn(f"linear_probe: {spec} -> {path}")
  return paths
