"""End-to-end zero-shot pass: jaxbench against torchvision + transformers, same JPEGs.

    python -m jaxbench.bench e2e --model=vit_b32 --precision=bfloat16 --batch=512 \\
        --images=8192 --workers=15 [--torch_device=cuda] [--out=bench_results.jsonl]
    python -m jaxbench.bench e2e --input_only --images=512     # no model: input path only

Writes ``--images`` 500x375 JPEGs of smooth random content into an ImageFolder
layout (``--classes`` class folders), a CLIP with random weights in the
transformers layout (``tiny``, or real ``vit_b32``/``vit_b16`` dims), then, in
one process so that machine load hits both alike:

* jaxbench: whole passes through :func:`jaxbench.suites.run` (the real engine:
  config from :func:`jaxbench.configs.base`, model loading, the zero-shot head of
  1000 ImageNet classes x ``--templates``, compilation, the pass, the result
  store), uncached with ``--workers`` reader threads, uncached decoding in
  ``--processes`` worker processes, then with ``config.prepared_cache`` on an
  empty cache (the pass that fills it) and again reading it;
* the peer, CLIP_benchmark's way: torchvision ``ImageFolder`` with CLIP's
  preprocessing (resize 224 bicubic, center crop, ToTensor, normalise) +
  ``DataLoader(num_workers=W, pin_memory)`` + transformers ``CLIPModel`` loaded
  from the same files, head from the same prompts;
* the compiled jaxbench step alone on a batch already on the device (the same
  jitted function the pass used, captured from the runner).

Per pass it prints images/s over the second half of its batches (so the readers'
head start while the step compiles or workers start does not flatter it), images/s
over the whole batch loop, seconds to
the first finished batch (from the start of the run call: model, head,
compilation, first decode) and the fraction of the step's own throughput the
pass reaches. Every figure is appended to ``--out`` as a JSON line when measured.
The two rates bracket the input path: readers that buffer ahead during
compilation (worker processes hold up to one batch each plus one in flight)
flatter the second-half figure when ``--images`` is not many times
``--batch`` x ``--workers``; the whole-loop figure includes compilation.

``--input_only`` times the input path without a model: the grain decode path
with 1 and 2 reader threads (and ``--workers`` threads), 1 thread with the opt-in
``jpeg_draft`` decoding, the decode path in
1 and 2 worker processes when available, the prepared-cache fill, and the
cached reader. With ``--device_resize=N`` it also times the host side of
``config.device_resize``: decode only, the image on an N x N canvas plus its
resampling table (:mod:`jaxbench.data.resample`), against the full host path
(decode + resize + crop), same JPEGs, 1 and ``--workers`` threads (and worker
processes), alternating the two so load hits both alike.
"""
from __future__ import annotations

import os

# Torch and JAX share one GPU in this benchmark: JAX must not take 75% of it.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent import futures  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from jaxbench.bench import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "tiny", ["tiny", "vit_b32", "vit_b16"],
                  "random-weight CLIP: tiny, or real ViT-B/32 / ViT-B/16 dims")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "compute precision")
flags.DEFINE_integer("batch", 64, "batch size (both sides)")
flags.DEFINE_integer("images", 512, "JPEGs generated")
flags.DEFINE_integer("classes", 10, "class folders")
flags.DEFINE_integer("workers", 2, "DataLoader workers / jaxbench reader threads")
flags.DEFINE_string("torch_device", "", "cpu or cuda ('' = cuda when available)")
flags.DEFINE_string("templates", "photo", "prompt templates of the 1000-class head")
flags.DEFINE_string("data_dir", "", "reuse/generate the JPEG folder here ('' = temp dir)")
flags.DEFINE_integer("processes", -1, "also run an uncached jaxbench pass decoding in this "
                     "many worker processes (config.decode_processes); -1 = --workers, 0 = no")
flags.DEFINE_bool("input_only", False, "time the input path only (no model)")
flags.DEFINE_bool("torch", True, "also run the PyTorch peer")
flags.DEFINE_enum("torch_mp", "fork", ["fork", "spawn"],
                  "DataLoader worker start: fork (Linux's default, CLIP_benchmark's; the peer "
                  "then runs before JAX starts its runtime threads, which fork() must not "
                  "copy) or spawn (peer after the jaxbench passes)")
flags.DEFINE_bool("cached", True, "also run the prepared-cache passes")
flags.DEFINE_integer("device_resize", 0, "N > 0: also run uncached passes with "
                     "config.device_resize=N (host decodes only, PIL-exact resize + crop on "
                     "the device; threads and --processes); with --input_only, time the "
                     "host side of it (decode + canvas + table) against decode + resize + crop")
flags.DEFINE_string("out", "bench_results.jsonl", "JSON lines file to append to")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --- data and model ---------------------------------------------------------------

def _write_jpeg(args):
  path, seed = args
  from PIL import Image
  rng = np.random.default_rng(seed)
  # Low-resolution noise upsampled: photo-like smoothness (JPEG size and decode
  # cost near real photos, unlike white noise).
  small = rng.integers(0, 256, (375 // 8, 500 // 8, 3), dtype=np.uint8)
  Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(path, "JPEG", quality=90)


def make_folder(root: str, n: int, classes: int, workers: int) -> str:
  """``root/class_XXX/img_XXXXX.JPEG``, n images round-robin over the classes."""
  marker = os.path.join(root, f".complete-{n}-{classes}")
  if os.path.exists(marker):
    return root
  jobs = []
  for i in range(n):
    d = os.path.join(root, f"class_{i % classes:03d}")
    os.makedirs(d, exist_ok=True)
    jobs.append((os.path.join(d, f"img_{i:06d}.JPEG"), i))
  with futures.ProcessPoolExecutor(max(1, workers)) as ex:
    list(ex.map(_write_jpeg, jobs, chunksize=64))
  open(marker, "w").close()
  return root


def make_model(out_dir: str, kind: str):
  """Random CLIP saved in the transformers layout (+ tokenizer and preprocessor files)."""
  import torch
  from transformers import CLIPConfig
  from transformers import CLIPModel
  from jaxbench.zeroshot import tokenizer
  if kind == "tiny":
    cfg = CLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                         num_hidden_layers=2),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                           num_hidden_layers=2, image_size=224, patch_size=32),
        projection_dim=32)
  elif kind == "vit_b16":
    cfg = CLIPConfig(vision_config=dict(patch_size=16))
  else:
    cfg = CLIPConfig()
  torch.manual_seed(0)
  CLIPModel(cfg).eval().save_pretrained(out_dir)
  tokenizer.write_transformers_files(out_dir)
  with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
    json.dump({"crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 224},
               "resample": 3, "do_center_crop": True, "image_mean": list(CLIP_MEAN),
               "image_std": list(CLIP_STD)}, f)
  return out_dir


# --- jaxbench ------------------------------------------------------------------------

class _Probe:
  """Instruments one engine run: batch timestamps and the compiled step + a batch.

  Wraps ``engine.loop.input_batches`` (when the pass first asks for input),
  ``parallel.to_host`` (when each batch's outputs reach the host: the batch is
  done) and ``engine.step.make_step`` (to keep the jitted step, its params and one
  device batch for timing the step alone). Nothing else of the engine changes.
  """

  def __init__(self):
    from jaxbench import parallel
    from jaxbench.engine import loop, step
    self.loop, self.step, self.parallel = loop, step, parallel
    self.start, self.done, self.sizes, self.captured = None, [], [], None

  def __enter__(self):
    par = self.parallel
    self._orig = (self.loop.input_batches, self.step.make_step, par.to_host)
    probe = self

    def input_batches(*a, **k):
      if probe.start is None:
        probe.start = time.perf_counter()
      return probe._orig[0](*a, **k)

    def make_step(*a, **k):
      step = probe._orig[1](*a, **k)

      def wrapped(params, counts, batch):
        if probe.captured is None:
          probe.captured = (step, params, batch)
        return step(params, counts, batch)
      return wrapped

    def to_host(tree):
      host = probe._orig[2](tree)
      if isinstance(host, dict) and "index" in host:   # a pass's per-example outputs
        probe.done.append(time.perf_counter())
        probe.sizes.append(int((host["index"] >= 0).sum()))
      return host

    self.loop.input_batches, self.step.make_step = input_batches, make_step
    par.to_host = to_host
    return self

  def __exit__(self, *exc):
    self.loop.input_batches, self.step.make_step, self.parallel.to_host = self._orig


def jax_pass(model_dir: str, data_dir: str, workdir: str, *, cache: str = "",
             processes: int = 0, heads_from: str = "", device_resize: int = 0) -> dict:
  """One engine run over the folder; returns its figures and the probe."""
  from jaxbench import configs, suites
  c = configs.base("zeroshot", models=(model_dir,),
                   datasets=(f"image_folder(root={data_dir!r})",), templates=FLAGS.templates)
  c.batch_size = FLAGS.batch
  c.num_workers = FLAGS.workers
  c.precision = FLAGS.precision
  c.log_every = 10**6
  c.checkpoint_every = 10**6
  if cache:
    c.prepared_cache = cache
  if device_resize:
    c.device_resize = device_resize
  if processes:
    c.decode_processes = processes
    c.num_workers = 1    # threads per worker process
  if heads_from and os.path.isdir(os.path.join(heads_from, "heads")):
    # Later passes reuse the first pass's zero-shot head (the runner's head cache),
    # so their time to first batch is model load + compile + first batch.
    shutil.copytree(os.path.join(heads_from, "heads"), os.path.join(workdir, "heads"))
  t0 = time.perf_counter()
  with _Probe() as probe:
    suites.run(c, workdir, print_fn=lambda *a: None)
  wall = time.perf_counter() - t0
  return {**_rates(probe.sizes, probe.done, probe.start),
          "first_batch_s": probe.done[0] - t0, "wall_s": wall}, probe


def _rates(sizes: list, done: list, start: float) -> dict:
  """images/s over the second half of the batches (readers' head start during
  compilation or worker start-up spent) and over the whole loop from ``start``.

  Args:
    sizes: real examples per batch.
    done: time each batch was finished.
    start: time the loop asked for its first batch.
  """
  n = len(sizes)
  mid = n // 2
  if n >= 4:
    steady = sum(sizes[mid + 1:]) / max(done[-1] - done[mid], 1e-9)
  else:
    steady = float("nan")
  return {"images": int(sum(sizes)), "images_per_s": steady,
          "loop_images_per_s": sum(sizes) / max(done[-1] - start, 1e-9)}


def step_alone(probe: _Probe) -> float:
  """Images/s of the captured compiled step on its batch, resident on the device."""
  import jax
  step, params, batch = probe.captured
  b = int(batch["mask"].shape[0])
  counts0 = {"n": np.int32(0), "correct1": np.int32(0), "correct5": np.int32(0)}
  state = {}

  def once():
    if "counts" not in state:   # donated: every call returns the next one's
      rep = jax.tree.leaves(params)[0].sharding
      state["counts"] = jax.device_put(counts0, rep)
    out, state["counts"] = step(params, state["counts"], batch)
    jax.block_until_ready(out)
  return b / common.time_fn(once, warmup=2, repeats=3, min_seconds=1.0)


# --- the PyTorch peer ----------------------------------------------------------------

def torch_pass(model_dir: str, data_dir: str, device: str) -> dict:
  """CLIP_benchmark's way: ImageFolder + DataLoader + transformers CLIPModel."""
  import torch
  from torchvision import datasets as tvd, transforms as T
  from transformers import CLIPModel, CLIPTokenizer
  from jaxbench.zeroshot import prompts
  dtype = torch.bfloat16 if FLAGS.precision == "bfloat16" else torch.float32
  t0 = time.perf_counter()
  model = CLIPModel.from_pretrained(model_dir).eval().to(device=device, dtype=dtype)
  tok = CLIPTokenizer.from_pretrained(model_dir)
  t_model = time.perf_counter() - t0
  names = prompts.classnames("imagenet")
  templates = prompts.templates(FLAGS.templates)
  texts = [t.format(name) for name in names for t in templates]
  with torch.no_grad():
    zs = []
    for i in range(0, len(texts), 1000):
      ids = tok(texts[i:i + 1000], padding=True, return_tensors="pt")
      z = model.get_text_features(**{k: v.to(device) for k, v in ids.items()})
      z = getattr(z, "pooler_output", z)
      zs.append(z / z.norm(dim=-1, keepdim=True))
    # CLIP_benchmark: mean of each class's normalised template embeddings, renormalised.
    head = torch.cat(zs).reshape(len(names), len(templates), -1).mean(1)
    head = head / head.norm(dim=-1, keepdim=True)
  tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                  T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)])
  loader = torch.utils.data.DataLoader(
      tvd.ImageFolder(data_dir, transform=tf), batch_size=FLAGS.batch, shuffle=False,
      num_workers=FLAGS.workers, pin_memory=device == "cuda",
      # fork() of a process running JAX's threads can deadlock, so with fork the
      # peer runs before any JAX backend starts; spawn's start-up (each worker
      # imports torch) counts in the peer's time to first batch.
      multiprocessing_context=FLAGS.torch_mp if FLAGS.workers else None)
  scale = model.logit_scale.exp()
  sizes, stamps = [], []
  start = time.perf_counter()
  print(f"  torch peer: model {t_model:.1f} s, head {start - t0 - t_model:.1f} s; "
        f"workers start now", flush=True)
  with torch.no_grad():
    for x, _ in loader:
      x = x.to(device, non_blocking=True).to(dtype)
      z = model.get_image_features(pixel_values=x)
      z = getattr(z, "pooler_output", z)
      z = z / z.norm(dim=-1, keepdim=True)
      top5 = (scale * z @ head.T).topk(5, dim=-1).indices.cpu()   # host copy syncs
      sizes.append(len(top5))
      stamps.append(time.perf_counter())
  wall = time.perf_counter() - t0
  return {**_rates(sizes, stamps, start), "first_batch_s": stamps[0] - t0, "wall_s": wall}


# --- input path only -------------------------------------------------------------------

def input_only(data_dir: str, cache_root: str) -> dict:
  from jaxbench.data import catalog, pipeline, prepared
  from jaxbench.models.api import Preprocess
  es = catalog.get(f"image_folder(root={data_dir!r})")
  pp = Preprocess(size=224, resize=224, interpolation="bicubic")
  plan = pipeline.plan(np.arange(len(es)), FLAGS.batch)
  figures = {}

  def timed(name, make_iter):
    t0 = time.perf_counter()
    n = 0
    for b in make_iter():
      np.array(b["image"])   # the pixels are read (a cached batch may be a memmap view)
      n += int((np.asarray(b["index"]) >= 0).sum())
    figures[name] = n / (time.perf_counter() - t0)
    print(f"  {name}: {figures[name]:.1f} images/s", flush=True)
    common.record(FLAGS.out, "e2e_input", {"what": name, "images_per_s": figures[name],
                                           "images": n, "batch": FLAGS.batch})

  for threads in sorted({1, 2, FLAGS.workers}):
    timed(f"decode_{threads}_threads",
          lambda: pipeline.batches(es, pp, plan, num_threads=threads))
  # Opt-in config.jpeg_draft (reduced-DCT decoding, not pixel-exact), 1 thread.
  timed("decode_jpeg_draft_1_thread",
        lambda: pipeline.batches(es, pp, plan, num_threads=1, draft=pp.resize))
  if "num_processes" in pipeline.batches.__code__.co_varnames:
    for procs in sorted({1, 2, FLAGS.workers}):
      timed(f"decode_{procs}_processes",
            lambda: pipeline.batches(es, pp, plan, num_threads=1, num_processes=procs))
  t0 = time.perf_counter()
  prepared.build(cache_root, es, [pp], num_threads=FLAGS.workers)
  figures["cache_fill"] = len(es) / (time.perf_counter() - t0)
  print(f"  cache_fill ({FLAGS.workers} threads): {figures['cache_fill']:.1f} images/s")
  entry = prepared.get_or_build(cache_root, es, pp)
  timed("cached_reader", lambda: entry.batches(plan))
  figures["cached_over_decode_1_thread"] = figures["cached_reader"] / figures[
      "decode_1_threads"]
  print(f"  cached reader / 1-thread decode: {figures['cached_over_decode_1_thread']:.1f}x")
  if FLAGS.device_resize:
    figures.update(host_cost(es, pp, plan, FLAGS.device_resize, timed, figures))
  return figures


def host_cost(es, pp, plan, canvas: int, timed, figures: dict) -> dict:
  """The host's share of ``config.device_resize``: decode-only examples (canvas + table)
  against decode + resize + crop, same JPEGs, A/B alternating in rounds so that load
  hits both alike; the device program is not run.

  Figures: one thread calling ``LoadExample.map`` directly (ms per image, the per-core
  cost), the grain pipeline with 1 and ``--workers`` threads, and ``--processes`` worker
  processes timed after their first batch (start-up excluded). Ratios are medians of
  the per-round ratios.
  """
  from jaxbench.data import pipeline
  rounds, out = 3, {}
  load = {0: pipeline.LoadExample(es, pp), canvas: pipeline.LoadExample(es, pp, canvas=canvas)}
  ids = range(min(len(es), 256))
  for le in load.values():
    le.map(0)   # warm: coefficient tables, imports
  per_image = {0: [], canvas: []}
  for _ in range(rounds):
    for cv, le in load.items():
      t0 = time.perf_counter()
      for i in ids:
        le.map(i)
      per_image[cv].append(1e3 * (time.perf_counter() - t0) / len(ids))
  ratio = float(np.median([a / b for a, b in zip(per_image[0], per_image[canvas])]))
  full_ms, only_ms = float(np.median(per_image[0])), float(np.median(per_image[canvas]))
  out["device_resize_host_gain_per_image"] = ratio
  common.record(FLAGS.out, "e2e_input", {"what": "device_resize_per_image_ms", "canvas": canvas,
                                         "host_resize_ms": full_ms, "decode_only_ms": only_ms,
                                         "ratio": ratio, "load": os.getloadavg()[0]})
  for rnd in range(rounds):
    for threads in sorted({1, FLAGS.workers}):
      for name, cv in ((f"host_resize_{threads}_threads_r{rnd}", 0),
                       (f"decode_only_canvas{canvas}_{threads}_threads_r{rnd}", canvas)):
        timed(name, lambda: pipeline.batches(es, pp, plan, num_threads=threads, canvas=cv))
  procs = FLAGS.workers if FLAGS.processes < 0 else FLAGS.processes
  if procs:
    # Worker processes: timed from their first batch (spawn start-up excluded, it is the
    # same both ways), so the figure is the decode rate the processes sustain.
    for name, cv in ((f"host_resize_{procs}_processes", 0),
                     (f"decode_only_canvas{canvas}_{procs}_processes", canvas)):
      it = pipeline.batches(es, pp, plan, num_threads=1, num_processes=procs, canvas=cv)
      next(it)
      timed(name + "_after_start", lambda: it)
  print(f"  host cost of device_resize={canvas} (median of {rounds} alternating rounds; load "
        f"average {os.getloadavg()[0]:.1f}):")
  print(f"    LoadExample.map, 1 thread: decode+resize+crop {full_ms:.2f} ms/image, "
        f"decode-only+table {only_ms:.2f} ms/image: {ratio:.2f}x images/s per core")
  for threads in sorted({1, FLAGS.workers}):
    full = [figures[f"host_resize_{threads}_threads_r{r}"] for r in range(rounds)]
    only = [figures[f"decode_only_canvas{canvas}_{threads}_threads_r{r}"] for r in range(rounds)]
    gain = float(np.median([b / a for a, b in zip(full, only)]))
    out[f"device_resize_host_gain_{threads}_threads"] = gain
    print(f"    pipeline, {threads} thread(s): decode+resize+crop {np.median(full):.1f}, "
          f"decode-only+table {np.median(only):.1f} images/s: {gain:.2f}x")
    common.record(FLAGS.out, "e2e_input", {"what": f"device_resize_host_gain_{threads}_threads",
                                           "ratio": gain, "canvas": canvas,
                                           "load": os.getloadavg()[0]})
  if procs:
    full = figures[f"host_resize_{procs}_processes_after_start"]
    only = figures[f"decode_only_canvas{canvas}_{procs}_processes_after_start"]
    out[f"device_resize_host_gain_{procs}_processes"] = only / full
    print(f"    {procs} worker process(es), after start-up: decode+resize+crop {full:.1f}, "
          f"decode-only+table {only:.1f} images/s: {only / full:.2f}x (one round)")
  return out


# --- main -------------------------------------------------------------------------------

def main(argv):
  FLAGS(argv)
  tmp = tempfile.TemporaryDirectory(prefix="jaxbench_e2e_")
  data_dir = FLAGS.data_dir or os.path.join(tmp.name, "data")
  t0 = time.perf_counter()
  make_folder(data_dir, FLAGS.images, FLAGS.classes, FLAGS.workers)
  print(f"{FLAGS.images} JPEGs (500x375) in {data_dir}: {time.perf_counter() - t0:.1f}s",
        flush=True)
  if FLAGS.input_only:
    print(f"input path, batch {FLAGS.batch}, {os.cpu_count()} CPUs:")
    input_only(data_dir, os.path.join(tmp.name, "cache"))
    return
  model_dir = make_model(os.path.join(tmp.name, "model"), FLAGS.model)
  device = FLAGS.torch_device
  if not device:
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
  base = {"model": FLAGS.model, "precision": FLAGS.precision, "batch": FLAGS.batch,
          "workers": FLAGS.workers, "templates": FLAGS.templates}
  print(f"model {FLAGS.model} ({FLAGS.precision}), batch {FLAGS.batch}, {FLAGS.workers} "
        f"workers, torch on {device}, DataLoader workers by {FLAGS.torch_mp}", flush=True)
  results = {}

  def report(name, figures):
    results[name] = figures
    print(f"  {name}: {figures['images_per_s']:.1f} images/s (second half of the pass), "
          f"{figures['loop_images_per_s']:.1f} over the whole loop, first batch "
          f"{figures['first_batch_s']:.1f}s, wall {figures['wall_s']:.1f}s", flush=True)
    common.record(FLAGS.out, "e2e", {"run": name, **base, **figures})

  peer_first = FLAGS.torch and FLAGS.torch_mp == "fork"
  if peer_first:       # before JAX's runtime threads exist (see --torch_mp)
    report("torch_dataloader", torch_pass(model_dir, data_dir, device))
  import jax
  print(f"jax on {jax.devices()[0].platform}", flush=True)
  first_wd = os.path.join(tmp.name, "wd_uncached")
  figs, probe = jax_pass(model_dir, data_dir, first_wd)
  report("jaxbench_uncached", figs)
  if probe.captured is None:   # the engine no longer calls engine.step.make_step per pass
    print("  compiled step not captured: no step-alone figure", flush=True)
    step_ips = float("nan")
  else:
    step_ips = step_alone(probe)
  results["step_alone"] = {"images_per_s": step_ips}
  print(f"  compiled step alone (resident batch): {step_ips:.1f} images/s", flush=True)
  common.record(FLAGS.out, "e2e", {"run": "step_alone", **base, "images_per_s": step_ips})
  del probe
  if FLAGS.torch and not peer_first:
    report("torch_dataloader", torch_pass(model_dir, data_dir, device))
  procs = FLAGS.workers if FLAGS.processes < 0 else FLAGS.processes
  if procs:
    report(f"jaxbench_uncached_{procs}_processes", jax_pass(
        model_dir, data_dir, os.path.join(tmp.name, "wd_procs"), processes=procs,
        heads_from=first_wd)[0])
  if FLAGS.device_resize:   # host decodes only; PIL-exact resize + crop on the device
    n = FLAGS.device_resize
    report(f"jaxbench_uncached_device_resize{n}", jax_pass(
        model_dir, data_dir, os.path.join(tmp.name, "wd_dev"), device_resize=n,
        heads_from=first_wd)[0])
    if procs:
      report(f"jaxbench_uncached_device_resize{n}_{procs}_processes", jax_pass(
          model_dir, data_dir, os.path.join(tmp.name, "wd_dev_procs"), device_resize=n,
          processes=procs, heads_from=first_wd)[0])
  if FLAGS.cached:
    cache = os.path.join(tmp.name, "cache")
    report("jaxbench_cache_fill", jax_pass(model_dir, data_dir,
                                           os.path.join(tmp.name, "wd_fill"), cache=cache,
                                           heads_from=first_wd)[0])
    report("jaxbench_cached", jax_pass(model_dir, data_dir,
                                       os.path.join(tmp.name, "wd_cached"), cache=cache,
                                       heads_from=first_wd)[0])
  print("\n| run | images/s (2nd half) | % of step alone | images/s (whole loop) | first "
        "batch s | wall s |")
  print("|---|---|---|---|---|---|")
  for name, f in results.items():
    if name == "step_alone":
      continue
    print(f"| {name} | {f['images_per_s']:.1f} | {100 * f['images_per_s'] / step_ips:.0f}% | "
          f"{f['loop_images_per_s']:.1f} | {f['first_batch_s']:.1f} | {f['wall_s']:.1f} |")
  print(f"| compiled step alone | {step_ips:.1f} | 100% | | | |")
  if "torch_dataloader" in results:
    t = results["torch_dataloader"]["images_per_s"]
    for name in results:
      if name.startswith("jaxbench"):
        print(f"{name} / torch DataLoader: {results[name]['images_per_s'] / t:.2f}x")
  tmp.cleanup()


if __name__ == "__main__":
  main(sys.argv)
