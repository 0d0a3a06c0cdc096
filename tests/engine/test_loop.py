"""One pass (:mod:`jaxbench.engine.loop`): NaN logits, resume after the data changed."""
import os

import numpy as np
import pytest
from PIL import Image

from jaxbench import store as store_lib, suites
from jaxbench.engine import loop, plan
from jaxbench.model_setup import ConfigError
from tests.engine.helpers import _config, _outputs, _write_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")),
                       bad=("dog/zz_corrupt.JPEG",))


def test_nan_logits_stop_with_a_clear_error(folder, tmp_path):
  import jax.numpy as jnp
  from jaxbench import parallel, transforms
  from jaxbench.data import catalog
  from jaxbench.models.api import Model, Preprocess
  nan_model = Model("nan", {"net": {}}, Preprocess(size=8, resize=8), "supervised",
                    label_space="custom", num_classes=3,
                    net_logits=lambda p, x: jnp.full((x.shape[0], 3), jnp.nan))
  es = catalog.get(f"image_folder(root={folder!r})")
  mesh = parallel.make_mesh(1)
  cfg = _config("nan", folder)
  with pytest.raises(RuntimeError, match="NaN/inf logits on 18 of 18"):
    loop.run_pass(plan.PassSpec("nan", "f", "clean"), "p", nan_model, es,
                    transforms.get("clean"), False, cfg, mesh,
                    store_lib.Store(str(tmp_path)), {}, parallel.put_params(
                        nan_model.params, mesh))


def _stop_after(monkeypatch, batches):
  """Stops the run (as SIGTERM would) after ``batches`` batches of the pass."""
  calls = {"n": 0}

  def agreed():
    calls["n"] += 1
    return calls["n"] >= batches
  monkeypatch.setattr(loop, "_stop_agreed", agreed)


def _interrupted_run(model_dir, tmp_path, monkeypatch, n_per_class):
  """A run stopped (as by SIGTERM) after its first batch of 8: (data dir, workdir, config)."""
  data = _write_folder(str(tmp_path / "data"), n_per_class=n_per_class, size=(32, 32))
  wd = str(tmp_path / "wd")
  cfg = _config(model_dir, data, batch_size=8, checkpoint_every=1, num_workers=1)
  with monkeypatch.context() as m:
    _stop_after(m, 1)
    with pytest.raises(loop.Preempted):
      suites.run(cfg, wd)
  return data, wd, cfg


def test_resume_after_data_changed_stops_or_restarts(tiny_clip, tmp_path, monkeypatch):
  model_dir, _ = tiny_clip
  data, wd, cfg = _interrupted_run(model_dir, tmp_path, monkeypatch, n_per_class=6)
  (pid,) = os.listdir(os.path.join(wd, "passes"))
  assert len(store_lib.Store(wd).load_chunks(pid)["index"]) == 8   # partial progress
  # Six new images in one class folder (sorted among the old ones: indices shift).
  rng = np.random.default_rng(1)
  for i in range(6):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        os.path.join(data, "cat", f"cat_{i:04d}b.JPEG"), "JPEG")
  with pytest.raises(loop.DataChanged,
                     match=r"6 files added under cat/, 0 removed, 0 modified") as e:
    suites.run(cfg, wd)
  assert "on_data_change=restart" in str(e.value) and "\n" not in str(e.value)
  assert len(store_lib.Store(wd).load_chunks(pid)["index"]) == 8   # nothing touched
  # With restart: the pass starts over and matches a fresh run on the new data.
  cfg.on_data_change = "restart"
  rows = suites.run(cfg, wd)
  fresh_wd = str(tmp_path / "fresh")
  fresh_rows = suites.run(_config(model_dir, data, batch_size=8), fresh_wd)
  a, b = _outputs(wd), _outputs(fresh_wd)
  assert len(a["index"]) == 24
  for k in ("index", "top5", "correct1", "bad"):
    np.testing.assert_array_equal(a[k], b[k])
  assert [r["value"] for r in rows] == [r["value"] for r in fresh_rows]


def test_resume_after_a_file_was_modified_names_it(tiny_clip, tmp_path, monkeypatch):
  model_dir, _ = tiny_clip
  data, wd, cfg = _interrupted_run(model_dir, tmp_path, monkeypatch, n_per_class=4)
  os.utime(os.path.join(data, "dog", "dog_0001.JPEG"), ns=(1, 1))   # touched: modified
  with pytest.raises(loop.DataChanged, match=r"0 files added, 0 removed, 1 modified "
                                               r"under dog/"):
    suites.run(cfg, wd)


def test_on_data_change_value_is_checked(tiny_clip, folder):
  model_dir, _ = tiny_clip
  with pytest.raises(ConfigError, match="on_data_change 'ask'.*'error'.*'restart'"):
    suites.validate(_config(model_dir, folder, on_data_change="ask"))
