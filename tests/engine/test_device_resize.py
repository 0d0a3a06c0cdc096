"""config.device_resize: a whole pass with the resize + crop on the device gives the same
per-example outputs as the host path (threads and worker processes), lists the same bad
files, records where the resize ran, and refuses bad canvas values naming the key."""
import os

import numpy as np
import pytest
from PIL import Image

from jaxbench import store as store_lib, suites
from jaxbench.model_setup import ConfigError


def _folder(root):
  """JPEGs of mixed sizes and orientations around the tiny CLIP's 32-pixel crop, one
  larger than the 48-pixel canvas (resized on the host) and one corrupt file."""
  rng = np.random.default_rng(4)
  sizes = [(40, 30), (30, 40), (47, 33), (33, 47), (48, 48), (31, 45), (64, 40), (36, 36)]
  for i, (w, h) in enumerate(sizes):
    c = ("cat", "dog")[i % 2]
    os.makedirs(os.path.join(root, c), exist_ok=True)
    small = rng.integers(0, 256, (max(1, h // 4), max(1, w // 4), 3), dtype=np.uint8)
    Image.fromarray(small).resize((w, h), Image.NEAREST).save(
        os.path.join(root, c, f"{c}_{i:02d}.JPEG"), "JPEG", quality=90)
  with open(os.path.join(root, "dog", "zz_broken.JPEG"), "wb") as f:
    f.write(b"\xff\xd8 broken")
  return root


@pytest.fixture(scope="module")
def passes(tiny_clip, tmp_path_factory):
  """{name: (stored outputs, first row)} for the host path and the device resize with
  threads and with 2 worker processes, each run once."""
  from tests.engine.helpers import _config
  model_dir, _ = tiny_clip
  tmp = tmp_path_factory.mktemp("device_resize")
  folder = _folder(str(tmp / "data"))
  got = {}
  for name, kw in [("host", {}), ("device", {"device_resize": 48}),
                   ("device_procs", {"device_resize": 48, "decode_processes": 2})]:
    wd = str(tmp / name)
    rows = suites.run(_config(model_dir, folder, batch_size=4, **kw), wd)
    (pid,) = os.listdir(os.path.join(wd, "passes"))
    got[name] = (store_lib.Store(wd).outputs(pid), rows[0])
  return got


@pytest.mark.parametrize("name", ["device", "device_procs"])
def test_device_resize_gives_the_host_outputs(passes, name):
  host, dev = passes["host"][0], passes[name][0]
  assert sorted(host) == sorted(dev)
  for k in host:
    np.testing.assert_array_equal(host[k], dev[k], err_msg=k)
  assert len(host["index"]) == 9 and int(host["bad"].sum()) == 1


@pytest.mark.parametrize("name", ["host", "device", "device_procs"])
def test_bad_file_listed_and_resize_recorded(passes, name):
  row = passes[name][1]
  assert [f["id"] for f in row["details"]["bad_files"]] == ["dog/zz_broken.JPEG"]
  assert row["provenance"]["resize"] == ("host" if name == "host" else "device:48")
  assert row["details"]["pass_id"] == passes["host"][1]["details"]["pass_id"]   # same pass


def test_refill_consumers_get_finished_host_batches():
  # Survivor refill places batches itself: it gets them resized, as host arrays.
  from jaxbench.data import pipeline
  from jaxbench.data.evalset import EvalSet
  from jaxbench.engine import loop
  from jaxbench.models.api import Preprocess
  from tests.data.test_pipeline import _Records
  rng = np.random.default_rng(0)
  records = [{"id": str(i), "label": 0, "image": rng.integers(0, 256, (h, w, 3), np.uint8)}
             for i, (w, h) in enumerate([(20, 30), (35, 18), (50, 50)])]
  es, pp = EvalSet("t", _Records(records), 1), Preprocess(size=16, resize=18)
  the_plan = pipeline.plan(np.arange(3), 2)
  host = list(pipeline.batches(es, pp, the_plan, num_threads=1))
  dev = list(loop.resized_on_device(pipeline.batches(es, pp, the_plan, num_threads=1,
                                                     canvas=40)))
  for h, d in zip(host, dev):
    assert sorted(h) == sorted(d) and isinstance(d["image"], np.ndarray)
    for k in h:
      np.testing.assert_array_equal(h[k], d[k], err_msg=k)


@pytest.mark.parametrize("value, message", [
    (16, "config.device_resize=16: the canvas is smaller than the crop size 32"),
    ("big", "config.device_resize='big': use 0")])
def test_bad_canvas_refused_naming_the_key(tiny_clip, tmp_path, value, message):
  from tests.engine.helpers import _config, _write_folder
  model_dir, _ = tiny_clip
  folder = _write_folder(str(tmp_path / "data"), n_per_class=1)
  with pytest.raises(ConfigError) as e:
    suites.run(_config(model_dir, folder, batch_size=4, device_resize=value),
               str(tmp_path / "wd"))
  assert message in str(e.value) and "\n" not in str(e.value)


def test_dry_run_says_where_the_resize_runs():
  from jaxbench.engine import run
  from tests.engine.helpers import _config
  on = run.data_phases(_config("m", "/tmp", device_resize=512))
  draft = run.data_phases(_config("m", "/tmp", jpeg_draft=True))
  off = run.data_phases(_config("m", "/tmp"))
  assert any("resize + center crop on the device from a 512x512 canvas" in s for s in on)
  assert any("jpeg_draft" in s and "resize + center crop on the host" in s for s in draft)
  assert not any(s.startswith("input:") for s in off)   # the default path: no line
