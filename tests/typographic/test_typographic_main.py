"""``python -m jaxbench.typographic``: generation from the command line."""
import json
import os
import subprocess
import sys

from jaxbench.typographic import generate as gen

import typographic_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_command_line_generates(tmp_path):
  fx.cifar_bin(str(tmp_path / "cifar-10-batches-bin" / "test_batch.bin"), n=3)
  cmd = [sys.executable, "-m", "jaxbench.typographic", f"--src={tmp_path}",
         f"--dst={tmp_path / 'out'}", "--kind=cifar10_t", "--seed=5", "--variant=roz",
         "--variant=typo(count=2, color=(255, 0, 0))"]
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert r.returncode == 0, r.stderr
  out = r.stdout + r.stderr
  assert "3/3 source images" in out and "wrote 6 images" in out
  header = json.loads((tmp_path / "out" / gen.HEADER).read_text())
  assert header["seed"] == 5 and sorted(header["variants"]) == ["roz", "typo(color=(255,0,0),count=2)"]


def test_command_line_error_is_one_line_and_exit_code_1(tmp_path):
  fx.cifar_bin(str(tmp_path / "cifar-10-batches-bin" / "test_batch.bin"), n=3)
  gen.generate(str(tmp_path), str(tmp_path / "out"), "cifar10_t", seed=5, log=None)
  cmd = [sys.executable, "-m", "jaxbench.typographic", f"--src={tmp_path}",
         f"--dst={tmp_path / 'out'}", "--kind=cifar10_t", "--seed=6"]
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert r.returncode == 1 and "generated with seed=5" in r.stderr
  assert r.stderr.strip().count("\n") == 0
