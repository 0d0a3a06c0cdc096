"""FSDP parameter sharding over the 'model' mesh axis: same logits as replicated evaluation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxbench.models import api, clip, layers, openclip, sharding, vit


def test_leaf_spec_rule():
  """Largest dimension the axis divides (later one on ties); small or indivisible replicate."""
  assert sharding.leaf_spec((768, 3072), 4, min_size=1) == P(None, "model")
  assert sharding.leaf_spec((3072, 768), 4, min_size=1) == P("model")
  assert sharding.leaf_spec((512, 512), 8, min_size=1) == P(None, "model")
  assert sharding.leaf_spec((3, 3, 64, 6), 4, min_size=1) == P(None, None, "model")
  assert sharding.leaf_spec((7, 9), 4, min_size=1) == P()
  assert sharding.leaf_spec((768, 3072), 4) == P(None, "model")      # 2.4M >= default min
  assert sharding.leaf_spec((768,), 4) == P()                         # below min_size
  assert sharding.leaf_spec((768, 3072), 1, min_size=1) == P()        # no model axis to use


def _mesh(data, model):
  devs = np.asarray(jax.devices()[: data * model]).reshape(data, model)
  return Mesh(devs, ("data", "model"))


def _random_params(module, *inputs, seed=0):
  """NumPy random params of the module's shapes (initialising through XLA compiles a
  random-number graph per leaf: slow on CPU). BN variances positive."""
  rng = np.random.default_rng(seed)
  shapes = layers.param_shapes(module, *inputs)

  def draw(path, s):
    if str(getattr(path[-1], "key", "")) == "var":
      return rng.uniform(0.5, 1.5, s.shape).astype(np.float32)
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 100
    return (rng.standard_normal(s.shape) / np.sqrt(fan_in)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _models():
  """A supervised ViT and a zero-shot CLIP RN with random weights (no files)."""
  t = clip.TowerConfig(width=64, layers=2, heads=4, mlp_dim=128, act="gelu", eps=1e-6)
  vmod = vit.ViT(vit.ViTConfig(tower=t, image_size=32, patch_size=8, num_classes=12))
  vp = _random_params(vmod, jnp.zeros((1, 32, 32, 3)))
  sup = layers.supervised_model(vmod, vp, api.Preprocess(size=32, resize=32), name="vit",
                                num_classes=12, provenance={})
  ocs = openclip.parse_config(dict(embed_dim=16, vision_cfg=dict(
      image_size=64, layers=[1, 1, 1, 1], width=16), text_cfg=dict(
          context_length=8, vocab_size=40, width=32, heads=2, layers=1)))
  rmod = openclip.ClipResNet(ocs.clip_cfg, ocs.resnet)
  rp = _random_params(rmod, jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 8), jnp.int32), seed=1)
  zs = layers.zeroshot_model(rmod, rp, api.Preprocess(size=64, resize=64), name="rn",
                             provenance={}, tokenizer=None, context_length=8)
  return sup, zs


def test_sharded_equals_replicated_on_8_devices():
  """(data=2, model=4): batches split in 2, large weights in 4; logits as replicated."""
  assert len(jax.devices()) >= 8
  model_axis = 4
  mesh = _mesh(2, model_axis)
  sup, zs = _models()
  x32 = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3))
  x64 = jax.random.uniform(jax.random.key(3), (4, 64, 64, 3))
  batch = NamedSharding(mesh, P("data"))
  for m, x, fn in ((sup, x32, sup.apply), (zs, x64, zs.encode_image)):
    shardings = sharding.param_shardings(m.params, mesh, min_size=1024)
    assert sharding.sharded_fraction(m.params, shardings) > 0.5
    sharded = jax.device_put(m.params, shardings)
    big = max(jax.tree.leaves(sharded), key=lambda a: a.size)
    assert big.addressable_shards[0].data.size == big.size // model_axis   # really split
    replicated = jax.device_put(m.params, NamedSharding(mesh, P()))
    xs = jax.device_put(x, batch)
    f = jax.jit(fn)
    a, b = np.asarray(f(sharded, xs)), np.asarray(f(replicated, xs))
    assert np.abs(a).max() > 1e-3
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_mesh_without_model_axis_is_refused():
  mesh = Mesh(np.asarray(jax.devices()[:2]), ("data",))
  with pytest.raises(ValueError, match="no 'model' axis"):
    sharding.param_shardings({"w": jnp.zeros((4, 4))}, mesh)
