"""Trained heads on frozen backbones: linear probes and head-only training.

* :mod:`features`: a backbone's image features (zero-shot embeddings or a
  supervised model's pooled penultimate features), computed once, stored in
  resumable shards, with the identity (model, preprocessing) they came from.
* :mod:`logreg`: L2 multinomial logistic regression (L-BFGS) and the CLIP
  paper's C sweep on a validation split carved by (seed, example id).
* :mod:`train_head`: mini-batch AdamW head training on fixed features (RoZ's
  ``:roz`` preset and a clean default); :mod:`bn_train`: the same with the
  backbone's BatchNorm in train mode (RoZ's ``model.train()``).
* :mod:`artifact`: a trained head on disk (safetensors + content hash).
* :mod:`model`: a head artifact as a :class:`jaxbench.models.Model` (spec
  ``probe:PATH``), so every suite and attack runs on backbone + head.
* :mod:`learn`: the learning phase of ``configs/linear_probe.py`` (the runner's hook).
"""
