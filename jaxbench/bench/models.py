"""Forward throughput of zoo models against their PyTorch references, in one run.

  python -m jaxbench.bench models [--batch 32] [--models rn50,vit_b16] [--repeats 3]

* ``rn50``: CLIP's ModifiedResNet-50 image tower (224 px) — ours vs open_clip's;
* ``vit_b16``: ViT-B/16 classifier (224 px) — ours vs timm's ``vit_base_patch16_224``;
* ``eva02_b16``, ``convnext_base``, ``siglip_b16``, ``vitamin_s``: OpenCLIP image towers on
  timm trunks (EVA02-B-16, convnext_base, ViT-B-16-SigLIP, ViTamin-S; 224 px) — ours vs
  open_clip's;
* ``effnet_b3``: EfficientNet-B3 classifier (288 px) — ours vs timm's ``efficientnet_b3``.

Both run random weights in fp32 at the same batch, images/s side by side with
the ratio (ours / reference; the target is >= 1). Our weights are converted
from the reference's state dict through the same name maps the loaders use, and
the outputs are compared, so the two timings are of the same function; the last column
is how far our output for one image alone differs from its row in the batch (fp32
rounding that depends on the batch size). JAX
times a jitted forward (compile excluded); PyTorch runs under
``torch.inference_mode`` with its default threads. The two are timed in
alternating rounds (``--repeats``, median of each). On a shared machine the
figures are noisy: compare ratios from one run, not absolute numbers; the load
average at the start is printed with them.

The import of jaxbench sets its XLA:CPU flags (:mod:`jaxbench.cpu_flags`: YNNPACK
fusions off, 512-bit vectors); ``JAXBENCH_CPU_FLAGS=off`` measures XLA's own options.
The header prints the ``XLA_FLAGS`` in force. For a load-insensitive figure on a shared
machine, run it on one core: ``OMP_NUM_THREADS=1 taskset -c 0 python -m jaxbench.bench
models ...`` (PyTorch then has one thread, XLA one core).
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.bench import common
from jaxbench.models import layers


def _rn50():
  from open_clip.modified_resnet import ModifiedResNet as TorchRN
  from jaxbench.models.clip_resnet import ModifiedResNet, ModifiedResNetConfig
  ref = TorchRN(layers=(3, 4, 6, 3), output_dim=1024, heads=32, image_size=224, width=64).eval()
  module = ModifiedResNet(ModifiedResNetConfig())
  return ref, module, layers.default_src, 224


def _vit_b16():
  import timm
  from jaxbench.models import vit
  ref = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
  cfg = vit.timm_config("vit_base_patch16_224", {}, 1000)
  return ref, vit.ViT(cfg), vit.timm_src(cfg), 224


def _effnet_b3():
  import timm
  from jaxbench.models import efficientnet
  ref = timm.create_model("efficientnet_b3", pretrained=False).eval()
  cfg = efficientnet.timm_config("efficientnet_b3", {}, 1000)
  return ref, efficientnet.EfficientNet(cfg), layers.default_src, 288


def _openclip_timm(arch: str):
  """open_clip's image tower of config ``arch`` (timm trunk) and ours, same name map."""
  def build():
    import open_clip
    from jaxbench.models import openclip_timm
    ref = open_clip.create_model(arch, pretrained=None).visual.eval()
    cfg = openclip_timm.parse(open_clip.get_model_config(arch), quick_gelu=None, source=arch)
    full = openclip_timm.make_src(cfg)

    def src(path, shape):            # our visual/... leaves -> the tower's own state dict
      s = full(("visual",) + tuple(path), shape)
      return layers.Src(s.key[len("visual."):], s.fwd, s.want)
    size = cfg.image_size
    return ref, openclip_timm.TimmVisual(cfg.visual), src, size
  return build


BUILDERS = {"rn50": ("CLIP RN50 image tower", "open_clip", _rn50),
            "vit_b16": ("ViT-B/16 classifier", "timm", _vit_b16),
            "eva02_b16": ("EVA02-B-16 image tower", "open_clip", _openclip_timm("EVA02-B-16")),
            "convnext_base": ("ConvNeXt-Base image tower", "open_clip",
                              _openclip_timm("convnext_base")),
            "siglip_b16": ("ViT-B-16-SigLIP image tower", "open_clip",
                           _openclip_timm("ViT-B-16-SigLIP")),
            "effnet_b3": ("EfficientNet-B3 classifier", "timm", _effnet_b3),
            "vitamin_s": ("ViTamin-S image tower", "open_clip", _openclip_timm("ViTamin-S"))}


def run_one(name: str, batch: int, min_seconds: float, repeats: int = 3) -> dict:
  import torch
  title, ref_name, build = BUILDERS[name]
  ref, module, src, size = build()
  tensors = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
  shapes = layers.param_shapes(module, jnp.zeros((1, size, size, 3)))
  params = jax.tree.map(jnp.asarray, layers.pull(shapes, tensors, src, source="random",
                                                 what=title, ignore=layers.bn_counter))
  x = np.random.default_rng(0).standard_normal((batch, size, size, 3)).astype(np.float32)
  xj = jnp.asarray(x)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  f = jax.jit(lambda p, a: module.apply({"params": p}, a))
  out = np.asarray(f(params, xj))
  with torch.inference_mode():
    want = ref(xt).numpy()
  err = float(np.abs(out - want).max())
  # The first image alone against its row of the batch: how far fp32 rounding in
  # our compiled forward depends on the batch size (0 only if batch-invariant).
  alone = float(np.abs(np.asarray(f(params, xj[:1])) - out[:1]).max())

  def torch_fwd():
    with torch.inference_mode():
      ref(xt)
  # Round by round (jax, torch, jax, torch, ...): load from other jobs hits both alike.
  times = common.interleaved({"jax": lambda: f(params, xj).block_until_ready(),
                              "torch": torch_fwd}, rounds=repeats, min_seconds=min_seconds)
  t_jax, t_torch = times["jax"], times["torch"]
  return {"model": name, "title": title, "reference": ref_name, "batch": batch,
          "jax_img_s": batch / t_jax, "ref_img_s": batch / t_torch,
          "ratio": t_torch / t_jax, "max_abs_diff": err, "batch1_vs_batch": alone}


def main(argv):
  parser = argparse.ArgumentParser(prog="python -m jaxbench.bench models")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--models", default="rn50,vit_b16")
  parser.add_argument("--min_seconds", type=float, default=1.0,
                      help="minimum time per timing repeat")
  parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
  parser.add_argument("--out", default="bench_results.jsonl",
                      help="append figures as a JSON line to this file ('': none)")
  args = parser.parse_args(argv[1:])
  import torch
  names = [n for n in args.models.split(",") if n]
  unknown = [n for n in names if n not in BUILDERS]
  if unknown:
    sys.exit(f"unknown models {unknown}; known: {sorted(BUILDERS)}")
  print(f"# forward images/s, fp32, batch {args.batch}; jax {jax.__version__} on "
        f"{jax.devices()[0].platform} x{len(jax.devices())} "
        f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs (shared machine: noisy; "
        f"load average {os.getloadavg()[0]:.2f} at start)")
  print("| model | jaxbench img/s | reference | reference img/s | ratio | max abs diff | "
        "ours: batch 1 vs batch |")
  print("|---|---|---|---|---|---|---|")
  rows = []
  for n in names:
    r = run_one(n, args.batch, args.min_seconds, args.repeats)
    rows.append(r)
    print(f"| {r['title']} | {r['jax_img_s']:.2f} | {r['reference']} | {r['ref_img_s']:.2f} | "
          f"{r['ratio']:.2f} | {r['max_abs_diff']:.1e} | {r['batch1_vs_batch']:.1e} |",
          flush=True)
  if args.out:
    common.record(args.out, "models", {"rows": rows})
  return rows
