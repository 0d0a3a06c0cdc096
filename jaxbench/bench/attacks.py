"""Attack benchmark: jitted attacks against PyTorch references in one run.

    python -m jaxbench.bench attacks [--batch=2] [--sections=whitebox,refill,blackbox,deepfool]

Victim: a random-weight CLIP zero-shot classifier in transformers' layout
(``CLIPModel.save_pretrained`` -> ``jaxbench.models.load``), 1000 random unit
class embeddings, logit scale 100; PyTorch runs the same weights through
transformers' ``CLIPModel.get_image_features``.

* whitebox: FGSM, BIM-10, MIM-10, DIM-10 images/s at a fixed iteration count
  (no early stop) on the full ViT-B/32, against torchattacks' FGSM, BIM,
  MIFGSM and DIFGSM. Our figure includes the clean and the final evaluation
  that torchattacks does not do.
* refill: BIM with per-example early stop on a small model the benchmark
  trains (examples fall at different steps): a fixed-iteration loop, the
  batched early-stop loop (a batch lasts as long as its slowest example) and
  survivor refill, examples/s.
* blackbox: NES and SPSA with q = 100 antithetic directions, queries/s of one
  attack step against RoZ's batched PyTorch estimate (all q directions of one
  image in one forward batch), on a ``--small_layers``-layer ViT-B/32.
* deepfool: one DeepFool iteration over 1000 classes (L-inf, RoZ): our
  embedding-space path (D = 512 vector-Jacobian products and a GEMM; with
  ``--deepfool_generic`` also the per-class path), against RoZ's
  per-class-gradient PyTorch loop (one
  backward per class, timed on ``--deepfool_torch_classes`` classes and
  extrapolated linearly to 1000), on the small tower.

The machine is shared: figures are noisy and only comparable within one run.

On an accelerator (real sizes, bf16, a CUDA PyTorch in the same process; jaxbench
and torchattacks timed in turn round by round, each figure appended to ``--out``
as soon as it is measured)::

    python -m jaxbench.bench attacks --sections=whitebox --arch=b16 --precision=bfloat16 \\
        --batch=128 --whitebox=fgsm --torch_device=cuda --rounds=3 --min_seconds=1 \\
        --out=gpu.jsonl
    python -m jaxbench.bench attacks --sections=whitebox --arch=b32 --precision=bfloat16 \\
        --batch=256 --whitebox=bim --steps=10 --torch_device=cuda --rounds=3 --min_seconds=1 \\
        --out=gpu.jsonl

``torch+eval`` is torchattacks plus the clean and adversarial forward passes that
a robustness evaluation needs and that our figure always includes.
"""
from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
from absl import flags

from jaxbench.bench import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 2, "images per white-box attack batch")
flags.DEFINE_integer("steps", 10, "iterations of BIM/MIM/DIM")
flags.DEFINE_integer("layers", 12, "vision layers of the white-box victim (ViT-B/32: 12)")
flags.DEFINE_integer("small_layers", 2, "vision layers for the black-box/DeepFool victim")
flags.DEFINE_integer("q", 100, "NES/SPSA directions")
flags.DEFINE_integer("deepfool_torch_classes", 20, "classes timed for PyTorch DeepFool")
flags.DEFINE_bool("deepfool_generic", False, "also time our generic per-class DeepFool path")
flags.DEFINE_list("sections", ["whitebox", "refill", "blackbox", "deepfool"], "what to run")
flags.DEFINE_bool("torch", True, "also time the PyTorch references")
flags.DEFINE_string("out", "bench_results.jsonl", "JSON lines file to append to")
flags.DEFINE_enum("arch", "b32", list(common.CLIP_ARCHS), "victim CLIP size (random weights)")
flags.DEFINE_enum("precision", "float32", ["float32", "tf32", "bfloat16"],
                  "jaxbench precision policy; PyTorch runs the same dtype")
flags.DEFINE_string("torch_device", "cpu", "PyTorch device: cpu or cuda")
flags.DEFINE_list("whitebox", ["fgsm", "bim", "mim", "dim"], "white-box attacks to time")
flags.DEFINE_integer("rounds", 1, "interleaved timing rounds (1: one timed call each)")
flags.DEFINE_float("min_seconds", 0.0, "least seconds per timing round")


def _timed(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def _build(tmp, layers, arch="b32", precision="float32", device="cpu"):
  """(Model with a 1000-class head and its params, torch classifier on ``device``).

  The text tower (unused) has one layer; the vision tower ``layers`` layers.
  """
  import jax.numpy as jnp
  import torch
  from jaxbench import models
  ref = common.random_clip(tmp, arch, device=device, vision_layers=layers, text_layers=1)
  model = models.load(tmp) if precision == "float32" else models.load(tmp, precision=precision)
  dim = int(ref.config.projection_dim)
  rng = np.random.default_rng(0)
  w = rng.normal(size=(1000, dim)).astype(np.float32)
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  params = dict(model.params, head=jnp.asarray(w), logit_scale=jnp.float32(100.0))
  dtype = common.torch_dtype(precision)
  ref = ref.to(dtype)
  mean = torch.tensor(model.preprocess.mean, device=device).reshape(1, 3, 1, 1)
  std = torch.tensor(model.preprocess.std, device=device).reshape(1, 3, 1, 1)
  wt = torch.tensor(w, device=device)

  class Classifier(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.ref = ref

    def forward(self, x):          # [0, 1] NCHW float32 -> float32 zero-shot logits
      z = self.ref.get_image_features(pixel_values=((x - mean) / std).to(dtype))
      z = getattr(z, "pooler_output", z).float()
      return 100.0 * (z / z.norm(dim=-1, keepdim=True)) @ wt.T

  return model, params, Classifier().eval()


def _images(n, seed=0):
  return np.random.default_rng(seed).random((n, 224, 224, 3), dtype=np.float32)


def bench_whitebox(model, params, net, use_torch, device="cpu"):
  import jax
  import torch
  import torchattacks
  from jaxbench import attacks
  b, steps = FLAGS.batch, FLAGS.steps
  x = jax.device_put(_images(b))          # on device, as the runner's step has it
  y = np.asarray(jax.jit(model.apply)(params, x)).argmax(1)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(np.arange(b))
  common_kw = f"eps=8/255, step_size=2/255, steps={steps}, early_stop=False"
  ours = {
      "fgsm": "fgsm(eps=8/255)",
      f"bim{steps}": f"bim({common_kw})",
      f"mim{steps}": f"mim({common_kw})",
      f"dim{steps}": f"dim({common_kw})",
  }
  theirs = {
      "fgsm": lambda: torchattacks.FGSM(net, eps=8 / 255),
      f"bim{steps}": lambda: torchattacks.BIM(net, eps=8 / 255, alpha=2 / 255, steps=steps),
      f"mim{steps}": lambda: torchattacks.MIFGSM(net, eps=8 / 255, alpha=2 / 255, steps=steps),
      f"dim{steps}": lambda: torchattacks.DIFGSM(net, eps=8 / 255, alpha=2 / 255, steps=steps,
                                                 decay=1.0),
  }
  xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).to(device)
  yt = torch.from_numpy(y).to(device)
  wanted = {w.strip() for w in FLAGS.whitebox}
  rows = {}
  for name, spec in ours.items():
    if name.rstrip("0123456789") not in wanted:
      continue
    a = attacks.get(spec)
    run = lambda: jax.block_until_ready(a(model.apply, params, x, y, keys).adv_images)
    compile_s = _timed(run)
    fns = {"jax": run}
    row = {"attack": name, "batch": b, "arch": FLAGS.arch, "precision": FLAGS.precision,
           "torch_device": device, "jax_compile_s": compile_s}
    if use_torch:
      atk = theirs[name]()

      def torch_run(evaluate=False):
        adv = atk(xt, yt)
        if evaluate:     # what a robustness evaluation adds: clean and adversarial logits
          with torch.no_grad():
            net(xt).argmax(1), net(adv).argmax(1)
        common.torch_sync(device)
      torch_run()                                            # warm-up
      fns["torch"] = torch_run
      fns["torch_eval"] = lambda: torch_run(True)
    times = common.interleaved(fns, rounds=FLAGS.rounds, min_seconds=FLAGS.min_seconds,
                               warmup=False)
    row["jax_images_per_s"] = b / times["jax"]
    if use_torch:
      row["torch_images_per_s"] = b / times["torch"]
      row["torch_eval_images_per_s"] = b / times["torch_eval"]
      row["speedup"] = row["jax_images_per_s"] / row["torch_images_per_s"]
      row["speedup_vs_torch_eval"] = row["jax_images_per_s"] / row["torch_eval_images_per_s"]
    rows[name] = row
    common.record(FLAGS.out, "attacks_whitebox", row)
    print(f"  {name:6s} jax {row['jax_images_per_s']:7.2f} img/s"
          + (f"  torchattacks {row['torch_images_per_s']:7.2f} img/s  x{row['speedup']:.2f}"
             f"  (torchattacks + clean/adv eval {row['torch_eval_images_per_s']:7.2f} img/s "
             f"x{row['speedup_vs_torch_eval']:.2f})" if use_torch else ""), flush=True)
  return rows


def _train_small_model(n_train=4096, seed=0, noise=1.0):
  """A 768-512-512-10 MLP on Gaussian class blobs in 16x16x3 images."""
  import jax
  import jax.numpy as jnp
  import optax
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0.25, 0.75, size=(10, 16, 16, 3)).astype(np.float32)

  def data(n, r):
    y = r.integers(0, 10, n)
    x = np.clip(centers[y] + r.normal(scale=noise, size=(n, 16, 16, 3)), 0, 1)
    return x.astype(np.float32), y.astype(np.int32)

  def apply(p, x):
    h = x.reshape(x.shape[0], -1)
    for i in range(2):
      h = jax.nn.relu(h @ p[f"w{i}"] + p[f"b{i}"])
    return h @ p["w2"] + p["b2"]

  dims = [768, 512, 512, 10]
  p = {}
  for i in range(3):
    p[f"w{i}"] = jnp.asarray(rng.normal(size=dims[i:i + 2]).astype(np.float32)
                             * np.sqrt(2 / dims[i]))
    p[f"b{i}"] = jnp.zeros(dims[i + 1])
  opt = optax.adam(1e-3)
  state = opt.init(p)

  @jax.jit
  def step(p, s, x, y):
    loss, g = jax.value_and_grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
        apply(p, x), y).mean())(p)
    u, s = opt.update(g, s)
    return optax.apply_updates(p, u), s, loss

  x, y = data(n_train, rng)
  for e in range(3):
    for i in range(0, n_train, 256):
      p, state, _ = step(p, state, x[i:i + 256], y[i:i + 256])
  xt, yt = data(2048, np.random.default_rng(seed + 1))
  acc = float((np.asarray(jax.jit(apply)(p, xt)).argmax(1) == yt).mean())
  return apply, p, xt, yt, acc


def bench_refill():
  import jax
  from jaxbench import attacks
  from jaxbench.attacks import refill
  apply, p, x, y, acc = _train_small_model()
  n, bsz = len(x), 256
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(np.arange(n))
  early = attacks.get("bim(eps=16/255)")                 # RoZ rule: 20 steps, early stop
  fixed = attacks.get("bim(eps=16/255, early_stop=False)")

  def batched(a):
    out = []
    for i in range(0, n, bsz):
      out.append(a(apply, p, x[i:i + bsz], y[i:i + bsz], keys[i:i + bsz]))
    return jax.block_until_ready(out)

  def refilled():
    return refill.run(early, apply, p, refill.examples_from_arrays(x, y, keys, batch=bsz),
                      batch_size=bsz, chunk_steps=2)

  for f in (lambda: batched(fixed), lambda: batched(early), refilled):
    f()                                                  # compile
  t_fixed = _timed(lambda: batched(fixed))
  t_early = _timed(lambda: batched(early))
  res = {}
  t_refill = _timed(lambda: res.update(out=refilled()))
  result, stats = res["out"]
  steps = np.asarray(result.diagnostics["steps"])
  row = {"model_clean_acc": acc, "examples": n, "batch": bsz,
         "fixed_examples_per_s": n / t_fixed, "early_stop_examples_per_s": n / t_early,
         "refill_examples_per_s": n / t_refill, "refill_vs_fixed": t_fixed / t_refill,
         "refill_vs_early_stop": t_early / t_refill, "refill_occupancy": stats.occupancy,
         "mean_steps": float(steps.mean()), "max_steps": int(steps.max()),
         "robust_acc": float(np.mean(np.asarray(result.diagnostics["clean_correct"])
                                     & np.asarray(result.diagnostics["adv_correct"])))}
  print(f"  trained MLP (clean acc {acc:.2f}), BIM eps=16/255 (20 steps), {n} examples, "
        f"batch {bsz}: steps per example mean {row['mean_steps']:.1f}, max {row['max_steps']}")
  print(f"  fixed loop {row['fixed_examples_per_s']:8.1f} ex/s | batched early stop "
        f"{row['early_stop_examples_per_s']:8.1f} ex/s | refill {row['refill_examples_per_s']:8.1f}"
        f" ex/s  (x{row['refill_vs_fixed']:.2f} vs fixed, occupancy {stats.occupancy:.2f})",
        flush=True)
  return row


def bench_blackbox(model, params, net, use_torch):
  import jax
  import torch
  from jaxbench import attacks
  q = FLAGS.q
  b = 2
  x = _images(b, seed=1)
  y = np.asarray(jax.jit(model.apply)(params, x)).argmax(1)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(np.arange(b))
  rows = {}
  for name in ("nes", "spsa"):
    a = attacks.get(f"{name}(eps=8/255, q={q}, sigma=0.001, steps=1, early_stop=False)")
    run = lambda: jax.block_until_ready(a(model.apply, params, x, y, keys))
    run()
    res = {}
    t = _timed(lambda: res.update(r=run()))
    queries = int(np.asarray(res["r"].queries).sum()) + b    # + the final re-evaluation
    row = {"jax_queries_per_s": queries / t}
    if use_torch:
      # RoZ's compute_grad: all q directions of one image in one batch, twice.
      xt = torch.from_numpy(x[:1].transpose(0, 3, 1, 2).copy())
      yt = int(y[0])

      def roz_step():
        with torch.no_grad():
          u = (torch.randn(q, 3, 224, 224) if name == "nes"
               else torch.bernoulli(torch.full((q, 3, 224, 224), 0.5)) * 2 - 1)
          g = 0
          for sgn in (1.0, -1.0):
            l = net(xt + sgn * 0.001 * u)
            other = torch.cat([l[:, :yt], l[:, yt + 1:]], 1).max(1)[0]
            g = g + sgn * (l[:, yt] - other).view(q, 1, 1, 1) * u
          g = g.sum(0) / (2 * q * 0.001)
          net(xt - 0.15 * 8 / 255 * g.sign())              # the success check
      row["torch_queries_per_s"] = (2 * q + 1) / _timed(roz_step)
      row["speedup"] = row["jax_queries_per_s"] / row["torch_queries_per_s"]
    rows[name] = row
    print(f"  {name:5s} q={q}: jax {row['jax_queries_per_s']:8.1f} queries/s"
          + (f"  torch (RoZ batched) {row['torch_queries_per_s']:8.1f} queries/s  "
             f"x{row['speedup']:.2f}" if use_torch else ""), flush=True)
  return rows


def bench_deepfool(model, params, net, use_torch):
  import jax
  import jax.numpy as jnp
  import torch
  from jaxbench import attacks
  from jaxbench.attacks import base
  x = _images(1, seed=2)
  label = jnp.asarray(np.asarray(jax.jit(model.apply)(params, x)).argmax(1))
  rows = {}
  for embed in ("always", "never") if FLAGS.deepfool_generic else ("always",):
    a = attacks.get(f"deepfool(eps=8/255, embed='{embed}', class_chunk=100)")

    @jax.jit
    def one_iter(p, z, lab):
      logits, grads = a._linearize(base.Models(model.apply, p, a.threat), z, 1000)
      return a._nearest(logits, grads, lab, None)

    jax.block_until_ready(one_iter(params, x, label))
    t = _timed(lambda: jax.block_until_ready(one_iter(params, x, label)))
    rows[f"jax_{'embedding' if embed == 'always' else 'per_class'}_s_per_iter"] = t
  if use_torch:
    k = FLAGS.deepfool_torch_classes
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)

    def roz_iter():
      fs = net(xt)
      order = fs[0].detach().argsort(descending=True)
      fs[0, order[0]].backward(retain_graph=True)
      g0 = xt.grad.detach().clone()
      best = np.inf
      for c in order[1:k + 1]:
        xt.grad = None
        fs[0, c].backward(retain_graph=True)
        w = xt.grad.detach() - g0
        pert = ((fs[0, c] - fs[0, order[0]]).abs() / w.abs().sum()).item()
        best = min(best, pert)
      xt.grad = None
      return best
    t_k = _timed(roz_iter)
    rows["torch_s_per_iter_extrapolated"] = t_k * 999 / (k + 1)
    rows["speedup_embedding"] = rows["torch_s_per_iter_extrapolated"] / rows[
        "jax_embedding_s_per_iter"]
    if FLAGS.deepfool_generic:
      rows["speedup_per_class"] = rows["torch_s_per_iter_extrapolated"] / rows[
          "jax_per_class_s_per_iter"]
  print(f"  DeepFool iteration, 1000 classes, 1 image: jax embedding path "
        f"{rows['jax_embedding_s_per_iter']:.2f} s"
        + (f", jax per-class path {rows['jax_per_class_s_per_iter']:.2f} s"
           if FLAGS.deepfool_generic else "")
        + (f", torch per-class {rows['torch_s_per_iter_extrapolated']:.2f} s (from "
           f"{FLAGS.deepfool_torch_classes} classes)  x{rows['speedup_embedding']:.2f}"
           if use_torch else ""), flush=True)
  return rows


def main(argv):
  FLAGS(argv)
  common.share_device_with_torch(FLAGS.torch_device)
  import torch
  torch.set_num_threads(max(1, torch.get_num_threads()))
  sections = set(FLAGS.sections)
  figures = {"batch": FLAGS.batch, "steps": FLAGS.steps}
  print("attack benchmark (shared machine: figures are noisy)", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    if "whitebox" in sections:
      model, params, net = _build(tmp + "/full", FLAGS.layers, FLAGS.arch, FLAGS.precision,
                                  FLAGS.torch_device)
      print(f"white-box, {FLAGS.arch} ({FLAGS.layers} layers, {FLAGS.precision}) zero-shot, "
            f"1000 classes, batch {FLAGS.batch}:", flush=True)
      figures["whitebox"] = bench_whitebox(model, params, net, FLAGS.torch, FLAGS.torch_device)
      del model, params, net
    if "refill" in sections:
      print("early-stop BIM with survivor refill:", flush=True)
      figures["refill"] = bench_refill()
    if sections & {"blackbox", "deepfool"}:
      model, params, net = _build(tmp + "/small", FLAGS.small_layers)
      if "blackbox" in sections:
        print(f"score-based black-box, ViT-B/32 width, {FLAGS.small_layers} layers:",
              flush=True)
        figures["blackbox"] = bench_blackbox(model, params, net, FLAGS.torch)
      if "deepfool" in sections:
        print(f"DeepFool, ViT-B/32 width, {FLAGS.small_layers} layers:", flush=True)
        figures["deepfool"] = bench_deepfool(model, params, net, FLAGS.torch)
  common.record(FLAGS.out, "attacks", figures)
  return figures


if __name__ == "__main__":
  main(sys.argv)
