"""A real two-process run (jax.distributed, gloo collectives, 127.0.0.1) equals one process.

Two processes with two CPU devices each embed uneven shares of three tar shards in lockstep
into one store, then search their process-local shares; the merged top-k must equal brute
force over the stored embeddings, and those must equal a single-process embedding.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np

from tests.overlap import overlap_fixtures as fx
from jaxbench.overlap import corpus as corpus_lib, embed, knn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
  rng = np.random.default_rng(11)
  os.makedirs(tmp_path / "corpus")
  for s, n in enumerate((7, 5, 4)):
    extra = (lambda tf: fx.add_member(tf, "bad.jpg", b"not a jpeg")) if s == 1 else None
    fx.write_shard(str(tmp_path / "corpus" / f"{s:05d}.tar"),
                   [(f"k{i}", fx.jpeg_bytes(fx.smooth_image(rng))) for i in range(n)], extra)
  queries = rng.standard_normal((6, 192)).astype(np.float32)
  np.save(tmp_path / "queries.npy", queries)

  port = _free_port()
  env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
  procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "overlap_two_process_worker.py"),
                             str(port), str(i), str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
  got = np.load(tmp_path / "result.npz")

  # Reference: brute force over the embeddings the two processes stored.
  chunks = list(corpus_lib.open_corpus(str(tmp_path / "store")).chunks())
  emb = np.concatenate([c.emb for c in chunks])
  ords = np.concatenate([c.ordinals for c in chunks])
  ref = knn.exact_topk_reference(queries, emb, ords, 4)
  np.testing.assert_array_equal(got["ordinals"], ref.ordinals)
  np.testing.assert_allclose(got["scores"], ref.scores, atol=1e-5)
  # Every decodable sample of every shard embedded exactly once; the bad member recorded.
  ids = sorted(i for c in chunks for i in c.ids)
  assert ids == sorted(f"{s:05d}/k{i}" for s, n in enumerate((7, 5, 4)) for i in range(n))
  assert sorted(ords.tolist()) == sorted((s << 32) | i for s, n in enumerate((7, 5, 4))
                                         for i in range(n))
  with open(tmp_path / "store" / "manifest.json") as f:
    manifest = json.load(f)
  assert manifest["rows"] == 16 and [p["name"] for p in manifest["skipped"]] == ["00001/bad"]
  # Embeddings equal a single-process embedding of the same images.
  e = embed.Embedder(fx.thumb_model(), batch_size=8, hashes=())
  by_id = {i: r for c in chunks for i, r in zip(c.ids, c.emb)}
  items = list(corpus_lib.open_corpus(str(tmp_path / "corpus" / "00002.tar")).items())
  one = e.embed_all((it.id, it.ordinal, it.data) for it in items)
  np.testing.assert_allclose(np.stack([by_id[i] for i in one.ids]), one.emb, atol=1e-5)
