"""Prepared-set cache: identical to decoding, rebuilt when partial, keyed by spec."""
import json
import os

import numpy as np
import pytest
from absl import logging
from PIL import Image

from jaxbench import store as store_lib, suites
from jaxbench.data import catalog, pipeline, prepared
from jaxbench.models.api import Preprocess

PP = Preprocess(size=32, resize=32, interpolation="bicubic")


def _write_folder(root, classes=("cat", "dog"), n=5):
  rng = np.random.default_rng(1)
  for c in classes:
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(n):
      size = (int(rng.integers(30, 60)), int(rng.integers(30, 60)))
      arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
      Image.fromarray(arr).save(os.path.join(root, c, f"{c}_{i:03d}.JPEG"), "JPEG")
  with open(os.path.join(root, "dog", "zz_broken.JPEG"), "wb") as f:
    f.write(b"\xff\xd8 broken")
  return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("prep_data")))


def _evalset(folder):
  return catalog.get(f"image_folder(root={folder!r})")


def _uncached(evalset, pp, plan):
  return list(pipeline.batches(evalset, pp, plan, num_threads=2))


def _same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=k)
      assert np.asarray(x[k]).dtype == np.asarray(y[k]).dtype, k


def test_cached_batches_equal_decoded(folder, tmp_path):
  es = _evalset(folder)
  # Out-of-order indices, padding (-1) and the undecodable file all covered.
  plan = pipeline.plan(np.arange(len(es))[::-1].copy(), 4)
  entry = prepared.get_or_build(str(tmp_path), es, PP, num_threads=2)
  assert entry is not None and int(entry.bad.sum()) == 1
  _same(list(entry.batches(plan)), _uncached(es, PP, plan))
  bad_index = int(np.nonzero(entry.bad)[0][0])
  # The same one-line text as an uncached pass records: the file and the reason.
  assert entry.errors()[bad_index] == pipeline.describe_error(es, bad_index)
  assert entry.errors()[bad_index].startswith("dog/zz_broken.JPEG: undecodable image")


def test_runner_cached_equals_uncached(tiny_clip, folder, tmp_path):
  from tests.engine.helpers import _config
  model_dir, _ = tiny_clip
  cache = str(tmp_path / "cache")
  outs = {}
  for name, pc in [("plain", ""), ("fill", cache), ("read", cache)]:
    wd = str(tmp_path / name)
    rows = suites.run(_config(model_dir, folder, batch_size=4, prepared_cache=pc), wd)
    st = store_lib.Store(wd)
    (pid,) = os.listdir(os.path.join(wd, "passes"))
    outs[name] = (st.outputs(pid), rows[0])
    if pc:
      assert len([d for d in os.listdir(cache) if not d.startswith(".")]) == 1
  for name in ("fill", "read"):
    a, b = outs["plain"][0], outs[name][0]
    assert sorted(a) == sorted(b)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    listed = lambda row: [(b["id"], b["error"]) for b in row["details"]["bad_files"]]
    assert listed(outs[name][1]) == listed(outs["plain"][1])
    assert outs[name][1]["details"]["n_bad"] == 1


def test_interrupted_or_corrupt_entry_is_rebuilt(folder, tmp_path):
  es = _evalset(folder)
  plan = pipeline.plan(np.arange(len(es)), 4)
  entry = prepared.get_or_build(str(tmp_path), es, PP, num_threads=2)
  want = list(entry.batches(plan))
  # Killed mid-write: shards there, manifest never written.
  os.remove(os.path.join(entry.path, "manifest.json"))
  with pytest.raises(prepared.InvalidCache, match="no manifest"):
    prepared.PreparedSet.open(entry.path)
  again = prepared.get_or_build(str(tmp_path), es, PP, num_threads=2)
  assert os.path.exists(os.path.join(again.path, "manifest.json"))
  _same(list(again.batches(plan)), want)
  # A truncated shard is caught by its size and rebuilt too.
  shard = os.path.join(again.path, again.manifest["shards"][0])
  with open(shard, "r+b") as f:
    f.truncate(os.path.getsize(shard) - 100)
  with pytest.raises(prepared.InvalidCache, match="bytes"):
    prepared.PreparedSet.open(again.path)
  _same(list(prepared.get_or_build(str(tmp_path), es, PP).batches(plan)), want)
  # A flipped byte is caught by verify (CRC32).
  with open(shard, "r+b") as f:
    f.seek(200)
    byte = f.read(1)
    f.seek(200)
    f.write(bytes([byte[0] ^ 0xFF]))
  with pytest.raises(prepared.InvalidCache, match="CRC32"):
    prepared.verify(again.path)
  # Another format version is never read.
  mpath = os.path.join(again.path, "manifest.json")
  m = json.load(open(mpath))
  m["version"] = prepared.FORMAT_VERSION + 1
  json.dump(m, open(mpath, "w"))
  with pytest.raises(prepared.InvalidCache, match="format version"):
    prepared.PreparedSet.open(again.path)


SPECS = [PP, Preprocess(size=32, resize=32, interpolation="bilinear"),
         Preprocess(size=24, resize=27, interpolation="bicubic"),
         Preprocess(size=32, resize=32, interpolation="bicubic", crop="squash")]


@pytest.fixture(scope="module")
def four_specs(folder, tmp_path_factory):
  """(eval set, plan, paths) of one prepared build for four preprocess specs."""
  es = _evalset(folder)
  paths = prepared.build(str(tmp_path_factory.mktemp("four_specs")), es, SPECS, num_threads=2)
  return es, pipeline.plan(np.arange(len(es)), 4), paths


def test_each_spec_gets_its_own_entry(four_specs):
  _, _, paths = four_specs
  assert len(set(paths)) == len(SPECS)


def test_each_spec_holds_its_own_pixels_as_decoding_gives(four_specs):
  es, plan, paths = four_specs
  for pp, path in zip(SPECS, paths):   # one decode, each spec's pixels as decoding gives
    _same(list(prepared.PreparedSet.open(path).batches(plan)), _uncached(es, pp, plan))


def test_specs_never_share_pixels(four_specs):
  _, plan, paths = four_specs
  a = list(prepared.PreparedSet.open(paths[0]).batches(plan))[0]["image"]
  b = list(prepared.PreparedSet.open(paths[1]).batches(plan))[0]["image"]
  assert not np.array_equal(a, b)


def test_a_touched_source_file_changes_the_fingerprint(folder):
  es = _evalset(folder)
  # A touched file changes the fingerprint: a new entry, not the stale one.
  key = prepared.cache_key(es, PP)
  f = os.path.join(folder, "cat", "cat_000.JPEG")
  os.utime(f, ns=(os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns + 10**9))
  assert prepared.cache_key(_evalset(folder), PP) != key


def test_unwritable_cache_falls_back(tiny_clip, folder, tmp_path, monkeypatch):
  from tests.engine.helpers import _config
  model_dir, _ = tiny_clip
  # A cache path below a regular file cannot be created, even by root (chmod-based
  # read-only directories do not stop root, which CI may run as).
  blocker = tmp_path / "not_a_dir"
  blocker.write_text("x")
  warnings = []
  monkeypatch.setattr(logging, "warning", lambda msg, *a: warnings.append(msg % a))
  rows = {}
  for name, pc in [("plain", ""), ("ro", str(blocker / "cache"))]:
    wd = str(tmp_path / name)
    rows[name] = suites.run(_config(model_dir, folder, batch_size=4, prepared_cache=pc), wd)
  assert any("cannot be used" in w and "reading uncached" in w for w in warnings), warnings
  a = store_lib.Store(str(tmp_path / "plain"))
  b = store_lib.Store(str(tmp_path / "ro"))
  (pa,) = os.listdir(tmp_path / "plain" / "passes")
  (pb,) = os.listdir(tmp_path / "ro" / "passes")
  oa, ob = a.outputs(pa), b.outputs(pb)
  for k in oa:
    np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)


def test_prepare_cli_fills_sizes_the_runner_reads(tiny_clip, folder, tmp_path):
  import subprocess
  import sys
  from tests.engine.helpers import REPO, _config
  model_dir, _ = tiny_clip
  cache = str(tmp_path / "cache")
  spec = f"image_folder(root={folder!r})"
  proc = subprocess.run(
      [sys.executable, "-m", "jaxbench.data.prepare", f"--cache={cache}",
       f"--datasets={spec}", "--sizes=32,48", "--num_workers=2", "--verify"],
      cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  entries = sorted(d for d in os.listdir(cache) if not d.startswith("."))
  assert len(entries) == 2
  sizes = sorted(prepared.PreparedSet.open(os.path.join(cache, e)).size for e in entries)
  assert sizes == [32, 48]
  # The tiny CLIP's preprocessing is 32px bicubic: the runner reads the CLI's entry
  # (no third entry appears) and its outputs equal an uncached run's.
  outs = {}
  for name, pc in [("plain", ""), ("cached", cache)]:
    wd = str(tmp_path / name)
    suites.run(_config(model_dir, folder, batch_size=4, prepared_cache=pc), wd)
    (pid,) = os.listdir(os.path.join(wd, "passes"))
    outs[name] = store_lib.Store(wd).outputs(pid)
  assert sorted(d for d in os.listdir(cache) if not d.startswith(".")) == entries
  for k in outs["plain"]:
    np.testing.assert_array_equal(outs["plain"][k], outs["cached"][k], err_msg=k)
