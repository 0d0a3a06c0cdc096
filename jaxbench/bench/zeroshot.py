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
  with 1 and 2 threads;
* parity: max abs difference of the image embedding against PyTorch (true
  float32 on both sides when ``--precision=float32``).

On an accelerator (flags for real model sizes, precisions and a CUDA PyTorch)::

    python -m jaxbench.bench zeroshot --arch=b16 --precision=bfloat16 --batches=512 \\
        --torch_device=cuda --torch_compile --sections=step --text_layers=1 --out=gpu.jsonl
    python -m jaxbench.bench zeroshot --arch=l14 --precision=float32 --batches=128 \\
        --torch_device=cuda --sections=step --text_layers=1 --rounds=2 --out=gpu.jsonl
    python -m jaxbench.bench zeroshot --arch=b16 --precision=float32 --torch_device=cuda \\
        --sections=parity --text_layers=1 --out=gpu.jsonl

(``python -m`` puts the working directory first on ``sys.path``: run these from
the checkout whose ``jaxbench`` you mean to measure.) XLA's cost analysis leaves
out cuDNN's custom calls, so on GPU the "% of GEMM" columns undercount.

jaxbench and PyTorch run interleaved in one process (rounds of each in turn, the
median per implementation), so load on a shared machine hits both alike; each
figure is appended to ``--out`` as soon as it is measured. With a CUDA PyTorch,
``XLA_PYTHON_CLIENT_MEM_FRACTION`` defaults to 0.45 so both fit on one device.
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
flags.DEFINE_enum("arch", "b32", list(common.CLIP_ARCHS), "CLIP size (random weights)")
flags.DEFINE_enum("precision", "float32", ["float32", "tf32", "bfloat16"],
                  "jaxbench precision policy; PyTorch runs the same dtype (TF32 only "
                  "under 'tf32')")
flags.DEFINE_string("torch_device", "cpu", "PyTorch device: cpu or cuda")
flags.DEFINE_bool("torch_compile", False, "also time torch.compile of the PyTorch step")
flags.DEFINE_list("sections", ["step", "head", "pipeline"],
                  "what to run: step, head, pipeline, parity")
flags.DEFINE_integer("rounds", 3, "interleaved timing rounds per implementation")
flags.DEFINE_integer("text_layers", -1, "text tower layers (-1: the architecture's; the "
                     "step and parity sections do not use the text tower)")


def _make_model(tmp, arch="b32", precision="float32", device="cpu", text_layers=-1):
  """(jaxbench Model, PyTorch CLIPModel on ``device``) with the same random weights."""
  import torch
  from jaxbench import models
  ref = common.random_clip(tmp, arch, device=device, text_layers=text_layers)
  model = models.load(tmp) if precision == "float32" else models.load(tmp, precision=precision)
  return model, ref.to(common.torch_dtype(precision))


def bench_step(model, ref, batches, ceiling, use_torch, *, precision="float32",
               device="cpu", torch_compile=False, rounds=3, out=None):
  import jax
  import jax.numpy as jnp
  import torch
  from jaxbench.zeroshot import ZeroShotHead
  rng = np.random.default_rng(0)
  dim = int(ref.config.projection_dim)
  w = rng.normal(size=(1000, dim)).astype(np.float32)
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  head = ZeroShotHead(w, 100.0, None, tuple(map(str, range(1000))), ("{}",), "imagenet1k")
  clf = model.with_head(head)
  size = model.preprocess.size
  rows = []
  for b in batches:
    x = jnp.asarray(rng.random((b, size, size, 3), dtype=np.float32))
    step = jax.jit(lambda p, x: jnp.argmax(clf.apply(p, x), -1))
    t0 = time.perf_counter()
    compiled = step.lower(clf.params, x).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0))
    fns = {"jax": lambda: compiled(clf.params, x).block_until_ready()}
    row = {"batch": b, "arch": FLAGS.arch, "precision": precision, "torch_device": device,
           "jax_compile_s": compile_s, "gflops_per_image": flops / b / 1e9,
           # cuDNN's fused attention appears as a custom call in the compiled program.
           "fused_attention": "cudnn$fmha" in compiled.as_text()}
    if use_torch:
      dtype = common.torch_dtype(precision)
      wt = torch.tensor(w, device=device)
      xt = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous().to(device, dtype)

      def features(xt):
        z = ref.get_image_features(pixel_values=xt)
        z = getattr(z, "pooler_output", z).float()
        z = z / z.norm(dim=-1, keepdim=True)
        return (100.0 * z @ wt.T).argmax(-1)

      def torch_step(fn=features):
        with torch.no_grad():
          r = fn(xt)
        common.torch_sync(device)
        return r
      fns["torch"] = torch_step
      if torch_compile:
        compiled_torch = torch.compile(features)
        t0 = time.perf_counter()
        torch_step(compiled_torch)
        row["torch_compile_s"] = time.perf_counter() - t0
        fns["torch_compile"] = lambda: torch_step(compiled_torch)
    with common.torch_precision(precision):
      times = common.interleaved(fns, rounds=rounds)
    t = times["jax"]
    row.update({"jax_images_per_s": b / t, "jax_fraction_of_gemm": flops / t / ceiling})
    for name in ("torch", "torch_compile"):
      if name in times:
        row.update({f"{name}_images_per_s": b / times[name],
                    f"{name}_fraction_of_gemm": flops / times[name] / ceiling,
                    "ratio" if name == "torch" else "ratio_vs_compile": times[name] / t})
    rows.append(row)
    print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items()), flush=True)
    if out:
      common.record(out, "zeroshot_step", row)
  return rows


def bench_parity(model, ref, precision, device, n=8):
  """Max abs difference of image embeddings (and x100 logits) against PyTorch."""
  import jax
  import torch
  size = model.preprocess.size
  x = np.random.default_rng(1).random((n, size, size, 3), dtype=np.float32)
  ours = np.asarray(jax.jit(model.encode_image)(model.params, x), np.float64)
  mean, std = np.asarray(model.preprocess.mean), np.asarray(model.preprocess.std)
  xt = torch.tensor(((x - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
  with torch.no_grad(), common.torch_precision(precision):
    z = ref.get_image_features(pixel_values=xt.to(device, common.torch_dtype(precision)))
    theirs = getattr(z, "pooler_output", z).float().cpu().numpy().astype(np.float64)
  unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
  return {"arch": FLAGS.arch, "precision": precision, "torch_device": device, "images": n,
          "max_abs_diff_embedding": float(np.abs(ours - theirs).max()),
          "max_abs_embedding": float(np.abs(theirs).max()),
          "max_abs_diff_logit_scale100_cosine": float(
              100 * np.abs(unit(ours) @ unit(ours).T - unit(theirs) @ unit(theirs).T).max())}


def bench_head(model, ref, n_classes, use_torch):
  import torch
  from jaxbench.zeroshot import head as head_lib, prompts
  names = prompts.classnames("imagenet")
  # Classes spread over the list so prompt lengths are representative.
  pick = [names[i] for i in np.linspace(0, 999, n_classes).astype(int)]
  texts = prompts.prompts(pick, prompts.templates("clip80"))
  ids = model.tokenize(texts)
  # Warm-up compiles each bucket once (compilation is a one-off per model).
  t0 = time.perf_counter()
  head_lib.encode_prompts(model, ids)
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  ours = head_lib.encode_prompts(model, ids)
  t_ours = time.perf_counter() - t0
  out = {"prompts": len(texts), "jax_prompts_per_s": len(texts) / t_ours,
         "jax_minutes_for_80k": 80000 / (len(texts) / t_ours) / 60,
         "jax_first_call_s": t_first,
         "buckets_used": int(len(np.unique(head_lib.bucket_lengths(
             head_lib._eot_lengths(ids), ids.shape[1]))))}
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
          z = ref.get_text_features(input_ids=torch.tensor(chunk, dtype=torch.long,
                                                           device=ref.device))
          zs.append(getattr(z, "pooler_output", z).float().cpu().numpy())
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
  common.share_device_with_torch(FLAGS.torch_device)
  sections = set(FLAGS.sections)
  figures = {}
  ceiling = common.gemm_ceiling_flops(precision=FLAGS.precision)
  print(f"{FLAGS.precision} GEMM ceiling of this machine: {ceiling / 1e9:.1f} GFLOP/s "
        f"({os.cpu_count()} CPUs)", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    model, ref = _make_model(tmp, FLAGS.arch, FLAGS.precision, FLAGS.torch_device,
                             FLAGS.text_layers)
    print(f"random {FLAGS.arch} CLIP built and loaded in {time.perf_counter() - t0:.1f} s",
          flush=True)
    import torch
    print(f"torch threads: {torch.get_num_threads()}")
    if "step" in sections:
      step = bench_step(model, ref, [int(b) for b in FLAGS.batches], ceiling, FLAGS.torch,
                        precision=FLAGS.precision, device=FLAGS.torch_device,
                        torch_compile=FLAGS.torch_compile, rounds=FLAGS.rounds,
                        out=FLAGS.out)
      figures["step"] = step
      print(f"\nzero-shot step, {FLAGS.arch}, {FLAGS.precision}, random weights")
      print("| batch | jax img/s | torch img/s | ratio | torch.compile img/s | ratio | "
            "jax % of GEMM | torch % of GEMM |")
      print("|---|---|---|---|---|---|---|---|")
      for r in step:
        print(f"| {r['batch']} | {r['jax_images_per_s']:.1f} | "
              f"{r.get('torch_images_per_s', 0):.1f} | {r.get('ratio', 0):.2f} | "
              f"{r.get('torch_compile_images_per_s', 0):.1f} | "
              f"{r.get('ratio_vs_compile', 0):.2f} | {100 * r['jax_fraction_of_gemm']:.0f}% | "
              f"{100 * r.get('torch_fraction_of_gemm', 0):.0f}% |")
    if "parity" in sections:
      parity = bench_parity(model, ref, FLAGS.precision, FLAGS.torch_device)
      figures["parity"] = parity
      common.record(FLAGS.out, "zeroshot_parity", parity)
      print(f"\nparity vs PyTorch, {FLAGS.precision}: max |diff| of image embeddings "
            f"{parity['max_abs_diff_embedding']:.2e} (max |embedding| "
            f"{parity['max_abs_embedding']:.2f}); x100 cosine logits "
            f"{parity['max_abs_diff_logit_scale100_cosine']:.2e}", flush=True)
    head = None
    if "head" in sections:
      head = bench_head(model, ref, FLAGS.head_classes, FLAGS.torch)
      figures["head"] = head
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
  if "pipeline" in sections:
    pipe = bench_pipeline(FLAGS.pipeline_images)
    figures["pipeline"] = pipe
    print("\ngrain pipeline, 500x375 JPEG -> decode + bicubic resize 224 + crop")
    for k, v in pipe.items():
      print(f"  {k}: {v:.1f}")
  common.record(FLAGS.out, "zeroshot", {"gemm_gflops": ceiling / 1e9, "arch": FLAGS.arch,
                                         "precision": FLAGS.precision, **figures})


if __name__ == "__main__":
  main(sys.argv)
