"""One process of a real two-process run (jax.distributed over gloo on 127.0.0.1).

Usage: python overlap_two_process_worker.py PORT PROCESS_ID WORKDIR

Embeds the tar shards in WORKDIR/corpus into WORKDIR/store (each process its own shards,
in lockstep), searches the store's process-local share for WORKDIR/queries.npy, and
(process 0) saves the merged top-k to WORKDIR/result.npz.
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def main():
  port, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
  from jaxbench import parallel
  parallel.initialize(f"127.0.0.1:{port}", 2, pid, timeout_s=60)
  import overlap_fixtures as fx
  from jaxbench.overlap import corpus as corpus_lib, embed, knn
  assert jax.process_count() == 2 and jax.device_count() == 4
  e = embed.Embedder(fx.thumb_model(), batch_size=8, hashes=("phash",))
  corpus = corpus_lib.open_corpus(os.path.join(workdir, "corpus"))
  stored = embed.embed_corpus(e, corpus, os.path.join(workdir, "store"), chunk=5)
  queries = np.load(os.path.join(workdir, "queries.npy"))
  share = stored.shard(jax.process_index(), jax.process_count())
  top = knn.Searcher(queries, 4, chunk=6, block=2).search(
      (c.emb, c.ordinals) for c in share.chunks())
  if pid == 0:
    np.savez(os.path.join(workdir, "result.npz"), scores=top.scores, ordinals=top.ordinals,
             problems=len(corpus.problems))
  parallel.sync("done")


if __name__ == "__main__":
  main()
