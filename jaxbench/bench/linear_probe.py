"""Linear-probe benchmark: a 1000-class probe with a 9-value C sweep, JAX vs scikit-learn.

    python -m jaxbench.bench linear_probe                 # default: --scale=0.1 (short)
    python -m jaxbench.bench linear_probe --scale=1       # 50,000 x 512, 1000 classes

On stored-like features (N = 50,000 x scale examples, D = 512, K = 1000 x scale
classes; class means plus noise, so the probe is neither trivial nor hopeless),
the CLIP paper's protocol is run twice, interleaved, on the same machine:

* jaxbench: :func:`jaxbench.heads.logreg.sweep` (L-BFGS in JAX, warm-started
  over ascending C, refit on train + val), timed on its first call (compile
  included) and again once compiled;
* scikit-learn: what CLIP's evaluation code does, one ``LogisticRegression(C=C,
  max_iter=1000)`` (lbfgs, multinomial) per C on the training split, scored on
  validation, then a refit on train + val with the best C.

Both see the same (seed, id) validation split and the same 9 Cs; the table shows
the wall times, the speedup, the chosen C and the validation accuracies of both
(so a fast but wrong solver shows). ``--sklearn=false`` times JAX alone (e.g. at
full size where scikit-learn would take hours on a small machine).
"""
from __future__ import annotations

import os
import time

import numpy as np
from absl import flags

from jaxbench.bench import common

FLAGS = flags.FLAGS
flags.DEFINE_float("scale", 0.1, "fraction of the full 50,000 x 1000-class problem")
flags.DEFINE_integer("dim", 512, "feature dimension")
flags.DEFINE_integer("num_cs", 9, "values in the C sweep (log-spaced 1e-3..1e5)")
flags.DEFINE_float("val_fraction", 0.2, "validation share of the examples")
flags.DEFINE_bool("sklearn", True, "also run scikit-learn's LogisticRegression")
flags.DEFINE_integer("repeats", 1, "interleaved (jax, sklearn) rounds")
flags.DEFINE_float("tol", 1e-4, "gradient tolerance of both solvers (scikit-learn's default; "
                   "both stop at max |gradient| < tol of the same mean-scaled objective)")
flags.DEFINE_float("noise", 3.0, "noise std around the class means (unit-norm means x 2)")
flags.DEFINE_string("out", "bench_results.jsonl", "JSON lines file to append to")


def make_features(n: int, k: int, d: int, noise: float, seed: int = 0):
  """(features float32 (n, d), labels, ids): class means (norm 2) plus Gaussian noise."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(k, d)).astype(np.float32)
  means *= 2.0 / np.linalg.norm(means, axis=1, keepdims=True)
  y = np.arange(n) % k
  rng.shuffle(y)
  x = means[y] + rng.normal(scale=noise / np.sqrt(d), size=(n, d)).astype(np.float32)
  return x.astype(np.float32), y.astype(np.int32), [f"ex_{i:06d}" for i in range(n)]


def sklearn_sweep(x, y, val, Cs, tol):
  """CLIP's evaluation loop with scikit-learn: fit per C, pick on val, refit on all."""
  from sklearn.linear_model import LogisticRegression
  accs = {}
  for C in Cs:
    clf = LogisticRegression(C=C, max_iter=1000, tol=tol).fit(x[~val], y[~val])
    accs[C] = float(clf.score(x[val], y[val]))
  best = max(accs, key=lambda c: (accs[c], -c))
  final = LogisticRegression(C=best, max_iter=1000, tol=tol).fit(x, y)
  return best, accs, final


def main(argv):
  FLAGS(argv)
  import jax
  from jaxbench.heads import logreg
  n, k, d = int(round(50000 * FLAGS.scale)), max(2, int(round(1000 * FLAGS.scale))), FLAGS.dim
  Cs = tuple(float(c) for c in np.logspace(-3, 5, FLAGS.num_cs))
  x, y, ids = make_features(n, k, d, FLAGS.noise)
  val = logreg.validation_mask(ids, 0, FLAGS.val_fraction)
  print(f"linear probe: {n} x {d} features, {k} classes, {len(Cs)} Cs, "
        f"{int(val.sum())} validation examples; jax devices {jax.devices()}, "
        f"{os.cpu_count()} CPUs", flush=True)
  runs = []
  for r in range(FLAGS.repeats):
    t0 = time.perf_counter()
    res = logreg.sweep(x, y, k, val_mask=val, Cs=Cs, tol=FLAGS.tol)
    t_jax = time.perf_counter() - t0
    row = {"round": r, "jax_s": t_jax, "jax_best_C": res.best_C,
           "jax_val_accuracy": [res.val_accuracy[c] for c in Cs],
           "jax_iterations": [res.iterations[c] for c in Cs],
           "jax_refit_iterations": res.final.iterations}
    print(f"round {r}: jax sweep {t_jax:.2f} s (best C {res.best_C:g}, iterations "
          f"{row['jax_iterations']} + refit {res.final.iterations})", flush=True)
    if FLAGS.sklearn:
      t0 = time.perf_counter()
      best, accs, final = sklearn_sweep(x, y, val, Cs, FLAGS.tol)
      t_sk = time.perf_counter() - t0
      row.update(sklearn_s=t_sk, sklearn_best_C=best,
                 sklearn_val_accuracy=[accs[c] for c in Cs],
                 final_train_accuracy_jax=logreg.accuracy(res.final, x, y),
                 final_train_accuracy_sklearn=float(final.score(x, y)))
      print(f"round {r}: sklearn sweep {t_sk:.2f} s (best C {best:g})", flush=True)
    runs.append(row)
  # Steady state: the sweep again, compiled (the first round paid compilation).
  t0 = time.perf_counter()
  logreg.sweep(x, y, k, val_mask=val, Cs=Cs, tol=FLAGS.tol)
  t_warm = time.perf_counter() - t0
  print(f"\n| impl | seconds | best C |\n|---|---|---|")
  print(f"| jax, first call (compile included) | {runs[0]['jax_s']:.2f} | "
        f"{runs[0]['jax_best_C']:g} |")
  figures = {"n": n, "k": k, "d": d, "scale": FLAGS.scale, "tol": FLAGS.tol, "Cs": list(Cs),
             "runs": runs,
             "jax_compiled_s": t_warm}
  if FLAGS.sklearn:
    sk = float(np.median([r_["sklearn_s"] for r_ in runs]))
    first = runs[0]["jax_s"]
    # Compiled: every later interleaved round and the final extra sweep.
    t_warm = float(np.median([r_["jax_s"] for r_ in runs[1:]] + [t_warm]))
    print(f"| jax, compiled (median) | {t_warm:.2f} | |")
    print(f"| scikit-learn lbfgs (median) | {sk:.2f} | {runs[0]['sklearn_best_C']:g} |")
    print(f"\nspeedup: {sk / first:.1f}x (first call), {sk / t_warm:.1f}x (compiled)")
    diff = max(abs(a - b) for a, b in zip(runs[0]["jax_val_accuracy"],
                                         runs[0]["sklearn_val_accuracy"]))
    print(f"max |val accuracy difference| over the sweep: {diff:.4f}; final train accuracy "
          f"jax {runs[0]['final_train_accuracy_jax']:.4f} sklearn "
          f"{runs[0]['final_train_accuracy_sklearn']:.4f}")
    figures.update(sklearn_s=sk, jax_compiled_s=t_warm, speedup_first=sk / first,
                   speedup_compiled=sk / t_warm, max_val_accuracy_diff=diff)
  else:
    print(f"| jax, compiled | {t_warm:.2f} | |")
  common.record(FLAGS.out, "linear_probe", figures)


if __name__ == "__main__":
  import sys
  main(sys.argv)
