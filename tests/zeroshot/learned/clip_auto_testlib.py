"""Shared pieces of the CLIP-Auto tests: a tiny CLIP whose accuracy prompts can raise.

A random tiny CLIP (transformers layout, real BPE tokenizer, made by the
conftest's ``make_tiny_clip``; its PyTorch twin is the numerical reference) has
one 16x16 patch, so its image tower is a near-linear map of the pixels. Its
image projection alone is fitted on five classes of scikit-learn's 8x8 digits so
that the images align with the class prompts under a *hidden* 4-token prompt
(RoZ's published ViT-B/32 prompt). Starting from 'a photo of a' (about 80%
training accuracy) a prompt learner has accuracy to gain.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax

NAMES = ("zero", "one", "two", "three", "four")
HIDDEN = (1848, 1664, 653, 912)   # "awesome cooingled": RoZ's top ViT-B/32 prompt
START = (320, 1125, 539, 320)     # "a photo of a"
SIZE = 16
# A RoZ prompt log (token ids, one prompt per line): three prompts, counts 3, 2, 1.
ROZ_LOG = ("1848 1664 653 912\n7395 16694 7811 320\n1848 1664 653 912\n\n"
           "2689 1381 34383 550\n7395 16694 7811 320\n1848 1664 653 912\n")


@dataclasses.dataclass(frozen=True, eq=False)
class Trained:
  model_dir: str         # the random model (transformers layout)
  torch_ref: object      # its PyTorch twin (eval mode)
  model: object          # jaxbench Model with the fitted image projection
  images: np.ndarray     # uint8 (N, 16, 16, 3)
  labels: np.ndarray     # int32 (N,)
  feats: np.ndarray      # float32 (N, D) unit image features of ``model``
  projection: np.ndarray  # fitted (vision width, D) kernel


def digit_images(size: int = SIZE, num_classes: int = len(NAMES)):
  """uint8 (N, size, size, 3) digits (8x8 upscaled by pixel repetition) and labels."""
  from sklearn.datasets import load_digits
  x, y = load_digits(return_X_y=True)
  keep = y < num_classes
  img = (x[keep].reshape(-1, 8, 8) / 16.0 * 255).astype(np.uint8)
  r = size // 8
  img = np.repeat(np.repeat(img, r, 1), r, 2)[..., None].repeat(3, -1)
  return np.ascontiguousarray(img), y[keep].astype(np.int32)


def _tmpdir() -> str:
  d = tempfile.mkdtemp(prefix="clip_auto_test_")
  atexit.register(shutil.rmtree, d, ignore_errors=True)
  return d


@functools.lru_cache(maxsize=None)
def trained() -> Trained:
  """The tiny CLIP with its image projection fitted to the hidden prompt (built once)."""
  from conftest import make_tiny_clip
  from jaxbench import models
  from jaxbench.zeroshot.learned import heads
  model_dir = os.path.join(_tmpdir(), "tiny_auto_clip")
  ref = make_tiny_clip(model_dir, image_size=SIZE, patch_size=SIZE, width=64, text_width=32,
                       layers=1, projection_dim=16)
  model = models.load(model_dir)
  images, labels = digit_images()
  net = model.params["net"]
  x = model.preprocess.normalize(jnp.asarray(images, jnp.float32) / 255.0)
  pooled = jax.jit(lambda p, x: model.arch.apply(
      {"params": p}, x, method=lambda m, x: m.vision_model(x)))(net, x)
  target = jnp.asarray(heads.trigger_head(model, [HIDDEN], NAMES, logit_scale=100.0).weights)

  def loss(w):
    z = pooled @ w
    z = z / jnp.linalg.norm(z, axis=1, keepdims=True)
    return optax.softmax_cross_entropy_with_integer_labels(100.0 * z @ target.T, labels).mean()

  opt = optax.adam(0.02)

  @jax.jit
  def fit(w):
    def step(carry, _):
      w, s = carry
      u, s = opt.update(jax.grad(loss)(w), s)
      return (optax.apply_updates(w, u), s), None
    (w, _), _ = jax.lax.scan(step, (w, opt.init(w)), None, length=400)
    return w

  w = np.asarray(fit(jnp.asarray(net["visual_projection"]["kernel"])))
  model = model.with_params({**model.params,
                             "net": {**net, "visual_projection": {"kernel": w}}})
  feats = np.array(pooled @ w)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  return Trained(model_dir=model_dir, torch_ref=ref, model=model, images=images,
                 labels=labels, feats=feats, projection=w)


def save_trained_dir(t: Trained, out_dir: str) -> str:
  """The fitted model as a transformers checkpoint directory (for config runs)."""
  import copy
  import torch
  from jaxbench.zeroshot import tokenizer
  ref = copy.deepcopy(t.torch_ref)
  with torch.no_grad():
    ref.visual_projection.weight.copy_(torch.tensor(t.projection.T))
  ref.save_pretrained(out_dir)
  tokenizer.write_transformers_files(out_dir)
  with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
    json.dump({"crop_size": {"height": SIZE, "width": SIZE}, "size": {"shortest_edge": SIZE},
               "resample": 3, "do_center_crop": True,
               "image_mean": [0.48145466, 0.4578275, 0.40821073],
               "image_std": [0.26862954, 0.26130258, 0.27577711]}, f)
  return out_dir


def kshot_features(t: Trained, k: int, seed: int = 0):
  """(split, features, labels) of a k-shot split of the digits."""
  from jaxbench.data import kshot, sources
  src = sources.ArraySource(t.images, t.labels, id_format="digit{:04d}")
  split = kshot.draw(src, k, seed)
  return split, t.feats[split.indices], t.labels[split.indices]


# Small enough to run in well under a second per search. Every search here runs on
# the 8 simulated devices (image rows and class prompts sharded over 'data'): one
# compilation of the search step serves all tests.
def autoprompt_config(**overrides):
  from jaxbench.zeroshot.learned import autoprompt
  return autoprompt.AutoPromptConfig(**{**dict(num_tokens=4, iterations=10, restarts=2,
                                                num_candidates=16, batch_size=16,
                                                accumulation_steps=5, top_n=1, seed=0),
                                        **overrides})


# 16 shots x 5 classes = 80 rows, 5 batches of 16 per epoch (one compiled epoch).
def coop_config(**overrides):
  from jaxbench.zeroshot.learned import coop
  return coop.CoopConfig(**{**dict(num_tokens=4, epochs=12, batch_size=16, lr=1e-3,
                                   logit_scale="model", seed=0), **overrides})


@functools.lru_cache(maxsize=None)
def mesh8():
  from jaxbench import parallel
  return parallel.make_mesh(8, 1)


@functools.lru_cache(maxsize=None)
def searched():
  """(split, feats, labels, result) of one AutoPrompt search on the 16-shot digits
  (shared by the tests of the search and of its artifact)."""
  from jaxbench.zeroshot.learned import autoprompt
  t = trained()
  split, feats, labels = kshot_features(t, k=16)
  res = autoprompt.search(t.model, feats, labels, NAMES, autoprompt_config(), mesh=mesh8())
  return split, feats, labels, res


@functools.lru_cache(maxsize=None)
def coop_trained():
  """(split, feats, labels, result) of one CoOp training on the 16-shot digits."""
  from jaxbench.zeroshot.learned import coop
  t = trained()
  split, feats, labels = kshot_features(t, k=16)
  return split, feats, labels, coop.train(t.model, feats, labels, NAMES, coop_config())
