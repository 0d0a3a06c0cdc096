"""MobileCLIP's FastViT MCi trunks (MobileCLIP-S*, MobileCLIP2-S*) against open_clip and timm.

* Parity: reduced MCi trunks (1-2 blocks per stage, widths 8-64) registered under
  new names in timm *and* jaxbench, a four-stage MCi0-2-style trunk (BatchNorm
  before attention, squeeze-excite downsampling) and a five-stage MCi3/4-style
  one (LayerNorm2d, no stem scale branch), in OpenCLIP configs shaped like
  MobileCLIP2-S0/S4; random weights (BatchNorm running statistics included)
  written by open_clip in the hub layout, loaded with ``jaxbench.models.load``:
  image and text embeddings within 1e-4 of open_clip's (eval mode, fp32).
* Re-parameterisation: the load-time fusion against timm's ``reparameterize_model``
  tensor by tensor, and a checkpoint saved in timm's reparameterised form loads too.
* Bad checkpoints: a missing or mis-shaped branch tensor is named with both shapes.
* Full size: tensor names and shapes of all six configs against open_clip on the
  meta device; the trunk table against timm's own fastvit_mci0..4.
"""
import functools
import os

import jax
import numpy as np
import open_clip
import pytest
import timm
import torch

from tests.models import zoo_helpers as H
from jaxbench import models
from jaxbench.models import layers, openclip_fastvit, openclip_timm

TEXT = dict(context_length=16, vocab_size=64, width=32, heads=4, layers=2, no_causal_mask=True)
# timm constructor arguments of the reduced trunks (fastvit.py's MCi recipes, smaller).
SMALL = {
    "zootest_fastvit_mci": dict(
        layers=(1, 1, 2, 2), embed_dims=(8, 16, 32, 64), mlp_ratios=(3,) * 4,
        se_downsamples=(False, False, True, True), token_mixers=("repmixer",) * 3 + ("attention",),
        pos_embs=(None,) * 3 + ("cpe",), lkc_use_act=True),
    "zootest_fastvit_mci_l": dict(
        layers=(1, 1, 1, 1, 2), embed_dims=(8, 16, 32, 32, 64), mlp_ratios=(4,) * 5,
        se_downsamples=(False,) * 5, downsamples=(False,) + (True,) * 4,
        token_mixers=("repmixer",) * 3 + ("attention",) * 2, pos_embs=(None,) * 3 + ("cpe",) * 2,
        lkc_use_act=True, norm_layer="layernorm2d", stem_use_scale_branch=False),
}
SIZES = {"zootest_fastvit_mci": 64, "zootest_fastvit_mci_l": 128}   # total stride 32 / 64


def _timm_kwargs(name):
  from timm.layers import LayerNorm2d
  from timm.models.fastvit import RepConditionalPosEnc
  kw = dict(SMALL[name])
  kw["pos_embs"] = tuple(functools.partial(RepConditionalPosEnc, spatial_shape=(7, 7)) if p
                         else None for p in kw["pos_embs"])
  if kw.get("norm_layer") == "layernorm2d":
    kw["norm_layer"] = functools.partial(LayerNorm2d, eps=1e-5)
  return kw


def _jaxbench_cfg(name):
  kw = SMALL[name]
  return dict(layers=kw["layers"], dims=kw["embed_dims"], mixers=kw["token_mixers"],
              mlp_ratios=kw["mlp_ratios"], se_downsamples=kw["se_downsamples"],
              pos_embs=tuple(bool(p) for p in kw["pos_embs"]),
              downsamples=kw.get("downsamples", (False, True, True, True)),
              attn_norm="layernorm" if "norm_layer" in kw else "batchnorm",
              stem_scale=kw.get("stem_use_scale_branch", True))


def _register():
  from timm.models import register_model
  for name in SMALL:
    openclip_timm.register_trunk(name, "fastvit", **_jaxbench_cfg(name))
    if name not in timm.list_models("zootest_fastvit*"):
      register_model(_factory(name))


def _factory(name):
  from timm.models.fastvit import _create_fastvit

  def make(pretrained=False, **kw):
    return _create_fastvit(name, pretrained=False, **dict(_timm_kwargs(name), **kw))
  make.__name__ = name
  make.__module__ = __name__
  return make


def _config(trunk, proj=None, embed=24):
  return dict(embed_dim=embed, custom_text=True, text_cfg=TEXT, vision_cfg=dict(
      timm_model_name=trunk, timm_model_pretrained=False, timm_pool="avg", timm_proj=proj,
      timm_drop=0.0, timm_drop_path=0.0, image_size=SIZES[trunk]))


def _sharpen(ref, seed):
  """Redraws the linear layers timm initialises at std 0.02 (attention q/k/v, projections,
  classifier) at N(0, 1/fan_in): at std 0.02 attention is near uniform and the embeddings
  near zero, where a wrong head split or projection would hide under the tolerance."""
  g = torch.Generator().manual_seed(seed + 100)
  with torch.no_grad():
    for name, t in ref.named_parameters():
      if t.ndim == 2 and name.startswith("visual."):
        t.copy_(torch.randn(t.shape, generator=g) / t.shape[1] ** 0.5)


def _make(d, model_cfg, seed=0):
  _register()
  name = f"zoo-fastvit-{os.path.basename(d)}"
  H.register_openclip_config(d + "_cfg", name, model_cfg)
  ref = open_clip.create_model(name, pretrained=None)
  H.randomize(ref, seed)                 # BatchNorm running stats nonzero, gammas O(1)
  _sharpen(ref, seed)
  H.save_openclip(ref, model_cfg, d, preprocess_cfg={"mean": [0.5, 0.4, 0.3],
                                                    "std": [0.2, 0.25, 0.3]})
  return ref


_ids = H.token_ids


def _check_parity(model, ref, size):
  x = H.images(2, size, seed=4)
  ids = _ids(3, TEXT["context_length"], TEXT["vocab_size"])
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long)).numpy()
  gi = np.asarray(jax.jit(model.encode_image)(model.params, x))
  gt = np.asarray(jax.jit(model.encode_text)(model.params, ids))
  assert np.abs(zi).max() > 0.1 and np.abs(zt).max() > 0.1
  assert H.max_abs(gi, zi) < 1e-4 * np.abs(zi).max(), H.max_abs(gi, zi)
  assert H.max_abs(gt, zt) < 1e-4 * np.abs(zt).max(), H.max_abs(gt, zt)


@pytest.mark.parametrize("trunk,proj,impl", [("zootest_fastvit_mci", None, None),
                                             ("zootest_fastvit_mci_l", None, "xla"),
                                             ("zootest_fastvit_mci", "linear", "xla")])
def test_mci_trunk_matches_open_clip(tmp_path, monkeypatch, trunk, proj, impl):
  """MobileCLIP2-S0-style (four stages) and -S4-style (five stages, LayerNorm2d) towers with
  the trunk's classifier as projection, and a 'linear' OpenCLIP head on pooled features;
  depthwise convolutions by this backend's default (the shifted sums on CPU, where tests
  run) and by XLA's grouped convolution (compiles 3-4x faster)."""
  monkeypatch.setattr(layers, "DEPTHWISE_IMPL", impl)
  d = str(tmp_path / f"{trunk}_{proj}")
  ref = _make(d, _config(trunk, proj), seed=len(trunk))
  assert any(k.endswith("conv_kxk.0.bn.running_var") for k in ref.state_dict())   # un-fused
  model = models.load(f"openclip:{d}")
  assert model.provenance["architecture"] == f"openclip-timm-fastvit:{trunk}"
  assert model.preprocess.size == SIZES[trunk]
  _check_parity(model, ref, SIZES[trunk])


def test_load_time_fusion_matches_timms_reparameterize(tmp_path, monkeypatch):
  """Every fused kernel and bias equals timm's ``reparameterize_model`` on the same weights,
  and a checkpoint saved in that reparameterised form loads to the same embeddings."""
  monkeypatch.setattr(layers, "DEPTHWISE_IMPL", "xla")    # compiles faster
  _register()
  for trunk in SMALL:
    m = timm.create_model(trunk, num_classes=24, global_pool="avg")
    H.randomize(m, seed=5)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    cfg = openclip_timm.TRUNKS[trunk][1]
    mine = openclip_fastvit.reparameterise(sd, cfg)
    with torch.no_grad():
      fused = timm.utils.reparameterize_model(m)
    want = {k: v.numpy() for k, v in fused.state_dict().items() if ".reparam_conv." in k}
    assert sorted(mine) == sorted(want), trunk
    for k, v in want.items():
      np.testing.assert_allclose(mine[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
  # The reparameterised form, written in the OpenCLIP layout, loads without fusing.
  d = str(tmp_path / "fused")
  ref = _make(d, _config("zootest_fastvit_mci"), seed=2)
  with torch.no_grad():
    ref.visual.trunk = timm.utils.reparameterize_model(ref.visual.trunk)
  H.save_safetensors(ref.state_dict(), os.path.join(d, "open_clip_model.safetensors"))
  assert not any(".conv_kxk." in k for k in ref.state_dict())
  _check_parity(models.load(f"openclip:{d}"), ref, 64)


@pytest.mark.parametrize("stride,mult,k", [(1, 1, 7), (2, 1, 3), (2, 2, 7), (1, 2, 3)])
def test_depthwise_shifted_sum_matches_xla_grouped_conv(stride, mult, k):
  """The CPU path (k*k shifted multiplies) against lax's grouped convolution, for the
  strides, kernels and channel multipliers FastViT uses (an odd input size too)."""
  rng = np.random.default_rng(k + stride)
  x = rng.standard_normal((2, 11, 10, 6)).astype(np.float32)
  w = rng.standard_normal((k, k, 1, 6 * mult)).astype(np.float32)
  pad = ((stride - 1) + (k - 1)) // 2
  a = layers.depthwise_conv(x, w, stride, pad, impl="shifted")
  b = layers.depthwise_conv(x, w, stride, pad, impl="xla")
  assert a.shape == b.shape == (2, (11 + 2 * pad - k) // stride + 1,
                                (10 + 2 * pad - k) // stride + 1, 6 * mult)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def _rewrite(d, edit):
  from safetensors.numpy import load_file, save_file
  path = os.path.join(d, "open_clip_model.safetensors")
  t = load_file(path)
  edit(t)
  save_file(t, path)


def test_bad_branch_tensors_are_named_with_both_shapes(tmp_path):
  d = str(tmp_path / "bad")
  _make(d, _config("zootest_fastvit_mci"), seed=1)
  key = "visual.trunk.stages.1.blocks.0.token_mixer.mixer.conv_scale.bn.running_var"
  _rewrite(d, lambda t: t.pop(key))
  with pytest.raises(layers.CheckpointMismatch, match=rf"missing tensors \[{key} "
                     r"\(expected shape \(16,\)\)\]"):
    models.load(f"openclip:{d}")
  _make(d, _config("zootest_fastvit_mci"), seed=1)
  key = "visual.trunk.stages.3.downsample.proj.0.small_conv.conv.weight"
  _rewrite(d, lambda t: t.update({key: np.zeros((64, 1, 5, 5), np.float32)}))
  with pytest.raises(layers.CheckpointMismatch,
                     match=rf"{key}: expected \(64, 1, 3, 3\), found \(64, 1, 5, 5\)"):
    models.load(f"openclip:{d}")
  # A tensor of a layer the trunk does not have: left over, named.
  _make(d, _config("zootest_fastvit_mci"), seed=1)
  key = "visual.trunk.stages.0.blocks.0.token_mixer.mixer.conv_kxk.1.conv.weight"
  _rewrite(d, lambda t: t.update({key: np.zeros((8, 1, 3, 3), np.float32)}))
  with pytest.raises(layers.CheckpointMismatch, match=rf"unexpected tensors \[{key}\]"):
    models.load(f"openclip:{d}")


# --- full size ------------------------------------------------------------------------

MOBILECLIP = ["MobileCLIP-S1", "MobileCLIP-S2", "MobileCLIP2-S0", "MobileCLIP2-S2",
              "MobileCLIP2-S3", "MobileCLIP2-S4"]


@pytest.mark.parametrize("name", MOBILECLIP)
def test_full_size_state_dict_matches_open_clip(name):
  """The training-time tensors open_clip's model (and hub checkpoint) holds, all of them."""
  cfg_json = open_clip.get_model_config(name)
  with torch.device("meta"):
    ref = open_clip.create_model(name, pretrained=None, device="meta")
  want = {k: tuple(v.shape) for k, v in ref.state_dict().items()
          if not k.endswith(("attn_mask", "num_batches_tracked"))}
  got = openclip_timm.expected_tensors(openclip_timm.parse(cfg_json, quick_gelu=None,
                                                           source=name))
  assert got == want


def test_registered_mci_trunks_match_timm():
  """fastvit_mci0..4 in jaxbench's trunk table against timm's own models (meta device)."""
  for i in range(5):
    name = f"fastvit_mci{i}"
    family, c = openclip_timm.TRUNKS[name]
    assert family == "fastvit"
    with torch.device("meta"):
      m = timm.create_model(name, pretrained=False)
    assert tuple(len(s.blocks) for s in m.stages) == tuple(c.layers), name
    mixers = tuple("attention" if type(s.blocks[0]).__name__ == "AttentionBlock" else "repmixer"
                   for s in m.stages)
    assert mixers == tuple(c.mixers), name
    assert tuple(s.blocks[0].mlp.fc1.out_channels for s in m.stages) == tuple(
        int(dim * r) for dim, r in zip(c.dims, c.mlp_ratios)), name
    assert tuple(s.blocks[0].mlp.fc1.in_channels for s in m.stages) == tuple(c.dims), name
    assert tuple(not isinstance(s.downsample, torch.nn.Identity) for s in m.stages) == tuple(
        c.downsample(j) for j in range(len(c.dims))), name
    assert tuple(not isinstance(s.pos_emb, torch.nn.Identity) for s in m.stages) == tuple(
        c.pos_embs), name
    se = tuple(not isinstance(s.downsample, torch.nn.Identity)
               and not isinstance(s.downsample.proj[0].se, torch.nn.Identity) for s in m.stages)
    assert se == tuple(c.se_downsamples), name
    assert all(type(s.downsample.proj[0].act).__name__ == "GELU" for s in m.stages
               if not isinstance(s.downsample, torch.nn.Identity)) == c.lkc_act, name
    norm = m.stages[-1].blocks[0].norm
    assert ("layernorm" if type(norm).__name__ == "LayerNorm2d" else "batchnorm") == c.attn_norm
    assert norm.eps == 1e-5, name
    assert (m.stem[0].conv_scale is not None) == c.stem_scale, name
    assert m.num_features == c.num_features and m.global_pool == "avg", name


# --- registry names ---------------------------------------------------------------------

REGISTRY = {  # jaxbench name -> open_clip (config, pretrained tag)
    "mobileclip_s1": ("MobileCLIP-S1", "datacompdr"),
    "mobileclip_s2": ("MobileCLIP-S2", "datacompdr"),
    "mobileclip2_s0": ("MobileCLIP2-S0", "dfndr2b"),
    "mobileclip2_s2": ("MobileCLIP2-S2", "dfndr2b"),
    "mobileclip2_s3": ("MobileCLIP2-S3", "dfndr2b"),
    "mobileclip2_s4": ("MobileCLIP2-S4", "dfndr2b"),
}


def test_registry_names_point_at_open_clips_repos_and_parse():
  from jaxbench import registry
  for name, (arch, tag) in REGISTRY.items():
    assert name in models.known()
    ref, _, kwargs = registry.parse(models.NAMES.factory(name)())
    hub_id = open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/")
    assert ref == f"openclip:{hub_id}" and not kwargs, name
    cfg = openclip_timm.parse(open_clip.get_model_config(arch), quick_gelu=None, source=arch)
    assert cfg.visual.family == "fastvit" and cfg.image_size == 256, name
