"""Accelerator-facing behaviour that CI can check on CPU (issue 17, items 3-5).

* precision: the policy in force inside the compiled step, read from the lowered
  StableHLO (every dot and convolution), whatever JAX's global default is; the
  float32 step still matches PyTorch at 1e-4; rows record the precision.
* compilation: head building compiles at most one program per length bucket;
  a second pass with the same model and shapes reuses the compiled step.
* start-up and progress: phase lines before the first batch, a live bar on a TTY.
"""
import io
import logging
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from jaxbench import models, parallel, precision as precision_lib, progress, suites, transforms
from jaxbench.engine import step as step_lib
from jaxbench.model_setup import ConfigError
from jaxbench.zeroshot import head as head_lib
from tests.engine.helpers import _config, _write_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OPS = re.compile(r"stablehlo\.(dot_general|convolution)[^\n]*")


def _ops_and_precisions(text: str) -> list[tuple[str, str]]:
  """(op, precision) of every dot_general / convolution in StableHLO text."""
  out = []
  for m in _OPS.finditer(text):
    line = m.group(0)
    p = re.search(r"precision = \[(\w+), (\w+)\]", line) or \
        re.search(r"precision_config = \[#stablehlo<precision (\w+)>, "
                  r"#stablehlo<precision (\w+)>\]", line)
    assert p is not None and p.group(1) == p.group(2), line
    out.append((m.group(1), p.group(1)))
  return out


def _lowered_step(model_dir, precision, transform="clean"):
  """StableHLO text of the runner's compiled step for a tiny CLIP with a head."""
  model = models.load(model_dir) if precision == "float32" else \
      models.load(model_dir, precision=precision)
  head = head_lib.build_head(model, ["cat", "dog", "fish"], ["a photo of a {}."])
  model = model.with_head(head)
  mesh = parallel.make_mesh(1, 1, devices=jax.devices()[:1])
  params = parallel.put_params(model.params, mesh)
  t = transforms.get(transform).bind(model)
  step = step_lib.make_step(model, t, mesh, seed=0, project=None, multilabel=False,
                            num_classes=3, param_shardings=jax.tree.map(lambda a: a.sharding,
                                                                        params))
  n, s = 2, model.preprocess.size
  batch = {"image": np.zeros((n, s, s, 3), np.uint8), "label": np.zeros(n, np.int32),
           "index": np.arange(n, dtype=np.int64), "uid": np.arange(n, dtype=np.uint32),
           "mask": np.ones(n, bool), "bad": np.zeros(n, bool)}
  counts = {"n": jnp.int32(0), "correct1": jnp.int32(0), "correct5": jnp.int32(0)}
  # A global default other than the policy's own: the step must not depend on it.
  with jax.default_matmul_precision("bfloat16"):
    return step.lower(params, counts, batch).as_text()


@pytest.mark.parametrize("policy,want", [("float32", "HIGHEST"), ("tf32", "HIGH")])
def test_step_lowers_every_dot_at_the_policy(tiny_clip, policy, want):
  model_dir, _ = tiny_clip
  ops = _ops_and_precisions(_lowered_step(model_dir, policy))
  # Patch embedding, attention, MLPs, projections and the head: all matmuls.
  assert sum(o == "dot_general" for o, _ in ops) >= 10
  assert {p for _, p in ops} == {want}, ops


@pytest.mark.parametrize("policy,want", [("float32", "HIGHEST"), ("tf32", "HIGH"),
                                         ("bfloat16", "DEFAULT")])
def test_convolutions_follow_the_policy(policy, want):
  """A convolutional classifier's apply lowers its convolutions at the policy."""
  import flax.linen as nn
  from jaxbench.models import api, layers

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(layers.conv(8, 3, name="conv1")(x))
      return nn.Dense(4, name="fc")(x.mean(axis=(1, 2)))
  x = np.zeros((2, 16, 16, 3), np.float32)
  params = Net().init(jax.random.key(0), x)["params"]
  model = layers.supervised_model(Net(), params, api.Preprocess(size=16, resize=16),
                                  name="net", num_classes=4, provenance={},
                                  precision=policy)
  grad = jax.grad(lambda p, x: model.apply(p, x).sum(), argnums=1)
  with jax.default_matmul_precision("bfloat16" if policy != "bfloat16" else "highest"):
    text = jax.jit(grad).lower(model.params, x).as_text()
  ops = _ops_and_precisions(text)
  assert sum(o == "convolution" for o, _ in ops) >= 2      # forward and input gradient
  assert {p for _, p in ops} == {want}, ops


def test_float32_attack_gradient_is_highest_too(tiny_clip):
  """FGSM's backward pass (the transposed dots) keeps HIGHEST."""
  model_dir, _ = tiny_clip
  text = _lowered_step(model_dir, "float32", "attack:fgsm(eps=0.03)")
  ops = _ops_and_precisions(text)
  forward = _ops_and_precisions(_lowered_step(model_dir, "float32"))
  assert len(ops) > 2 * len(forward)        # clean, attack forward and backward, final
  assert {p for _, p in ops} == {"HIGHEST"}


def test_bfloat16_step_runs_bf16_dots(tiny_clip):
  model_dir, _ = tiny_clip
  text = _lowered_step(model_dir, "bfloat16")
  dots = [m.group(0) for m in _OPS.finditer(text)]
  assert {p for _, p in _ops_and_precisions(text)} == {"DEFAULT"}
  # The towers' matmuls take bf16 operands (only the head's cosine is float32).
  assert sum("bf16" in d.split("->")[0] for d in dots) >= len(dots) - 2


def test_float32_embedding_matches_pytorch_under_a_lax_global_default(tiny_clip):
  model_dir, ref = tiny_clip
  model = models.load(model_dir)
  x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
  with jax.default_matmul_precision("bfloat16"):     # the policy overrides it
    z = np.asarray(jax.jit(model.encode_image)(model.params, x))
  mean, std = np.asarray(model.preprocess.mean), np.asarray(model.preprocess.std)
  xt = torch.tensor(((x - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
  with torch.no_grad():
    want = ref.get_image_features(pixel_values=xt)
  want = getattr(want, "pooler_output", want).numpy()
  np.testing.assert_allclose(z, want, atol=1e-4, rtol=0)


def test_precision_values_and_provenance(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  folder = _write_folder(str(tmp_path / "data"), n_per_class=2)
  with pytest.raises(ConfigError, match="'fp16'.*'float32'.*'tf32'.*'bfloat16'"):
    suites.validate(_config(model_dir, folder, precision="fp16"))
  rows = suites.run(_config(model_dir, folder, precision="tf32"), str(tmp_path / "wd"))
  prov = rows[0]["provenance"]
  assert prov["precision"] == "tf32" and prov["matmul_precision"] == "tensorfloat32"
  assert prov["compute_dtype"] == "float32" and prov["backend"] == jax.default_backend()
  assert rows[0]["model_info"]["precision"] == "tf32"
  assert precision_lib.describe("float32")["matmul_precision"] == "highest"


def _count_compiles():
  events = []

  def listener(name, *unused, **unused_kw):
    if name == "/jax/core/compile/backend_compile_duration":
      events.append(name)
  jax.monitoring.register_event_duration_secs_listener(listener)
  return events, lambda: jax.monitoring.unregister_event_duration_listener(listener)


def test_head_compiles_at_most_one_program_per_bucket(tiny_clip):
  model_dir, _ = tiny_clip
  model = models.load(model_dir)
  # Class names of 1..12 words: prompts of about a dozen distinct token lengths.
  names = [" ".join(["stripe"] * k) for k in range(1, 13)] + ["cat"] * 20
  ids = model.tokenize([f"a photo of a {n}." for n in names])
  lengths = head_lib._eot_lengths(ids)
  assert len(set(lengths.tolist())) >= 10
  full = head_lib.encode_prompts(model, ids, bucket=ids.shape[1])
  # The accelerator buckets (a few fixed lengths) and CPU's default (even lengths).
  for bucket in (head_lib.BUCKETS, None):
    used = set(head_lib.bucket_lengths(lengths, ids.shape[1], bucket).tolist())
    assert all(u >= 1 for u in used) and (bucket is None or len(used) <= len(bucket) + 1)
    head_lib._jit_text.cache_clear()
    events, stop = _count_compiles()
    try:
      z = head_lib.encode_prompts(model, ids, batch_size=8, bucket=bucket)
    finally:
      stop()
    assert 1 <= len(events) <= len(used), (bucket, len(events), used)
    # Bucketing is exact: the same embeddings as the full context.
    np.testing.assert_allclose(z, full, atol=1e-5)


def test_second_pass_reuses_the_compiled_step(tiny_clip, tmp_path, caplog):
  model_dir, _ = tiny_clip
  a = _write_folder(str(tmp_path / "a"), n_per_class=3)
  b = _write_folder(str(tmp_path / "b"), n_per_class=2)
  cfg = _config(model_dir, a, datasets=(f"image_folder(root={a!r})",
                                        f"image_folder(root={b!r})"), batch_size=4)
  step_lib._STEPS.clear()
  caplog.set_level(logging.INFO)
  rows = suites.run(cfg, str(tmp_path / "wd"))
  assert len({r["dataset"] for r in rows}) == 2
  # One jitted step for both passes (new head, same shapes), compiled once.
  assert len(step_lib._STEPS) == 1
  (step,) = step_lib._STEPS.values()
  assert step._cache_size() == 1
  text = caplog.text
  assert "pass 1/2" in text and "pass 2/2" in text
  assert "compiled the step and ran the first batch" in text
  assert "ran the first batch (step already compiled)" in text
  assert re.search(r"loading model .*: done in [\d.]+ s", text)
  assert "building the zero-shot head" in text and "prompts/s" in text


def test_live_bar_on_a_terminal_and_log_lines_elsewhere(caplog):
  progress.start_run(3)
  out = io.StringIO()
  bar = progress.PassBar("m | d | clean", 100, 4, stream=out, live=True)
  bar.first_batch(25, 2.0, compiled=True)
  for b in (2, 3, 4):
    bar.update(b, 25 * b)
  bar.close()
  text = out.getvalue()
  assert text.count("\r") >= 1 and "pass 1/3 m | d | clean" in text
  assert "100/100" in text and "img/s" in text and "ETA" in text
  caplog.set_level(logging.INFO)
  plain = progress.PassBar("m | d | clean", 100, 4, stream=io.StringIO(), live=False,
                           log_every=2)
  plain.first_batch(25, 1.0, compiled=False)
  plain.update(2, 50)
  assert "pass 2/3 m | d | clean: batch 2/4" in caplog.text
  assert progress.fmt_seconds(3725) == "1:02:05" and progress.fmt_seconds(65) == "1:05"


def test_persistent_compilation_cache_writes_entries(tmp_path):
  """main.configure_compilation_cache: a fresh process compiles into the cache dir."""
  cache = tmp_path / "xla"
  code = ("import jax, jax.numpy as jnp\n"
          "from jaxbench import main\n"
          f"main.configure_compilation_cache({str(cache)!r}, min_compile_secs=0.0)\n"
          "jax.jit(lambda x: jnp.tanh(x) @ x)(jnp.ones((64, 64))).block_until_ready()\n")
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
  assert any(cache.iterdir())


@pytest.mark.parametrize("size,bias", [(32, False), (35, True)])
def test_patch_embed_equals_the_strided_convolution(size, bias):
  """PatchEmbed (one matmul) == nn.Conv(p x p, stride p, VALID) on the same params,
  values and input gradients, a partial border dropped as VALID drops it."""
  import flax.linen as nn
  from jaxbench.models import layers
  x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
  conv = nn.Conv(16, (8, 8), strides=(8, 8), padding="VALID", use_bias=bias)
  patch = layers.PatchEmbed(16, 8, use_bias=bias)
  params = conv.init(jax.random.key(0), x)
  if bias:
    params = jax.tree.map(lambda a: a + 0.5, params)
  # Same parameter tree and same seeded init.
  assert jax.tree.map(np.shape, patch.init(jax.random.key(0), x)) == \
      jax.tree.map(np.shape, params)
  np.testing.assert_array_equal(patch.init(jax.random.key(0), x)["params"]["kernel"],
                                conv.init(jax.random.key(0), x)["params"]["kernel"])
  with jax.default_matmul_precision("highest"):
    want, got = conv.apply(params, x), patch.apply(params, x)
    gw = jax.grad(lambda x: (conv.apply(params, x) ** 2).sum())(x)
    gg = jax.grad(lambda x: (patch.apply(params, x) ** 2).sum())(x)
  assert got.shape == want.shape == (2, size // 8, size // 8, 16)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(gg, gw, atol=1e-4, rtol=1e-5)
