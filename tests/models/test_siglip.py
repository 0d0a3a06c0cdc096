"""SigLIP (transformers layout) against transformers' SiglipModel on identical weights."""
import dataclasses
import io
import os

import jax
import numpy as np
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import models

TEXTS = ["a photo of a dog.", "a bad photo of the great white shark.", "itap of a tench",
         "a sculpture of a hammerhead, in the dark, seen from far away and again and again"]


def _tokenizer_files(d, context):
  """A tiny SentencePiece model trained here, saved as SigLIP's tokenizer files."""
  import sentencepiece as spm
  from transformers import SiglipTokenizer
  corpus = ["a photo of a dog", "a photo of a cat", "a bad photo of the great white shark",
            "itap of a tench", "a sculpture of a hammerhead"] * 20
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=buf,
                                 vocab_size=32, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                 minloglevel=2)
  os.makedirs(d, exist_ok=True)
  path = os.path.join(d, "spiece.model")
  with open(path, "wb") as f:
    f.write(buf.getvalue())
  SiglipTokenizer(vocab_file=path, model_max_length=context).save_pretrained(d)


def _make(d, vision, text, seed=0):
  from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel
  torch.manual_seed(seed)
  ref = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
  H.randomize(ref, seed)
  with torch.no_grad():                  # checkpoint-like scale/bias, not the init values
    ref.logit_scale.fill_(2.3)
    ref.logit_bias.fill_(-7.5)
  ref.save_pretrained(d)
  size = vision["image_size"]
  SiglipImageProcessor(size={"height": size, "width": size}).save_pretrained(d)
  _tokenizer_files(d, text["max_position_embeddings"])
  return ref


TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            vocab_size=32, max_position_embeddings=16, pad_token_id=0, eos_token_id=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("zoo_siglip"))
  vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, image_size=32, patch_size=8)
  return d, _make(d, vision, TEXT)


@dataclasses.dataclass
class _Head:
  """Duck-typed zero-shot head (the contract Model.with_head reads)."""
  weights: np.ndarray
  logit_scale: float
  logit_bias: float
  label_space: str = "test"

  def info(self):
    return {"classes": len(self.weights)}


def test_small_siglip_matches_transformers(small):
  from transformers import AutoTokenizer
  d, ref = small
  model = models.load(d)
  assert model.provenance["layout"] == "transformers-siglip"
  assert model.score == "sigmoid" and model.context_length == 16
  assert (model.preprocess.size, model.preprocess.crop) == (32, "squash")
  assert model.preprocess.interpolation == "bicubic" and model.preprocess.mean == (0.5,) * 3
  # Tokenizer: the repo's own, padded to the full context (SigLIP pools the last position).
  ids = model.tokenize(TEXTS)
  want_ids = AutoTokenizer.from_pretrained(d)(TEXTS, padding="max_length", max_length=16,
                                              truncation=True)["input_ids"]
  np.testing.assert_array_equal(ids, np.asarray(want_ids))
  assert ids.shape == (4, 16) and ids.dtype == np.int32

  x = H.images(2, 32)
  pix = H.to_nchw(x, model.preprocess.mean, model.preprocess.std)
  with torch.no_grad():
    zi = ref.get_image_features(pixel_values=pix).pooler_output.numpy()
    zt = ref.get_text_features(input_ids=torch.tensor(ids, dtype=torch.long)).pooler_output
    out = ref(pixel_values=pix, input_ids=torch.tensor(ids, dtype=torch.long))
  gi = np.asarray(jax.jit(model.encode_image)(model.params, x))
  gt = np.asarray(jax.jit(model.encode_text)(model.params, ids))
  assert H.max_abs(gi, zi) < 1e-4 and H.max_abs(gt, zt.numpy()) < 1e-4
  # Sigmoid head: exp(logit_scale) * cos + logit_bias, as SiglipModel's logits_per_image.
  assert model.provenance["logit_scale"] == pytest.approx(np.exp(2.3), rel=1e-6)
  assert model.provenance["logit_bias"] == pytest.approx(-7.5, rel=1e-6)
  net = model.params["net"]
  head = _Head(gt / np.linalg.norm(gt, axis=-1, keepdims=True),
               float(np.exp(net["logit_scale"])), float(net["logit_bias"]))
  logits = np.asarray(jax.jit(model.with_head(head).apply)(model.with_head(head).params, x))
  assert H.max_abs(logits, out.logits_per_image.numpy()) < 1e-3


def test_text_must_fill_the_context(small):
  d, _ = small
  model = models.load(d)
  with pytest.raises(ValueError, match="padded to 16"):
    model.encode_text(model.params, np.zeros((1, 8), np.int32))


def test_full_siglip_b16_image_tower_matches_transformers(tmp_path):
  """google/siglip-base-patch16-224's image tower (768 wide, 12 layers, MAP head), batch 1."""
  from transformers import SiglipVisionConfig
  vision = SiglipVisionConfig().to_dict()
  assert (vision["hidden_size"], vision["patch_size"], vision["image_size"]) == (768, 16, 224)
  d = str(tmp_path)
  ref = _make(d, {k: vision[k] for k in ("hidden_size", "num_hidden_layers",
                                          "num_attention_heads", "intermediate_size",
                                          "image_size", "patch_size")},
              dict(TEXT, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                   intermediate_size=64), seed=1)
  model = models.load(f"hf:{d}")
  x = H.images(1, 224, seed=1)
  with torch.no_grad():
    zi = ref.get_image_features(pixel_values=H.to_nchw(x, model.preprocess.mean,
                                                       model.preprocess.std)).pooler_output
  gi = np.asarray(jax.jit(model.encode_image)(model.params, x))
  assert H.max_abs(gi, zi.numpy()) < 1e-4 * max(1.0, float(zi.abs().max()))
