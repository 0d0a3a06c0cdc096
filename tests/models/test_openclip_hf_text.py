"""OpenCLIP models with a Hugging Face text tower against open_clip on identical weights.

* Parity: one reduced config per encoder family (RoBERTa, XLM-R, mT5, NLLB/M2M100,
  and NLLB with a timm SigLIP image tower): the encoder's ``config.json`` written by
  the test (1-2 layers, small widths) in a local directory named by
  ``hf_model_name`` (open_clip reads it with ``AutoConfig.from_pretrained``),
  random weights written by open_clip in the hub layout, loaded with
  ``jaxbench.models.load``; image and text embeddings within 1e-4 of open_clip's,
  with pad tokens in the ids (the attention mask and the poolers see them).
* T5's relative-position buckets and M2M100's sinusoidal table against transformers'.
* Full-size towers: tensor names and shapes against open_clip on the meta device, with
  the published encoder configs written out.
* Tokenizers: token ids equal open_clip's ``HFTokenizer`` on the same files (a byte-level
  BPE and a Unigram tokenizer trained here, saved in the HF layout), 1,000 prompts.
* Bad input: a missing encoder config, missing tokenizer files, a wrong tensor shape,
  an encoder type not implemented: each named.
"""
import json
import os

import jax
import numpy as np
import open_clip
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import models
from jaxbench.models import hub, layers, openclip_hf_text

# Tiny encoders in transformers' config.json form (what hf_model_name's repo holds).
ENCODERS = {
    "roberta": dict(model_type="roberta", vocab_size=96, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
                    type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                    layer_norm_eps=1e-5, hidden_act="gelu"),
    "xlm-roberta": dict(model_type="xlm-roberta", vocab_size=96, hidden_size=32,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
                        layer_norm_eps=1e-5),
    "mt5": dict(model_type="mt5", vocab_size=96, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                num_decoder_layers=1, num_heads=4, relative_attention_num_buckets=8,
                relative_attention_max_distance=16, feed_forward_proj="gated-gelu",
                pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                tie_word_embeddings=False),
    "m2m_100": dict(model_type="m2m_100", vocab_size=96, d_model=32, encoder_layers=2,
                    decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
                    encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=40,
                    scale_embedding=True, activation_function="relu", pad_token_id=1,
                    bos_token_id=0, eos_token_id=2, decoder_start_token_id=2),
}

VIT = dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16)
SIGLIP_TRUNK = dict(timm_model_name="zootest_vit_siglip", timm_model_pretrained=False,
                    timm_pool="map", timm_proj="none", image_size=32)

# name: (encoder, model_cfg without hf_model_name, pad id)
FAMILIES = {
    # roberta-ViT-B-32-style: mean pooler, default 'mlp' projection, QuickGELU ViT.
    "roberta": ("roberta", dict(embed_dim=24, quick_gelu=True, vision_cfg=VIT,
                                text_cfg=dict(hf_pooler_type="mean_pooler", context_length=16))),
    # RoBERTa with cls_pooler: open_clip adds transformers' pooler (dense + tanh).
    "roberta_cls": ("roberta", dict(embed_dim=24, vision_cfg=VIT, text_cfg=dict(
        hf_pooler_type="cls_pooler", hf_proj_type="linear", context_length=16))),
    # xlm-roberta-base-ViT-B-32-style.
    "xlm_roberta": ("xlm-roberta", dict(embed_dim=24, vision_cfg=VIT, text_cfg=dict(
        hf_pooler_type="mean_pooler", context_length=16))),
    # mt5-base-ViT-B-32-style: T5 encoder, mean pooler, 'mlp' projection; 20 tokens so that
    # relative distances reach the logarithmic buckets and max_distance.
    "mt5": ("mt5", dict(embed_dim=24, vision_cfg=VIT, text_cfg=dict(
        hf_pooler_type="mean_pooler", context_length=20))),
    # nllb-clip-base-style: M2M100 encoder, cls pooler (first token), linear projection.
    "nllb": ("m2m_100", dict(embed_dim=24, vision_cfg=VIT, text_cfg=dict(
        hf_proj_type="linear", hf_pooler_type="cls_pooler", context_length=16))),
    # nllb-clip-base-siglip-style: timm SigLIP trunk, logit bias.
    "nllb_siglip": ("m2m_100", dict(embed_dim=32, custom_text=True, init_logit_bias=-10,
                                    vision_cfg=SIGLIP_TRUNK, text_cfg=dict(
                                        hf_proj_type="linear", hf_pooler_type="cls_pooler",
                                        context_length=16))),
}


def _write_encoder(d, encoder):
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "config.json"), "w") as f:
    json.dump(ENCODERS[encoder], f)
  return d


def _sharpen(ref, seed):
  """Redraws every matrix at N(0, 1/fan_in) (embeddings at N(0, 1)): transformers' 0.02-std
  init leaves attention near uniform and outputs near zero at these widths, where a wrong
  mask, bucket or position would hide under the tolerance."""
  g = torch.Generator().manual_seed(seed + 100)
  with torch.no_grad():
    for name, t in ref.named_parameters():
      if t.ndim == 2 and (name.startswith("text.") or "attn" in name or "proj" in name):
        scale = 1.0 if "embed" in name or "relative_attention_bias" in name else t.shape[1] ** -0.5
        t.copy_(torch.randn(t.shape, generator=g) * scale)


def _make(root, family, seed=0, model_cfg=None, vocab_size=None):
  """(checkpoint dir, open_clip reference, model_cfg) of a reduced config."""
  from tests.models import test_openclip_families as F
  F._register_timm()
  F._register_jaxbench()
  encoder, cfg = FAMILIES[family]
  hf_dir = _write_encoder(os.path.join(root, f"hf_{encoder}"), encoder)
  if vocab_size:
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
      json.dump(dict(ENCODERS[encoder], vocab_size=vocab_size), f)
  cfg = json.loads(json.dumps(model_cfg or cfg))
  cfg["text_cfg"]["hf_model_name"] = hf_dir
  name = f"zoo-hf-{family}-{os.path.basename(root)}"
  H.register_openclip_config(os.path.join(root, "cfg"), name, cfg)
  ref = open_clip.create_model(name, pretrained=None, pretrained_text=False)
  H.randomize(ref, seed)
  _sharpen(ref, seed)
  d = os.path.join(root, "ckpt")
  H.save_openclip(ref, cfg, d, preprocess_cfg={"mean": [0.5, 0.4, 0.3],
                                              "std": [0.2, 0.25, 0.3]})
  return d, ref, cfg


def _ids(n, length, vocab, pad, seed=0):
  """Rows of random non-pad tokens of lengths 1..length, padded with ``pad``."""
  rng = np.random.default_rng(seed)
  ids = np.full((n, length), pad, np.int32)
  for i in range(n):
    end = 1 + (i * 5) % length
    row = rng.integers(3, vocab, end)
    ids[i, :end] = np.where(row == pad, pad + 3, row)
  return ids


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_matches_open_clip(tmp_path, family):
  d, ref, cfg = _make(str(tmp_path), family, seed=len(family))
  encoder = FAMILIES[family][0]
  model = models.load(f"openclip:{d}")
  assert model.provenance["architecture"].startswith(f"openclip-hf-text-{encoder}:")
  assert model.context_length == cfg["text_cfg"]["context_length"]
  x = H.images(3, 32, seed=4)
  pad = ENCODERS[encoder]["pad_token_id"]
  ids = _ids(5, model.context_length, ENCODERS[encoder]["vocab_size"], pad)
  with torch.no_grad():
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std)).numpy()
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long)).numpy()
  gi = jax.jit(model.encode_image)(model.params, x)
  gt = jax.jit(model.encode_text)(model.params, ids)
  assert np.abs(zi).max() > 0.1 and np.abs(zt).max() > 0.1
  assert H.max_abs(gi, zi) < 1e-4 * np.abs(zi).max()
  assert H.max_abs(gt, zt) < 1e-4 * np.abs(zt).max()
  assert model.score == ("sigmoid" if "init_logit_bias" in cfg else "softmax")


def test_t5_relative_buckets_match_transformers():
  from transformers.models.mt5.modeling_mt5 import MT5Attention
  for length, nb, dist in ((77, 32, 128), (300, 32, 128), (40, 8, 16)):
    ctx = torch.arange(length)[:, None]
    want = MT5Attention._relative_position_bucket(torch.arange(length)[None, :] - ctx,
                                                  bidirectional=True, num_buckets=nb,
                                                  max_distance=dist).numpy()
    np.testing.assert_array_equal(openclip_hf_text.relative_buckets(length, nb, dist), want)


def test_m2m100_sinusoids_match_transformers():
  from transformers.models.m2m_100.modeling_m2m_100 import M2M100SinusoidalPositionalEmbedding
  for n, dim in ((80, 32), (600, 1024), (20, 7)):
    want = M2M100SinusoidalPositionalEmbedding.get_embedding(n, dim, 1).numpy()
    # Same float32 formula; numpy's exp/sin differ from torch's by an ulp, which at
    # position p is an angle error of ~p * 6e-8.
    np.testing.assert_allclose(openclip_hf_text.sinusoid_table(n, dim, 1), want, rtol=0,
                               atol=2e-7 * n)


# --- full-size towers: names and shapes on the meta device ----------------------------

# The published encoders' config.json values (the repos cannot be fetched here).
FULL_ENCODERS = {
    "roberta-base": dict(model_type="roberta", vocab_size=50265, hidden_size=768,
                         num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                         max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                         layer_norm_eps=1e-5),
    "xlm-roberta-large": dict(model_type="xlm-roberta", vocab_size=250002, hidden_size=1024,
                              num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096, max_position_embeddings=514,
                              type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5),
    "google/mt5-xl": dict(model_type="mt5", vocab_size=250112, d_model=2048, d_kv=64, d_ff=5120,
                          num_layers=24, num_heads=32, feed_forward_proj="gated-gelu",
                          pad_token_id=0, eos_token_id=1, tie_word_embeddings=False),
    "facebook/nllb-200-distilled-1.3B": dict(
        model_type="m2m_100", vocab_size=256206, d_model=1024, encoder_layers=24,
        decoder_layers=24, encoder_attention_heads=16, decoder_attention_heads=16,
        encoder_ffn_dim=8192, decoder_ffn_dim=8192, max_position_embeddings=1024,
        scale_embedding=True, activation_function="relu", pad_token_id=1),
}


@pytest.mark.parametrize("name,encoder", [("roberta-ViT-B-32", "roberta-base"),
                                          ("xlm-roberta-large-ViT-H-14", "xlm-roberta-large"),
                                          ("mt5-xl-ViT-H-14", "google/mt5-xl"),
                                          ("nllb-clip-large-siglip",
                                           "facebook/nllb-200-distilled-1.3B")])
def test_full_size_state_dict_matches_open_clip(tmp_path, name, encoder):
  hf_dir = str(tmp_path / "hf")
  os.makedirs(hf_dir)
  with open(os.path.join(hf_dir, "config.json"), "w") as f:
    json.dump(FULL_ENCODERS[encoder], f)
  cfg = open_clip.get_model_config(name)
  cfg["text_cfg"]["hf_model_name"] = hf_dir
  H.register_openclip_config(str(tmp_path / "cfg"), f"zoo-full-{name}", cfg)
  with torch.device("meta"):
    ref = open_clip.create_model(f"zoo-full-{name}", pretrained=None, pretrained_text=False,
                                 device="meta")
  want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
  c = openclip_hf_text.parse(cfg, quick_gelu=None, source=name)
  c = openclip_hf_text.with_encoder(c, FULL_ENCODERS[encoder], cfg["embed_dim"], name)
  got = openclip_hf_text.expected_tensors(c)
  assert got == {k: s for k, s in want.items() if not k.endswith("attn_mask")}


# --- bad input ------------------------------------------------------------------------

def test_wrong_tensor_shape_is_named_with_both_shapes(tmp_path):
  d, ref, cfg = _make(str(tmp_path), "mt5")
  from safetensors.numpy import load_file, save_file
  path = os.path.join(d, "open_clip_model.safetensors")
  t = load_file(path)
  key = "text.transformer.block.1.layer.1.DenseReluDense.wi_0.weight"
  t[key] = np.zeros((40, 32), np.float32)
  del t["text.transformer.final_layer_norm.weight"]
  save_file(t, path)
  with pytest.raises(layers.CheckpointMismatch) as e:
    models.load(f"openclip:{d}")
  msg = str(e.value)
  assert f"{key}: expected (48, 32), found (40, 32)" in msg
  assert "text.transformer.final_layer_norm.weight (expected shape (32,))" in msg


def test_missing_encoder_config_is_named(tmp_path):
  d, ref, cfg = _make(str(tmp_path), "roberta")
  os.remove(os.path.join(cfg["text_cfg"]["hf_model_name"], "config.json"))
  with pytest.raises(hub.WeightsError, match=r"config\.json.*text_cfg\.hf_model_name"):
    models.load(f"openclip:{d}")


def test_unimplemented_encoder_type_is_refused(tmp_path):
  d, ref, cfg = _make(str(tmp_path), "roberta")
  with open(os.path.join(cfg["text_cfg"]["hf_model_name"], "config.json"), "w") as f:
    json.dump(dict(ENCODERS["roberta"], model_type="bert"), f)
  with pytest.raises(layers.UnknownArchitecture, match=r"model_type 'bert'.*mt5"):
    models.load(f"openclip:{d}")


def test_missing_tokenizer_files_are_named(tmp_path):
  """hf_tokenizer_name pointing at a directory with only config.json (transformers would
  build an empty tokenizer from it): refused on first use, the expected files named."""
  encoder, cfg = FAMILIES["xlm_roberta"]
  hf_dir = os.path.join(str(tmp_path), f"hf_{encoder}")
  d, _, _ = _make(str(tmp_path), "xlm_roberta", model_cfg=dict(
      cfg, text_cfg=dict(cfg["text_cfg"], hf_tokenizer_name=hf_dir)))
  model = models.load(f"openclip:{d}")            # loads: the tokenizer is read lazily
  with pytest.raises(hub.WeightsError,
                     match=r"no tokenizer files.*tokenizer\.json.*sentencepiece\.bpe\.model"
                           r".*found \['config\.json'\]"):
    model.tokenize(["a photo of a dog"])


# --- tokenizers -------------------------------------------------------------------------

def _prompts(n=1000):
  from tests.models import test_openclip_families as F
  return F._prompts(n)


def _bpe_tokenizer(d, texts):
  """A RoBERTa-layout tokenizer (byte-level BPE) trained here on the prompts."""
  from tokenizers import ByteLevelBPETokenizer
  from transformers import RobertaTokenizerFast
  bpe = ByteLevelBPETokenizer()
  bpe.train_from_iterator(texts[::3], vocab_size=400, min_frequency=2,
                          special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  os.makedirs(d, exist_ok=True)
  bpe.save_model(d)
  RobertaTokenizerFast(vocab=os.path.join(d, "vocab.json"),
                       merges=os.path.join(d, "merges.txt")).save_pretrained(d)


def _unigram_tokenizer(d, texts, layout):
  """An XLM-R or T5-layout tokenizer (SentencePiece-style Unigram) trained here."""
  from tokenizers import SentencePieceUnigramTokenizer
  from transformers import T5TokenizerFast, XLMRobertaTokenizerFast
  if layout == "t5":
    specials, cls = ["<pad>", "</s>", "<unk>"], T5TokenizerFast
  else:
    specials, cls = ["<s>", "<pad>", "</s>", "<unk>"], XLMRobertaTokenizerFast
  sp = SentencePieceUnigramTokenizer()
  sp.train_from_iterator(texts[::3], vocab_size=300, special_tokens=specials,
                         unk_token="<unk>")
  # The (piece, score) list is what the HF class builds its normaliser, pre-tokenizer and
  # BOS/EOS post-processor around (as from a real spiece.model).
  vocab = [tuple(v) for v in json.loads(sp.to_str())["model"]["vocab"]]
  os.makedirs(d, exist_ok=True)
  kw = dict(extra_ids=0) if layout == "t5" else {}
  cls(vocab=vocab, **kw).save_pretrained(d)


def _nllb_tokenizer(d, texts):
  """An NLLB-layout tokenizer (SentencePiece-style BPE; the class adds the language codes and
  prefixes the source language, eng_Latn) trained here."""
  from tokenizers import SentencePieceBPETokenizer
  from transformers import NllbTokenizerFast
  sp = SentencePieceBPETokenizer()
  sp.train_from_iterator(texts[::3], vocab_size=300,
                         special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
  m = json.loads(sp.to_str())["model"]
  merges = [tuple(x) if isinstance(x, list) else tuple(x.split()) for x in m["merges"]]
  os.makedirs(d, exist_ok=True)
  NllbTokenizerFast(vocab=m["vocab"], merges=merges, src_lang="eng_Latn").save_pretrained(d)


@pytest.mark.parametrize("layout", ["roberta", "xlm-roberta", "t5", "nllb"])
def test_tokenizer_matches_open_clip(tmp_path, layout):
  """Token ids as open_clip's HFTokenizer gives on the same files (hf_tokenizer_name), 1,000
  prompts plus long, cased and HTML-escaped ones: BOS/EOS, pad id, truncation."""
  from open_clip.tokenizer import HFTokenizer
  texts = _prompts() + ["A photo of a DOG!!", "x_y, z. " * 40, "&amp; caf\u00e9 na\u00efve"]
  tok_dir = str(tmp_path / "tok")
  if layout == "roberta":
    _bpe_tokenizer(tok_dir, texts)
  elif layout == "nllb":
    _nllb_tokenizer(tok_dir, texts)
  else:
    _unigram_tokenizer(tok_dir, texts, layout)
  text_cfg = dict(hf_model_name="unused", hf_tokenizer_name=tok_dir)
  tok = openclip_hf_text.tokenizer_for("/nonexistent", text_cfg, 16, [], "test")
  got = tok(texts)
  want = HFTokenizer(tok_dir, context_length=16)(texts).numpy()
  assert got.shape == (len(texts), 16) and got.dtype == np.int32
  np.testing.assert_array_equal(got, want)
  pad, eos = (0, 1) if layout == "t5" else (1, 2)
  assert (got == pad).any() and (got[:, -1] != pad).any()      # padded and truncated rows
  assert ((got == eos).sum(axis=1) == 1).all()                 # one EOS, kept on truncation
  if layout in ("roberta", "xlm-roberta"):
    assert (got[:, 0] == 0).all()                              # BOS <s>
  if layout == "nllb":                                         # source language first
    from transformers import AutoTokenizer
    assert (got[:, 0] == AutoTokenizer.from_pretrained(tok_dir).convert_tokens_to_ids(
        "eng_Latn")).all()


def test_checkpoint_with_tokenizer_files_classifies_like_open_clip(tmp_path):
  """End to end through the zero-shot head: a RoBERTa-style checkpoint shipping its own
  tokenizer files (byte-level BPE, pad id 1): jaxbench's prompts, mask and mean pooling give
  open_clip's logits (its HFTokenizer on the same files, encode_text, template mean)."""
  from jaxbench.zeroshot import head as head_lib
  from open_clip.tokenizer import HFTokenizer
  names = ["tench", "goldfish", "great white shark", "hammerhead shark"]
  temps = ["a photo of a {}.", "a bad photo of the {}.", "a sculpture of a {}."]
  prompts = [t.format(n) for n in names for t in temps]
  cfg = FAMILIES["roberta"][1]
  d, ref, _ = _make(str(tmp_path), "roberta", seed=2, vocab_size=400, model_cfg=dict(
      cfg, text_cfg=dict(cfg["text_cfg"], hf_tokenizer_name="unused/offline")))
  _bpe_tokenizer(d, _prompts() + prompts)
  model = models.load(f"openclip:{d}")
  assert "AutoTokenizer" in model.provenance["tokenizer"]
  tok = HFTokenizer(d, context_length=16)
  np.testing.assert_array_equal(model.tokenize(prompts), tok(prompts).numpy())
  clf = model.with_head(head_lib.build_head(model, names, temps))
  x = H.images(4, 32, seed=5)
  logits = np.asarray(jax.jit(clf.apply)(clf.params, x))
  with torch.no_grad():
    zt = ref.encode_text(tok(prompts), normalize=True).reshape(len(names), len(temps), -1)
    w = torch.nn.functional.normalize(zt.mean(1), dim=-1)
    zi = ref.encode_image(H.to_nchw(x, model.preprocess.mean, model.preprocess.std),
                          normalize=True)
    want = (zi @ w.T * ref.logit_scale.exp()).numpy()
  assert model.score == "softmax"
  np.testing.assert_allclose(logits, want, atol=1e-3 * np.abs(want).max())


def test_buffers_older_transformers_saved_are_ignored_and_stray_tensors_named(tmp_path):
  """Checkpoints written with older transformers carry RoBERTa's position_ids and M2M100's
  sinusoidal table as tensors (recomputed here, so ignored); any other extra is named."""
  from safetensors.numpy import load_file, save_file
  d, ref, _ = _make(str(tmp_path), "nllb")
  path = os.path.join(d, "open_clip_model.safetensors")
  t = load_file(path)
  t["text.transformer.embed_positions.weights"] = np.zeros((42, 32), np.float32)
  save_file(t, path)
  model = models.load(f"openclip:{d}")
  ids = _ids(2, 16, 96, pad=1)
  with torch.no_grad():
    zt = ref.encode_text(torch.tensor(ids, dtype=torch.long)).numpy()
  assert H.max_abs(jax.jit(model.encode_text)(model.params, ids), zt) < 1e-4 * np.abs(zt).max()
  t["text.transformer.layers.0.self_attn.rotary.weight"] = np.zeros((4,), np.float32)
  save_file(t, path)
  with pytest.raises(layers.CheckpointMismatch,
                     match=r"unexpected tensors \[text\.transformer\.layers\.0\.self_attn\.rotary"):
    models.load(f"openclip:{d}")


def test_bfloat16_stays_close_to_float32(tmp_path):
  d, _, _ = _make(str(tmp_path), "mt5", seed=5)
  ids = _ids(4, 20, 96, pad=0)
  z32 = np.asarray(jax.jit((m := models.load(f"openclip:{d}")).encode_text)(m.params, ids))
  bf = models.load(f"openclip:{d}(precision='bfloat16')")
  dtypes = {np.dtype(p.dtype) for p in jax.tree_util.tree_leaves(bf.params)}
  assert dtypes == {np.dtype(jax.numpy.bfloat16)}
  zb = np.asarray(jax.jit(bf.encode_text)(bf.params, ids), np.float32)
  assert 0 < H.max_abs(zb, z32) < 5e-2 * np.abs(z32).max()       # computed in bfloat16


# --- registry names -------------------------------------------------------------------

REGISTRY = {  # jaxbench name -> open_clip (config, pretrained tag)
    "roberta_vit_b32_laion2b": ("roberta-ViT-B-32", "laion2b_s12b_b32k"),
    "xlm_roberta_base_vit_b32_laion5b": ("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k"),
    "xlm_roberta_large_vit_h14_laion5b": ("xlm-roberta-large-ViT-H-14",
                                          "frozen_laion5b_s13b_b90k"),
    "nllb_clip_base": ("nllb-clip-base", "v1"),
    "nllb_clip_large": ("nllb-clip-large", "v1"),
    "nllb_clip_base_siglip": ("nllb-clip-base-siglip", "v1"),
    "nllb_clip_large_siglip": ("nllb-clip-large-siglip", "v1"),
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_name_points_at_open_clips_repo_for_an_accepted_config(name):
  from jaxbench import registry
  assert name in models.known()
  arch, tag = REGISTRY[name]
  ref, _, kwargs = registry.parse(models.NAMES.factory(name)())
  assert ref == "openclip:" + open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/")
  cfg = open_clip.get_model_config(arch)
  assert kwargs.get("quick_gelu", False) == cfg.get("quick_gelu", False)
  assert openclip_hf_text.handles(cfg)
  openclip_hf_text.parse(cfg, quick_gelu=None, source=arch)
