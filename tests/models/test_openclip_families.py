"""OpenCLIP families beyond ViT/ModifiedResNet against open_clip on identical weights.

* The scoreboard: every ``open_clip.list_models()`` config is either accepted by
  jaxbench's parser or refused with the reason listed in
  :data:`jaxbench.models.openclip_refusals.REFUSED`.
* Parity: one reduced config per implemented family (timm trunks registered in
  timm *and* jaxbench under the same new name, 1-2 blocks, small widths), random
  weights written by open_clip in the hub layout, loaded with
  ``jaxbench.models.load``; image and text embeddings within 1e-4 of open_clip's.
* Full-size towers: tensor names and shapes against open_clip on the meta device.
* SigLIP's tokenizer conventions (clean='canonicalize', pad-id padding) against
  open_clip's ``HFTokenizer`` on a word-level tokenizer built by the test (the
  real SentencePiece files cannot be downloaded here).
"""
import json
import os

import jax
import numpy as np
import open_clip
import pytest
import timm
import torch

from tests.models import zoo_helpers as H
from jaxbench import models
from jaxbench.models import (layers, openclip, openclip_hf_text, openclip_refusals,
                             openclip_text, openclip_timm, openclip_vit)
from jaxbench.models import openclip_coca

TEXT = dict(context_length=16, vocab_size=64, width=32, heads=4, layers=2)
SIGLIP_TEXT = dict(TEXT, no_causal_mask=True, proj_bias=True, pool_type="last",
                   norm_kwargs={"eps": 1e-6}, act_kwargs={"approximate": "tanh"})


def _accepts(cfg: dict, name: str):
  """Parses ``cfg`` through the same dispatch as openclip.load (no weights)."""
  openclip_refusals.check(cfg, name)
  if openclip_coca.handles(cfg):
    openclip_coca.parse(cfg, quick_gelu=None, source=name)
  elif openclip_hf_text.handles(cfg):         # the HF encoder's config.json is read at load
    openclip_hf_text.parse(cfg, quick_gelu=None, source=name)
  elif openclip_timm.handles(cfg):
    openclip_timm.parse(cfg, quick_gelu=None, source=name)
  elif openclip_vit.handles(cfg):
    openclip_vit.parse(cfg, quick_gelu=None, source=name)
  else:
    openclip.parse_config(cfg, source=name)


def test_every_open_clip_config_is_accepted_or_refused_with_its_reason():
  accepted, refused = [], []
  for name in open_clip.list_models():
    cfg = open_clip.get_model_config(name)
    try:
      _accepts(cfg, name)
      accepted.append(name)
    except layers.UnknownArchitecture as e:
      assert name in openclip_refusals.REFUSED, f"{name} refused but not listed: {e}"
      assert openclip_refusals.REFUSED[name] in str(e), (name, str(e))
      assert "Closest supported config" in str(e)
      refused.append(name)
  stale = sorted(set(openclip_refusals.REFUSED) - set(refused))
  assert not stale, f"listed as refused but accepted (or gone from open_clip): {stale}"
  # The scoreboard only moves up (55 were accepted before the timm trunks; then Swin and
  # the layer-scale ViTs, HF text towers, FastViT MCi).
  assert len(accepted) >= 143, (len(accepted), refused)


# --- tiny trunks registered in timm and jaxbench ----------------------------------

def _register_timm():
  from timm.models import register_model
  from timm.models.convnext import _create_convnext
  from timm.models.vision_transformer import _create_vision_transformer
  if "zootest_convnext" in timm.list_models("zootest_*"):
    return

  @register_model
  def zootest_convnext(pretrained=False, **kw):
    return _create_convnext("zootest_convnext", pretrained=False,
                            **dict(dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32)), **kw))

  @register_model
  def zootest_vit_siglip(pretrained=False, **kw):
    return _create_vision_transformer(
        "zootest_vit_siglip", pretrained=False,
        **dict(dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
                    class_token=False, global_pool="map", act_layer="gelu_tanh"), **kw))

  from timm.models.eva import _create_eva

  @register_model
  def zootest_eva02(pretrained=False, **kw):
    return _create_eva("zootest_eva02", pretrained=False, **dict(dict(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4 * 2 / 3,
        qkv_fused=False, swiglu_mlp=True, scale_mlp=True, scale_attn_inner=True,
        use_rot_pos_emb=True, ref_feat_shape=(2, 2), global_pool="token"), **kw))

  @register_model
  def zootest_pe(pretrained=False, **kw):
    return _create_eva("zootest_pe", pretrained=False, **dict(dict(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4.0,
        global_pool="map", attn_type="rope", use_pre_transformer_norm=True, use_rot_pos_emb=True,
        ref_feat_shape=(3, 3), rope_grid_offset=1., rope_grid_indexing="xy",
        attn_pool_num_heads=4, attn_pool_mlp_ratio=2.,
        norm_layer=__import__("functools").partial(torch.nn.LayerNorm, eps=1e-5)), **kw))

  @register_model
  def zootest_eva_e(pretrained=False, **kw):
    return _create_eva("zootest_eva_e", pretrained=False, **dict(dict(
        img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=3.0,
        use_post_norm=True, global_pool="token"), **kw))

  from timm.models import vitamin as tv

  @register_model
  def zootest_vitamin(pretrained=False, **kw):
    embed = tv.VitCfg(embed_dim=(8, 16, 32), depths=(1, 2, 1), stem_width=8,
                      conv_cfg=tv.VitConvCfg(norm_layer="layernorm2d", norm_eps=1e-6),
                      head_type="1d")
    return tv._create_vitamin("zootest_vitamin", pretrained=False, **dict(dict(
        img_size=64, embed_dim=32, depth=2, num_heads=2, mlp_layer=tv.GeGluMlp, mlp_ratio=2.,
        class_token=False, global_pool="avg", embed_cfg=embed), **kw))

  from timm.models.vision_transformer_hybrid import ConvStem, _create_vision_transformer_hybrid

  @register_model
  def zootest_vit_mci(pretrained=False, **kw):
    stem = ConvStem(channels=(8, 8, 32), stride=(4, 2, 2), kernel_size=(4, 2, 2), padding=0,
                    act_layer=torch.nn.GELU)
    return _create_vision_transformer_hybrid(
        "zootest_vit_mci", backbone=stem, embed_args=dict(proj=False), pretrained=False,
        **dict(dict(img_size=64, embed_dim=32, depth=2, num_heads=2, no_embed_class=True), **kw))

  @register_model
  def zootest_vit_clip(pretrained=False, **kw):
    return _create_vision_transformer(
        "zootest_vit_clip", pretrained=False,
        **dict(dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2,
                    pre_norm=True, norm_layer=__import__("functools").partial(
                        torch.nn.LayerNorm, eps=1e-5)), **kw))


def _register_jaxbench():
  openclip_timm.register_trunk("zootest_convnext", "convnext", depths=(1, 1, 2, 1),
                               dims=(8, 16, 24, 32))
  openclip_timm.register_trunk("zootest_vit_siglip", "vit", width=32, depth=2, heads=4, patch=8,
                               image_size=32, class_token=False, global_pool="map",
                               act="gelu_pytorch_tanh")
  openclip_timm.register_trunk("zootest_eva02", "eva", width=32, depth=2, heads=2, patch=8,
                               image_size=32, mlp_ratio=4 * 2 / 3, qkv_fused=False, swiglu=True,
                               scale_mlp=True, scale_attn_inner=True, rope=True,
                               ref_feat_shape=(2, 2))
  openclip_timm.register_trunk("zootest_pe", "eva", width=32, depth=2, heads=2, patch=8,
                               image_size=32, global_pool="map", attn_rope=True, pre_norm=True,
                               rope=True, rope_xy=True, rope_offset=1.0, ref_feat_shape=(3, 3),
                               pool_heads=4, pool_mlp_ratio=2.0, eps=1e-5)
  openclip_timm.register_trunk("zootest_eva_e", "eva", width=32, depth=2, heads=2, patch=16,
                               image_size=32, mlp_ratio=3.0, post_norm=True)
  openclip_timm.register_trunk("zootest_vitamin", "vitamin", stem_width=8, conv_dims=(8, 16),
                               conv_depths=(1, 2), width=32, depth=2, heads=2, image_size=64)
  openclip_timm.register_trunk("zootest_vit_mci", "vit", width=32, depth=2, heads=2, patch=16,
                               image_size=64, conv_stem=((8, 4), (8, 2), (32, 2)),
                               no_embed_class=True)
  openclip_timm.register_trunk("zootest_vit_clip", "vit", width=32, depth=1, heads=2, patch=16,
                               image_size=32, pre_norm=True, eps=1e-5)


FAMILIES = {
    # convnext_large_d-style: ConvNeXt trunk + OpenCLIP 'mlp' head, CLIP text tower.
    "convnext": dict(embed_dim=24, vision_cfg=dict(
        timm_model_name="zootest_convnext", timm_model_pretrained=False, timm_pool="",
        timm_proj="mlp", timm_drop=0.0, image_size=64), text_cfg=TEXT),
    # convnext_base_w-style: 'linear' head with a bias (timm_proj_bias).
    "convnext_linear": dict(embed_dim=24, vision_cfg=dict(
        timm_model_name="zootest_convnext", timm_pool="", timm_proj="linear",
        timm_proj_bias=True, image_size=64), text_cfg=TEXT),
    # ViT-B-16-SigLIP2-style: map pooling, no projection; custom bidirectional text.
    "siglip": dict(embed_dim=32, init_logit_bias=-10, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_vit_siglip", timm_model_pretrained=False, timm_pool="map",
        timm_proj="none", image_size=32), text_cfg=SIGLIP_TEXT),
    # EVA02-B/L-style: rotary embeddings (rescaled grid), SwiGLU + sub-LNs, separate q/k/v.
    "eva02": dict(embed_dim=24, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_eva02", timm_model_pretrained=False, timm_pool="token",
        timm_proj=None, image_size=32), text_cfg=TEXT),
    # PE-Core-style: norm_pre, AttentionRope (fused biased qkv), 'xy' rotary grid with offset,
    # attention pooling with its own heads, the trunk's classifier as projection.
    "pe_core": dict(embed_dim=24, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_pe", timm_pool="map", timm_proj=None, image_size=32),
        text_cfg=TEXT),
    # EVA02-E/EVA01-style: fused qkv with q/v biases, post-norm blocks, GELU MLP.
    "eva_e": dict(embed_dim=24, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_eva_e", timm_pool="token", timm_proj=None, image_size=32),
        text_cfg=TEXT),
    # ViTamin-style: MBConv stages, GeGLU ViT, avg pool + fc_norm, linear head.
    "vitamin": dict(embed_dim=24, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_vitamin", timm_pool="", timm_proj="linear", image_size=64),
        text_cfg=TEXT),
    # CLIPA-style: no ln_pre, average pool with ln_post after it; bidirectional text
    # pooled at the last position.
    "clipa": dict(embed_dim=24, vision_cfg=dict(
        image_size=32, layers=2, width=32, patch_size=8, head_width=16, no_ln_pre=True,
        pool_type="avg", final_ln_after_pool=True),
        text_cfg=dict(TEXT, pool_type="last", no_causal_mask=True)),
    # ViT-M-16-alt-style: layer scale in every residual branch.
    "layer_scale": dict(embed_dim=24, vision_cfg=dict(
        image_size=32, layers=2, width=32, patch_size=16, head_width=16, ls_init_value=1e-4),
        text_cfg=TEXT),
    # MobileCLIP-B-style: conv stem (BatchNorm + GELU), positions before [CLS].
    "vit_mci": dict(embed_dim=24, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_vit_mci", timm_pool="token", timm_proj=None, image_size=64),
        text_cfg=TEXT),
    # MobileCLIP2-L-14-style: class token, pre-norm, the trunk's classifier as projection.
    "vit_clip": dict(embed_dim=24, custom_text=True, vision_cfg=dict(
        timm_model_name="zootest_vit_clip", timm_pool="token", timm_proj=None,
        image_size=32), text_cfg=dict(TEXT, no_causal_mask=True)),
}


def _sharpen_attention(ref, seed):
  """Redraws query/key projections and output heads at N(0, 1/fan_in): timm's 0.02-std init
  leaves attention near uniform and outputs near zero at these widths, where a wrong rotary
  embedding or q/k split would hide under the tolerance."""
  g = torch.Generator().manual_seed(seed + 100)
  keys = ("q_proj.weight", "k_proj.weight", "attn.qkv.weight", "head.proj.weight", "attn_pool.q.weight",
          "attn_pool.kv.weight", "in_proj_weight", "trunk.head.weight", "head.proj.weight",
          "head.mlp.fc1.weight", "head.mlp.fc2.weight")
  with torch.no_grad():
    for name, t in ref.named_parameters():
      if t.ndim == 2 and name.endswith(keys):
        t.copy_(torch.randn(t.shape, generator=g) / t.shape[1] ** 0.5)


def _make(d, model_cfg, seed=0):
  _register_timm()
  _register_jaxbench()
  name = f"zoo-fam-{os.path.basename(d)}"
  H.register_openclip_config(d + "_cfg", name, model_cfg)
  ref = open_clip.create_model(name, pretrained=None)
  H.randomize(ref, seed)
  _sharpen_attention(ref, seed)
  H.save_openclip(ref, model_cfg, d, preprocess_cfg={"mean": [0.5, 0.4, 0.3],
                                                    "std": [0.2, 0.25, 0.3]})
  return ref


_ids = H.token_ids


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_matches_open_clip(tmp_path, family):
  cfg = FAMILIES[family]
  d = str(tmp_path / family)
  ref = _make(d, cfg, seed=len(family))
  model = models.load(f"openclip:{d}")
  assert model.provenance["architecture"].startswith(("openclip-timm-", "openclip-vit-"))
  size = model.preprocess.size
  assert size == cfg["vision_cfg"]["image_size"]
  x = H.images(3, size, seed=4)
  ids = _ids(3, TEXT["context_length"], TEXT["vocab_size"], pad=1)
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long)).numpy()
  gi = jax.jit(model.encode_image)(model.params, x)
  gt = jax.jit(model.encode_text)(model.params, ids)
  assert np.abs(zi).max() > 0.1 and np.abs(zt).max() > 0.1
  assert H.max_abs(gi, zi) < 1e-4 * np.abs(zi).max()
  assert H.max_abs(gt, zt) < 1e-4 * np.abs(zt).max()
  if "init_logit_bias" in cfg:
    assert model.score == "sigmoid"
    np.testing.assert_allclose(model.provenance["logit_bias"], float(ref.logit_bias.detach()), rtol=1e-6)
  else:
    assert model.score == "softmax"


def test_mismatched_trunk_is_named(tmp_path):
  """A checkpoint whose trunk does not fit the registered architecture: tensor named."""
  d = str(tmp_path / "bad")
  _make(d, FAMILIES["convnext"])
  openclip_timm.register_trunk("zootest_convnext", "convnext", depths=(1, 1, 1, 1),
                               dims=(8, 16, 24, 32))
  try:
    with pytest.raises(layers.CheckpointMismatch, match=r"stages\.2\.blocks\.1\.conv_dw"):
      models.load(f"openclip:{d}")
  finally:
    _register_jaxbench()


def test_refused_family_message_gives_the_reason_and_closest_family(tmp_path):
  # Any config still refused (the list shrinks as families are implemented).
  name = sorted(openclip_refusals.REFUSED)[0]
  cfg = open_clip.get_model_config(name)
  d = str(tmp_path / "refused")
  os.makedirs(d)
  with open(os.path.join(d, openclip.CONFIG), "w") as f:
    json.dump({"model_cfg": cfg}, f)
  with pytest.raises(layers.UnknownArchitecture) as e:
    models.load(f"openclip:{d}")
  msg = str(e.value)
  arch = (cfg.get("vision_cfg", {}).get("timm_model_name")
          or cfg.get("text_cfg", {}).get("hf_model_name") or openclip_refusals.family(cfg))
  assert arch in msg and openclip_refusals.REFUSED[name] in msg, (name, msg)
  assert "Implemented families" in msg and "Closest supported config" in msg


# --- full-size towers: names and shapes on the meta device ------------------------

@pytest.mark.parametrize("name", ["convnext_xxlarge", "convnext_large_d_320", "EVA02-L-14-336",
                                  "EVA02-E-14-plus", "ViTamin-XL-384", "PE-Core-bigG-14-448",
                                  "MobileCLIP2-B", "ViT-bigG-14-CLIPA-336",
                                  "ViT-SO400M-14-SigLIP-384", "MobileCLIP2-L-14"])
def test_full_size_state_dict_matches_open_clip(name):
  cfg_json = open_clip.get_model_config(name)
  with torch.device("meta"):
    ref = open_clip.create_model(name, pretrained=None, device="meta")
  want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
  fam = openclip_timm if openclip_timm.handles(cfg_json) else openclip_vit
  got = fam.expected_tensors(fam.parse(cfg_json, quick_gelu=None, source=name))
  # Buffers that carry no weights (causal masks, BatchNorm counters) are not loaded.
  assert got == {k: s for k, s in want.items()
                 if not k.endswith(("attn_mask", "num_batches_tracked"))}


def test_registered_trunk_table_matches_timm():
  """Every built-in trunk entry against timm's own model of that name (meta device):
  depth, widths, heads, patch, input size, pooling, activation, LayerNorm eps."""
  for name, (family, c) in sorted(openclip_timm.TRUNKS.items()):
    if (name.startswith("zootest") or family in openclip_timm.EXTRA_FAMILIES
        or family == "fastvit"):
      continue                         # other modules' families: their own test files
    with torch.device("meta"):         # EVA as OpenCLIP builds it: class-token pooling
      m = timm.create_model(name, pretrained=False, **(
          {"global_pool": "token"} if family == "eva" and c.global_pool == "token" else {}))
    if family == "convnext":
      assert tuple(len(s.blocks) for s in m.stages) == tuple(c.depths), name
      assert tuple(s.blocks[0].conv_dw.out_channels for s in m.stages) == tuple(c.dims), name
      assert m.stem[1].eps == c.eps and (m.stages[0].blocks[0].gamma is not None) == c.ls, name
      continue
    b = m.blocks[0]
    if family == "vitamin":
      bb = m.patch_embed.backbone
      assert (m.embed_dim, len(m.blocks), b.attn.num_heads) == (c.width, c.depth, c.heads), name
      assert bb.stem.out_chs == c.stem_width, name
      assert tuple(len(st) for st in bb.stages) == tuple(c.conv_depths), name
      assert tuple(st[0].out_chs for st in bb.stages) == tuple(c.conv_dims), name
      assert (m.pos_embed is not None) == c.pos_embed and b.mlp.w0.out_features == 2 * c.width
      if c.pos_embed:
        assert m.pos_embed.shape[1] == (c.image_size // 16) ** 2, name
      assert b.norm1.eps == c.eps and b.mlp.norm.eps == c.eps and m.global_pool == "avg", name
      continue
    if family == "eva":
      assert (m.embed_dim, len(m.blocks), b.attn.num_heads) == (c.width, c.depth, c.heads), name
      assert m.patch_embed.patch_size[0] == c.patch and m.patch_embed.img_size[0] == c.image_size
      assert (b.attn.qkv is not None) == c.qkv_fused, name
      assert hasattr(b.mlp, "fc1_g") == c.swiglu, name
      assert b.mlp.fc2.in_features == int(c.width * c.mlp_ratio), name
      assert (not isinstance(b.mlp.norm, torch.nn.Identity)) == c.scale_mlp, name
      assert (not isinstance(b.attn.norm, torch.nn.Identity)) == c.scale_attn_inner, name
      assert (m.rope is not None) == c.rope, name
      if c.rope:
        assert tuple(m.rope.ref_feat_shape) == tuple(c.ref_feat_shape), name
        assert m.rope.grid_offset == c.rope_offset, name
        assert m.rope.grid_indexing == ("xy" if c.rope_xy else "ij"), name
      assert (type(b.attn).__name__ == "AttentionRope") == c.attn_rope, name
      assert (not isinstance(m.norm_pre, torch.nn.Identity)) == c.pre_norm, name
      assert (m.cls_token is not None) == c.class_token and m.global_pool == c.global_pool
      if c.global_pool == "map":
        assert m.attn_pool.num_heads == c.pool_heads, name
        assert m.attn_pool.mlp.fc1.out_features == int(c.width * c.pool_mlp_ratio), name
      assert (type(b).__name__ == "EvaBlockPostNorm") == c.post_norm, name
      assert b.norm1.eps == c.eps and m.norm.eps == c.eps, name
      continue
    act = b.mlp.act
    kind = ("tanh" if type(act).__name__ == "GELUTanh" else act.approximate
            if isinstance(act, torch.nn.GELU) else type(act).__name__)
    assert kind == {"gelu": "none", "gelu_pytorch_tanh": "tanh"}[c.act], (name, act)
    assert (m.embed_dim, len(m.blocks), b.attn.num_heads) == (c.width, c.depth, c.heads), name
    if c.conv_stem:
      got = tuple((st.conv.out_channels, st.conv.kernel_size[0]) for st in m.patch_embed.backbone)
      assert got == tuple(c.conv_stem) and m.no_embed_class == c.no_embed_class, name
      assert m.pos_embed.shape[1] == (c.image_size // 16) ** 2, name
    else:
      assert m.patch_embed.patch_size[0] == c.patch and m.patch_embed.img_size[0] == c.image_size
    assert b.mlp.fc1.out_features == int(c.width * c.mlp_ratio), name
    assert (m.cls_token is not None) == c.class_token and m.global_pool == c.global_pool, name
    assert b.norm1.eps == c.eps, name
    assert (not isinstance(m.norm_pre, torch.nn.Identity)) == c.pre_norm, name


# --- SigLIP-style tokenizer conventions ----------------------------------------------

def _prompts(n=1000):
  """n real zero-shot prompts: ImageNet class names x CLIP's 80 templates (jaxbench's copy)."""
  import importlib.resources
  data = json.loads(importlib.resources.files("jaxbench.resources").joinpath(
      "clip_imagenet.json").read_text())
  names, temps = data["classnames"], data["templates"]["clip80"]
  return [temps[i % len(temps)].format(names[(7 * i) % len(names)]) for i in range(n)]


def _word_level_tokenizer(d, texts):
  """A transformers tokenizer built here (SigLIP's SentencePiece files cannot be fetched):
  word-level over the canonicalised prompts, '</s>' appended, pad id 1 (not 0) so that
  zero padding would be caught."""
  from tokenizers import Tokenizer, models as tm, pre_tokenizers, processors
  from transformers import PreTrainedTokenizerFast
  words = sorted({w for t in texts for w in openclip_text.CLEAN["canonicalize"](t).split()})
  vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words[:-20])}}
  tok = Tokenizer(tm.WordLevel(vocab, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                     special_tokens=[("</s>", 2)])
  PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                          unk_token="<unk>").save_pretrained(d)
  return len(vocab)


def test_siglip_tokenizer_conventions_match_open_clip(tmp_path):
  """Token ids of a SigLIP-style checkpoint (hf_tokenizer_name, clean='canonicalize') as
  open_clip's HFTokenizer gives on the same tokenizer files, 1,000 prompts."""
  from open_clip.tokenizer import HFTokenizer
  texts = _prompts() + ["A photo of a DOG!!", "x_y, z. " * 40, "&amp; caf\u00e9 na\u00efve"]
  d = str(tmp_path / "siglip")
  cfg = dict(FAMILIES["siglip"], text_cfg=dict(SIGLIP_TEXT, hf_tokenizer_name="unused/offline",
                                               tokenizer_kwargs={"clean": "canonicalize"}))
  _make(d, cfg, seed=3)
  _word_level_tokenizer(d, texts)
  model = models.load(f"openclip:{d}")
  assert "clean=canonicalize" in model.provenance["tokenizer"]
  got = model.tokenize(texts)
  want = HFTokenizer(d, context_length=16, clean="canonicalize")(texts).numpy()
  assert got.shape == (len(texts), 16) and got.dtype == np.int32
  np.testing.assert_array_equal(got, want)
  assert (got == 1).any() and (got == 0).any()        # pad id 1 used; unknown words -> 0


def test_missing_tokenizer_files_are_named(tmp_path):
  tok = openclip_text.HFTokenizer(str(tmp_path), 16, clean="canonicalize")
  with pytest.raises(Exception, match="tokenizer.json"):
    tok(["a photo"])


# --- registry names -------------------------------------------------------------------

REGISTRY = {  # jaxbench name -> open_clip (config, pretrained tag)
    "openclip_vit_h14_laion2b": ("ViT-H-14", "laion2b_s32b_b79k"),
    "openclip_vit_bigg14_laion2b": ("ViT-bigG-14", "laion2b_s39b_b160k"),
    "dfn2b_vit_l14": ("ViT-L-14-quickgelu", "dfn2b"),
    "dfn5b_vit_h14": ("ViT-H-14-quickgelu", "dfn5b"),
    "dfn5b_vit_h14_378": ("ViT-H-14-378-quickgelu", "dfn5b"),
    "metaclip_vit_l14": ("ViT-L-14-quickgelu", "metaclip_fullcc"),
    "metaclip_vit_h14": ("ViT-H-14-quickgelu", "metaclip_fullcc"),
    "convnext_base_laion400m": ("convnext_base", "laion400m_s13b_b51k"),
    "convnext_base_w_laion2b": ("convnext_base_w", "laion2b_s13b_b82k_augreg"),
    "convnext_large_d_320_laion2b": ("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup"),
    "convnext_xxlarge_laion2b": ("convnext_xxlarge", "laion2b_s34b_b82k_augreg_soup"),
    "openclip_siglip_b16": ("ViT-B-16-SigLIP", "webli"),
    "openclip_siglip_l16_384": ("ViT-L-16-SigLIP-384", "webli"),
    "openclip_siglip_so400m14_384": ("ViT-SO400M-14-SigLIP-384", "webli"),
    "siglip2_b16": ("ViT-B-16-SigLIP2", "webli"),
    "siglip2_l16_256": ("ViT-L-16-SigLIP2-256", "webli"),
    "siglip2_so400m14": ("ViT-SO400M-14-SigLIP2", "webli"),
    "siglip2_so400m14_378": ("ViT-SO400M-14-SigLIP2-378", "webli"),
    "mobileclip2_l14": ("MobileCLIP2-L-14", "dfndr2b"),
    "mobileclip_b": ("MobileCLIP-B", "datacompdr"),
    "mobileclip2_b": ("MobileCLIP2-B", "dfndr2b"),
    "pe_core_b16": ("PE-Core-B-16", "meta"),
    "pe_core_l14_336": ("PE-Core-L-14-336", "meta"),
    "pe_core_bigg14_448": ("PE-Core-bigG-14-448", "meta"),
    "clipa_vit_h14_336": ("ViT-H-14-CLIPA-336", "datacomp1b"),
    "eva02_b16": ("EVA02-B-16", "merged2b_s8b_b131k"),
    "eva02_l14": ("EVA02-L-14", "merged2b_s4b_b131k"),
    "eva02_l14_336": ("EVA02-L-14-336", "merged2b_s6b_b61k"),
    "eva02_e14": ("EVA02-E-14", "laion2b_s4b_b115k"),
    "eva02_e14_plus": ("EVA02-E-14-plus", "laion2b_s9b_b144k"),
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_name_points_at_open_clips_repo_for_an_accepted_config(name):
  from jaxbench import registry
  assert name in models.known()          # also loads the zoo plugins
  arch, tag = REGISTRY[name]
  ref, _, kwargs = registry.parse(models.NAMES.factory(name)())
  hub_id = open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/")
  assert ref == f"openclip:{hub_id}"
  assert kwargs.get("quick_gelu", False) == arch.endswith("quickgelu")
  _accepts(open_clip.get_model_config(arch), arch)


def test_clipa_bert_tokenizer_conventions_match_open_clip(tmp_path):
  """CLIPA's text_cfg (bert-base-uncased, strip_sep_token): SEP ids zeroed as open_clip does,
  on a WordPiece tokenizer built here from the prompts' words (BERT's files cannot be fetched)."""
  from open_clip.tokenizer import HFTokenizer
  from transformers import BertTokenizerFast
  texts = _prompts(300) + ["A photo of a DOG!!", "&amp; caf\u00e9"]
  words = sorted({w for t in texts for w in openclip_text.CLEAN["lower"](t).split()})
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words[:-30]))
  d = str(tmp_path / "bert")
  BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(d)
  cfg = open_clip.get_model_config("ViT-L-14-CLIPA")["text_cfg"]
  tok = openclip_timm.tokenizer_for(d, dict(cfg, hf_tokenizer_name="bert-base-uncased"), 16,
                                    files=os.listdir(d))
  got = tok(texts)
  want = HFTokenizer(d, context_length=16, **cfg["tokenizer_kwargs"])(texts).numpy()
  np.testing.assert_array_equal(got, want)
  assert not (got == 3).any() and (got == 1).any()     # SEP stripped; unknown words -> [UNK]


@pytest.fixture(scope="module")
def siglip_style(tmp_path_factory):
  """(directory, open_clip reference, prompts' class names and templates, our model) of a
  SigLIP-style checkpoint written once."""
  d = str(tmp_path_factory.mktemp("siglip_style") / "siglip")
  names = ["tench", "goldfish", "great white shark", "hammerhead shark"]
  temps = ["a photo of a {}.", "a bad photo of the {}."]
  cfg = dict(FAMILIES["siglip"], text_cfg=dict(SIGLIP_TEXT, vocab_size=64,
                                               hf_tokenizer_name="unused/offline",
                                               tokenizer_kwargs={"clean": "canonicalize"}))
  ref = _make(d, cfg, seed=9)
  prompts = [t.format(n) for n in names for t in temps]
  assert _word_level_tokenizer(d, prompts) <= 64
  return d, ref, names, temps, models.load(f"openclip:{d}")


def test_siglip_style_model_classifies_like_open_clip_through_the_zero_shot_head(siglip_style):
  """End to end through the zero-shot head: a SigLIP-style checkpoint (sigmoid score, logit
  bias, bidirectional text padded with the pad id) classifies like open_clip on the same
  weights."""
  from jaxbench.zeroshot import head as head_lib
  from open_clip.tokenizer import HFTokenizer
  d, ref, names, temps, model = siglip_style
  prompts = [t.format(n) for n in names for t in temps]
  head = head_lib.build_head(model, names, temps)
  clf = model.with_head(head)
  x = H.images(4, 32, seed=5)
  logits = np.asarray(jax.jit(clf.apply)(clf.params, x))
  # open_clip: mean of normalised prompt embeddings per class, renormalised; sigmoid logits.
  tok = HFTokenizer(d, context_length=16, clean="canonicalize")
  with torch.no_grad():
    zt = ref.encode_text(tok(prompts), normalize=True).reshape(len(names), len(temps), -1)
    w = torch.nn.functional.normalize(zt.mean(1), dim=-1)
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std),
                          normalize=True)
    want = (zi @ w.T * ref.logit_scale.exp() + ref.logit_bias).numpy()
  assert model.score == "sigmoid"
  np.testing.assert_allclose(logits, want, atol=1e-3 * np.abs(want).max())


def test_siglip_style_model_in_bfloat16_stays_close_to_float32(siglip_style):
  d, _, _, _, model = siglip_style
  x = H.images(4, 32, seed=5)
  bf16 = models.load(f"openclip:{d}(precision='bfloat16')")
  zb = np.asarray(jax.jit(bf16.encode_image)(bf16.params, x), np.float32)
  z32 = np.asarray(jax.jit(model.encode_image)(model.params, x))
  assert H.max_abs(zb, z32) < 5e-2 * np.abs(z32).max()
