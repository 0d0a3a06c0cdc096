"""The offline demo's speed choices, measured side by side; optionally the whole demo.

    python -m jaxbench.bench demo [--steps=20] [--full]

1. Training loop: one jitted step called from Python (what jaxbench.demo.train
   does) against the same step inside ``lax.fori_loop`` (per step, demo CLIP and
   demo CNN). XLA:CPU runs convolutions (the CLIP patch embedding, the CNN)
   much slower inside a ``while`` loop.
2. Convolution inside an attack-like loop (5 gradient steps in ``fori_loop``, as
   BIM runs): the demo CNN's im2col 3x3 convolution against ``lax.conv``.
3. ``--full``: the README command ``python -m jaxbench.main
   --config=configs/demo.py`` from an empty model cache into a temporary
   workdir, wall and CPU seconds against the 600 s budget (minutes).

Figures are CPU seconds and wall seconds per step on this machine; other
processes sharing the cores make them noisy (compare the columns of one run).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.bench import common


def _cpu() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def _per_step(run, steps: int) -> tuple[float, float]:
  run()   # compile
  c0, t0 = _cpu(), time.perf_counter()
  run()
  return (_cpu() - c0) / steps, (time.perf_counter() - t0) / steps


def training_loops(steps: int) -> list[tuple]:
  """(model, python-loop cpu/wall per step, fori_loop cpu/wall per step)."""
  from jaxbench.demo import train
  rows = []
  tok_dir = tempfile.mkdtemp()
  from jaxbench.zeroshot import tokenizer
  tokenizer.write_transformers_files(tok_dir, context_length=16)
  for name, cfg, build in (
      ("demo CLIP", train.ClipTrainConfig(), lambda c: train._clip_program(c, tok_dir)),
      ("demo CNN", train.CnnTrainConfig(), train._cnn_program)):
    prog = build(cfg)
    params, opt, step_fn = prog[0], prog[-2], prog[-1]
    state0 = (params, opt.init(params))

    def python_loop():
      s = state0
      for i in range(steps):
        s, loss = step_fn(s, jnp.int32(i))
      jax.block_until_ready(loss)

    body = lambda i, c: step_fn(c[0], i)
    fori = jax.jit(lambda s: jax.lax.fori_loop(0, steps, body, (s, jnp.float32(0))))

    def fori_loop():
      jax.block_until_ready(fori(state0)[1])

    rows.append((name, *_per_step(python_loop, steps), *_per_step(fori_loop, steps)))
  return rows


def conv_in_loop(batch: int = 128, iters: int = 5) -> list[tuple]:
  """(conv, cpu/wall per gradient step in fori_loop) for im2col and lax.conv."""
  import flax.linen as nn
  from jaxbench.demo import cnn

  class LaxCNN(nn.Module):
    width: int = 8

    @nn.compact
    def __call__(self, x):
      for i, mult in enumerate((1, 2, 4)):
        x = nn.relu(nn.Conv(self.width * mult, (3, 3), name=f"conv{i}")(x))
        if i < 2:
          x = nn.max_pool(x, (2, 2), strides=(2, 2))
      return nn.Dense(10, name="head")(x.mean(axis=(1, 2)))

  x = jnp.asarray(np.random.default_rng(0).random((batch, 32, 32, 3), np.float32))
  y = jnp.zeros((batch,), jnp.int32)
  rows = []
  for name, module in (("im2col (demo CNN)", cnn.DigitCNN(8, 10)), ("lax.conv", LaxCNN(8))):
    p = module.init(jax.random.key(0), x[:1])["params"]

    def loss(xx, p=p, module=module):
      logits = module.apply({"params": p}, xx)
      return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).sum()

    g = jax.grad(loss)
    f = jax.jit(lambda xx: jax.lax.fori_loop(0, iters, lambda i, z: z + 1e-3 * jnp.sign(g(z)),
                                             xx))
    rows.append((name, *_per_step(lambda: f(x).block_until_ready(), iters)))
  return rows


def full_demo() -> dict:
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  work = tempfile.mkdtemp(prefix="jaxbench_demo_")
  env = dict(os.environ, JAXBENCH_DEMO_CACHE=os.path.join(work, "models"))
  t0 = time.perf_counter()
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  proc = subprocess.run([sys.executable, "-m", "jaxbench.main", "--config=configs/demo.py",
                         f"--workdir={os.path.join(work, 'run')}"], cwd=root, env=env,
                        capture_output=True, text=True)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  if proc.returncode:
    print(proc.stderr[-3000:])
  return {"status": proc.returncode, "wall_s": time.perf_counter() - t0, "cpu_s": cpu,
          "workdir": work, "load_avg": os.getloadavg()}


def main(argv):
  steps = 20
  full = False
  for a in argv[1:]:
    if a.startswith("--steps="):
      steps = int(a.split("=", 1)[1])
    elif a == "--full":
      full = True
    else:
      raise SystemExit(f"unknown flag {a!r}; flags: --steps=N, --full")
  figures = {}
  print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: "
        "figures are noisy)")
  print("\n| training step | python loop cpu s | wall s | fori_loop cpu s | wall s | speed-up "
        "(cpu) |\n|---|---|---|---|---|---|")
  for name, pc, pw, fc, fw in training_loops(steps):
    print(f"| {name} | {pc:.4f} | {pw:.4f} | {fc:.4f} | {fw:.4f} | {fc / pc:.1f}x |")
    figures[f"{name} python_loop_cpu_s"] = pc
    figures[f"{name} fori_loop_cpu_s"] = fc
  rows = conv_in_loop()
  print("\n| conv in a 5-step gradient fori_loop | cpu s / step | wall s / step |\n|---|---|---|")
  for name, c, w in rows:
    print(f"| {name} | {c:.4f} | {w:.4f} |")
    figures[f"conv_in_loop {name} cpu_s"] = c
  print(f"im2col is {rows[1][1] / rows[0][1]:.1f}x faster (CPU time) than lax.conv in the loop")
  if full:
    r = full_demo()
    print("\n| demo (python -m jaxbench.main --config=configs/demo.py) | wall s | cpu s | "
          f"budget s |\n|---|---|---|---|\n| empty cache, status {r['status']} | "
          f"{r['wall_s']:.0f} | {r['cpu_s']:.0f} | 600 |")
    print(f"load average during the run (1, 5, 15 min): {r['load_avg']}; workdir {r['workdir']}")
    figures.update({"full_wall_s": r["wall_s"], "full_cpu_s": r["cpu_s"]})
  common.record("bench_results.jsonl", "demo", figures)
