"""Trained heads: learn a head on frozen features of each backbone, then evaluate it.

Before the passes, :func:`jaxbench.heads.learn.learn` writes
``WORKDIR/heads/<backbone>.safetensors`` per backbone; the passes evaluate the
models ``probe:PATH`` (:func:`jaxbench.heads.learn.eval_config` puts them in
``config.models``). Rows carry suite 'synthetic': the report reads the CIFAR-10-C
rows (and the clean CIFAR-10 row) there.
"""
from __future__ import annotations

from jaxbench.engine.keys import Key
from jaxbench.suites.base import SUITES, Suite, describe_set

SECTIONS = {
    "linear_probe": Key({
        "backbones": Key((), "() = config.models"),
        "train": Key("cifar10_train", "the training set (a jaxbench.data.catalog spec)"),
        "test": Key("cifar10", "used for 'roz' epoch selection (recorded as such)"),
        "method": Key("logreg", "'logreg' (L-BFGS, C sweep) or 'head' (AdamW)"),
        "preset": Key("clean", "'clean' or 'roz' (method 'head')"),
        "k": Key(0, "0 = every training example; k > 0 = a k-shot split"),
        "split_seed": Key(0, "seed of the split"),
        "val_fraction": Key(0.2, "validation split of the C sweep / epoch choice"),
        "Cs": Key((), "() = jaxbench.heads.logreg.DEFAULT_CS (9 values)"),
        "normalize": Key(False, "CLIP's probe code uses unnormalised encode_image"),
        "feature_batch_size": Key(0, "0 = batch_size"),
        "shard_size": Key(4096, "rows per feature shard"),
        "overwrite": Key(False, "train again even when the head exists"),
        "max_iter": Key(1000, "L-BFGS iterations"),
        "tol": Key(1e-6, "L-BFGS tolerance"),
        "epochs": Key(0, "0 = the preset's (50)"),
        "lr": Key(0.0, "0 = the preset's (0.02)"),
        "batch_size": Key(0, "0 = the preset's (32)"),
    }, "trained heads"),
}


class LinearProbe(Suite):
  name = "linear_probe"
  sections = SECTIONS

  def eval_config(self, config, workdir):
    from jaxbench.heads import learn as heads_learn
    return heads_learn.eval_config(config, workdir)

  def phases(self, config, workdir):
    from jaxbench.heads import learn as heads_learn
    lines = heads_learn.describe(config, workdir)
    return lines + [f"  train set: {describe_set(str(config.linear_probe.train), config)}"]

  def prepare(self, config, workdir, mesh, print_fn=print):
    from jaxbench.heads import learn as heads_learn
    heads_learn.learn(config, workdir, mesh=mesh, print_fn=print_fn)

  def row_suite(self, config, transform, evalset):
    return "synthetic"


SUITES.register("linear_probe", LinearProbe)
