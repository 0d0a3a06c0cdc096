"""OpenCLIP towers on timm's Swin and layer-scale ViT trunks against open_clip.

Reduced trunks are registered in timm and jaxbench under the same new names
(shifted windows in two stages, a stage whose grid equals the window, patch
merging; relative-position MLP bias with a class token; average pooling over
patch tokens), open_clip writes random weights in the hub layout and
``jaxbench.models.load`` reads them: image embeddings within 1e-4 of open_clip's
in float32. Full-size towers: tensor names and shapes against open_clip's model
on the meta device, and the trunk table against timm's own constructors.
"""
import numpy as np
import jax
import open_clip
import pytest
import timm
import torch

from tests.models import zoo_helpers as H
from tests.models.test_openclip_families import TEXT, _make
from jaxbench import models
from jaxbench.models import openclip_swin, openclip_timm

_TRUNKS = {
    # 64px, patch 4: grids 16, 8, 4, 2; window 4 -> shifted windows (with the mask) in
    # stages 0-1, one unshifted window in stage 2, a window shrunk to the 2x2 grid in 3.
    "zootest_swin": (
        lambda: timm.models.swin_transformer._create_swin_transformer(
            "zootest_swin", img_size=64, patch_size=4, window_size=4, embed_dim=16,
            depths=(2, 2, 2, 1), num_heads=(2, 2, 4, 4)),
        ("swin", dict(image_size=64, patch=4, window=4, embed_dim=16, depths=(2, 2, 2, 1),
                      heads=(2, 2, 4, 4)))),
    "zootest_vit_gap": (
        lambda: timm.models.vision_transformer._create_vision_transformer(
            "zootest_vit_gap", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            class_token=False, global_pool="avg", qkv_bias=False, init_values=1e-6,
            fc_norm=False),
        ("vit_ls", dict(width=32, depth=2, heads=4, patch=8, image_size=32, class_token=False,
                        global_pool="avg"))),
    "zootest_vit_relpos": (
        lambda: timm.models.vision_transformer_relpos._create_vision_transformer_relpos(
            "zootest_vit_relpos", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            qkv_bias=False, fc_norm=False, rel_pos_dim=16, class_token=True,
            global_pool="token"),
        ("vit_ls", dict(width=32, depth=2, heads=4, patch=8, image_size=32, class_token=True,
                        global_pool="token", pos_embed=False, rel_pos_dim=16))),
}


def _register():
  from timm.models import register_model
  for name, (make, (family, kw)) in _TRUNKS.items():
    if not timm.list_models(name):
      fn = lambda pretrained=False, _make=make, **kwargs: _make()
      fn.__name__ = name
      fn.__module__ = __name__
      register_model(fn)
    openclip_timm.register_trunk(name, family, **kw)


def _cfg(trunk, size):
  return dict(embed_dim=24, vision_cfg=dict(timm_model_name=trunk, timm_model_pretrained=False,
                                            timm_pool="", timm_proj="linear", image_size=size),
              text_cfg=TEXT)


def _grow_layer_scale(ref, seed):
  """timm initialises layer scale at 1e-6, which would hide every block under the
  tolerance; redraw the gains at O(1)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in ref.named_parameters():
      if name.endswith(("ls1.gamma", "ls2.gamma")):
        t.copy_(torch.rand(t.shape, generator=g) + 0.5)


@pytest.mark.parametrize("trunk,size", [("zootest_swin", 64), ("zootest_vit_gap", 32),
                                        ("zootest_vit_relpos", 32)])
def test_trunk_matches_open_clip(tmp_path, trunk, size):
  _register()
  d = str(tmp_path / trunk)
  cfg = _cfg(trunk, size)
  ref = _make(d, cfg, seed=3)
  _grow_layer_scale(ref, 3)
  with torch.no_grad():                 # randomise the relative position tables too
    for name, t in ref.named_parameters():
      if name.endswith("relative_position_bias_table"):
        t.normal_(0, 1, generator=torch.Generator().manual_seed(len(name)))
  H.save_openclip(ref, cfg, d, preprocess_cfg={"mean": [0.5, 0.4, 0.3],
                                               "std": [0.2, 0.25, 0.3]})
  model = models.load(f"openclip:{d}")
  family = _TRUNKS[trunk][1][0]
  assert model.provenance["architecture"] == f"openclip-timm-{family}:{trunk}"
  x = H.images(3, size, seed=4)
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
  gi = np.asarray(jax.jit(model.encode_image)(model.params, x))
  assert np.abs(zi).max() > 0.1
  assert H.max_abs(gi, zi) < 1e-4 * np.abs(zi).max()
  if trunk == "zootest_swin":          # the reduced trunk covers what the docstring says
    stages = ref.visual.trunk.layers
    assert stages[0].blocks[1].shift_size == (2, 2) and stages[1].blocks[1].attn_mask is not None
    assert stages[2].blocks[1].shift_size == (0, 0) and stages[3].blocks[0].window_size == (2, 2)


def test_shift_mask_matches_timm():
  from timm.models.swin_transformer import SwinTransformerBlock
  blk = SwinTransformerBlock(dim=8, input_resolution=(8, 8), num_heads=2, window_size=4,
                             shift_size=2)
  np.testing.assert_array_equal(openclip_swin.shift_mask(8, 4, 2), blk.attn_mask.numpy())


def test_relative_index_and_log_coords_match_timm():
  from timm.layers.pos_embed_rel import gen_relative_log_coords, gen_relative_position_index
  np.testing.assert_array_equal(openclip_swin.relative_index(3, 4),
                                gen_relative_position_index((3, 4)).numpy())
  np.testing.assert_allclose(openclip_swin.relpos_log_coords(5, 5),
                             gen_relative_log_coords((5, 5), mode="cr").numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["swin_base_patch4_window7_224", "vit_medium_patch16_gap_256",
                                  "vit_relpos_medium_patch16_cls_224"])
def test_full_size_state_dict_matches_open_clip(name):
  cfg_json = open_clip.get_model_config(name)
  with torch.device("meta"):
    ref = open_clip.create_model(name, pretrained=None, device="meta")
  want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
  got = openclip_timm.expected_tensors(openclip_timm.parse(cfg_json, quick_gelu=None,
                                                           source=name))
  assert got == {k: s for k, s in want.items() if not k.endswith("attn_mask")}


def test_registered_trunks_match_timm():
  """The built-in Swin/layer-scale ViT entries against timm's own models (meta device)."""
  for name, (family, c) in sorted(openclip_timm.TRUNKS.items()):
    if family not in openclip_timm.EXTRA_FAMILIES or name.startswith("zootest"):
      continue
    with torch.device("meta"):
      m = timm.create_model(name, pretrained=False)
    assert m.patch_embed.img_size[0] == c.image_size, name
    assert m.patch_embed.proj.kernel_size[0] == c.patch, name
    if family == "swin":
      assert m.embed_dim == c.embed_dim and m.global_pool == "avg", name
      assert tuple(len(s.blocks) for s in m.layers) == tuple(c.depths), name
      assert tuple(s.blocks[0].attn.num_heads for s in m.layers) == tuple(c.heads), name
      assert m.layers[0].blocks[0].window_size == (c.window, c.window), name
      assert m.norm.eps == c.eps and m.layers[0].blocks[0].mlp.fc1.out_features == \
          c.mlp_ratio * c.embed_dim, name
      continue
    b = m.blocks[0]
    assert (m.embed_dim, len(m.blocks), b.attn.num_heads) == (c.width, c.depth, c.heads), name
    assert (m.cls_token is not None) == c.class_token and m.global_pool == c.global_pool
    assert (b.attn.qkv.bias is not None) == c.qkv_bias, name
    assert isinstance(m.fc_norm, torch.nn.Identity) and b.norm1.eps == c.eps, name
    assert b.ls1.gamma.shape == (c.width,) and b.mlp.fc1.out_features == c.mlp_ratio * c.width
    assert (getattr(m, "pos_embed", None) is not None) == c.pos_embed, name
    rel = getattr(b.attn, "rel_pos", None)
    assert (rel.mlp.fc1.out_features if rel is not None else 0) == c.rel_pos_dim, name
    if rel is not None:
      assert rel.mode == "cr" and rel.prefix_tokens == int(c.class_token), name


def test_other_pools_are_refused(tmp_path):
  from jaxbench.models import layers
  cfg = open_clip.get_model_config("swin_base_patch4_window7_224")
  cfg = dict(cfg, vision_cfg=dict(cfg["vision_cfg"], timm_pool="max"))
  with pytest.raises(layers.UnknownArchitecture, match="swin trunk .* timm_pool 'max'"):
    openclip_timm.parse(cfg, quick_gelu=None, source="x")


def test_grid_not_divided_by_the_window_is_refused():
  with pytest.raises(ValueError, match="stage 0's 10x10 grid is not a whole number of 4x4"):
    openclip_swin.SwinCfg(image_size=40, patch=4, window=4, embed_dim=8, depths=(1, 1),
                          heads=(1, 1))
