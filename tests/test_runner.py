"""The runner end to end: sharding invariance, resume after SIGKILL, errors, bad files."""
import json
import os
import signal
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxbench import runner, store as store_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_folder(root, n_per_class=6, classes=("cat", "dog", "fish"), size=(40, 30),
                  bad=()):
  rng = np.random.default_rng(0)
  for c in classes:
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(n_per_class):
      arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
      Image.fromarray(arr).save(os.path.join(root, c, f"{c}_{i:04d}.JPEG"), "JPEG")
  for rel in bad:
    with open(os.path.join(root, rel), "wb") as f:
      f.write(b"\xff\xd8 broken")
  return root


def _config(model_dir, data_dir, **kw):
  c = ml_collections.ConfigDict(dict(
      suite="zeroshot", seed=0, models=(model_dir,),
      zeroshot=dict(classnames="imagenet", templates="photo", head="imagenet",
                    logit_scale="model"),
      preprocess="", datasets=(f"image_folder(root={data_dir!r})",), transforms=("clean",),
      batch_size=8, mesh=dict(data=-1, model=1), checkpoint_every=2, log_every=100,
      num_workers=2, precision="float32", max_examples=-1, report=False,
      workdir_policy="strict"))
  c.update(kw)
  return c


def _outputs(workdir):
  st = store_lib.Store(workdir)
  (pid,) = os.listdir(os.path.join(workdir, "passes"))
  return st.outputs(pid)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")),
                       bad=("dog/zz_corrupt.JPEG",))


def test_results_invariant_to_devices_and_batch_size(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  results = {}
  for devices, batch in [(1, 1), (2, 7), (8, 64), (8, 7)]:
    wd = str(tmp_path / f"d{devices}b{batch}")
    rows = runner.run(_config(model_dir, folder, batch_size=batch,
                              mesh=dict(data=devices, model=1)), wd)
    out = _outputs(wd)
    results[(devices, batch)] = (out, {r["metric"]: r["value"] for r in rows})
    assert rows[0]["provenance"]["mesh"]["data"] == devices
  (ref_out, ref_metrics) = results[(1, 1)]
  assert len(ref_out["index"]) == 19   # 18 images + 1 corrupt file, each exactly once
  for key, (out, metrics) in results.items():
    np.testing.assert_array_equal(out["index"], ref_out["index"], err_msg=str(key))
    np.testing.assert_array_equal(out["top5"], ref_out["top5"], err_msg=str(key))
    np.testing.assert_array_equal(out["bad"], ref_out["bad"], err_msg=str(key))
    assert metrics == ref_metrics, key
  # The row counts 18 decodable images and lists the corrupt one by id.
  rows = store_lib.Store(str(tmp_path / "d1b1")).rows()
  top1 = [r for r in rows if r["metric"] == "top1"][0]
  assert top1["n"] == 18 and top1["details"]["n_bad"] == 1
  assert top1["details"]["bad_files"][0]["id"].endswith("zz_corrupt.JPEG")
  assert top1["dataset"].startswith("image_folder(root=")
  # top-1 from the per-example outputs, by hand.
  valid = ~ref_out["bad"]
  assert top1["value"] == pytest.approx(ref_out["correct1"][valid].mean())
  for k in ("jax", "flax", "device_kind", "git", "seed"):
    assert k in top1["provenance"]
  assert top1["model_info"]["head"]["templates"] == "photo"


def test_rerun_skips_finished_passes(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, folder)
  first = runner.run(cfg, str(tmp_path))
  assert {r["metric"] for r in first} == {"top1"}   # 3 classes: no top-5
  assert runner.run(cfg, str(tmp_path)) == []
  assert len(store_lib.Store(str(tmp_path)).rows()) == 1


def test_workdir_of_another_config_is_refused(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  runner.run(_config(model_dir, folder), str(tmp_path))
  with pytest.raises(runner.ConfigError, match="seed: workdir has 0, config has 1"):
    runner.run(_config(model_dir, folder, seed=1), str(tmp_path))


def _cli(args, **kw):
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "jaxbench.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, **kw)


def _write_config_file(path, cfg):
  path.write_text("import ml_collections\n\ndef get_config():\n"
                  f"  return ml_collections.ConfigDict({cfg.to_dict()!r})\n")
  return str(path)


def test_sigkill_mid_pass_then_resume_matches_uninterrupted(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  data = _write_folder(str(tmp_path / "data"), n_per_class=150, size=(32, 32))
  cfg = _config(model_dir, data, batch_size=2, checkpoint_every=1, num_workers=1)
  cfg_path = _write_config_file(tmp_path / "cfg.py", cfg)
  wd = tmp_path / "killed"
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.Popen([sys.executable, "-m", "jaxbench.main", f"--config={cfg_path}",
                           f"--workdir={wd}"], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  chunks = []
  while time.time() < deadline and proc.poll() is None:
    passes = wd / "passes"
    if passes.exists():
      chunks = [f for d in passes.iterdir() for f in d.iterdir() if f.name.startswith("chunk_")]
      if len(chunks) >= 3:
        break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert len(chunks) >= 3, "the pass finished or never started before the kill"
  (pid,) = os.listdir(wd / "passes")
  partial = store_lib.Store(str(wd)).load_chunks(pid)
  assert 0 < len(partial["index"]) < 450
  assert not (wd / "results.jsonl").exists()
  res = _cli([f"--config={cfg_path}", f"--workdir={wd}"])
  assert res.returncode == 0, res.stderr[-2000:]
  assert "resuming" in res.stderr
  # Uninterrupted reference, in process, with another batch size.
  ref_wd = str(tmp_path / "ref")
  runner.run(_config(model_dir, data, batch_size=16), ref_wd)
  a, b = _outputs(str(wd)), _outputs(ref_wd)
  for k in ("index", "top5", "correct1"):
    np.testing.assert_array_equal(a[k], b[k])
  ra = {r["metric"]: r["value"] for r in store_lib.Store(str(wd)).rows()}
  rb = {r["metric"]: r["value"] for r in store_lib.Store(ref_wd).rows()}
  assert ra == rb


@pytest.mark.parametrize("override,message", [
    ("--config.modelz=1", "modelz"),
    ("--config.models=('no_such_model',)", "unknown model 'no_such_model'"),
    ("--config.datasets=('no_such_set',)", "unknown dataset 'no_such_set'"),
    ("--config.datasets=(\"image_folder(root='/nonexistent/dir')\",)", "/nonexistent/dir"),
])
def test_cli_errors_name_the_problem(override, message, tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  cfg_path = _write_config_file(tmp_path / "cfg.py", _config(model_dir, "/tmp"))
  res = _cli([f"--config={cfg_path}", f"--workdir={tmp_path / 'w'}", override])
  assert res.returncode != 0
  assert message in res.stderr, res.stderr[-1500:]


def test_dry_run_prints_plan(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  # The dry run validates data paths now: it needs a real folder.
  cfg = _config(model_dir, folder, transforms=("clean", "attack:fgsm(eps=1/255)"))
  cfg_path = _write_config_file(tmp_path / "cfg.py", cfg)
  res = _cli([f"--config={cfg_path}", "--dry_run"])
  assert res.returncode == 0, res.stderr[-1500:]
  assert "plan: 2 passes" in res.stdout
  assert "transform=attack:fgsm(eps=0.00392156862745098)" in res.stdout


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
    runner.run_pass(runner.PassSpec("nan", "f", "clean"), "p", nan_model, es,
                    transforms.get("clean"), False, cfg, mesh,
                    store_lib.Store(str(tmp_path)), {}, parallel.put_params(
                        nan_model.params, mesh))


def test_attack_pass_rows_from_reevaluated_outputs(tiny_clip, folder, tmp_path):
  """An attack pass: robust accuracy = correct before AND after (re-evaluated), every
  returned image inside its ball, eps measured in pixel space, padding not attacked."""
  model_dir, _ = tiny_clip
  rows = runner.run(_config(model_dir, folder, batch_size=7, suite="auto",
                            transforms=("attack:fgsm(eps=2/255)",)), str(tmp_path))
  by = {r["metric"]: r for r in rows}
  out = _outputs(str(tmp_path))
  valid = ~out["bad"]
  clean, adv = out["clean_correct1"][valid], out["correct1"][valid]
  assert by["clean_acc"]["value"] == pytest.approx(clean.mean())
  assert by["robust_acc"]["value"] == pytest.approx((clean & adv).mean())
  assert by["robust_acc"]["suite"] == "adv" and by["robust_acc"]["n"] == 18
  assert out["atk_in_ball"][valid].all() and out["atk_in_bounds"][valid].all()
  assert np.all(out["atk_pixel_linf"][valid] <= 2 / 255 + 1e-6)
  assert by["robust_acc"]["details"]["checks"]["outside_ball"] == 0
  assert by["mean_queries"]["value"] == 1.0


def _stop_after(monkeypatch, batches):
  """Stops the run (as SIGTERM would) after ``batches`` batches of the pass."""
  calls = {"n": 0}

  def agreed():
    calls["n"] += 1
    return calls["n"] >= batches
  monkeypatch.setattr(runner, "_stop_agreed", agreed)


def test_resume_after_data_changed_stops_or_restarts(tiny_clip, tmp_path, monkeypatch):
  model_dir, _ = tiny_clip
  data = _write_folder(str(tmp_path / "data"), n_per_class=6, size=(32, 32))
  wd = str(tmp_path / "wd")
  cfg = _config(model_dir, data, batch_size=8, checkpoint_every=1, num_workers=1)
  with monkeypatch.context() as m:
    _stop_after(m, 1)
    with pytest.raises(runner.Preempted):
      runner.run(cfg, wd)
  (pid,) = os.listdir(os.path.join(wd, "passes"))
  assert len(store_lib.Store(wd).load_chunks(pid)["index"]) == 8   # partial progress
  # Six new images in one class folder (sorted among the old ones: indices shift).
  rng = np.random.default_rng(1)
  for i in range(6):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        os.path.join(data, "cat", f"cat_{i:04d}b.JPEG"), "JPEG")
  with pytest.raises(runner.DataChanged,
                     match=r"6 files added under cat/, 0 removed, 0 modified") as e:
    runner.run(cfg, wd)
  assert "on_data_change=restart" in str(e.value) and "\n" not in str(e.value)
  assert len(store_lib.Store(wd).load_chunks(pid)["index"]) == 8   # nothing touched
  # With restart: the pass starts over and matches a fresh run on the new data.
  cfg.on_data_change = "restart"
  rows = runner.run(cfg, wd)
  fresh_wd = str(tmp_path / "fresh")
  fresh_rows = runner.run(_config(model_dir, data, batch_size=8), fresh_wd)
  a, b = _outputs(wd), _outputs(fresh_wd)
  assert len(a["index"]) == 24
  for k in ("index", "top5", "correct1", "bad"):
    np.testing.assert_array_equal(a[k], b[k])
  assert [r["value"] for r in rows] == [r["value"] for r in fresh_rows]


def test_resume_after_a_file_was_modified_names_it(tiny_clip, tmp_path, monkeypatch):
  model_dir, _ = tiny_clip
  data = _write_folder(str(tmp_path / "data"), n_per_class=4, size=(32, 32))
  wd = str(tmp_path / "wd")
  cfg = _config(model_dir, data, batch_size=8, checkpoint_every=1, num_workers=1)
  with monkeypatch.context() as m:
    _stop_after(m, 1)
    with pytest.raises(runner.Preempted):
      runner.run(cfg, wd)
  os.utime(os.path.join(data, "dog", "dog_0001.JPEG"), ns=(1, 1))   # touched: modified
  with pytest.raises(runner.DataChanged, match=r"0 files added, 0 removed, 1 modified "
                                               r"under dog/"):
    runner.run(cfg, wd)


def test_on_data_change_value_is_checked(tiny_clip, folder):
  model_dir, _ = tiny_clip
  with pytest.raises(runner.ConfigError, match="on_data_change 'ask'.*'error'.*'restart'"):
    runner.validate(_config(model_dir, folder, on_data_change="ask"))


# --- the compiled step across passes (moved from tests/test_accel.py) --------------------


@pytest.fixture(scope="module")
def two_pass_run(tiny_clip, tmp_path_factory):
  """Runs two image-folder passes of the same shapes once: (rows, steps, log text)."""
  import io
  import logging
  model_dir, _ = tiny_clip
  tmp = tmp_path_factory.mktemp("two_pass")
  a = _write_folder(str(tmp / "a"), n_per_class=3)
  b = _write_folder(str(tmp / "b"), n_per_class=2)
  cfg = _config(model_dir, a, datasets=(f"image_folder(root={a!r})",
                                        f"image_folder(root={b!r})"), batch_size=4)
  runner._STEPS.clear()
  root, log = logging.getLogger(), io.StringIO()
  handler, level = logging.StreamHandler(log), root.level
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  try:
    rows = runner.run(cfg, str(tmp / "wd"))
  finally:
    root.removeHandler(handler)
    root.setLevel(level)
  return rows, dict(runner._STEPS), log.getvalue()


def test_second_pass_reuses_the_compiled_step(two_pass_run):
  rows, steps, _ = two_pass_run
  assert len({r["dataset"] for r in rows}) == 2
  # One jitted step for both passes (new head, same shapes), compiled once.
  assert len(steps) == 1
  (step,) = steps.values()
  assert step._cache_size() == 1


def test_phases_before_the_first_batch_are_logged(two_pass_run):
  import re
  _, _, text = two_pass_run
  assert "pass 1/2" in text and "pass 2/2" in text
  assert "compiled the step and ran the first batch" in text
  assert "ran the first batch (step already compiled)" in text
  assert re.search(r"loading model .*: done in [\d.]+ s", text)
  assert "building the zero-shot head" in text and "prompts/s" in text
