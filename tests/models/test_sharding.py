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


# --- the OpenCLIP families of the large towers ---------------------------------------

FULL_SIZE = ["EVA02-E-14", "ViT-bigG-14", "ViT-SO400M-14-SigLIP", "convnext_xxlarge"]


@pytest.mark.parametrize("name", FULL_SIZE)
def test_fsdp_rule_splits_every_large_leaf_of_the_full_size_towers(tmp_path, name):
  """Leaf names and shapes differ between families (fused or split q/k/v, SwiGLU, 4-D
  depthwise kernels, 4304-wide MLPs, 49408-row embeddings): every leaf the rule deems
  large finds a dimension the model axis divides, on the real config's parameter tree."""
  import json
  import open_clip
  from jaxbench.models import footprint
  (tmp_path / "open_clip_config.json").write_text(json.dumps(
      {"model_cfg": open_clip.get_model_config(name)}))
  shapes, _, _ = footprint.model_shapes(str(tmp_path))
  for n in (4, 8):
    unsplit = [(jax.tree_util.keystr(p), s.shape)
               for p, s in jax.tree_util.tree_leaves_with_path(shapes)
               if s.size >= sharding.DEFAULT_MIN_SIZE and sharding.leaf_spec(s.shape, n) == P()]
    assert not unsplit, (name, n, unsplit)


TEXT = dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1)
REDUCED = {  # one reduced config per family of the large towers (jaxbench-side trunks)
    "eva02_e": (dict(embed_dim=16, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_shard_eva", timm_pool="token", timm_proj=None,
        image_size=32), text_cfg=TEXT),
        ("eva", dict(width=64, depth=1, heads=2, patch=8, image_size=32, mlp_ratio=4 * 2 / 3,
                     qkv_fused=False, swiglu=True, scale_mlp=True, scale_attn_inner=True,
                     rope=True, ref_feat_shape=(2, 2)))),
    "so400m": (dict(embed_dim=64, init_logit_bias=-10, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_shard_siglip", timm_pool="map", timm_proj="none",
        image_size=32), text_cfg=dict(TEXT, width=64, no_causal_mask=True, proj_bias=True,
                                      pool_type="last")),
        ("vit", dict(width=64, depth=1, heads=4, patch=8, image_size=32, class_token=False,
                     global_pool="map", act="gelu_pytorch_tanh"))),
    "convnext_xxlarge": (dict(embed_dim=16, vision_cfg=dict(
        timm_model_name="zootest_shard_convnext", timm_pool="", timm_proj="mlp",
        image_size=64), text_cfg=TEXT),
        ("convnext", dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64)))),
    "vit_bigg": (dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=64,
                                                    patch_size=8, head_width=32), text_cfg=TEXT),
                 None),
}


def _reduced(family):
  from jaxbench.models import openclip_timm
  model_cfg, trunk = REDUCED[family]
  if trunk is None:
    spec = openclip.parse_config(model_cfg, source=family)
    module, size, ctx = clip.CLIP(spec.clip_cfg), 32, 8
  else:
    openclip_timm.register_trunk(model_cfg["vision_cfg"]["timm_model_name"], trunk[0], **trunk[1])
    cfg = openclip_timm.parse(model_cfg, quick_gelu=None, source=family)
    module, size, ctx = openclip_timm.TimmClip(cfg), cfg.image_size, cfg.text.context_length
  params = _random_params(module, jnp.zeros((1, size, size, 3)), jnp.zeros((1, ctx), jnp.int32),
                          seed=len(family))
  return module, params, size


@pytest.mark.parametrize("family", sorted(REDUCED))
def test_openclip_large_tower_families_shard_over_model_and_match_replicated(family):
  """A reduced model of each family on (data=2, model=4): every leaf the rule splits has
  addressable shards of 1/4 along that dimension, and image embeddings equal the
  replicated run's."""
  module, params, size = _reduced(family)
  mesh, n, min_size = _mesh(2, 4), 4, 512
  shardings = sharding.param_shardings(params, mesh, min_size=min_size)
  sharded = jax.device_put(params, shardings)
  for path, leaf in jax.tree_util.tree_leaves_with_path(sharded):
    spec = sharding.leaf_spec(leaf.shape, n, min_size=min_size)
    want = tuple(d // n if i < len(spec) and spec[i] == "model" else d
                 for i, d in enumerate(leaf.shape))
    assert leaf.addressable_shards[0].data.shape == want, (jax.tree_util.keystr(path), spec)
    if leaf.size >= 4 * min_size:      # every big leaf really is split
      assert want != leaf.shape, jax.tree_util.keystr(path)
  assert sharding.sharded_fraction(params, shardings) > 0.8
  replicated = jax.device_put(params, NamedSharding(mesh, P()))
  x = jax.device_put(jax.random.uniform(jax.random.key(5), (4, size, size, 3)),
                     NamedSharding(mesh, P("data")))
  f = jax.jit(lambda p, x: module.apply({"params": p}, x, method="encode_image"))
  a, b = np.asarray(f(sharded, x)), np.asarray(f(replicated, x))
  assert np.abs(a).max() > 1e-3
  np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(b).max(), rtol=1e-5)
