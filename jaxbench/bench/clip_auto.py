"""CLIP-Auto benchmark: AutoPrompt iterations/s and CoOp steps/s against PyTorch, one run.

    python -m jaxbench.bench clip_auto [--classes=16] [--candidates=10] [--iterations=3]

Model: a random-weight CLIP ViT-B/32 in transformers' layout (text tower: 12
layers, width 512; the image tower is not run: both learners work on frozen
image features, here random unit vectors, ``--shots`` per class). Prompts: the
first ``--classes`` ImageNet class names, 4 learned slots after the start token.

* AutoPrompt: one search iteration = the loss and its gradient w.r.t. the 4
  trigger embeddings (one text-tower pass over the K class prompts, forward and
  backward), HotFlip scores over the 49408-token table, and the exact loss of
  ``--candidates`` swaps. Reference: the same work in PyTorch (transformers'
  ``CLIPModel.get_text_features`` with the trigger embeddings written in by a
  forward hook, as CoOp and AutoPrompt ports do; candidates in one no-grad
  batch; parameters frozen).
* CoOp: one optimiser step = text tower forward and backward over the K prompts
  with the 4 context vectors, a batch of 32 images, SGD with momentum. Reference:
  CoOp's own recipe in PyTorch (hooked embeddings, ``torch.optim.SGD``).

Figures are steady-state (compilation timed separately). Effective GFLOP/s
count the text tower's forward FLOPs (2 x weights per token) times the number
of forward-equivalents (an input-gradient backward counted as one forward),
against the machine's fp32 GEMM ceiling. The machine is shared with other jobs:
figures are noisy and only comparable within one run.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
from absl import flags

from jaxbench.bench import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("classes", 16, "ImageNet classes (prompts per text-tower pass)")
flags.DEFINE_integer("shots", 16, "image features per class")
flags.DEFINE_integer("candidates", 10, "AutoPrompt candidates evaluated per iteration")
flags.DEFINE_integer("iterations", 2, "timed AutoPrompt iterations")
flags.DEFINE_integer("epochs", 1, "timed CoOp epochs (shots*classes/32 steps each)")
flags.DEFINE_integer("torch_steps", 3, "timed PyTorch CoOp steps")
flags.DEFINE_integer("text_layers", 12, "text layers (ViT-B/32: 12)")
flags.DEFINE_bool("torch", True, "also time the PyTorch references")
flags.DEFINE_string("out", "bench_results.jsonl", "JSON lines file to append to")


def _make_model(tmp: str):
  """(jaxbench Model, frozen torch CLIPModel) of a random ViT-B/32-size CLIP."""
  import torch
  from transformers import CLIPConfig, CLIPModel
  from jaxbench import models
  from jaxbench.zeroshot import tokenizer
  torch.manual_seed(0)
  cfg = CLIPConfig()
  cfg.vision_config.num_hidden_layers = 1      # never run: the learners use features
  cfg.text_config.num_hidden_layers = FLAGS.text_layers
  ref = CLIPModel(cfg).eval()
  for p in ref.parameters():
    p.requires_grad_(False)                      # towers frozen, as in CoOp
  ref.save_pretrained(tmp)
  tokenizer.write_transformers_files(tmp)
  return models.load(tmp), ref


def _text_forward_flops(model, tokens: int) -> float:
  """2 x (matmul weights per token) + attention, for ``tokens`` prompt tokens."""
  cfg = model.arch.cfg.text
  w, layers = cfg.width, cfg.layers
  per_token = 2 * layers * (4 * w * w + 2 * w * cfg.mlp_dim)
  return float(per_token * tokens)


class _TorchText:
  """Unit text features of prompts ``ids`` (K, L) whose slots 1..M hold given vectors.

  The vectors are written over the token embeddings by a forward hook (how
  CoOp and AutoPrompt ports feed continuous prompts to transformers' CLIP).
  """

  def __init__(self, ref, ids: np.ndarray):
    import torch
    self.ref = ref
    self.ids = torch.tensor(ids, dtype=torch.long)
    self.slots = None
    self.handle = ref.text_model.embeddings.token_embedding.register_forward_hook(
        self._replace)

  def close(self):
    self.handle.remove()

  def _replace(self, module, inputs, out):
    out = out.clone()
    out[:, 1:1 + self.slots.shape[1]] = self.slots
    return out

  def __call__(self, slots):
    """slots: (R * K, M, W) for R stacked copies of the K prompts."""
    self.slots = slots
    reps = slots.shape[0] // self.ids.shape[0]
    z = self.ref.get_text_features(input_ids=self.ids.repeat(reps, 1))
    z = getattr(z, "pooler_output", z)
    return z / z.norm(dim=-1, keepdim=True)


def bench_autoprompt(model, ref, names, feats, labels, ceiling) -> dict:
  from jaxbench.zeroshot.learned import autoprompt, layout as layout_lib
  cfg = autoprompt.AutoPromptConfig(iterations=1, restarts=1, num_candidates=FLAGS.candidates,
                                    batch_size=32, accumulation_steps=10, seed=0)
  t0 = time.perf_counter()
  autoprompt.search(model, feats, labels, names, cfg)              # compiles
  compile_s = time.perf_counter() - t0
  cfg = autoprompt.AutoPromptConfig(**{**cfg.__dict__, "iterations": FLAGS.iterations})
  res = autoprompt.search(model, feats, labels, names, cfg)
  jax_s = res.seconds / FLAGS.iterations
  layout = layout_lib.make_layout(model, names, 4)
  tokens = layout.ids.size
  flops = _text_forward_flops(model, tokens) * (2 + FLAGS.candidates)
  out = {"classes": len(names), "prompt_length": layout.ids.shape[1],
         "candidates": FLAGS.candidates, "rows": int(min(len(labels), 320)),
         "jax_compile_s": compile_s, "jax_iterations_per_s": 1 / jax_s,
         "jax_effective_gflops": flops / jax_s / 1e9,
         "jax_fraction_of_gemm": flops / jax_s / ceiling}
  if FLAGS.torch:
    import torch
    text = _TorchText(ref, layout.ids)
    table = ref.text_model.embeddings.token_embedding.weight
    rows = min(len(labels), 320)
    f = torch.tensor(feats[:rows])
    y = torch.tensor(labels[:rows], dtype=torch.long)
    trig = torch.tensor([320, 1125, 539, 320])
    k, c = len(names), FLAGS.candidates

    def iteration(pos: int):
      e = table[trig].clone().requires_grad_(True)
      loss = torch.nn.functional.cross_entropy(100.0 * f @ text(e.expand(k, -1, -1)).T, y)
      (g,) = torch.autograd.grad(loss, e)
      with torch.no_grad():
        delta = table @ g[pos]
        delta = delta - delta[trig[pos]]
        delta[[49406, 49407, int(trig[pos])]] = float("inf")
        trigs = trig.repeat(c, 1)
        trigs[:, pos] = torch.topk(-delta, c).indices
        z = text(table[trigs].repeat_interleave(k, 0)).reshape(c, k, -1)
        losses = torch.nn.functional.cross_entropy(
            100.0 * torch.einsum("nd,ckd->cnk", f, z).reshape(c * rows, k), y.repeat(c),
            reduction="none").reshape(c, rows).mean(1)
      return float(losses.min())

    iteration(0)
    t0 = time.perf_counter()
    for i in range(FLAGS.iterations):
      iteration(i % 4)
    torch_s = (time.perf_counter() - t0) / FLAGS.iterations
    text.close()
    out.update({"torch_iterations_per_s": 1 / torch_s,
                "torch_effective_gflops": flops / torch_s / 1e9,
                "torch_fraction_of_gemm": flops / torch_s / ceiling,
                "speedup": torch_s / jax_s})
  return out


def bench_coop(model, ref, names, feats, labels, ceiling) -> dict:
  from jaxbench.zeroshot.learned import coop, layout as layout_lib
  cfg = coop.CoopConfig(epochs=1, batch_size=32, warmup_epochs=0, seed=0)
  t0 = time.perf_counter()
  coop.train(model, feats, labels, names, cfg)                    # compiles
  compile_s = time.perf_counter() - t0
  cfg = coop.CoopConfig(epochs=FLAGS.epochs, batch_size=32, warmup_epochs=0, seed=0)
  res = coop.train(model, feats, labels, names, cfg)
  jax_s = res.seconds / res.steps
  layout = layout_lib.make_layout(model, names, 4, "{}.")
  flops = _text_forward_flops(model, layout.ids.size) * 2
  out = {"classes": len(names), "prompt_length": layout.ids.shape[1], "batch": 32,
         "jax_compile_s": compile_s, "jax_steps_per_s": 1 / jax_s,
         "jax_effective_gflops": flops / jax_s / 1e9,
         "jax_fraction_of_gemm": flops / jax_s / ceiling}
  if FLAGS.torch:
    import torch
    text = _TorchText(ref, layout.ids)
    ctx = torch.tensor(coop.init_context(model, layout, cfg), requires_grad=True)
    opt = torch.optim.SGD([ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    scale = ref.logit_scale.exp()
    f, y = torch.tensor(feats), torch.tensor(labels, dtype=torch.long)
    k = len(names)

    def step(b):
      rows = slice(32 * b, 32 * b + 32)
      z = text(ctx.expand(k, -1, -1))
      loss = torch.nn.functional.cross_entropy(scale * f[rows] @ z.T, y[rows])
      opt.zero_grad()
      loss.backward()
      opt.step()

    step(0)
    n = FLAGS.torch_steps
    t0 = time.perf_counter()
    for b in range(n):
      step(b % (len(labels) // 32))
    torch_s = (time.perf_counter() - t0) / n
    text.close()
    out.update({"torch_steps_per_s": 1 / torch_s,
                "torch_effective_gflops": flops / torch_s / 1e9,
                "torch_fraction_of_gemm": flops / torch_s / ceiling,
                "speedup": torch_s / jax_s})
  return out


def main(argv):
  FLAGS(argv)
  import jax
  from jaxbench.zeroshot import prompts
  ceiling = common.gemm_ceiling_flops()
  print(f"fp32 GEMM ceiling of this machine: {ceiling / 1e9:.1f} GFLOP/s "
        f"({os.cpu_count()} CPUs, {jax.devices()[0].platform}); shared machine: noisy")
  names = list(prompts.classnames("imagenet")[:FLAGS.classes])
  rng = np.random.default_rng(0)
  n = FLAGS.classes * FLAGS.shots
  feats = rng.normal(size=(n, 512)).astype(np.float32)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  labels = np.repeat(np.arange(FLAGS.classes), FLAGS.shots).astype(np.int32)
  with tempfile.TemporaryDirectory() as tmp:
    model, ref = _make_model(tmp)
    ap = bench_autoprompt(model, ref, names, feats, labels, ceiling)
    co = bench_coop(model, ref, names, feats, labels, ceiling)
  print(f"\nCLIP-Auto, random ViT-B/32 text tower ({FLAGS.text_layers} layers), fp32, "
        f"{FLAGS.classes} classes, prompt length {ap['prompt_length']}")
  print("| learner | unit | jax /s | torch /s | speedup | jax GFLOP/s | torch GFLOP/s | "
        "jax compile s |")
  print("|---|---|---|---|---|---|---|---|")
  print(f"| AutoPrompt ({FLAGS.candidates} candidates, {ap['rows']} rows) | iteration | "
        f"{ap['jax_iterations_per_s']:.3f} | {ap.get('torch_iterations_per_s', 0):.3f} | "
        f"{ap.get('speedup', 0):.2f} | {ap['jax_effective_gflops']:.1f} | "
        f"{ap.get('torch_effective_gflops', 0):.1f} | {ap['jax_compile_s']:.1f} |")
  print(f"| CoOp (batch 32) | step | {co['jax_steps_per_s']:.3f} | "
        f"{co.get('torch_steps_per_s', 0):.3f} | {co.get('speedup', 0):.2f} | "
        f"{co['jax_effective_gflops']:.1f} | {co.get('torch_effective_gflops', 0):.1f} | "
        f"{co['jax_compile_s']:.1f} |")
  print(f"GEMM ceiling {ceiling / 1e9:.1f} GFLOP/s: jax reaches "
        f"{100 * ap['jax_fraction_of_gemm']:.0f}% (AutoPrompt), "
        f"{100 * co['jax_fraction_of_gemm']:.0f}% (CoOp)")
  common.record(FLAGS.out, "clip_auto", {"gemm_gflops": ceiling / 1e9, "autoprompt": ap,
                                          "coop": co})


if __name__ == "__main__":
  main(sys.argv)
