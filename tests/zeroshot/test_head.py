"""The zero-shot head: the formula, bucketing, caching, and PyTorch agreement."""
import zlib

import numpy as np
import pytest
import torch

from jaxbench import models
from jaxbench.models.api import Model, Preprocess
from jaxbench.zeroshot import build_head, head as head_lib, prompts


def _bag_of_tokens_model(num_classes=6, dim=16, seed=0):
  """Text embedding = sum of per-token vectors; image k encodes exactly head row k.

  The head is then known in closed form, and the model is perfect by construction.
  """
  rng = np.random.default_rng(seed)
  table = rng.normal(size=(49408, dim)).astype(np.float32)
  table[0] = 0.0   # padding contributes nothing
  names = [f"thing{i}" for i in range(num_classes)]
  temps = ["a photo of a {}.", "a drawing of the {}."]

  def tok(texts):
    ids = np.zeros((len(texts), 12), np.int32)
    for i, t in enumerate(texts):
      words = t.replace(".", " .").split()
      for j, w in enumerate(words):
        ids[i, j] = (zlib.crc32(w.encode()) % 40000) + 1
    return ids

  import jax.numpy as jnp

  def net_text(p, ids):
    return jnp.asarray(p["table"])[ids].sum(axis=1)

  def net_image(p, x):
    # Images are constant colour; the mean pixel (normalised) picks a class code.
    k = jnp.clip(jnp.round(x[:, 0, 0, 0] * 10).astype(jnp.int32), 0, num_classes - 1)
    return p["codes"][k]

  model = Model(name="bag", params={"net": {"table": table, "codes": None}},
                preprocess=Preprocess(size=4, resize=4, mean=(0, 0, 0), std=(1, 1, 1)),
                kind="zeroshot", net_image=net_image, net_text=net_text, tokenizer=tok,
                context_length=12)
  return model, names, temps, table


def test_head_is_the_renormalised_mean_of_template_embeddings():
  model, names, temps, table = _bag_of_tokens_model()
  head = build_head(model, names, temps, logit_scale=100.0)
  ids = model.tokenize(prompts.prompts(names, temps))
  z = table[ids].sum(1)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  want = z.reshape(len(names), len(temps), -1).mean(1)
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  np.testing.assert_allclose(head.weights, want, atol=1e-5)
  assert head.info()["num_templates"] == 2


def test_perfect_model_classifies_with_the_logit_scale():
  model, names, temps, table = _bag_of_tokens_model()
  head = build_head(model, names, temps, logit_scale=100.0)
  # Images whose embedding is head row k are classified as k with logit 100.
  codes = 3.0 * head.weights
  model = model.with_params({"net": {"table": table, "codes": codes}})
  clf = model.with_head(head)
  x = np.stack([np.full((4, 4, 3), k / 10, np.float32) for k in range(len(names))])
  logits = np.asarray(clf.apply(clf.params, x))
  np.testing.assert_array_equal(logits.argmax(1), np.arange(len(names)))
  np.testing.assert_allclose(np.diag(logits), 100.0, rtol=1e-5)


@pytest.fixture(scope="module")
def clip_head(tiny_clip, tmp_path_factory):
  """(model, torch reference, names, templates, head, cache dir) of the tiny CLIP."""
  d, ref = tiny_clip
  model = models.load(d)
  names = list(prompts.classnames("imagenet")[:12])
  temps = list(prompts.templates("clip7"))
  cache = tmp_path_factory.mktemp("heads")
  head = build_head(model, names, temps, cache_dir=str(cache))
  return model, ref, names, temps, head, cache


def test_head_matches_pytorch(clip_head):
  model, ref, names, temps, head, _ = clip_head
  # PyTorch reference: full 77-token context, no bucketing.
  ids = model.tokenize(prompts.prompts(names, temps))
  with torch.no_grad():
    z = ref.get_text_features(input_ids=torch.tensor(ids, dtype=torch.long))
  z = getattr(z, "pooler_output", z).numpy()
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  want = z.reshape(len(names), len(temps), -1).mean(1)
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  np.testing.assert_allclose(head.weights, want, atol=1e-5)
  assert head.logit_scale == pytest.approx(float(np.exp(ref.logit_scale.item())), rel=1e-6)


def test_bucketed_encoding_equals_the_full_context(clip_head):
  model, _, names, temps, _, _ = clip_head
  ids = model.tokenize(prompts.prompts(names, temps))
  full = head_lib.encode_prompts(model, ids, bucket=77)
  bucketed = head_lib.encode_prompts(model, ids, bucket=8, batch_size=5)
  np.testing.assert_allclose(full, bucketed, atol=1e-5)


def test_second_build_reads_the_cached_head(clip_head):
  model, _, names, temps, head, cache = clip_head
  # Cached: a second build reads the file (same key, same weights).
  cached = list(cache.glob("head_*.npz"))
  assert len(cached) == 1
  again = build_head(model, names, temps, cache_dir=str(cache))
  np.testing.assert_array_equal(again.weights, head.weights)
  assert again.key == head.key


def test_named_resources():
  assert len(prompts.classnames("imagenet")) == 1000
  assert len(prompts.templates("clip80")) == 80 and len(prompts.templates("clip7")) == 7
  assert prompts.templates("photo") == ("a photo of a {}.",)
  with pytest.raises(ValueError, match="unknown template set 'clip81'"):
    prompts.templates("clip81")
  with pytest.raises(ValueError, match="exactly one"):
    prompts.templates(["no placeholder"])


@pytest.fixture
def shared_head_cache(tmp_path):
  shared = tmp_path / "shared"
  head_lib.set_shared_cache_dir(str(shared))
  yield shared
  head_lib.set_shared_cache_dir("")


def _counting(model):
  """``model`` with a tokenizer that counts its calls (building a head tokenizes)."""
  import dataclasses
  calls = []

  def tok(texts):
    calls.append(len(texts))
    return model.tokenizer(texts)
  return dataclasses.replace(model, tokenizer=tok), calls


def test_shared_head_cache_serves_a_new_workdir(bag_model_with_hash, shared_head_cache,
                                                tmp_path):
  model, names, temps = bag_model_with_hash
  first = build_head(model, names, temps, cache_dir=str(tmp_path / "w1" / "heads"))
  counted, calls = _counting(model)
  again = build_head(counted, names, temps, cache_dir=str(tmp_path / "w2" / "heads"))
  assert calls == []   # read, not built
  np.testing.assert_array_equal(again.weights, first.weights)
  assert list((tmp_path / "w2" / "heads").glob("head_*.npz"))   # the workdir keeps a copy


def test_shared_head_cache_unused_without_weight_hash(bag_model_with_hash,
                                                      shared_head_cache, tmp_path):
  import dataclasses
  model, names, temps = bag_model_with_hash
  model = dataclasses.replace(model, provenance={})
  build_head(model, names, temps, cache_dir=str(tmp_path / "w1"))
  assert not shared_head_cache.exists() or not list(shared_head_cache.iterdir())


@pytest.fixture
def bag_model_with_hash():
  import dataclasses
  model, names, temps, _ = _bag_of_tokens_model()
  return (dataclasses.replace(model, provenance={"sha256": {"model.safetensors": "ab" * 32}}),
          names, temps)


# --- compiles per length bucket (moved from tests/test_accel.py) ------------------------


def _count_compiles():
  import jax
  events = []

  def listener(name, *unused, **unused_kw):
    if name == "/jax/core/compile/backend_compile_duration":
      events.append(name)
  jax.monitoring.register_event_duration_secs_listener(listener)
  return events, lambda: jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def stripe_prompts(tiny_clip):
  """(model, token ids, EOT lengths, full-context embeddings) of prompts of many lengths."""
  model_dir, _ = tiny_clip
  model = models.load(model_dir)
  # Class names of 1..12 words: prompts of about a dozen distinct token lengths.
  names = [" ".join(["stripe"] * k) for k in range(1, 13)] + ["cat"] * 20
  ids = model.tokenize([f"a photo of a {n}." for n in names])
  lengths = head_lib._eot_lengths(ids)
  full = head_lib.encode_prompts(model, ids, bucket=ids.shape[1])
  return model, ids, lengths, full


@pytest.fixture(scope="module", params=["accelerator", "cpu"])
def bucketed(request, stripe_prompts):
  """The accelerator buckets (a few fixed lengths) and CPU's default (even lengths):
  (bucket, lengths used, compile events, embeddings) of one bucketed encoding."""
  model, ids, lengths, _ = stripe_prompts
  bucket = head_lib.BUCKETS if request.param == "accelerator" else None
  used = set(head_lib.bucket_lengths(lengths, ids.shape[1], bucket).tolist())
  head_lib._jit_text.cache_clear()
  events, stop = _count_compiles()
  try:
    z = head_lib.encode_prompts(model, ids, batch_size=8, bucket=bucket)
  finally:
    stop()
  return bucket, used, events, z


def test_prompts_span_a_dozen_token_lengths(stripe_prompts):
  _, _, lengths, _ = stripe_prompts
  assert len(set(lengths.tolist())) >= 10


def test_bucket_lengths_are_few_and_positive(bucketed):
  bucket, used, _, _ = bucketed
  assert all(u >= 1 for u in used) and (bucket is None or len(used) <= len(bucket) + 1)


def test_head_compiles_at_most_one_program_per_bucket(bucketed):
  bucket, used, events, _ = bucketed
  assert 1 <= len(events) <= len(used), (bucket, len(events), used)


def test_bucketing_is_exact(bucketed, stripe_prompts):
  # The same embeddings as the full context.
  np.testing.assert_allclose(bucketed[3], stripe_prompts[3], atol=1e-5)
