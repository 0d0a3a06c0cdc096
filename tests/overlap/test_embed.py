"""Corpus embedding (jaxbench/overlap/embed.py): the resumable store, empty corpora."""
import os
import tarfile

import numpy as np
import pytest

from jaxbench.overlap import corpus as corpus_lib, embed
from tests.overlap import overlap_fixtures as fx
from tests.overlap.test_corpus import _img


@pytest.fixture(scope="module")
def embedder():
  return embed.Embedder(fx.thumb_model(), batch_size=8, hashes=("phash",))


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, embedder):
  """A store cut after its first chunk, then finished by embed_corpus (run once).

  Returns a dict: root, meta, corpus, the interrupted store's state, the first chunk's
  mtime before and after resuming, the finished chunks.
  """
  tmp = tmp_path_factory.mktemp("resumed")
  os.makedirs(tmp / "c")
  fx.write_shard(str(tmp / "c" / "00000.tar"),
                 [(f"k{i}", fx.jpeg_bytes(_img(i))) for i in range(10)])
  corpus = corpus_lib.open_corpus(str(tmp / "c"))
  root = str(tmp / "store")
  meta = {"images": corpus.spec, "corpus": corpus.describe(), **embedder.describe()}
  store = embed.EmbeddingStore(root, meta, chunk=5)
  first = next(embedder.embed((it.id, it.ordinal, it.data) for it in corpus.items()))
  store.append(first)  # 8 rows: one 5-row chunk on disk, 3 rows lost in the "crash"
  cut = (store.last_ordinal, store.complete)
  chunk0 = os.path.join(store.part_dir, "emb-00000.npy")
  stamp = os.stat(chunk0).st_mtime_ns
  done = embed.embed_corpus(embedder, corpus_lib.open_corpus(str(tmp / "c")), root,
                            chunk=5)
  return {"root": root, "meta": meta, "corpus": corpus, "cut": cut, "stamp": stamp,
          "stamp_after": os.stat(chunk0).st_mtime_ns, "chunks": list(done.chunks())}


def test_interrupted_store_keeps_only_whole_chunks(resumed):
  assert resumed["cut"] == (corpus_lib.ordinal(0, 4), False)


def test_resume_does_not_redo_a_finished_chunk(resumed):
  assert resumed["stamp_after"] == resumed["stamp"]


def test_resumed_store_equals_one_uninterrupted_pass(resumed, embedder):
  chunks = resumed["chunks"]
  assert [len(c.ids) for c in chunks] == [5, 5]
  ids = [i for c in chunks for i in c.ids]
  assert ids == [f"00000/k{i}" for i in range(10)]
  ref = embedder.embed_all((it.id, it.ordinal, it.data) for it in resumed["corpus"].items())
  np.testing.assert_allclose(np.concatenate([c.emb for c in chunks]), ref.emb, atol=1e-6)
  np.testing.assert_array_equal(np.concatenate([c.hashes["phash"] for c in chunks]),
                                ref.hashes["phash"])


def test_store_written_for_another_model_is_refused(resumed):
  # A store made for another model is refused, not mixed.
  with pytest.raises(corpus_lib.CorpusError, match="was written for"):
    embed.EmbeddingStore(resumed["root"], {**resumed["meta"], "model": "other"})


def test_shards_of_only_bad_members_embed_to_an_empty_corpus_error(tmp_path, embedder):
  # Shards whose every member is bad: an empty corpus once read.
  os.makedirs(tmp_path / "bad")
  with tarfile.open(tmp_path / "bad" / "00000.tar", "w") as tf:
    fx.add_member(tf, "../x.jpg", fx.jpeg_bytes(_img(0)))
    fx.add_member(tf, "y.txt", b"no image")
    fx.add_member(tf, "z.jpg", b"not an image")
  with pytest.raises(corpus_lib.CorpusError, match=r"empty corpus: .* no valid image"):
    embed.embed_corpus(embedder, corpus_lib.open_corpus(str(tmp_path / "bad")),
                       str(tmp_path / "store"))
