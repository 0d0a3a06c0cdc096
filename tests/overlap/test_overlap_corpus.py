"""Corpus readers: img2dataset tar shards (and their bad members), folders, embedding files."""
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

import overlap_fixtures as fx
from jaxbench.overlap import corpus as corpus_lib, embed


def _img(seed):
  return fx.smooth_image(np.random.default_rng(seed))


def _shard_with_bad_members(path):
  good = [(f"{i:09d}", fx.jpeg_bytes(_img(i))) for i in range(4)]

  def extra(tf):
    fx.add_member(tf, "../evil.jpg", fx.jpeg_bytes(_img(10)))
    fx.add_member(tf, "a/../../evil2.jpg", fx.jpeg_bytes(_img(10)))
    fx.add_member(tf, "/abs/evil3.jpg", fx.jpeg_bytes(_img(10)))
    fx.add_member(tf, "000000099.txt", b"caption only")           # no image member
    fx.add_member(tf, "000000098.cls", b"3")                       # unknown only
    fx.add_member(tf, "000000001.jpg", fx.jpeg_bytes(_img(11)))   # duplicate key later
    fx.add_member(tf, "000000001.txt", b"dup caption")
    link = tarfile.TarInfo("000000097.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tf.addfile(link)
    fx.add_member(tf, "000000096.jpg", b"garbage bytes, not an image")
    fx.add_member(tf, "000000095.jpg", fx.jpeg_bytes(_img(12)))
    fx.add_member(tf, "000000095.jpg", fx.jpeg_bytes(_img(13)))   # repeated in sample
  return fx.write_shard(path, good, extra)


def test_tar_shard_yields_samples_and_records_bad_members(tmp_path):
  path = _shard_with_bad_members(str(tmp_path / "00007.tar"))
  before = fx.files_under(str(tmp_path.parent))
  c = corpus_lib.open_corpus(str(tmp_path))
  items = list(c.items())
  assert [it.id for it in items] == ["00007/000000000", "00007/000000001", "00007/000000002",
                                     "00007/000000003", "00007/000000096", "00007/000000095"]
  # Content, captions and json come from the right members; the first duplicate wins.
  np.testing.assert_array_equal(corpus_lib.decode_image(items[1].data),
                                corpus_lib.decode_image(fx.jpeg_bytes(_img(1))))
  assert items[0].meta == {"caption": "caption of 000000000",
                           "json": {"key": "000000000"}}
  assert corpus_lib.decode_image(items[5].data).shape == (48, 64, 3)
  with pytest.raises(ValueError, match="undecodable image"):
    corpus_lib.decode_image(items[4].data)
  # Ordinals: (shard index << 32) | sample position, increasing.
  assert [it.ordinal for it in items] == sorted(it.ordinal for it in items)
  reasons = {(p.name, p.reason.split(":")[0]) for p in c.problems.records}
  assert reasons == {
      ("../evil.jpg", "unsafe member name"), ("a/../../evil2.jpg", "unsafe member name"),
      ("/abs/evil3.jpg", "unsafe member name"), ("000000099", "no image member"),
      ("000000098", "no image member"), ("000000001.jpg", "duplicate key"),
      ("000000097.jpg", "not a regular file"), ("000000095.jpg", "duplicate key")}
  assert all(p.source == path for p in c.problems.records)
  # Reading extracted nothing anywhere.
  assert fx.files_under(str(tmp_path.parent)) == before
  assert not os.path.exists(os.path.join(os.getcwd(), "evil.jpg"))


def test_truncated_shard_keeps_complete_samples(tmp_path):
  path = str(tmp_path / "00000.tar")
  fx.write_shard(path, [(f"k{i}", fx.jpeg_bytes(_img(i))) for i in range(3)])
  data = open(path, "rb").read()
  # Cut inside the last sample's jpg data.
  with tarfile.open(path) as tf:
    last = tf.getmember("k2.jpg")
  with open(path, "wb") as f:
    f.write(data[:last.offset_data + 100])
  c = corpus_lib.open_corpus(path)
  assert [it.id for it in c.items()] == ["00000/k0", "00000/k1"]
  (p,) = c.problems.records
  assert p.name == "k2.jpg" and p.reason.startswith("truncated member")
  # A file that is not a tar at all.
  bad = tmp_path / "garbage.tar"
  bad.write_bytes(b"\x00\x01 this is not a tar" * 10)
  c2 = corpus_lib.open_corpus(str(bad))
  assert list(c2.items()) == []
  assert c2.problems.records[0].reason.split(":")[0] in ("unreadable shard",
                                                         "truncated or malformed shard")


def test_shard_patterns_and_process_shares(tmp_path):
  for s in range(3):
    fx.write_shard(str(tmp_path / f"{s:05d}.tar"),
                   [(f"k{i}", fx.jpeg_bytes(_img(10 * s + i))) for i in range(2)])
  full = corpus_lib.open_corpus(str(tmp_path / "{00000..00002}.tar"))
  assert corpus_lib.expand_braces("a/{08..10}.tar") == ["a/08.tar", "a/09.tar", "a/10.tar"]
  all_items = [(it.id, it.ordinal) for it in full.items()]
  assert len(all_items) == 6
  shares = [[(it.id, it.ordinal) for it in full.shard(i, 2).items()] for i in range(2)]
  assert sorted(shares[0] + shares[1]) == sorted(all_items)
  assert not set(shares[0]) & set(shares[1])
  # Resume: items strictly after an ordinal.
  after = [it.id for it in full.items(after=all_items[2][1])]
  assert after == [i for i, _ in all_items[3:]]


def test_image_folder_corpus(tmp_path):
  root = tmp_path / "imgs"
  os.makedirs(root / "sub")
  Image.fromarray(_img(0)).save(root / "a.png")
  Image.fromarray(_img(1)).save(root / "sub" / "b.jpg")
  (root / "notes.txt").write_text("not an image")
  outside = tmp_path / "secret.png"
  Image.fromarray(_img(2)).save(outside)
  os.symlink(outside, root / "link.png")
  c = corpus_lib.open_corpus(str(root))
  assert isinstance(c, corpus_lib.ImageFolder)
  assert [it.id for it in c.items()] == ["a.png", "sub/b.jpg"]
  assert [p.name for p in c.problems.records] == ["link.png"]
  assert set(c.fetch(["sub/b.jpg", "../secret.png"])) == {"sub/b.jpg"}


def test_embedding_files_and_their_errors(tmp_path):
  emb = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
  np.save(tmp_path / "part.npy", emb)
  (tmp_path / "part.ids.txt").write_text("\n".join(f"img{i}" for i in range(5)) + "\n")
  c = corpus_lib.open_corpus(str(tmp_path / "part.npy"))
  (chunk,) = list(c.chunks())
  np.testing.assert_array_equal(chunk.emb, emb)
  assert chunk.ids == [f"img{i}" for i in range(5)] and c.dim == 4

  def err(name, arr, ids, match):
    d = tmp_path / name
    os.makedirs(d)
    np.save(d / "x.npy", arr, allow_pickle=True)
    if ids is not None:
      (d / "x.ids.json").write_text(json.dumps(ids))
    with pytest.raises(corpus_lib.CorpusError, match=match):
      list(corpus_lib.open_corpus(str(d)).chunks())

  err("count", emb, ["a", "b"], r"5 rows but its ids file .* has 2 ids")
  err("dup", emb, ["a", "b", "c", "a", "e"], "duplicate id 'a'")
  err("nan", np.full((1, 4), np.nan, np.float32), ["a"], "NaN or inf")
  err("noids", emb, None, "no ids file")
  err("pickle", np.array([{"a": 1}], dtype=object), ["a"], "without pickle")
  err("shape", np.zeros(5, np.float32), ["a"] * 5, r"float \(N, D\) array")


@pytest.fixture(scope="module")
def embedder():
  return embed.Embedder(fx.thumb_model(), batch_size=8, hashes=("phash",))


def test_store_resumes_after_interruption(tmp_path, embedder):
  os.makedirs(tmp_path / "c")
  fx.write_shard(str(tmp_path / "c" / "00000.tar"),
                 [(f"k{i}", fx.jpeg_bytes(_img(i))) for i in range(10)])
  corpus = corpus_lib.open_corpus(str(tmp_path / "c"))
  root = str(tmp_path / "store")
  meta = {"images": corpus.spec, "corpus": corpus.describe(), **embedder.describe()}
  store = embed.EmbeddingStore(root, meta, chunk=5)
  first = next(embedder.embed((it.id, it.ordinal, it.data) for it in corpus.items()))
  store.append(first)  # 8 rows: one 5-row chunk on disk, 3 rows lost in the "crash"
  assert store.last_ordinal == corpus_lib.ordinal(0, 4) and not store.complete
  chunk0 = os.path.join(store.part_dir, "emb-00000.npy")
  stamp = os.stat(chunk0).st_mtime_ns
  done = embed.embed_corpus(embedder, corpus_lib.open_corpus(str(tmp_path / "c")), root,
                            chunk=5)
  assert os.stat(chunk0).st_mtime_ns == stamp  # the finished chunk was not redone
  chunks = list(done.chunks())
  assert [len(c.ids) for c in chunks] == [5, 5]
  ids = [i for c in chunks for i in c.ids]
  assert ids == [f"00000/k{i}" for i in range(10)]
  ref = embedder.embed_all((it.id, it.ordinal, it.data) for it in corpus.items())
  np.testing.assert_allclose(np.concatenate([c.emb for c in chunks]), ref.emb, atol=1e-6)
  np.testing.assert_array_equal(np.concatenate([c.hashes["phash"] for c in chunks]),
                                ref.hashes["phash"])
  # A store made for another model is refused, not mixed.
  with pytest.raises(corpus_lib.CorpusError, match="was written for"):
    embed.EmbeddingStore(root, {**meta, "model": "other"})


def test_empty_corpus_is_an_error(tmp_path, embedder):
  os.makedirs(tmp_path / "empty")
  with pytest.raises(corpus_lib.CorpusError, match="empty corpus"):
    corpus_lib.open_corpus(str(tmp_path / "empty"))
  with pytest.raises(corpus_lib.CorpusError, match="empty corpus"):
    corpus_lib.open_corpus(str(tmp_path / "none-{00000..00003}.tar"))
  with pytest.raises(corpus_lib.CorpusError, match="does not exist"):
    corpus_lib.open_corpus(str(tmp_path / "missing"))
  # Shards whose every member is bad: an empty corpus once read.
  os.makedirs(tmp_path / "bad")
  with tarfile.open(tmp_path / "bad" / "00000.tar", "w") as tf:
    fx.add_member(tf, "../x.jpg", fx.jpeg_bytes(_img(0)))
    fx.add_member(tf, "y.txt", b"no image")
    fx.add_member(tf, "z.jpg", b"not an image")
  with pytest.raises(corpus_lib.CorpusError, match=r"empty corpus: .* no valid image"):
    embed.embed_corpus(embedder, corpus_lib.open_corpus(str(tmp_path / "bad")),
                       str(tmp_path / "store"))


@pytest.mark.parametrize("cut", ["inside_header", "between_members"])
def test_shard_cut_inside_a_header_is_detected(tmp_path, cut):
  path = str(tmp_path / "00003.tar")
  fx.write_shard(path, [(f"k{i}", fx.jpeg_bytes(_img(i))) for i in range(3)])
  data = open(path, "rb").read()
  with tarfile.open(path) as tf:
    last = tf.getmember("k2.jpg")
  end = last.offset + 300 if cut == "inside_header" else last.offset
  with open(path, "wb") as f:
    f.write(data[:end])
  c = corpus_lib.open_corpus(path)
  # Samples read in full are kept; the shard is reported as truncated with its path.
  assert [it.id for it in c.items()] == ["00003/k0", "00003/k1"]
  (p,) = c.problems.records
  assert p.source == path and p.reason.startswith("truncated shard"), p
  assert ("inside a tar header (300 of 512 bytes" in p.reason) == (cut == "inside_header")
  # The intact shard reports nothing.
  fx.write_shard(path, [(f"k{i}", fx.jpeg_bytes(_img(i))) for i in range(3)])
  c2 = corpus_lib.open_corpus(path)
  assert len(list(c2.items())) == 3 and c2.problems.records == []
