"""Decoding in worker processes (config.decode_processes): same outputs, bad files listed."""
import os

import numpy as np
import pytest

from jaxbench import store as store_lib, suites
from tests.data.test_prepared import _write_folder


@pytest.fixture(scope="module")
def threads_and_procs(tiny_clip, tmp_path_factory):
  """{"threads"|"procs": (stored outputs, row details)} of two runs, run once."""
  from tests.engine.helpers import _config
  model_dir, _ = tiny_clip
  tmp_path = tmp_path_factory.mktemp("decode_processes")
  folder = _write_folder(str(tmp_path / "data"))   # holds dog/zz_broken.JPEG
  got = {}
  for name, procs in [("threads", 0), ("procs", 2)]:
    wd = str(tmp_path / name)
    rows = suites.run(_config(model_dir, folder, batch_size=4, decode_processes=procs), wd)
    (pid,) = os.listdir(os.path.join(wd, "passes"))
    got[name] = (store_lib.Store(wd).outputs(pid), rows[0]["details"])
  return got


def test_worker_processes_match_threads(threads_and_procs):
  got = threads_and_procs
  a, b = got["threads"][0], got["procs"][0]
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert int(b["bad"].sum()) == 1


@pytest.mark.parametrize("name", ["threads", "procs"])
def test_bad_files_are_listed(threads_and_procs, name):
  details = threads_and_procs[name][1]
  assert details["n_bad"] == 1
  assert [f["id"] for f in details["bad_files"]] == ["dog/zz_broken.JPEG"]
  assert details["bad_files"][0]["error"].startswith("dog/zz_broken.JPEG: undecodable image")
