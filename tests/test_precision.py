"""The precision policy inside the compiled step (issue 17, item 3), checked on CPU.

The policy in force is read from the lowered StableHLO (every dot and convolution),
whatever JAX's global default is; the float32 step still matches PyTorch at 1e-4;
rows record the precision.
"""
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from jaxbench import models, parallel, precision as precision_lib, suites, transforms
from jaxbench.engine import step as step_lib
from jaxbench.model_setup import ConfigError
from jaxbench.zeroshot import head as head_lib
from tests.engine.helpers import _config, _write_folder

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


def test_validate_names_the_known_precisions(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  folder = _write_folder(str(tmp_path / "data"), n_per_class=2)
  with pytest.raises(ConfigError, match="'fp16'.*'float32'.*'tf32'.*'bfloat16'"):
    suites.validate(_config(model_dir, folder, precision="fp16"))


def test_rows_record_the_precision(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  folder = _write_folder(str(tmp_path / "data"), n_per_class=2)
  rows = suites.run(_config(model_dir, folder, precision="tf32"), str(tmp_path / "wd"))
  prov = rows[0]["provenance"]
  assert prov["precision"] == "tf32" and prov["matmul_precision"] == "tensorfloat32"
  assert prov["compute_dtype"] == "float32" and prov["backend"] == jax.default_backend()
  assert rows[0]["model_info"]["precision"] == "tf32"


def test_float32_is_described_as_highest():
  assert precision_lib.describe("float32")["matmul_precision"] == "highest"
