"""Zero-shot benchmark: compiled step, head building and the input pipeline.

    python -m jaxbench.bench zeroshot [--batches=32,128] [--head_classes=25]

On a random-weight, full-size ViT-B/32 CLIP (fp32), side by side in one run with
transformers' PyTorch ``CLIPModel`` on the same machine:

* images/s of the zero-shot step (image tower + head) at each batch size, and
  the fraction of this machine's measured fp32 GEMM throughput it reaches
  (FLOPs from XLA's cost analysis of the compiled step);
* head building: prompts/s for ``head_classes`` x 80 templates (extrapolated
  to 1000 x 80), against PyTorch padding each batch to its longest prompt and
  padding to open_clip's fixed 77-token context;
* the grain pipeline alone: decode + resize + crop of 500x375 JPEGs, images/s
  with 1 and 2 threads.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import time

import numpy as np
from absl import flags

from jaxbench.bench import common

FLAGS = flags.FLAGS
flags.DEFINE_list("batches", ["32", "128"], "batch sizes for the zero-shot step")
flags.DEFINE_integer("head_classes", 25, "classes (x 80 templates) timed for the head")
flags.DEFINE_integer("pipeline_images", 400, "JPEGs decoded for the pipeline figure")
flags.DEFINE_string("out", "bench_results.jsonl", "JSON lines file to append to")
flags.DEFINE_bool("torch", True, "also time the PyTorch reference")


def _make_model(tmp):
  import torch
  from transformers import CLIPConfig, CLIPModel
  from jaxbench import models
  from jaxbench.zeroshot import tokenizer
  torch.manual_seed(0)
  ref = CLIPModel(CLIPConfig()).eval()
  ref.save_pretrained(tmp)
  tokenizer.write_transformers_files(tmp)
  return models.load(tmp), ref


def bench_step(model, ref, batches, ceiling, use_torch):
  import jax
  import jax.numpy as jnp
  import torch
  from jaxbench.zeroshot import ZeroShotHead
  rng = np.random.default_rng(0)
  w = rng.normal(size=(1000, 512)).astype(np.float32)
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  head = ZeroShotHead(w, 100.0, None, tuple(map(str, range(1000))), ("{}",), "imagenet1k")
  clf = model.with_head(head)
  rows = []
  for b in batches:
    x = jnp.asarray(rng.random((b, 224, 224, 3), dtype=np.float32))
    step = jax.jit(lambda p, x: jnp.argmax(clf.apply(p, x), -1))
    compiled = step.lower(clf.params, x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0))
    t = common.time_fn(lambda: compiled(clf.params, x).block_until_ready())
    ips = b / t
    row = {"batch": b, "jax_images_per_s": ips, "jax_fraction_of_gemm": flops / t / ceiling,
           "gflops_per_image": flops / b / 1e9}
    if use_torch:
      wt = torch.tensor(w)
      xt = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous()

      def torch_step():
        with torch.no_grad():
          z = ref.get_image_features(pixel_values=xt)
          z = getattr(z, "pooler_output", z)
          z = z / z.norm(dim=-1, keepdim=True)
          return (100.0 * z @ wt.T).argmax(-1)
      tt = common.time_fn(torch_step)
      row.update({"torch_images_per_s": b / tt, "ratio": tt / t,
                  "torch_fraction_of_gemm": flops / tt / ceiling})
    rows.append(row)
  return rows


def bench_head(model, ref, n_classes, use_torch):
  import torch
  from jaxbench.zeroshot import head as head_lib, prompts
  names = prompts.classnames("imagenet")
  # Classes spread over the list so prompt lengths are representative.
  pick = [names[i] for i in np.linspace(0, 999, n_classes).astype(int)]
  texts = prompts.prompts(pick, prompts.templates("clip80"))
  ids = model.tokenize(texts)
  # Warm-up compiles each bucket once (compilation is a one-off per model).
  head_lib.encode_prompts(model, ids)
  t0 = time.perf_counter()
  ours = head_lib.encode_prompts(model, ids)
  t_ours = time.perf_counter() - t0
  out = {"prompts": len(texts), "jax_prompts_per_s": len(texts) / t_ours,
         "jax_minutes_for_80k": 80000 / (len(texts) / t_ours) / 60}
  if use_torch:
    lengths = head_lib._eot_lengths(ids)
    def torch_run(pad_to_longest, bs=256):
      t0 = time.perf_counter()
      zs = []
      with torch.no_grad():
        for s in range(0, len(ids), bs):
          chunk = ids[s:s + bs]
          if pad_to_longest:
            chunk = chunk[:, :lengths[s:s + bs].max()]
          z = ref.get_text_features(input_ids=torch.tensor(chunk, dtype=torch.long))
          zs.append(getattr(z, "pooler_output", z).numpy())
      return time.perf_counter() - t0, np.concatenate(zs)
    t_long, z_long = torch_run(True)
    t_77, _ = torch_run(False)
    z_long /= np.linalg.norm(z_long, axis=1, keepdims=True)
    out.update({"torch_longest_prompts_per_s": len(texts) / t_long,
                "torch_77_prompts_per_s": len(texts) / t_77,
                "speedup_vs_longest": t_long / t_ours, "speedup_vs_77": t_77 / t_ours,
                "max_abs_diff_embeddings": float(np.abs(z_long - ours).max()),
                "torch_longest_minutes_for_80k": 80000 / (len(texts) / t_long) / 60,
                "torch_77_minutes_for_80k": 80000 / (len(texts) / t_77) / 60})
  return out


def bench_pipeline(n_images):
  from PIL import Image
  from jaxbench.data import pipeline
  from jaxbench.data.evalset import EvalSet
  from jaxbench.models.api import Preprocess
  rng = np.random.default_rng(0)
  base = rng.integers(0, 256, (375 // 5, 500 // 5, 3), dtype=np.uint8)
  img = Image.fromarray(base).resize((500, 375), Image.BICUBIC)   # photo-like smoothness
  buf = io.BytesIO()
  img.save(buf, "JPEG", quality=90)
  data = buf.getvalue()

  class Src:
    def __len__(self):
      return n_images

    def __getitem__(self, i):
      return {"id": str(i), "label": 0, "image_bytes": data}
  es = EvalSet("bench", Src(), 1)
  pp = Preprocess(size=224, resize=224, interpolation="bicubic")
  out = {}
  for threads in (1, 2):
    pl = pipeline.plan(np.arange(n_images), 32)
    t0 = time.perf_counter()
    for _ in pipeline.batches(es, pp, pl, num_threads=threads):
      pass
    out[f"images_per_s_{threads}_threads"] = n_images / (time.perf_counter() - t0)
  return out


def main(argv):
  FLAGS(argv)
  ceiling = common.gemm_ceiling_flops()
  print(f"fp32 GEMM ceiling of this machine: {ceiling / 1e9:.1f} GFLOP/s "
        f"({os.cpu_count()} CPUs)")
  with tempfile.TemporaryDirectory() as tmp:
    model, ref = _make_model(tmp)
    import torch
    print(f"torch threads: {torch.get_num_threads()}")
    step = bench_step(model, ref, [int(b) for b in FLAGS.batches], ceiling, FLAGS.torch)
    print("\nzero-shot step, ViT-B/32, fp32, random weights")
    print("| batch | jax img/s | torch img/s | ratio | jax % of GEMM | torch % of GEMM |")
    print("|---|---|---|---|---|---|")
    for r in step:
      print(f"| {r['batch']} | {r['jax_images_per_s']:.1f} | {r.get('torch_images_per_s', 0):.1f}"
            f" | {r.get('ratio', 0):.2f} | {100 * r['jax_fraction_of_gemm']:.0f}% | "
            f"{100 * r.get('torch_fraction_of_gemm', 0):.0f}% |")
    head = bench_head(model, ref, FLAGS.head_classes, FLAGS.torch)
    print(f"\nhead building, {head['prompts']} prompts (1000x80 extrapolated)")
    print("| impl | prompts/s | minutes for 80k |")
    print("|---|---|---|")
    print(f"| jax, length-bucketed | {head['jax_prompts_per_s']:.1f} | "
          f"{head['jax_minutes_for_80k']:.1f} |")
    if FLAGS.torch:
      print(f"| torch, pad to longest | {head['torch_longest_prompts_per_s']:.1f} | "
            f"{head['torch_longest_minutes_for_80k']:.1f} |")
      print(f"| torch, pad to 77 | {head['torch_77_prompts_per_s']:.1f} | "
            f"{head['torch_77_minutes_for_80k']:.1f} |")
      print(f"speedup: {head['speedup_vs_longest']:.2f}x vs longest, "
            f"{head['speedup_vs_77']:.2f}x vs 77; max |diff| of embeddings "
            f"{head['max_abs_diff_embeddings']:.2e}")
  pipe = bench_pipeline(FLAGS.pipeline_images)
  print("\ngrain pipeline, 500x375 JPEG -> decode + bicubic resize 224 + crop")
  for k, v in pipe.items():
    print(f"  {k}: {v:.1f}")
  common.record(FLAGS.out, "zeroshot", {"gemm_gflops": ceiling / 1e9, "step": step,
                                         "head": head, "pipeline": pipe})


if __name__ == "__main__":
  main(sys.argv)
