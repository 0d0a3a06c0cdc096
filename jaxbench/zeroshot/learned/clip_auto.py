"""CLIP-Auto: learns prompts for every model of a config before evaluation.

The orchestrator above the two learners (:mod:`~jaxbench.zeroshot.learned.autoprompt`,
:mod:`~jaxbench.zeroshot.learned.coop`): it draws the k-shot training split, computes
the image features once (both towers are frozen, so the learners only run the text
tower), runs the configured learner and saves the artifact
(:mod:`~jaxbench.zeroshot.learned.artifacts`). Evaluation then loads it through
:func:`jaxbench.zeroshot.learned.heads.head_for`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxbench.models.api import Model, l2_normalize
from jaxbench.zeroshot import prompts as prompts_lib
from jaxbench.zeroshot.learned.artifacts import artifact_path, save_context, save_prompts
from jaxbench.zeroshot.learned.heads import accuracy, context_head, trigger_head
from jaxbench.zeroshot.learned.layout import check_text_model, decode


LEARN_KEYS = {"method", "train", "k", "split_seed", "classnames", "overwrite", "autoprompt",
              "coop", "feature_batch_size"}


def _settings(cls, section: dict, where: str, seed: int):
  """A learner's config dataclass from a config section, refusing unknown keys."""
  fields = {f.name for f in dataclasses.fields(cls)}
  section = dict(section or {})
  bad = sorted(set(section) - fields)
  if bad:
    raise ValueError(f"unknown keys {bad} in {where}; known: {sorted(fields)}")
  if "exclude_tokens" in section:
    section["exclude_tokens"] = tuple(section["exclude_tokens"])
  section.setdefault("seed", seed)
  return cls(**section)


def learn(config, workdir: str, *, mesh=None, print_fn=print) -> dict[str, str]:
  """Learns prompts for every model of a config (``config.clip_auto``); the runner's hook.

  Draws the k-shot split of ``clip_auto.train`` (a dataset spec of
  :mod:`jaxbench.data.catalog`, e.g. "image_folder(root='~/data/imagenet/train')"),
  computes the image features of each model once, runs the chosen learner and
  writes ``workdir/clip_auto/<model>.json`` (plus the split, by ids). An artifact
  that exists is kept unless ``clip_auto.overwrite``. Evaluation then uses
  ``config.zeroshot.templates = 'learned:auto'`` (see :func:`head_for`).

  Returns:
    {canonical model spec: artifact path}.

  Raises:
    ValueError: unknown keys or methods, a class count that does not match the
      training set, k larger than a class's images, prompts too long, ...
  """
  from jaxbench import parallel, registry
  from jaxbench.data import catalog, kshot
  from jaxbench import model_setup
  from jaxbench.heads import features
  from jaxbench.zeroshot.learned import autoprompt, coop
  ca = dict(config.clip_auto)
  bad = sorted(set(ca) - LEARN_KEYS)
  if bad:
    raise ValueError(f"unknown config.clip_auto keys {bad}; known: {sorted(LEARN_KEYS)}")
  method = ca.get("method")
  if method not in ("autoprompt", "coop"):
    raise ValueError(f"config.clip_auto.method must be 'autoprompt' or 'coop', got {method!r}")
  if not ca.get("train"):
    raise ValueError("config.clip_auto.train must name the training set, e.g. "
                     "\"image_folder(root='~/data/imagenet/train')\"")
  seed = int(config.seed) if "seed" in config else 0
  if method == "autoprompt":
    settings = _settings(autoprompt.AutoPromptConfig, ca.get("autoprompt"),
                         "config.clip_auto.autoprompt", seed)
  else:
    settings = _settings(coop.CoopConfig, ca.get("coop"), "config.clip_auto.coop", seed)
  data_root = (config.data_root if "data_root" in config else None) or None
  tfds_dir = (config.tfds_dir if "tfds_dir" in config else None) or None
  train = catalog.get(ca["train"], data_root=data_root, tfds_dir=tfds_dir)
  zs = dict(config.zeroshot) if "zeroshot" in config else {}
  names_spec = ca.get("classnames") or zs.get("classnames", "imagenet")
  names = tuple(train.class_names) if names_spec == "dataset" else \
      prompts_lib.classnames(names_spec)
  if train.num_classes and train.num_classes != len(names):
    raise ValueError(f"training set {train.name!r} has {train.num_classes} classes but "
                     f"{len(names)} class names are given ({names_spec!r})")
  out_dir = os.path.join(workdir, "clip_auto")
  k, split_seed = int(ca.get("k", 16)), int(ca.get("split_seed", seed))
  split = kshot.draw(train.source, k, split_seed, num_classes=len(names), class_names=names,
                     name=train.name, cache_dir=out_dir)
  split_path = os.path.join(out_dir, f"split_k{k}_seed{split_seed}.json")
  if parallel.is_writer():
    os.makedirs(out_dir, exist_ok=True)
    split.save(split_path)
  if mesh is None:
    mcfg = dict(config.mesh) if "mesh" in config else {}
    mesh = parallel.make_mesh(int(mcfg.get("data", -1)), int(mcfg.get("model", 1)))
  data = {"train": train.metadata.get("spec", train.name), "k": k, "split_seed": split_seed,
          "num_examples": len(split), "ids": list(split.ids),
          "labels": [int(x) for x in split.labels]}
  paths = {}
  for spec in config.models:
    spec = registry.canonical(spec)
    model = model_setup.load_model(spec, config)
    path = artifact_path(workdir, model.name)
    paths[spec] = path
    if os.path.exists(path) and not ca.get("overwrite", False):
      print_fn(f"clip_auto: {path} exists; keeping it (set clip_auto.overwrite=True to redo)")
      continue
    check_text_model(model)
    feats, labels = image_features(model, kshot.SubsetSource(train.source, split),
                                   batch_size=int(ca.get("feature_batch_size", 0)
                                                  or config.batch_size), mesh=mesh,
                                   name=train.name,
                                   **features.input_settings(config, model))
    if method == "autoprompt":
      _learn_autoprompt(model, feats, labels, names, settings, mesh, path, data, print_fn)
    else:
      _learn_coop(model, feats, labels, names, settings, mesh, path, data, print_fn)
    parallel.sync(f"clip_auto-{spec}")
  return paths


@functools.partial(jax.jit, static_argnames=("model_apply",))
def _encode_batch(model_apply, params, images):
  return l2_normalize(model_apply(params, images.astype(jnp.float32) / 255.0))


def image_features(model: Model, source, *, batch_size: int = 128, mesh: Optional[Mesh] = None,
                   name: str = "train", num_threads: int = 8, num_processes: int = 0,
                   canvas: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Unit-norm image embeddings of every record of ``source`` (towers frozen: once).

  Args:
    model: zero-shot model; its preprocessing (resize, crop) applies.
    source: random-access records (e.g. a :class:`jaxbench.data.kshot.SubsetSource`).
    batch_size: global batch (a multiple of the mesh's data size).
    mesh: ('data', 'model') mesh; batches are sharded over 'data'.
    num_threads, num_processes, canvas: how images are decoded
      (:func:`jaxbench.heads.features.input_settings`; same pixels either way).

  Returns:
    (features float32 (N, D), labels int32 (N,)) in source order.

  Raises:
    ValueError: a record that cannot be decoded (named by id).
  """
  from jaxbench.heads import features
  encode = functools.partial(_encode_batch, model.encode_image, model.params)
  feats, labels = features.encode_source(model, source, np.arange(len(source)), encode,
                                         name=name, batch_size=batch_size, mesh=mesh,
                                         num_threads=num_threads, num_processes=num_processes,
                                         canvas=canvas, what="training image")
  return feats.astype(np.float32), labels


def _learn_autoprompt(model, feats, labels, names, cfg, mesh, path, data, print_fn):
  from jaxbench import parallel
  from jaxbench.zeroshot.learned import autoprompt
  res = autoprompt.search(model, feats, labels, names, cfg, mesh=mesh)
  top = res.ranked[:cfg.top_n or len(res.ranked)]
  start = trigger_head(model, [res.log[0, 0]], names, suffix=cfg.suffix,
                       logit_scale=cfg.logit_scale)
  learned = trigger_head(model, [t for t, _ in top], names, suffix=cfg.suffix,
                         logit_scale=cfg.logit_scale)
  iters = cfg.iterations * cfg.restarts
  metrics = {"train_acc_start": accuracy(start, feats, labels),
             "train_acc_learned": accuracy(learned, feats, labels),
             "unique_prompts": len(res.ranked), "accepted_swaps": int(res.accepted.sum()),
             "seconds": res.seconds, "iterations_per_s": iters / max(res.seconds, 1e-9)}
  print_fn(f"clip_auto autoprompt {model.name}: train acc {metrics['train_acc_start']:.4f} "
           f"('{decode(res.log[0, 0])}') -> {metrics['train_acc_learned']:.4f} "
           f"(top {len(top)} of {len(res.ranked)} prompts; best '{decode(top[0][0])}')")
  if parallel.is_writer():
    save_prompts(path, model=model, ranked=res.ranked, suffix=cfg.suffix, top_n=cfg.top_n,
                 logit_scale=cfg.logit_scale, data=data, seed=cfg.seed, steps=iters,
                 settings=dataclasses.asdict(cfg), metrics=metrics, losses=res.mean_loss)


def _learn_coop(model, feats, labels, names, cfg, mesh, path, data, print_fn):
  from jaxbench import parallel
  from jaxbench.zeroshot.learned import coop
  res = coop.train(model, feats, labels, names, cfg, mesh=mesh)
  start = context_head(model, res.init_ctx, names, suffix=cfg.suffix,
                       logit_scale=cfg.logit_scale)
  learned = context_head(model, res.ctx, names, suffix=cfg.suffix, logit_scale=cfg.logit_scale)
  metrics = {"train_acc_start": accuracy(start, feats, labels),
             "train_acc_learned": accuracy(learned, feats, labels),
             "final_loss": float(res.losses[-max(1, len(res.losses) // cfg.epochs):].mean()),
             "seconds": res.seconds, "steps_per_s": res.steps / max(res.seconds, 1e-9)}
  print_fn(f"clip_auto coop {model.name}: train acc {metrics['train_acc_start']:.4f} -> "
           f"{metrics['train_acc_learned']:.4f} ({res.steps} steps)")
  if parallel.is_writer():
    save_context(path, model=model, ctx=res.ctx, classnames=names, suffix=cfg.suffix,
                 logit_scale=cfg.logit_scale, data=data, seed=cfg.seed, steps=res.steps,
                 settings=dataclasses.asdict(cfg), metrics=metrics, init=cfg.init)


def main(argv=None):
  """``python -m jaxbench.zeroshot.learned.clip_auto --config=configs/clip_auto.py --workdir=DIR``.

  Runs only the learning step (the runner evaluates afterwards).
  """
  from absl import app, flags
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_file("config", None, "config file", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "output directory")

  def run(_):
    if config.value is None or not workdir.value:
      raise app.UsageError("--config and --workdir are required")
    for spec, path in learn(config.value, workdir.value).items():
      print(f"{spec}: {path}")
  app.run(run, argv)


if __name__ == "__main__":
  main()
