"""CoCa's contrastive path against open_clip's ``CoCa`` on identical weights.

Reduced versions of open_clip 3.3's CoCa configs (1-2 blocks, small widths, the real
CLIP vocabulary so real prompts run), random weights written by open_clip
(``state_dict`` -> ``open_clip_model.safetensors`` + ``open_clip_config.json``), loaded
with ``jaxbench.models.load``:

* image and text embeddings within 1e-4 (fp32) of ``CoCa.encode_image``/``encode_text``:
  the attentional pool with separate and with fused q/k/v (PyTorch fuses them when the
  tower's width equals the embedding width), and ``coca_base``'s plain ViT;
* token ids equal to open_clip's tokenizer (context 76) on 1,000 prompts;
* zero-shot logits through jaxbench's head equal open_clip's recipe;
* the decoder's tensors are known-unused (checked by name and shape), not swallowed;
* full-size configs: names and shapes against open_clip on the meta device.
"""
import os

import jax
import numpy as np
import open_clip
import pytest
import torch
from safetensors.numpy import load_file, save_file

from tests.models import zoo_helpers as H
from tests.models.test_openclip_families import _prompts
from jaxbench import models
from jaxbench.models import layers, openclip_coca

TEXT = dict(context_length=76, vocab_size=49408, width=32, heads=4, layers=2, embed_cls=True,
            output_tokens=True)
DECODER = dict(context_length=76, vocab_size=49408, width=32, heads=4, layers=1,
               attn_pooler_heads=4)
PP = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}

CONFIGS = {
    # coca_ViT-B-32/L-14-style: attentional pool, tower width (48) != embed_dim (32), so
    # the pooler's attention has separate q/k/v projections.
    "attn_pool": dict(embed_dim=32, custom_text=True, multimodal_cfg=DECODER, vision_cfg=dict(
        image_size=32, layers=2, width=48, patch_size=8, head_width=16, attentional_pool=True,
        attn_pooler_heads=4, attn_pooler_queries=6, output_tokens=True), text_cfg=TEXT),
    # The same with width == embed_dim: PyTorch's fused in_proj_weight in the pooler.
    "attn_pool_fused": dict(embed_dim=32, custom_text=True, multimodal_cfg=DECODER,
                            vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16,
                                            head_width=16, attentional_pool=True,
                                            attn_pooler_heads=2, output_tokens=True),
                            text_cfg=dict(TEXT, layers=1)),
    # coca_base-style: no attentional pool (class token, ln_post, proj), odd patch/size.
    "base": dict(embed_dim=24, custom_text=True, multimodal_cfg=dict(DECODER, n_queries=8),
                 vision_cfg=dict(image_size=36, layers=1, width=32, patch_size=18,
                                 head_width=16, output_tokens=True),
                 text_cfg=dict(TEXT, heads=2)),
}


def _make(d, model_cfg, seed):
  """open_clip CoCa with random weights, saved in the hub layout at ``d``."""
  name = f"zoo-coca-{os.path.basename(d)}"
  H.register_openclip_config(d + "_cfg", name, model_cfg)
  ref = open_clip.create_model(name, pretrained=None)
  assert type(ref).__name__ == "CoCa"
  H.randomize(ref, seed)
  H.save_openclip(ref, model_cfg, d, preprocess_cfg=PP)
  return ref


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """family -> (directory, open_clip reference, jaxbench model), written once."""
  root = tmp_path_factory.mktemp("coca")
  out = {}
  for i, (fam, cfg) in enumerate(sorted(CONFIGS.items())):
    d = str(root / fam)
    ref = _make(d, cfg, seed=i + 1)
    out[fam] = (d, ref, models.load(f"openclip:{d}"))
  return out


def _ids(n, seed=0):
  """Real-looking ids: start token, random tokens, end token, zero padding (varied lengths,
  one row filling the context, so the legacy CLS mask's edge is exercised)."""
  rng = np.random.default_rng(seed)
  ids = np.zeros((n, 76), np.int32)
  for i in range(n):
    end = [3, 11, 75, 40][i % 4]
    ids[i, 0] = 49406
    ids[i, 1:end] = rng.integers(1, 49405, end - 1)
    ids[i, end] = 49407
  return ids


@pytest.mark.parametrize("fam", sorted(CONFIGS))
def test_coca_embeddings_match_open_clip(built, fam):
  d, ref, model = built[fam]
  cfg = CONFIGS[fam]
  assert model.provenance["architecture"] == "openclip-coca-" + (
      "attn-pool" if cfg["vision_cfg"].get("attentional_pool") else "tok-pool")
  assert "text_decoder" in model.provenance["unused_tensors"]
  assert not model.causal_text          # the CLS position depends on the padded length
  size = cfg["vision_cfg"]["image_size"]
  assert model.preprocess.size == size
  x = H.images(3, size, seed=4)
  ids = np.concatenate([_ids(4), model.tokenize(["a photo of a dog.", ""])])
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, PP["mean"], PP["std"]), normalize=False).numpy()
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long), normalize=False).numpy()
  gi = np.asarray(jax.jit(model.encode_image)(model.params, x))
  gt = np.asarray(jax.jit(model.encode_text)(model.params, ids))
  assert gi.shape == zi.shape == (3, cfg["embed_dim"]) and gt.shape == zt.shape
  assert np.abs(zi).max() > 0.1 and np.abs(zt).max() > 0.1
  assert H.max_abs(gi, zi) < 1e-4 * np.abs(zi).max()
  assert H.max_abs(gt, zt) < 1e-4 * np.abs(zt).max()


def test_coca_text_needs_the_full_context(built):
  _, _, model = built["base"]
  with pytest.raises(ValueError, match="padded to 76"):
    model.encode_text(model.params, _ids(2)[:, :20])


def test_coca_token_ids_match_open_clip_tokenizer(built):
  """CLIP's BPE at CoCa's context (76), as open_clip.get_tokenizer('coca_ViT-B-32') gives."""
  _, _, model = built["attn_pool"]
  texts = _prompts() + ["A photo of a DOG!!", "x_y, z. " * 40, "&amp; caf\u00e9 na\u00efve"]
  got = model.tokenize(texts)
  want = open_clip.get_tokenizer("coca_ViT-B-32")(texts).numpy()
  assert got.shape == (len(texts), 76) and got.dtype == np.int32
  np.testing.assert_array_equal(got, want)


def test_coca_zero_shot_logits_match_open_clip(built):
  """End to end through jaxbench's zero-shot head (prompt ensembling, the learned scale)."""
  from jaxbench.zeroshot import head as head_lib
  _, ref, model = built["attn_pool"]
  names = ["tench", "goldfish", "great white shark", "hammerhead shark"]
  temps = ["a photo of a {}.", "a bad photo of the {}."]
  clf = model.with_head(head_lib.build_head(model, names, temps))
  x = H.images(4, 32, seed=5)
  logits = np.asarray(jax.jit(clf.apply)(clf.params, x))
  tok = open_clip.get_tokenizer("coca_ViT-B-32")
  with torch.no_grad():
    zt = ref.encode_text(tok([t.format(n) for n in names for t in temps]), normalize=True)
    w = torch.nn.functional.normalize(zt.reshape(len(names), len(temps), -1).mean(1), dim=-1)
    zi = ref.encode_image(H.to_nchw(x, PP["mean"], PP["std"]), normalize=True)
    want = (zi @ w.T * ref.logit_scale.exp()).numpy()
  assert model.score == "softmax" and np.ptp(want, axis=1).min() > 1e-2   # classes differ
  np.testing.assert_allclose(logits, want, atol=1e-4 * np.abs(want).max())


# --- the decoder: known-unused, checked ------------------------------------------------

def _rewrite(src_dir, dst_dir, edit):
  """Copies a saved checkpoint with its tensors changed by ``edit(dict) -> dict``."""
  os.makedirs(dst_dir)
  with open(os.path.join(src_dir, "open_clip_config.json")) as f:
    cfg = f.read()
  with open(os.path.join(dst_dir, "open_clip_config.json"), "w") as f:
    f.write(cfg)
  tensors = load_file(os.path.join(src_dir, "open_clip_model.safetensors"))
  save_file(edit(dict(tensors)), os.path.join(dst_dir, "open_clip_model.safetensors"))
  return dst_dir


def test_checkpoint_without_the_decoder_loads_the_same(built, tmp_path):
  d, _, model = built["attn_pool_fused"]
  e = _rewrite(d, str(tmp_path / "nodec"), lambda t: {k: v for k, v in t.items()
                                                     if not k.startswith("text_decoder.")})
  lean = models.load(f"openclip:{e}")
  x = H.images(2, 32, seed=1)
  np.testing.assert_array_equal(np.asarray(lean.encode_image(lean.params, x)),
                                np.asarray(model.encode_image(model.params, x)))


def test_stray_and_mis_shaped_tensors_are_named(built, tmp_path):
  d, _, _ = built["attn_pool_fused"]
  stray = _rewrite(d, str(tmp_path / "stray"), lambda t: dict(
      t, **{"text_decoder.extra.weight": np.zeros((2,), np.float32)}))
  with pytest.raises(layers.CheckpointMismatch,
                     match=r"unexpected tensors \[text_decoder\.extra\.weight\]"):
    models.load(f"openclip:{stray}")
  wide = _rewrite(d, str(tmp_path / "wide"), lambda t: dict(
      t, **{"text_decoder.text_projection": np.zeros((32, 7), np.float32)}))
  with pytest.raises(layers.CheckpointMismatch, match=r"text_decoder\.text_projection: "
                     r"expected \(32, 49408\), found \(32, 7\)"):
    models.load(f"openclip:{wide}")
  query = _rewrite(d, str(tmp_path / "query"), lambda t: dict(
      t, **{"visual.attn_pool.query": np.zeros((5, 32), np.float32)}))
  with pytest.raises(layers.CheckpointMismatch,
                     match=r"visual\.attn_pool\.query: expected \(256, 32\), found \(5, 32\)"):
    models.load(f"openclip:{query}")
  nocls = _rewrite(d, str(tmp_path / "nocls"), lambda t: {k: v for k, v in t.items()
                                                         if k != "text.cls_emb"})
  with pytest.raises(layers.CheckpointMismatch, match=r"missing tensors \[text\.cls_emb "
                                                      r"\(expected shape \(32,\)\)\]"):
    models.load(f"openclip:{nocls}")


def test_unbuilt_coca_options_are_refused():
  cfg = open_clip.get_model_config("coca_ViT-B-32")
  bad = dict(cfg, vision_cfg=dict(cfg["vision_cfg"], attentional_pool="parallel"))
  with pytest.raises(layers.UnknownArchitecture, match="'parallel'"):
    openclip_coca.parse(bad, quick_gelu=None, source="x")
  bad = dict(cfg, text_cfg=dict(cfg["text_cfg"], embed_cls=False))
  with pytest.raises(layers.UnknownArchitecture, match="embed_cls"):
    openclip_coca.parse(bad, quick_gelu=None, source="x")
  bad = dict(cfg, text_cfg=dict(cfg["text_cfg"], ls_init_value=0.1))
  with pytest.raises(layers.UnknownArchitecture, match="ls_init_value"):
    openclip_coca.parse(bad, quick_gelu=None, source="x")


# --- full size: names and shapes on the meta device -------------------------------------

@pytest.mark.parametrize("name", ["coca_ViT-B-32", "coca_ViT-L-14", "coca_base"])
def test_full_size_coca_state_dict_matches_open_clip(name):
  cfg_json = open_clip.get_model_config(name)
  with torch.device("meta"):
    ref = open_clip.create_model(name, pretrained=None, device="meta")
  want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
  cfg = openclip_coca.parse(cfg_json, quick_gelu=None, source=name)
  got = openclip_coca.expected_tensors(cfg)
  decoder = dict(cfg.decoder)
  assert not set(got) & set(decoder)
  assert {**got, **decoder} == want
  assert set(decoder) == {k for k in want if k.startswith("text_decoder.")}


def test_coca_in_bfloat16_stays_close_to_float32(built):
  d, _, model = built["attn_pool"]
  bf16 = models.load(f"openclip:{d}(precision='bfloat16')")
  x, ids = H.images(2, 32, seed=6), _ids(4)
  for enc, arg in ((lambda m: m.encode_image, x), (lambda m: m.encode_text, ids)):
    zb = np.asarray(jax.jit(enc(bf16))(bf16.params, arg), np.float32)
    z32 = np.asarray(jax.jit(enc(model))(model.params, arg))
    assert np.isfinite(zb).all() and H.max_abs(zb, z32) < 5e-2 * np.abs(z32).max()


def test_pickle_only_coca_repo_converts_with_open_clips_config(built, tmp_path):
  """LAION's CoCa repos ship only open_clip_pytorch_model.bin, no config:
  `jaxbench.convert --openclip_config NAME` writes the safetensors and open_clip's config."""
  from jaxbench import convert
  d, ref, model = built["attn_pool_fused"]
  src = tmp_path / "laion_style"
  src.mkdir()
  torch.save(ref.state_dict(), src / "open_clip_pytorch_model.bin")
  with pytest.raises(Exception, match=r"jaxbench\.convert --src .* --openclip_config"):
    models.load(f"openclip:{src}")
  name = f"zoo-coca-{os.path.basename(d)}"          # registered with open_clip by _make
  dst = str(tmp_path / "converted")
  assert convert.main(["--src", str(src), "--dst", dst, "--openclip_config", name]) == 0
  got = models.load(f"openclip:{dst}")
  x = H.images(2, 32, seed=2)
  # The converted directory has no preprocess_cfg: CLIP's mean/std (as the CoCa tags use).
  with torch.no_grad():
    want = ref.encode_image(H.to_nchw(x, got.preprocess.mean, got.preprocess.std),
                            normalize=False).numpy()
  assert H.max_abs(got.encode_image(got.params, x), want) < 1e-4 * np.abs(want).max()
  with pytest.raises(convert.ConvertError, match="exists"):
    convert.write_openclip_config(name, dst)
  with pytest.raises(convert.ConvertError, match=r"closest: \[.*coca_ViT-L-14"):
    convert.write_openclip_config("coca_ViT-L-15", str(tmp_path / "x"))
