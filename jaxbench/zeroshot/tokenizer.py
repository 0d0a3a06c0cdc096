"""CLIP BPE tokenizer files in the transformers layout, from the BPE merges file.

Hugging Face CLIP repos ship ``vocab.json`` + ``merges.txt``; OpenAI's and
open_clip's tokenizers read ``bpe_simple_vocab_16e6.txt.gz``. Both describe the
same byte-level BPE: 256 byte symbols, their end-of-word forms, one symbol per
merge and the two special tokens. :func:`write_transformers_files` derives the
former from the latter so a locally trained model (the offline demo) is saved
exactly as a Hugging Face checkpoint would be. Tokenizing itself is transformers'
job (never re-implemented here).
"""
from __future__ import annotations

import gzip
import json
import os

from jaxbench.zeroshot.prompts import RESOURCES

BPE_PATH = os.path.join(RESOURCES, "bpe_simple_vocab_16e6.txt.gz")
NUM_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> list[str]:
  """GPT-2's reversible byte -> printable unicode table, in vocabulary order."""
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1)))
  cs = bs[:]
  n = 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return [chr(c) for c in cs]


def vocab_and_merges(bpe_path: str = BPE_PATH) -> tuple[dict[str, int], list[str]]:
  """(token -> id, merge lines) of the 49408-token CLIP vocabulary."""
  with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
    merges = f.read().split("\n")[1:NUM_MERGES + 1]
  symbols = _bytes_to_unicode()
  vocab = symbols + [s + "</w>" for s in symbols]
  vocab += ["".join(m.split()) for m in merges]
  vocab += ["<|startoftext|>", "<|endoftext|>"]
  return {tok: i for i, tok in enumerate(vocab)}, merges


def write_transformers_files(out_dir: str, context_length: int = 77,
                             bpe_path: str = BPE_PATH) -> list[str]:
  """Writes vocab.json, merges.txt and tokenizer configs for transformers' CLIPTokenizer."""
  os.makedirs(out_dir, exist_ok=True)
  vocab, merges = vocab_and_merges(bpe_path)
  with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
  with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
  config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": context_length,
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "do_lower_case": True, "errors": "replace"}
  with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
    json.dump(config, f, indent=1)
  with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
    json.dump({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, f)
  # tokenizer.json (the fast tokenizer, serialised) makes later loads take
  # milliseconds instead of rebuilding the BPE from vocab and merges (seconds).
  from transformers import AutoTokenizer
  AutoTokenizer.from_pretrained(out_dir).backend_tokenizer.save(
      os.path.join(out_dir, "tokenizer.json"))
  return ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
          "tokenizer.json"]
