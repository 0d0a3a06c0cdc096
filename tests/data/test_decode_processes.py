"""Decoding in worker processes (config.decode_processes): same outputs, bad files listed."""
import os

import numpy as np

from jaxbench import store as store_lib, suites
from tests.data.test_prepared import _write_folder


def test_worker_processes_match_threads_and_list_bad_files(tiny_clip, tmp_path):
  from tests.engine.helpers import _config
  model_dir, _ = tiny_clip
  folder = _write_folder(str(tmp_path / "data"))   # holds dog/zz_broken.JPEG
  got = {}
  for name, procs in [("threads", 0), ("procs", 2)]:
    wd = str(tmp_path / name)
    rows = suites.run(_config(model_dir, folder, batch_size=4, decode_processes=procs), wd)
    (pid,) = os.listdir(os.path.join(wd, "passes"))
    got[name] = (store_lib.Store(wd).outputs(pid), rows[0]["details"])
  a, b = got["threads"][0], got["procs"][0]
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert int(b["bad"].sum()) == 1
  for details in (got["threads"][1], got["procs"][1]):
    assert details["n_bad"] == 1
    assert [f["id"] for f in details["bad_files"]] == ["dog/zz_broken.JPEG"]
    assert details["bad_files"][0]["error"].startswith("dog/zz_broken.JPEG: undecodable image")
