"""Our tokenizer files + transformers' CLIPTokenizer == open_clip's tokenizer."""
import numpy as np
import open_clip

from jaxbench.models.clip import hf_tokenizer
from jaxbench.zeroshot import prompts, tokenizer


def test_ids_identical_to_open_clip_for_all_imagenet_prompts(tmp_path):
  tokenizer.write_transformers_files(str(tmp_path))
  ours = hf_tokenizer(str(tmp_path), 77)
  ref = open_clip.get_tokenizer("ViT-B-32")
  texts = prompts.prompts(prompts.classnames("imagenet"), prompts.templates("clip80"))
  assert len(texts) == 80_000
  # 77-token truncation keeps <|endoftext|> last, as open_clip does.
  texts += ["a " * 120 + "dog", "A Photo of  a   CAT!", "crème brûlée", "tench, Tinca tinca"]
  a, b = ours(texts), ref(texts).numpy()
  assert a.shape == b.shape == (len(texts), 77)
  np.testing.assert_array_equal(a, b)
  assert a[-4, -1] == 49407 and a[0, 0] == 49406


def test_vocabulary_layout():
  vocab, merges = tokenizer.vocab_and_merges()
  assert len(vocab) == 49408 and len(merges) == 48894
  assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
  assert vocab["a</w>"] == 320  # 'a' as a whole word, as in every CLIP prompt
