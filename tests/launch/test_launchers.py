"""The launchers' --dry_run print exactly the commands they would run."""
import os
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args):
  res = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
  assert res.returncode == 0, res.stderr
  return [shlex.split(line) for line in res.stdout.strip().splitlines()]


def test_tpu_vm_dry_run():
  lines = _run(["bash", "launch/tpu_vm.sh", "--dry_run", "--name=jb", "--zone=europe-west4-a",
                "--type=v4-32", "--bucket=gs://bkt/runs/adv", "--spot", "--",
                "--config=configs/adv.py", "--config.batch_size=256"])
  assert lines[0] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "jb",
                      "--zone=europe-west4-a", "--accelerator-type=v4-32",
                      "--version=tpu-ubuntu2204-base", "--spot"]
  assert lines[1][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
  install, run = lines[2], lines[3]
  assert "--worker=all" in install and "--worker=all" in run
  cmd = run[-1]
  assert cmd == ("--command=cd ~/jaxbench && python3 -m jaxbench.main "
                 "--workdir=/mnt/jaxbench_workdir/runs/adv --config=configs/adv.py "
                 "--config.batch_size=256")
  assert "gcsfuse --implicit-dirs bkt /mnt/jaxbench_workdir" in install[-1]
  assert lines[4] == ["gsutil", "-m", "rsync", "-r", "gs://bkt/runs/adv", "runs/jb"]
  assert lines[5] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "jb",
                      "--zone=europe-west4-a", "--quiet"]


def test_tpu_vm_requires_a_shared_bucket():
  res = subprocess.run(["bash", "launch/tpu_vm.sh", "--dry_run", "--", "--config=x"],
                       cwd=REPO, capture_output=True, text=True)
  assert res.returncode == 2 and "--bucket" in res.stderr


def test_slurm_dry_run():
  lines = _run(["bash", "launch/slurm.sbatch", "--dry_run", "--config=configs/adv.py",
                "--workdir=/shared/runs/adv"])
  assert lines == [["srun", "--kill-on-bad-exit=1", "--ntasks-per-node=1", "python3", "-m",
                    "jaxbench.main", "--config=configs/adv.py", "--workdir=/shared/runs/adv"]]
  text = open(os.path.join(REPO, "launch", "slurm.sbatch")).read()
  assert "#SBATCH --signal=B:TERM@120" in text and "#SBATCH --requeue" in text


def test_local_dry_run():
  lines = _run([sys.executable, "launch/local.py", "--dry_run", "--num_processes=3",
                "--devices_per_process=4", "--port=4321", "--", "--config=c.py",
                "--workdir=w"])
  assert len(lines) == 3
  for pid, line in enumerate(lines):
    assert line == ["JAX_PLATFORMS=cpu", "XLA_FLAGS=--xla_force_host_platform_device_count=4",
                    "python", "-m", "jaxbench.main", "--coordinator=127.0.0.1:4321",
                    "--num_processes=3", f"--process_id={pid}", "--config=c.py",
                    "--workdir=w"]
