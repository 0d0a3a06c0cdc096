"""The per-word CLIP token cache gives the tokenizer's own ids."""
import numpy as np
import pytest
from transformers import AutoTokenizer

from jaxbench.models import clip, word_tokens
from jaxbench.zeroshot import prompts, tokenizer


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
  d = tmp_path_factory.mktemp("clip_tok")
  tokenizer.write_transformers_files(str(d))
  return str(d)


def _own_ids(tok, texts, context=77):
  enc = tok(list(texts), padding="max_length", max_length=context, truncation=True,
            return_attention_mask=True)
  return np.where(np.asarray(enc["attention_mask"]) > 0,
                  np.asarray(enc["input_ids"], np.int32), 0)


ODD = ["  A  photo   of a\tDOG. ", "Ünïcödé café — naïve", "jack-o'-lantern's (bird)",
       "it's 3.14159 o'clock!!!", "", "x" * 400, " ".join(["word"] * 120),
       "a photo of the crane (machine).", "e\u0301 composed by NFC", "<|endoftext|> inside"]


def test_word_cache_equals_the_tokenizer_on_imagenet_prompts_and_odd_text(clip_files):
  tok = AutoTokenizer.from_pretrained(clip_files)
  assert word_tokens.clip_pipeline(tok)
  names = prompts.classnames("imagenet")
  texts = prompts.prompts(names[::10], prompts.templates("clip80")[::8]) + ODD
  assert len(texts) >= 1000
  np.testing.assert_array_equal(word_tokens.WordCache(tok, 77)(texts), _own_ids(tok, texts))


def test_word_cache_truncates_keeping_the_end_token(clip_files):
  tok = AutoTokenizer.from_pretrained(clip_files)
  ids = word_tokens.WordCache(tok, 16)(["one two three " * 20])
  np.testing.assert_array_equal(ids, _own_ids(tok, ["one two three " * 20], 16))
  assert ids[0, -1] == tok.eos_token_id


def test_hf_tokenizer_gives_the_tokenizers_ids(clip_files):
  texts = prompts.prompts(prompts.classnames("imagenet")[:50], ["a photo of a {}."])
  tok = AutoTokenizer.from_pretrained(clip_files)
  np.testing.assert_array_equal(clip.hf_tokenizer(clip_files, 77)(texts), _own_ids(tok, texts))


def test_wrap_serves_clip_prompts_from_the_word_cache(clip_files):
  tok = AutoTokenizer.from_pretrained(clip_files)
  fn = word_tokens.wrap(tok, 77, lambda t: _own_ids(tok, t))
  fn(prompts.prompts(["tabby cat", "goldfish"], prompts.templates("clip80")))
  assert {"tabby", "cat", "goldfish", "photo"} <= set(fn.word_cache._words)


def test_wrap_leaves_other_tokenizers_alone(clip_files):
  from tokenizers import normalizers
  tok = AutoTokenizer.from_pretrained(clip_files)
  tok.backend_tokenizer.normalizer = normalizers.Lowercase()   # not CLIP's pipeline
  reference = lambda t: _own_ids(tok, t)   # noqa: E731
  assert word_tokens.wrap(tok, 77, reference) is reference


def test_wrap_falls_back_when_its_self_check_differs(clip_files):
  tok = AutoTokenizer.from_pretrained(clip_files)
  reference = lambda t: _own_ids(tok, t) + 1   # noqa: E731  (a tokenizer that disagrees)
  fn = word_tokens.wrap(tok, 77, reference)
  texts = [f"a photo of thing {i}" for i in range(40)]
  np.testing.assert_array_equal(fn(texts), reference(texts))


def test_tokenizer_json_alone_gives_transformers_ids(clip_files):
  tok = AutoTokenizer.from_pretrained(clip_files)
  light = word_tokens.JsonTokenizer(f"{clip_files}/tokenizer.json")
  assert word_tokens.clip_pipeline(light)
  assert (light.bos_token_id, light.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
  assert light.get_added_vocab() == tok.get_added_vocab()
  names = prompts.classnames("imagenet")
  texts = prompts.prompts(names[::10], prompts.templates("clip80")[::8]) + ODD
  for context in (77, 16):
    np.testing.assert_array_equal(word_tokens.tokenizer_ids(light, texts, context),
                                  _own_ids(tok, texts, context))
  np.testing.assert_array_equal(word_tokens.WordCache(light, 77)(texts), _own_ids(tok, texts))


def test_hf_tokenizer_imports_neither_transformers_nor_torch(clip_files):
  # transformers' tokenizer classes import torch: seconds of a cold start on a GPU host.
  import subprocess
  import sys
  code = ("import sys; from jaxbench.models import clip; "
          f"ids = clip.hf_tokenizer({clip_files!r}, 77)(['a photo of a dog.'] * 40); "
          "print(ids[0, :6].tolist(), sorted({'transformers', 'torch'} & set(sys.modules)))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  tok = AutoTokenizer.from_pretrained(clip_files)
  assert out.stdout.split("]")[0] + "]" == str(_own_ids(tok, ["a photo of a dog."])[0, :6].tolist())
  assert out.stdout.strip().endswith("[]"), out.stdout
