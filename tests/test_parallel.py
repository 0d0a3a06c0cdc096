"""Real multi-process runs (gloo CPU collectives): equality, kill/resume, SIGTERM."""
import os
import signal
import subprocess
import sys
import time

import numpy as np

from jaxbench import store as store_lib, suites
from tests.engine.helpers import REPO, _config, _outputs, _write_config_file, _write_folder


def _launch(cfg_path, workdir, num_processes=2, devices=2):
  env = dict(os.environ, HF_HUB_OFFLINE="1")
  env.pop("XLA_FLAGS", None)
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "launch", "local.py"),
       f"--num_processes={num_processes}", f"--devices_per_process={devices}", "--",
       f"--config={cfg_path}", f"--workdir={workdir}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True)


def _wait_for_chunks(workdir, proc, count, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    passes = os.path.join(workdir, "passes")
    if os.path.isdir(passes):
      n = sum(f.startswith("chunk_") for d in os.listdir(passes)
              for f in os.listdir(os.path.join(passes, d)))
      if n >= count:
        return True
    time.sleep(0.05)
  return False


def _same(a_dir, b_dir):
  a, b = _outputs(a_dir), _outputs(b_dir)
  for k in ("index", "top5", "correct1", "bad"):
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  ra = {r["key"]: r["value"] for r in store_lib.Store(a_dir).rows()}
  rb = {r["key"]: r["value"] for r in store_lib.Store(b_dir).rows()}
  assert ra == rb


def _chunk_examples(workdir):
  (pid,) = os.listdir(os.path.join(workdir, "passes"))
  return len(store_lib.Store(workdir).load_chunks(pid).get("index", []))


def test_two_hosts_preempted_then_killed_then_resumed_equal_one_host(tiny_clip, tmp_path):
  """Two hosts x two devices: SIGTERM, resume, SIGKILL one host, resume == one process.

  Every example of the final result was computed by the two-host job, across three
  launches; the per-example outputs and metrics equal an uninterrupted one-process run.
  """
  model_dir, _ = tiny_clip
  data = _write_folder(str(tmp_path / "data"), n_per_class=60, size=(32, 32),
                       bad=("cat/zz_bad.JPEG",))
  n = 181
  cfg = _config(model_dir, data, batch_size=4, checkpoint_every=1, num_workers=1)
  cfg_path = _write_config_file(tmp_path / "cfg.py", cfg)
  ref = str(tmp_path / "single")
  suites.run(_config(model_dir, data, batch_size=16), ref)
  wd = str(tmp_path / "two_hosts")

  # 1. SIGTERM (preemption) to the job: every host checkpoints and exits 75.
  p = _launch(cfg_path, wd)
  assert _wait_for_chunks(wd, p, 3), "pass finished before SIGTERM"
  p.send_signal(signal.SIGTERM)
  out, err = p.communicate(timeout=120)
  assert p.returncode == 75, err[-3000:]
  assert "preempted" in err
  assert not os.path.exists(os.path.join(wd, "results.jsonl"))
  after_term = _chunk_examples(wd)
  assert 0 < after_term < n

  # 2. Resume, then SIGKILL host 1 mid-pass; the launcher stops host 0.
  p = _launch(cfg_path, wd)
  deadline = time.time() + 240
  while time.time() < deadline and p.poll() is None and _chunk_examples(wd) < after_term + 12:
    time.sleep(0.05)
  children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True)
  pids = [int(x) for x in children.stdout.split()]
  victim = [q for q in pids
            if "--process_id=1" in open(f"/proc/{q}/cmdline").read().replace("\0", " ")]
  assert victim, "host 1 already gone"
  os.kill(victim[0], signal.SIGKILL)
  p.communicate(timeout=120)
  assert p.returncode != 0
  after_kill = _chunk_examples(wd)
  assert after_term < after_kill < n, (after_term, after_kill)

  # 3. Resume to the end.
  p = _launch(cfg_path, wd)
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err[-3000:]
  assert "resuming" in err
  rows = store_lib.Store(wd).rows()
  assert rows[0]["provenance"]["process_count"] == 2
  assert rows[0]["provenance"]["device_count"] == 4
  _same(wd, ref)


def test_unreachable_coordinator_fails_fast_with_a_clear_error(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  cfg = tmp_path / "c.py"
  cfg.write_text("import ml_collections\ndef get_config():\n"
                 "  return ml_collections.ConfigDict(dict(models=('x',), datasets=('y',),"
                 " batch_size=1, seed=0))\n")
  t0 = time.time()
  res = subprocess.run([sys.executable, "-m", "jaxbench.main", f"--config={cfg}",
                        f"--workdir={tmp_path / 'w'}", "--coordinator=127.0.0.1:1",
                        "--num_processes=2", "--process_id=1", "--init_timeout=5"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert res.returncode == 3
  assert "could not start the multi-host runtime" in res.stderr
  assert "127.0.0.1:1" in res.stderr
  assert time.time() - t0 < 90
