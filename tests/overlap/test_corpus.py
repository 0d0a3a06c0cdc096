"""Corpus readers: img2dataset tar shards (and their bad members), folders, embedding files."""
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from jaxbench.overlap import corpus as corpus_lib
from tests.overlap import overlap_fixtures as fx


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


@pytest.fixture(scope="module")
def bad_shard(tmp_path_factory):
  """(shard path, corpus, items, files before reading, files after) of one shard with bad
  members, read once."""
  tmp = tmp_path_factory.mktemp("bad_shard")
  path = _shard_with_bad_members(str(tmp / "00007.tar"))
  before = fx.files_under(str(tmp.parent))
  c = corpus_lib.open_corpus(str(tmp))
  items = list(c.items())
  return path, c, items, before, fx.files_under(str(tmp.parent))


def test_tar_shard_yields_its_valid_samples_in_order(bad_shard):
  _, _, items, _, _ = bad_shard
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


def test_tar_shard_records_every_bad_member_with_its_reason(bad_shard):
  path, c, _, _, _ = bad_shard
  reasons = {(p.name, p.reason.split(":")[0]) for p in c.problems.records}
  assert reasons == {
      ("../evil.jpg", "unsafe member name"), ("a/../../evil2.jpg", "unsafe member name"),
      ("/abs/evil3.jpg", "unsafe member name"), ("000000099", "no image member"),
      ("000000098", "no image member"), ("000000001.jpg", "duplicate key"),
      ("000000097.jpg", "not a regular file"), ("000000095.jpg", "duplicate key")}
  assert all(p.source == path for p in c.problems.records)


def test_reading_a_tar_shard_extracts_nothing(bad_shard):
  _, _, _, before, after = bad_shard
  assert after == before
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


def test_a_file_that_is_not_a_tar_is_recorded_as_unreadable(tmp_path):
  bad = tmp_path / "garbage.tar"
  bad.write_bytes(b"\x00\x01 this is not a tar" * 10)
  c2 = corpus_lib.open_corpus(str(bad))
  assert list(c2.items()) == []
  assert c2.problems.records[0].reason.split(":")[0] in ("unreadable shard",
                                                         "truncated or malformed shard")


def test_expand_braces_keeps_zero_padding():
  assert corpus_lib.expand_braces("a/{08..10}.tar") == ["a/08.tar", "a/09.tar", "a/10.tar"]


@pytest.fixture(scope="module")
def three_shards(tmp_path_factory):
  """(corpus over a brace pattern, [(id, ordinal)] of all its items) for three shards of 2."""
  tmp = tmp_path_factory.mktemp("three_shards")
  for s in range(3):
    fx.write_shard(str(tmp / f"{s:05d}.tar"),
                   [(f"k{i}", fx.jpeg_bytes(_img(10 * s + i))) for i in range(2)])
  full = corpus_lib.open_corpus(str(tmp / "{00000..00002}.tar"))
  return full, [(it.id, it.ordinal) for it in full.items()]


def test_brace_pattern_reads_every_shard(three_shards):
  _, all_items = three_shards
  assert len(all_items) == 6


def test_process_shares_partition_the_corpus(three_shards):
  full, all_items = three_shards
  shares = [[(it.id, it.ordinal) for it in full.shard(i, 2).items()] for i in range(2)]
  assert sorted(shares[0] + shares[1]) == sorted(all_items)
  assert not set(shares[0]) & set(shares[1])


def test_items_resume_strictly_after_an_ordinal(three_shards):
  full, all_items = three_shards
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


_EMB = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)


def test_embedding_file_with_its_ids_is_a_corpus(tmp_path):
  emb = _EMB
  np.save(tmp_path / "part.npy", emb)
  (tmp_path / "part.ids.txt").write_text("\n".join(f"img{i}" for i in range(5)) + "\n")
  c = corpus_lib.open_corpus(str(tmp_path / "part.npy"))
  (chunk,) = list(c.chunks())
  np.testing.assert_array_equal(chunk.emb, emb)
  assert chunk.ids == [f"img{i}" for i in range(5)] and c.dim == 4


@pytest.mark.parametrize("arr,ids,match", [
    (_EMB, ["a", "b"], r"5 rows but its ids file .* has 2 ids"),
    (_EMB, ["a", "b", "c", "a", "e"], "duplicate id 'a'"),
    (np.full((1, 4), np.nan, np.float32), ["a"], "NaN or inf"),
    (_EMB, None, "no ids file"),
    (np.array([{"a": 1}], dtype=object), ["a"], "without pickle"),
    (np.zeros(5, np.float32), ["a"] * 5, r"float \(N, D\) array")],
    ids=["count", "dup", "nan", "noids", "pickle", "shape"])
def test_bad_embedding_file_is_refused(tmp_path, arr, ids, match):
  d = tmp_path / "x"
  os.makedirs(d)
  np.save(d / "x.npy", arr, allow_pickle=True)
  if ids is not None:
    (d / "x.ids.json").write_text(json.dumps(ids))
  with pytest.raises(corpus_lib.CorpusError, match=match):
    list(corpus_lib.open_corpus(str(d)).chunks())


@pytest.mark.parametrize("path,message", [
    ("empty", "empty corpus"),                        # an empty folder
    ("none-{00000..00003}.tar", "empty corpus"),      # a pattern matching no shard
    ("missing", "does not exist")])
def test_empty_or_missing_corpus_is_an_error(tmp_path, path, message):
  os.makedirs(tmp_path / "empty")
  with pytest.raises(corpus_lib.CorpusError, match=message):
    corpus_lib.open_corpus(str(tmp_path / path))


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
