"""The command line: one validation step before any work (dry run and real run), one
line per problem and exit 2, the workdir lock, reuse of a workdir after a failed run,
SIGTERM before the first pass, the results table and the bad-file note."""
import errno
import io
import json
import os
import socket
import subprocess
import sys

import pytest

from jaxbench import atomic, cli, stopping, store as store_lib, suites
from jaxbench.engine import loop, workdir as workdir_lib
from jaxbench.engine.run import ValidationError
from jaxbench.model_setup import ConfigError
from tests.engine.helpers import REPO, _cli, _config, _write_config_file, _write_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")), n_per_class=3,
                       bad=("dog/zz_corrupt.JPEG",))


def _execute(cfg, wd, dry_run=False):
  out, err = io.StringIO(), io.StringIO()
  code = cli.execute(cfg, None if wd is None else str(wd), dry_run=dry_run, out=out, err=err)
  return code, out.getvalue(), err.getvalue()


# --- one validation step -------------------------------------------------------------

BAD_SPECS = [
    (dict(transforms=("attack:nope",)), "unknown attack 'nope'"),
    (dict(transforms=("attack:bim(eps='x')",)), "eps='x': expected a finite number"),
    (dict(transforms=("attack:bim(eps=10**10**10)",)), "'**' is not allowed"),
    (dict(transforms=("shift:no_such_shift",)), "unknown shift 'no_such_shift'"),
    (dict(transforms=("attack:transfer(attack='bim', surrogate='resnet_152')",)),
     "surrogate 'resnet_152': unknown model"),
    (dict(models=("clip_vit_b23",)), "did you mean 'clip_vit_b32'"),
    (dict(zeroshot=dict(classnames="imagenet", templates="clip81", head="imagenet",
                        logit_scale="model")), "unknown template set 'clip81'"),
    (dict(zeroshot=dict(classnames="imagenett", templates="photo", head="imagenet",
                        logit_scale="model")), "unknown class-name set 'imagenett'"),
    ("missing_dir", "/nonexistent/jaxbench/data"),
]


@pytest.mark.parametrize("change,message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_dry_run_refuses_each_bad_spec_in_one_line(change, message, tiny_clip, folder):
  model_dir, _ = tiny_clip
  if change == "missing_dir":
    cfg = _config(model_dir, "/nonexistent/jaxbench/data")
  else:
    cfg = _config(model_dir, folder, **change)
  code, out, err = _execute(cfg, None, dry_run=True)
  assert code == 2, (out, err)
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
  assert "plan:" not in out


def test_dry_run_lists_every_bad_spec_and_exits_2_from_the_command_line(tiny_clip, tmp_path):
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, "/nonexistent/jaxbench/data", models=(model_dir, "clip_vit_b23"),
                transforms=("clean", "attack:nope", "attack:fgsm(eps='x')"))
  res = _cli([f"--config={_write_config_file(tmp_path / 'cfg.py', cfg)}", "--dry_run"])
  assert res.returncode == 2, res.stderr[-2000:]
  errors = [l for l in res.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 4, res.stderr[-2000:]
  for text in ("clip_vit_b23", "unknown attack 'nope'", "eps='x'", "/nonexistent/jaxbench"):
    assert sum(text in l for l in errors) == 1, (text, errors)
  assert "Traceback" not in res.stderr and "plan:" not in res.stdout


def test_real_run_refuses_unknown_attack_before_any_pass(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, folder, transforms=("clean", "attack:nope"))
  with pytest.raises(ValidationError, match="unknown attack 'nope'"):
    suites.run(cfg, str(tmp_path))
  # Nothing ran, nothing recorded: the clean pass before it did not start either.
  assert not (tmp_path / "passes").exists() and not (tmp_path / "config.json").exists()
  assert not (tmp_path / ".lock").exists()


def test_failed_run_does_not_lock_the_workdir(tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  typo = _config(model_dir, folder, transforms=("attack:fgsm(epz=1/255)",))
  code, _, err = _execute(typo, tmp_path)
  assert code == 2 and "epz" in err
  fixed = _config(model_dir, folder, transforms=("attack:fgsm(eps=1/255)",))
  code, out, err = _execute(fixed, tmp_path)
  assert code == 0, err
  assert "attack:fgsm(eps=1/255)" in out
  with open(tmp_path / "config.json") as f:
    assert f.read().count("eps=1/255") == 1


def test_workdir_without_finished_rows_is_reused_by_a_changed_config(tiny_clip, folder,
                                                                      tmp_path):
  model_dir, _ = tiny_clip
  # An earlier run of another config started but finished no pass.
  store_lib.atomic_write_json(str(tmp_path / "config.json"),
                              workdir_lib.config_identity(_config(model_dir, folder, seed=7)))
  rows = suites.run(_config(model_dir, folder), str(tmp_path))
  assert rows
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["seed"] == 0
  # Once rows are finished, another config is refused as before -- by the dry run too.
  with pytest.raises(ConfigError, match="seed: workdir has 0, config has 7"):
    suites.run(_config(model_dir, folder, seed=7), str(tmp_path))
  code, _, err = _execute(_config(model_dir, folder, seed=7), tmp_path, dry_run=True)
  assert code == 2 and "seed: workdir has 0, config has 7" in err and err.count("\n") == 1


@pytest.mark.parametrize("key,value,message", [
    ("checkpoint_every", 0, "checkpoint_every=0"),
    ("max_examples", 0, "max_examples=0"),
    ("max_examples", -5, "max_examples=-5"),
])
def test_zero_counts_are_refused(key, value, message, tiny_clip, folder):
  model_dir, _ = tiny_clip
  with pytest.raises(ConfigError, match=message):
    suites.validate(_config(model_dir, folder, **{key: value}))


# --- command-line flags ------------------------------------------------------------------

def test_help_exits_0_and_unknown_config_key_is_one_line(tmp_path):
  res = _cli(["--help"])
  assert res.returncode == 0, res.stderr[-1000:]
  assert "--workdir" in res.stdout + res.stderr
  res = _cli(["--config=configs/zeroshot.py", "--config.batchsize=4", "--dry_run"])
  assert res.returncode == 2
  assert "Traceback" not in res.stderr
  errors = [l for l in res.stderr.splitlines() if l.startswith("error: ")]
  assert errors == ["error: unknown config key 'batchsize'; Did you mean \"batch_size\" "
                    "instead of \"batchsize\"?"], res.stderr


def test_main_installs_the_sigterm_handler_before_importing_jax():
  code = ("import signal, sys\n"
          "import jaxbench.main as m\n"
          "assert signal.getsignal(signal.SIGTERM) is m.stopping.request_stop\n"
          "src = open(m.__file__).read()\n"
          "assert src.index('signal.signal(signal.SIGTERM') < src.index('from absl')\n"
          "assert 'import jax\\n' not in src.split('def main')[0]\n")
  env = dict(os.environ, PYTHONPATH=REPO)
  res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
  assert res.returncode == 0, res.stderr[-1500:]


# --- workdir lock and unwritable workdirs ------------------------------------------------

def test_second_run_on_a_locked_workdir_is_refused_naming_the_owner(tiny_clip, folder,
                                                                     tmp_path):
  model_dir, _ = tiny_clip
  owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (tmp_path / ".lock").write_text(json.dumps(
        {"pid": owner.pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00"}))
    code, _, err = _execute(_config(model_dir, folder), tmp_path)
    assert code == 2
    assert err.count("\n") == 1 and f"process {owner.pid} on host {socket.gethostname()}" in err
    assert not (tmp_path / "passes").exists()
  finally:
    owner.kill()
    owner.wait()
  # The owner is dead now: its lock is stale and taken over; released at the end.
  code, out, err = _execute(_config(model_dir, folder), tmp_path)
  assert code == 0, err
  assert "top1" in out and not (tmp_path / ".lock").exists()


def test_lock_is_exclusive_within_one_host(tmp_path):
  a, b = store_lib.WorkdirLock(str(tmp_path)), store_lib.WorkdirLock(str(tmp_path))
  a.acquire()
  with pytest.raises(store_lib.WorkdirLocked, match=f"process {os.getpid()}"):
    b.acquire()   # this very process is alive: not stale
  a.release()
  b.acquire()
  b.release()
  assert not (tmp_path / ".lock").exists()


@pytest.mark.parametrize("failure", ["read_only", "disk_full"])
def test_unwritable_workdir_ends_in_one_line(failure, tiny_clip, folder, tmp_path,
                                             monkeypatch):
  model_dir, _ = tiny_clip
  wd = tmp_path / "wd"
  wd.mkdir()
  real_open, real_os_open = open, os.open
  if failure == "read_only":
    os.chmod(wd, 0o555)
    if os.geteuid() == 0:
      # root ignores directory permissions: fail the writes as a read-only dir would.
      def os_open(path, flags, *a, **k):
        if str(path).startswith(str(wd)) and flags & os.O_CREAT:
          raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_os_open(path, flags, *a, **k)
      monkeypatch.setattr(os, "open", os_open)
    expected = "permission denied"
  else:
    def full_open(path, mode="r", *a, **k):
      if "w" in mode and "chunk_" in str(path):
        raise OSError(errno.ENOSPC, "No space left on device")
      return real_open(path, mode, *a, **k)
    monkeypatch.setattr(atomic, "open", full_open, raising=False)
    expected = "the disk is full"
  try:
    code, _, err = _execute(_config(model_dir, folder), wd)
  finally:
    os.chmod(wd, 0o755)
  assert code == 2
  assert err.count("\n") == 1 and err.startswith("error: ") and str(wd) in err, err
  assert expected in err.lower(), err


# --- SIGTERM before the first pass ---------------------------------------------------

def test_sigterm_stops_between_phases_and_head_batches(tiny_clip, folder, tmp_path,
                                                       monkeypatch):
  model_dir, _ = tiny_clip
  monkeypatch.setitem(stopping._STOP, "requested", True)
  with pytest.raises(loop.Preempted, match="before the first pass"):
    suites.run(_config(model_dir, folder), str(tmp_path))
  assert not (tmp_path / "passes").exists()
  code, _, err = _execute(_config(model_dir, folder), tmp_path / "w2")
  assert code == cli.PREEMPTED_EXIT_CODE and err.startswith("preempted: ")
  # Head building checks the flag between its text-encoder batches.
  import numpy as np
  from jaxbench import models
  from jaxbench.zeroshot import head
  model = models.load(model_dir)
  monkeypatch.setitem(stopping._STOP, "requested", False)
  calls = []

  def encode(params, ids):
    calls.append(len(ids))
    stopping.request_stop()       # the signal arrives during the first batch
    return np.zeros((len(ids), 4), np.float32)
  with pytest.raises(loop.Preempted, match="zero-shot head"):
    head.encode_prompts(model, np.ones((20, 8), np.int32), batch_size=8, encode=encode)
  assert len(calls) == 1


# --- the results table ----------------------------------------------------------------

def test_table_lines_match_hand_written_lines():
  from jaxbench import console
  rows = [
      {"model": "demo_clip@templates=('a photo of the number {}.', 'a handwritten digit {}.', "
                "'a picture of the number {}.', 'a small handwritten {}.')",
       "dataset": "digits", "transform": "attack:bim(eps=0.00392156862745098)",
       "metric": "robust_acc", "value": 0.5, "n": 547},
      {"model": "clip_vit_b32@preprocess=clip", "dataset": "imagenet_c(corruption='fog', "
       "severity=3)", "transform": "clean", "metric": "top1", "value": 0.123456, "n": 10},
      {"model": "m", "dataset": "d", "transform": "attack:pgd(eps=0.5, norm='l2')",
       "metric": "median_min_eps", "value": float("inf"), "n": 3},
  ]
  # Columns two spaces apart, each as wide as its widest cell; the eps as k/255, the
  # template tuple as its length, inf as inf, values to 4 decimals.
  assert console.table_lines(rows) == [
      "model                          dataset                                   "
      "transform                       metric          value   n",
      "demo_clip@templates=(4 items)  digits                                    "
      "attack:bim(eps=1/255)           robust_acc      0.5000  547",
      "clip_vit_b32@preprocess=clip   imagenet_c(corruption='fog', severity=3)  "
      "clean                           top1            0.1235  10",
      "m                              d                                         "
      "attack:pgd(eps=0.5, norm='l2')  median_min_eps  inf     3",
  ]


def test_eps_text_only_for_multiples_of_1_255():
  from jaxbench import console
  assert console.eps_text(8 / 255) == "8/255"
  assert console.eps_text(255 / 255) == "255/255"
  assert console.eps_text(0.001) == "0.001"
  assert console.eps_text(0.03) == "0.03"
  assert console.eps_text(2.0) == "2.0"
  assert console.short_spec("attack:min_eps(attack='bim(eps=0.01568627450980392)', "
                            "grid=(0.001, 0.002, 0.003, 0.004, 0.005))") == (
      "attack:min_eps(attack='bim(eps=4/255)', grid=(0.001, ..., 0.005; 5 values))")


def test_finished_run_prints_table_and_bad_files_and_rerun_prints_it_again(
    tiny_clip, folder, tmp_path):
  model_dir, _ = tiny_clip
  cfg = _config(model_dir, folder, transforms=("clean", "attack:fgsm(eps=2/255)"))
  code, out, err = _execute(cfg, tmp_path)
  assert code == 0, err
  lines = out.strip().splitlines()
  assert lines[0].split() == ["model", "dataset", "transform", "metric", "value", "n"]
  table = [l.split() for l in lines[1:] if not l.startswith(("1 unreadable", "note"))]
  rows = store_lib.Store(str(tmp_path)).rows()
  assert len(table) == len(rows) > 4   # top1; clean_acc, robust_acc, success_rate, ...
  assert [(t[2], t[3]) for t in table] == [
      (r["transform"].replace("0.00784313725490196", "2/255"), r["metric"]) for r in rows]
  assert any(t[2] == "attack:fgsm(eps=2/255)" and t[3] == "robust_acc" for t in table)
  assert all(t[-1] == "9" for t in table)   # 9 decodable images
  bad = [l for l in lines if "unreadable" in l]
  assert len(bad) == 2   # one line per pass, naming where the list is
  assert all(l.startswith("1 unreadable file skipped in image_folder(") and
             str(tmp_path / "results.jsonl") in l and "details.bad_files" in l for l in bad)
  code, again, err = _execute(cfg, tmp_path)
  assert code == 0 and again == out


def _catches_sigterm(pid):
  """Whether process ``pid`` has a SIGTERM handler installed (/proc SigCgt mask)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      mask = next(int(l.split()[1], 16) for l in f if l.startswith("SigCgt:"))
  except (OSError, StopIteration):
    return False
  return bool(mask >> (15 - 1) & 1)


def test_sigterm_during_imports_exits_75_without_work(tiny_clip, folder, tmp_path):
  import signal
  import time
  model_dir, _ = tiny_clip
  cfg_path = _write_config_file(tmp_path / "cfg.py", _config(model_dir, folder))
  wd = tmp_path / "wd"
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.Popen([sys.executable, "-m", "jaxbench.main", f"--config={cfg_path}",
                           f"--workdir={wd}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 60
  while not _catches_sigterm(proc.pid) and time.time() < deadline and proc.poll() is None:
    time.sleep(0.002)
  proc.send_signal(signal.SIGTERM)   # main.py's first statement installed the handler
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 75, err[-2000:]
  assert "preempted: stopped by SIGTERM" in err
  assert not (wd / "passes").exists() and not (wd / "config.json").exists()


def test_dry_run_does_not_generate_sets_from_src(tiny_clip, folder, tmp_path):
  """ImageNet-T-style specs generate their set on first use: the dry run only checks
  that src exists."""
  model_dir, _ = tiny_clip
  root = tmp_path / "imagenet_t_seed0"
  spec = f"imagenet_t(root={str(root)!r}, src={folder!r}, seed=0)"
  code, out, err = _execute(_config(model_dir, folder, datasets=(spec,)), None, dry_run=True)
  assert code == 0, err
  assert "plan: 1 passes" in out and not root.exists()
  missing = spec.replace(repr(folder), repr(str(tmp_path / "nowhere")))
  code, _, err = _execute(_config(model_dir, folder, datasets=(missing,)), None, dry_run=True)
  assert code == 2 and "nowhere' does not exist" in err and err.count("\n") == 1


def test_cli_has_no_suite_special_case():
  # Every suite runs through jaxbench.suites (SUITES.get(config.suite).run): the command
  # line's run step names none of them.
  with open(os.path.join(REPO, "jaxbench", "cli.py")) as f:
    text = f.read()
  assert "suites.run(" in text
  for name in ("overlap", "clip_auto", "linear_probe", "typographic", "'adv'", "synthetic"):
    assert name not in text, name


def test_persistent_compilation_cache_writes_entries(tmp_path):
  """main.configure_compilation_cache: a fresh process compiles into the cache dir.

  (Moved from tests/test_accel.py.)
  """
  cache = tmp_path / "xla"
  code = ("import jax, jax.numpy as jnp\n"
          "from jaxbench import main\n"
          f"main.configure_compilation_cache({str(cache)!r}, min_compile_secs=0.0)\n"
          "jax.jit(lambda x: jnp.tanh(x) @ x)(jnp.ones((64, 64))).block_until_ready()\n")
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
  assert any(cache.iterdir())
