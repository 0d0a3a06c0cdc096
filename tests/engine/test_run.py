"""The engine's whole run (:mod:`jaxbench.engine.run`) end to end: sharding invariance,
rerun, workdir identity, resume after SIGKILL, command-line errors, the dry run."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxbench import store as store_lib, suites
from jaxbench.model_setup import ConfigError
from tests.engine.helpers import (REPO, _cli, _config, _outputs, _write_config_file,
                                  _write_folder)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")),
                       bad=("dog/zz_corrupt.JPEG",))


def test_results_invariant_to_devices_and_batch_size(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  results = {}
  for devices, batch in [(1, 1), (2, 7), (8, 64), (8, 7)]:
    wd = str(tmp_path / f"d{devices}b{batch}")
    rows = suites.run(_config(model_dir, folder, batch_size=batch,
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
  first = suites.run(cfg, str(tmp_path))
  assert {r["metric"] for r in first} == {"top1"}   # 3 classes: no top-5
  assert suites.run(cfg, str(tmp_path)) == []
  assert len(store_lib.Store(str(tmp_path)).rows()) == 1


def test_workdir_of_another_config_is_refused(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  suites.run(_config(model_dir, folder), str(tmp_path))
  with pytest.raises(ConfigError, match="seed: workdir has 0, config has 1"):
    suites.run(_config(model_dir, folder, seed=1), str(tmp_path))


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
  suites.run(_config(model_dir, data, batch_size=16), ref_wd)
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
