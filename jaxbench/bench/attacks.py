"""Attack benchmark: jitted attacks against PyTorch references in one run.

    python -m jaxbench.bench attacks [--batch=2] [--sections=whitebox,refill,blackbox,deepfool]
    python -m jaxbench.bench attacks --sections=refill --rounds=3   # refill on the runner path

Victim: a random-weight CLIP zero-shot classifier in transformers' layout
(``CLIPModel.save_pretrained`` -> ``jaxbench.models.load``), 1000 random unit
class embeddings, logit scale 100; PyTorch runs the same weights through
transformers' ``CLIPModel.get_image_features``.

* whitebox: FGSM, BIM-10, MIM-10, DIM-10 images/s at a fixed iteration count
  (no early stop) on the full ViT-B/32, against torchattacks' FGSM, BIM,
  MIFGSM and DIFGSM. Our figure includes the clean and the final evaluation
  that torchattacks does not do.
* refill: survivor refill through the runner: a whole runner pass of RoZ's BIM
  (eps 8/255 normalised, 10 steps, per-example early stop) on a small CNN trained
  on low-contrast class blobs (``--refill_model=clip``: a small random CLIP ViT
  whose images are filed under the class it predicts), RoZ-like: clean accuracy
  ~0.9, robust accuracy ~0, most examples broken within a few steps; with
  ``config.attack.refill`` off (the fixed per-batch loop: a batch lasts as long
  as its slowest example) and on, interleaved round by round (``--rounds``);
  the pass's own seconds (``details.seconds``: decoding, attack, scoring,
  checkpoints), and a check that the per-example outputs agree; one figure per
  ``--refill_examples`` size (default 512, the headline, and 2048: RoZ's passes
  hold 1,000-50,000 examples, where a pass's start and tail weigh less).
* refill_attack: the same attack alone (no runner) on a small model the
  benchmark trains: a fixed-iteration loop, the batched early-stop loop and
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
flags.DEFINE_list("sections", ["whitebox", "refill", "blackbox", "deepfool"],
                  "what to run (also: refill_attack, survivor refill without the runner)")
flags.DEFINE_list("refill_examples", ["512", "2048"],
                  "examples of the refill runner benchmark: one figure per size (the first "
                  "is the headline; RoZ passes hold 1,000-50,000 examples, so the start and "
                  "end of a pass weigh less than at 512)")
flags.DEFINE_integer("refill_batch", 64, "batch (slots) of the refill runner benchmark")
flags.DEFINE_integer("chunk_steps", 1, "refill: attack iterations between refills")
flags.DEFINE_float("refill_noise", 0.15, "refill: pixel noise of the CNN's class blobs")
flags.DEFINE_float("refill_spread", 0.05,
                   "refill: class blob centres are uniform in 0.5 +- this (pixel units)")
flags.DEFINE_enum("refill_model", "cnn", ["cnn", "clip"], "refill: the victim")
flags.DEFINE_integer("refill_width", 32, "refill: channels of the CNN's first stage")
flags.DEFINE_integer("refill_contrast", 24, "refill: image noise of up to +- this many levels")
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
    # The runner traces the attack inside its jitted step (no call-time input
    # check or diagnostics read-back): "jax_step" is that program returning
    # the adversarial images and the evaluation's predictions; "jax_images"
    # returns the images alone, so XLA drops the final evaluation and the work
    # is bare torchattacks' (forward + input gradient per step).
    step = jax.jit(lambda x, y, k: (lambda r: (r.adv_images, r.diagnostics["adv_pred"],
                                               r.diagnostics["clean_pred"]))(
        a(model.apply, params, x, y, k)))
    images_only = jax.jit(lambda x, y, k: a(model.apply, params, x, y, k).adv_images)
    run_step = lambda: jax.block_until_ready(step(x, y, keys))
    run_images = lambda: jax.block_until_ready(images_only(x, y, keys))
    run_step(), run_images()                                 # compile
    fns = {"jax": run, "jax_step": run_step, "jax_images": run_images}
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
    row["jax_step_images_per_s"] = b / times["jax_step"]
    row["jax_images_only_per_s"] = b / times["jax_images"]
    if use_torch:
      row["torch_images_per_s"] = b / times["torch"]
      row["torch_eval_images_per_s"] = b / times["torch_eval"]
      row["speedup"] = row["jax_images_per_s"] / row["torch_images_per_s"]
      row["speedup_vs_torch_eval"] = row["jax_images_per_s"] / row["torch_eval_images_per_s"]
      # Like for like: images alone vs bare torchattacks; the runner's step
      # (attack + evaluation, clean predictions from the first gradient's
      # forward) vs torchattacks + its clean and adversarial evaluation.
      row["speedup_images_only"] = row["jax_images_only_per_s"] / row["torch_images_per_s"]
      row["speedup_step_vs_torch_eval"] = (row["jax_step_images_per_s"]
                                           / row["torch_eval_images_per_s"])
    rows[name] = row
    common.record(FLAGS.out, "attacks_whitebox", row)
    print(f"  {name:6s} jax call {row['jax_images_per_s']:7.2f} img/s, in a jitted step "
          f"{row['jax_step_images_per_s']:7.2f}, images only {row['jax_images_only_per_s']:7.2f}"
          + (f"\n         torchattacks {row['torch_images_per_s']:7.2f} img/s "
             f"(images only x{row['speedup_images_only']:.2f}, call x{row['speedup']:.2f});"
             f" torchattacks + clean/adv eval {row['torch_eval_images_per_s']:7.2f} img/s "
             f"(step x{row['speedup_step_vs_torch_eval']:.2f}, "
             f"call x{row['speedup_vs_torch_eval']:.2f})" if use_torch else ""), flush=True)
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
                      batch_size=bsz, chunk_steps=FLAGS.chunk_steps)

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


# --- survivor refill through the runner -------------------------------------------

_REFILL_CLASSES = ("cat", "dog", "fish", "bird", "car", "tree", "boat", "house", "apple",
                   "chair")


def _small_clip(out_dir, image_size=32, patch=4, width=96, layers=2, seed=0):
  """A random small CLIP in transformers' layout (safetensors, tokenizer, preprocessor)."""
  import json
  import os
  import torch
  from transformers import CLIPConfig, CLIPModel
  from jaxbench.zeroshot import tokenizer
  cfg = CLIPConfig(
      text_config=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                       num_hidden_layers=1),
      vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_attention_heads=4,
                         num_hidden_layers=layers, image_size=image_size, patch_size=patch),
      projection_dim=32)
  torch.manual_seed(seed)
  model = CLIPModel(cfg).eval()
  with torch.no_grad():   # non-trivial norms and biases (as the tests' tiny CLIP)
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(out_dir)
  tokenizer.write_transformers_files(out_dir)
  with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
    json.dump({"crop_size": {"height": image_size, "width": image_size},
               "size": {"shortest_edge": image_size}, "resample": 3, "do_center_crop": True,
               "image_mean": [0.48145466, 0.4578275, 0.40821073],
               "image_std": [0.26862954, 0.26130258, 0.27577711]}, f)
  return out_dir


def _blobs(n, rng, centers, noise):
  """n 32x32 images around 10 class centres (uint8) and their labels."""
  y = rng.integers(0, len(centers), n)
  x = np.clip(centers[y] + rng.normal(scale=noise, size=(n, 32, 32, 3)), 0, 1)
  return np.round(x * 255).astype(np.uint8), y.astype(np.int32)


def _trained_cnn(out_dir, width=16, steps=300, seed=0):
  """The demo's small CNN (``jaxbench.demo.cnn`` layout) trained for a few hundred
  steps on noisy class blobs; returns (directory, blob centres)."""
  import jax
  import jax.numpy as jnp
  import optax
  from jaxbench.demo import cnn
  rng = np.random.default_rng(seed)
  # Smooth class centres (8x8 upsampled): the CNN's pooling sees them. Their
  # differences (+- --refill_spread) are a few times BIM's budget (4/255 in
  # pixels), with noise at the same signal-to-noise ratio: the model is accurate
  # (~0.9 clean) but, as CLIP at eps 8/255 in RoZ, not robust (robust accuracy
  # ~0, most examples broken within a few steps), the workload refill is for.
  # (Wide spread and heavy noise, 0.25 / 0.7, train an averaging, partly robust
  # model: a quarter of the examples are never broken and run all 10 steps.)
  small = rng.uniform(0.5 - FLAGS.refill_spread, 0.5 + FLAGS.refill_spread,
                      size=(len(_REFILL_CLASSES), 8, 8, 3))
  centers = np.repeat(np.repeat(small, 4, axis=1), 4, axis=2).astype(np.float32)
  params = cnn.init_params(width, len(_REFILL_CLASSES), 32, jax.random.key(seed))
  net = cnn.DigitCNN(width, len(_REFILL_CLASSES))
  opt = optax.adam(2e-3)
  state = opt.init(params)

  @jax.jit
  def step(p, s, x, y):
    def loss(p):
      z = (x.astype(jnp.float32) / 255.0 - 0.5) / 0.5
      return optax.softmax_cross_entropy_with_integer_labels(
          net.apply({"params": p}, z), y).mean()
    g = jax.grad(loss)(p)
    u, s = opt.update(g, s)
    return optax.apply_updates(p, u), s

  for _ in range(steps):
    x, y = _blobs(128, rng, centers, FLAGS.refill_noise)
    params, state = step(params, state, x, y)
  cnn.save(out_dir, params, width=width, num_classes=len(_REFILL_CLASSES), image_size=32,
           label_space="bench:refill", class_names=sorted(_REFILL_CLASSES))
  return out_dir, centers


def _refill_config(model_dir, data_dir, refill, batch, **kw):
  import ml_collections
  c = ml_collections.ConfigDict(dict(
      suite="adv", seed=0, models=(model_dir,),
      zeroshot=dict(classnames="imagenet", templates="photo", head="imagenet",
                    logit_scale="model"),
      preprocess="", datasets=(f"image_folder(root={data_dir!r})",),
      transforms=("attack:bim(eps=8/255, space='normalized')",), batch_size=batch,
      mesh=dict(data=-1, model=1), checkpoint_every=50, log_every=1000, num_workers=2,
      precision="float32", max_examples=-1, report=False, workdir_policy="strict",
      attack=dict(refill=refill, chunk_steps=FLAGS.chunk_steps)))
  c.update(kw)
  return c


def _labelled_by_prediction(model_dir, root, n, batch):
  """n random 32x32 PNGs, each filed under the class the model predicts for it, so
  that (nearly) every example is correct before the attack and BIM's early stop
  ends examples at iterations that depend on their margins."""
  import os
  import shutil
  from PIL import Image
  from jaxbench import store as store_lib, suites
  rng = np.random.default_rng(0)
  for c in _REFILL_CLASSES:
    os.makedirs(os.path.join(root, c), exist_ok=True)
  names = []
  for i in range(n):
    name = f"img_{i:05d}.png"
    # Flat colours with noise of random contrast (up to --refill_contrast levels): for
    # low contrast the attack's budget is of the order of the content, so margins,
    # and the iterations BIM needs, spread out.
    c = int(rng.integers(1, FLAGS.refill_contrast + 1))
    img = np.clip(rng.integers(40, 216, (1, 1, 3)) + rng.integers(-c, c + 1, (32, 32, 3)),
                  0, 255)
    Image.fromarray(img.astype(np.uint8)).save(
        os.path.join(root, _REFILL_CLASSES[i % len(_REFILL_CLASSES)], name))
    names.append(name)
  wd = os.path.join(os.path.dirname(root), "label_run")
  suites.run(_refill_config(model_dir, root, False, batch, transforms=("clean",)), wd)
  (pid,) = os.listdir(os.path.join(wd, "passes"))
  out = store_lib.Store(wd).outputs(pid)
  from jaxbench.data import catalog
  evalset = catalog.get(f"image_folder(root={root!r})")
  moves = []
  for idx, pred in zip(out["index"], out["pred"]):
    rel = str(evalset.source[int(idx)]["id"])
    moves.append((os.path.join(root, rel), os.path.join(
        root, evalset.class_names[int(pred)], os.path.basename(rel))))
  for a, b in moves:
    if a != b:
      shutil.move(a, b)   # refile under the predicted class (not a results write)


def _refill_rounds(once, data, n, batch):
  """Interleaved rounds (fixed loop, then refill) of one pass over ``data`` (n examples)."""
  import os
  rounds, all_same = [], True
  for r in range(max(1, FLAGS.rounds)):
    (d_fixed, out_fixed), (d_refill, out_refill) = (once(data, False, f"fixed_{r}"),
                                                    once(data, True, f"refill_{r}"))
    differ = [k for k in out_fixed if not np.array_equal(out_fixed[k], out_refill[k])]
    # Attack-space norms may differ in the last float32 bits (tests/engine/test_refill.py).
    same = all(k in ("atk_linf", "atk_l2") and np.allclose(
        out_fixed[k], out_refill[k], rtol=2e-6, atol=1e-7) for k in differ)
    all_same &= same
    rounds.append((d_fixed["seconds"], d_refill["seconds"]))
    print(f"  round {r + 1} ({n} examples): fixed loop {n / d_fixed['seconds']:8.1f} ex/s "
          f"({d_fixed['seconds']:.2f} s) | refill {n / d_refill['seconds']:8.1f} ex/s "
          f"({d_refill['seconds']:.2f} s)  x{d_fixed['seconds'] / d_refill['seconds']:.2f}"
          f"  occupancy {d_refill['refill']['occupancy']:.2f}, load "
          f"{os.getloadavg()[0]:.1f}, outputs "
          f"{'identical' if same else 'DIFFER: ' + ', '.join(differ)}", flush=True)
  steps = out_fixed["atk_steps"][~out_fixed["bad"]]
  clean = out_fixed["clean_correct1"][~out_fixed["bad"]]
  robust = out_fixed["correct1"][~out_fixed["bad"]]
  t_fixed = float(np.median([a for a, _ in rounds]))
  t_refill = float(np.median([b for _, b in rounds]))
  row = {"examples": n, "batch": batch, "chunk_steps": FLAGS.chunk_steps,
         "fixed_examples_per_s": n / t_fixed, "refill_examples_per_s": n / t_refill,
         # The median of each round's own ratio: dividing the two medians pairs
         # rounds that ran under different load (a 1.21x run printed 1.46x).
         "refill_vs_fixed": float(np.median([a / b for a, b in rounds])),
         "refill_vs_fixed_per_round": [a / b for a, b in rounds],
         "refill_occupancy": d_refill["refill"]["occupancy"],
         "refill_shrinks": d_refill["refill"]["shrinks"],
         "clean_acc": float(clean.mean()), "robust_acc": float(robust.mean()),
         "mean_steps": float(steps.mean()),
         "max_steps": int(steps.max()), "outputs_identical": bool(all_same),
         "steps_histogram": np.bincount(steps, minlength=11).tolist()}
  victim = (f"small CNN (demo layout, width {FLAGS.refill_width}) trained on class blobs "
            f"(spread {FLAGS.refill_spread}, noise {FLAGS.refill_noise})"
            if FLAGS.refill_model == "cnn" else
            "random CLIP ViT (32 px, patch 4, width 96, 2 layers)")
  print(f"  {n} examples: {victim}, 10 classes, "
        f"batch {batch}, clean acc {row['clean_acc']:.2f}, robust acc {row['robust_acc']:.2f}, steps per example mean "
        f"{row['mean_steps']:.1f}, max {row['max_steps']}: refill x{row['refill_vs_fixed']:.2f} "
        f"vs the fixed loop (median of the rounds' ratios); steps histogram {row['steps_histogram']}",
        flush=True)
  return row


def bench_refill_runner():
  """RoZ's BIM (eps 8/255 normalised, 10 steps, per-example early stop) as a whole
  runner pass, the fixed per-batch loop against survivor refill, interleaved."""
  import os
  import shutil
  from jaxbench import store as store_lib, suites
  from jaxbench.engine import run as engine_run
  tmp = tempfile.mkdtemp()
  load = engine_run.load_model
  try:
    batch = FLAGS.refill_batch
    if FLAGS.refill_model == "cnn":
      model_dir, centers = _trained_cnn(os.path.join(tmp, "model"), FLAGS.refill_width)
    else:
      model_dir = _small_clip(os.path.join(tmp, "model"))

    def write_data(n):
      data = os.path.join(tmp, f"data_{n}")
      if FLAGS.refill_model == "cnn":
        x, y = _blobs(n, np.random.default_rng(1), centers, FLAGS.refill_noise)
        from PIL import Image
        names = sorted(_REFILL_CLASSES)
        for i in range(n):
          os.makedirs(os.path.join(data, names[y[i]]), exist_ok=True)
          Image.fromarray(x[i]).save(os.path.join(data, names[y[i]], f"img_{i:05d}.png"))
      else:
        _labelled_by_prediction(model_dir, data, n, batch)
      return data

    def once(data, refill, tag, **kw):
      wd = os.path.join(tmp, tag)
      rows = suites.run(_refill_config(model_dir, data, refill, batch, **kw), wd)
      (pid,) = os.listdir(os.path.join(wd, "passes"))
      out = store_lib.Store(wd).outputs(pid)
      shutil.rmtree(wd)
      return rows[0]["details"], out
    # One model object for every pass, as in one run over several sets: the compiled
    # programs of both modes are reused across rounds (compile time left out).
    load, loaded = engine_run.load_model, {}
    engine_run.load_model = lambda spec, config: loaded.setdefault(spec, load(spec, config))
    sizes = [int(v) for v in FLAGS.refill_examples]
    data = write_data(sizes[0])
    for refill in (False, True):   # compile both modes' programs (same shapes)
      once(data, refill, f"warm_{refill}", max_examples=2 * batch)
    rows = {}
    for n in sizes:
      rows[n] = _refill_rounds(once, data if n == sizes[0] else write_data(n), n, batch)
    return dict(rows[sizes[0]], by_examples={str(n): r for n, r in rows.items()})
  finally:
    engine_run.load_model = load
    shutil.rmtree(tmp, ignore_errors=True)


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
      print("survivor refill through the runner (a whole BIM pass, refill off | on):",
            flush=True)
      figures["refill"] = bench_refill_runner()
    if "refill_attack" in sections:
      print("early-stop BIM with survivor refill (the attack alone):", flush=True)
      figures["refill_attack"] = bench_refill()
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
