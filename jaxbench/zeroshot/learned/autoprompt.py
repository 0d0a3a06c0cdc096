"""AutoPrompt / HotFlip search for discrete prompt tokens (RoZ's CLIP-Auto).

The prompt of class k is ``[SOT] t_1..t_M <class name> [EOT]`` with M trigger
tokens shared by all classes; the loss is the zero-shot cross-entropy of the
training images against the K class prompts. One iteration (Shin et al. 2020,
``autoprompt/create_trigger.py``):

1. the gradient g (M, W) of the loss with respect to the trigger *embeddings*,
   over ``accumulation_steps`` batches of ``batch_size`` images;
2. at one trigger position j, drawn at random, every token v gets the HotFlip
   first-order estimate of the loss change of swapping t_j for v,
   ``(E[v] - E[t_j]) . g_j`` (E the token-embedding table, so the ranking is
   that of AutoPrompt's ``E @ g_j``); special tokens and t_j itself are never
   candidates;
3. the ``num_candidates`` tokens with the most negative estimate are evaluated
   exactly on the same batches and the best is kept if it lowers the loss.

Both towers are frozen, so the image features are computed once and the text
prompts do not depend on the images: the loss over A batches of B images is one
text-tower pass over the K classes and a (A*B, K) similarity matrix, the same
gradient AutoPrompt accumulates batch by batch. Work is sharded over the mesh's
'data' axis twice: the image rows of the loss and, for the text tower (where the
time goes), the K class prompts.

Each restart runs ``iterations`` iterations (restart 0 from ``init``, others
from random tokens); the trigger held after every iteration is logged, and
prompts are ranked by how often they appear in the log, as RoZ ranks its
``*.log`` files. The top-N form the head like templates do (normalise, mean,
renormalise). Randomness: rows and positions from ``fold_in(fold_in(key(seed),
restart), iteration)``; random starts from ``default_rng([seed, restart])``.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from jaxbench.models.api import Model
from jaxbench.zeroshot.learned import artifacts, layout as layout_lib, tower


@dataclasses.dataclass(frozen=True)
class AutoPromptConfig:
  """Search hyperparameters (defaults: AutoPrompt's, M=4 and 40 candidates as RoZ).

  Attributes:
    num_tokens: M trigger tokens after the start token.
    iterations: search iterations per restart.
    restarts: independent searches; their logs are pooled for the ranking.
    num_candidates: tokens evaluated exactly per iteration.
    batch_size: images per batch.
    accumulation_steps: batches per iteration (gradient and evaluation).
    init: text whose M tokens start restart 0 ('a photo of a'); '' = random.
    random_restarts: restarts after the first start from random tokens (else
      all from ``init``, differing only in positions and batches).
    suffix: text after the trigger with '{}' for the class name.
    logit_scale: 'model' or a float (RoZ: 100).
    top_n: prompts ensembled in the head (0: all).
    candidate_chunk: candidates evaluated at once (memory); 0: all at once.
    exclude_tokens: token ids never proposed (besides start/end of text).
    seed: search seed.
  """
  num_tokens: int = 4
  iterations: int = 100
  restarts: int = 1
  num_candidates: int = 40
  batch_size: int = 32
  accumulation_steps: int = 10
  init: str = "a photo of a"
  random_restarts: bool = True
  suffix: str = "{}"
  logit_scale: Union[str, float] = 100.0
  top_n: int = 0
  candidate_chunk: int = 0
  exclude_tokens: tuple = ()
  seed: int = 0

  def __post_init__(self):
    for name in ("num_tokens", "iterations", "restarts", "num_candidates", "batch_size",
                 "accumulation_steps"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"autoprompt {name} must be a positive integer, got {v!r}")


@dataclasses.dataclass
class SearchResult:
  """What a search found.

  Attributes:
    log: int32 (R, T + 1, M) trigger after each iteration (index 0: the start).
    losses: float32 (R, T) loss of the trigger after each iteration, on that
      iteration's batches.
    start_losses: float32 (R, T) loss of the trigger before each iteration.
    accepted: bool (R, T) whether the iteration changed the trigger.
    ranked: [(prompt ids, count)] by frequency over the logged iterations
      (1..T of every restart).
    mean_loss: prompt ids -> mean logged loss (ties are broken by it).
    seconds: wall time of the search.
  """
  log: np.ndarray
  losses: np.ndarray
  start_losses: np.ndarray
  accepted: np.ndarray
  ranked: list
  mean_loss: dict
  seconds: float


def hotflip_scores(table, grad_j, current):
  """First-order loss change of swapping the token at one position for each token.

  Args:
    table: (V, W) token-embedding table E.
    grad_j: (W,) gradient of the loss w.r.t. the embedding at that position.
    current: int, the token there now.

  Returns:
    float32 (V,) ``(E[v] - E[current]) . grad_j``; 0 for ``current``.
  """
  s = (table.astype(jnp.float32) @ grad_j.astype(jnp.float32))
  return s - s[current]


def _loss_of_embeddings(arch, net, base, eot, class_mask, trig_emb, feats, labels, weights,
                        scale, bias, mesh):
  m = trig_emb.shape[0]
  x = base.at[:, 1:1 + m].set(jnp.broadcast_to(trig_emb.astype(base.dtype),
                                               (base.shape[0], m, base.shape[-1])))
  x = tower.constrain(x, mesh, P("data"))
  text = tower.encode_embeddings(arch, net, x, eot)
  return tower.zeroshot_loss(text, feats, labels, weights, scale, bias, class_mask)


@functools.partial(jax.jit, static_argnames=("arch", "mesh"))
def trigger_loss(arch, net, ids, eot, class_mask, trig_emb, feats, labels, weights, scale, bias,
                 mesh=None):
  """(loss, accuracy) of trigger embeddings (M, W) on image rows; see ``zeroshot_loss``."""
  base = tower.embed_ids(arch, net, ids)
  return _loss_of_embeddings(arch, net, base, eot, class_mask, trig_emb, feats, labels, weights,
                             scale, bias, mesh)


@functools.partial(jax.jit, static_argnames=("arch", "num_candidates", "chunk", "mesh"))
def search_step(arch, net, table, allowed, ids, eot, class_mask, trigger, feats, labels,
                weights, scale, bias, key, *, num_candidates: int, chunk: int = 0,
                mesh: Optional[Mesh] = None):
  """One AutoPrompt iteration.

  Args:
    arch, net: the CLIP module and its params.
    table: (V, W) token-embedding table.
    allowed: bool (V,) tokens that may be proposed.
    ids, eot, class_mask: the (class-padded) prompt layout.
    trigger: int32 (M,) current tokens.
    feats, labels, weights: the iteration's image rows (sharded over 'data').
    scale, bias: logit scale and bias.
    key: the iteration's random key (picks the position).

  Returns:
    dict: 'trigger' (M,) after the iteration, 'loss' its loss, 'start_loss'
    the current trigger's loss, 'position', 'accepted', 'candidates' (C,),
    'candidate_losses' (C,), 'predicted' (C,) HotFlip estimates, 'grad' (M, W)
    the gradient of the start loss w.r.t. the trigger embeddings.
  """
  m = trigger.shape[0]
  base = tower.embed_ids(arch, net, ids)
  loss_fn = lambda e: _loss_of_embeddings(arch, net, base, eot, class_mask, e, feats, labels,
                                          weights, scale, bias, mesh)[0]
  loss, grad = jax.value_and_grad(loss_fn)(table[trigger])
  pos = jax.random.randint(key, (), 0, m)
  current = trigger[pos]
  delta = hotflip_scores(table, grad[pos], current)
  ok = allowed & (jnp.arange(table.shape[0]) != current)
  neg, cand = jax.lax.top_k(jnp.where(ok, -delta, -jnp.inf), num_candidates)
  triggers = jnp.broadcast_to(trigger, (num_candidates, m)).at[:, pos].set(cand)
  cand_losses = jax.lax.map(lambda t: loss_fn(table[t]), triggers,
                            batch_size=chunk or None)
  best = jnp.argmin(cand_losses)
  accepted = cand_losses[best] < loss
  return {"trigger": jnp.where(accepted, triggers[best], trigger),
          "loss": jnp.where(accepted, cand_losses[best], loss), "start_loss": loss,
          "position": pos, "accepted": accepted, "candidates": cand,
          "candidate_losses": cand_losses, "predicted": -neg, "grad": grad}


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
  """A search problem on device: layout, features, and the fixed arrays of a step."""
  model: Model
  layout: layout_lib.PromptLayout
  ids: jax.Array
  eot: jax.Array
  class_mask: jax.Array
  table: jax.Array
  allowed: jax.Array
  feats: jax.Array
  labels: jax.Array
  scale: float
  bias: Optional[float]
  mesh: Optional[Mesh]


def make_problem(model: Model, feats: np.ndarray, labels: np.ndarray,
                 classnames: Sequence[str], cfg: AutoPromptConfig,
                 mesh: Optional[Mesh] = None) -> Problem:
  """Checks inputs and puts the fixed arrays of a search on device.

  Raises:
    ValueError: prompts longer than the context, labels outside the classes,
      features of the wrong shape, excluded token ids outside the vocabulary.
  """
  layout = layout_lib.make_layout(model, classnames, cfg.num_tokens, cfg.suffix)
  if mesh is not None and mesh.size == 1:
    mesh = None    # one device: no constraints, and the unsharded compilation
  feats, labels = layout_lib.check_rows(layout, feats, labels)
  bad = [t for t in cfg.exclude_tokens if not 0 <= int(t) < layout.vocab_size]
  if bad:
    raise ValueError(f"exclude_tokens {bad} are not token ids of the {layout.vocab_size}-token "
                     "vocabulary")
  ids, eot, mask = tower.pad_classes(layout, tower.data_size(mesh))
  net = model.params["net"]
  table = jax.jit(tower.token_matrix, static_argnums=(0, 2))(model.arch, net,
                                                                  layout.vocab_size)
  allowed = np.ones(layout.vocab_size, bool)
  allowed[list(layout.specials)] = False
  allowed[[int(t) for t in cfg.exclude_tokens]] = False
  scale, bias = tower.logit_scale_of(model, cfg.logit_scale)
  rep = (lambda x: jax.device_put(x, jax.sharding.NamedSharding(mesh, P()))) if mesh \
      else jnp.asarray
  return Problem(model=model, layout=layout, ids=rep(ids), eot=rep(eot), class_mask=rep(mask),
                 table=rep(table), allowed=rep(allowed), feats=rep(_l2n(feats)),
                 labels=rep(labels), scale=scale, bias=bias, mesh=mesh)


def _l2n(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("rows", "pad", "mesh"))
def _draw_rows(key, feats, labels, *, rows: int, pad: int, mesh=None):
  """``rows`` distinct random rows (plus ``pad`` zero-weight rows), sharded over 'data'."""
  n = feats.shape[0]
  idx = jax.random.permutation(key, n)[:rows]
  idx = jnp.concatenate([idx, jnp.zeros((pad,), idx.dtype)])
  w = (jnp.arange(rows + pad) < rows).astype(jnp.float32)
  f, l = feats[idx], labels[idx]
  return (tower.constrain(f, mesh, P("data")),
          tower.constrain(l, mesh, P("data")),
          tower.constrain(w, mesh, P("data")))


def iteration_rows(problem: Problem, key, cfg: AutoPromptConfig):
  """The image rows (features, labels, weights) of one iteration: A*B distinct rows."""
  n = problem.feats.shape[0]
  rows = min(n, cfg.batch_size * cfg.accumulation_steps)
  d = tower.data_size(problem.mesh)
  return _draw_rows(key, problem.feats, problem.labels, rows=rows, pad=(-rows) % d,
                    mesh=problem.mesh)


@jax.jit
def iteration_keys(seed, restart, iteration):
  """(rows key, position key) of one iteration: fold_in(key(seed), restart), iteration."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), restart), iteration)
  return tuple(jax.random.split(key))


def initial_trigger(model: Model, layout: layout_lib.PromptLayout, cfg: AutoPromptConfig,
                    restart: int) -> np.ndarray:
  """Restart 0 starts from ``cfg.init``; later ones from random allowed tokens.

  Random starts draw from ``np.random.default_rng([seed, restart])``.
  """
  if cfg.init and (restart == 0 or not cfg.random_restarts):
    tok = np.asarray(model.tokenize([cfg.init])[0])
    tok = tok[(tok != 0) & ~np.isin(tok, layout.specials)]
    if len(tok) != cfg.num_tokens:
      raise ValueError(f"autoprompt init {cfg.init!r} is {len(tok)} tokens "
                       f"({tok.tolist()}); num_tokens is {cfg.num_tokens}")
    return tok.astype(np.int32)
  allowed = np.ones(layout.vocab_size, bool)
  allowed[list(layout.specials)] = False
  allowed[[int(t) for t in cfg.exclude_tokens]] = False
  pool = np.nonzero(allowed)[0]
  rng = np.random.default_rng([cfg.seed, restart])
  return pool[rng.integers(0, len(pool), cfg.num_tokens)].astype(np.int32)


def search(model: Model, feats: np.ndarray, labels: np.ndarray, classnames: Sequence[str],
           cfg: AutoPromptConfig = AutoPromptConfig(), *, mesh: Optional[Mesh] = None,
           callback: Optional[Callable[[int, int, dict], None]] = None) -> SearchResult:
  """Runs the restarts of an AutoPrompt search on precomputed image features.

  Args:
    model: CLIP-family model (towers frozen).
    feats: float32 (N, D) image features of the training split (normalised here).
    labels: int32 (N,) classes in [0, K).
    classnames: the K class names.
    cfg: hyperparameters.
    mesh: ('data', 'model') mesh: image rows and class prompts split over 'data'.
    callback: called as ``callback(restart, iteration, step_output)`` on the host.

  Returns:
    a :class:`SearchResult`.
  """
  p = make_problem(model, feats, labels, classnames, cfg, mesh)
  m, t_iters, r = cfg.num_tokens, cfg.iterations, cfg.restarts
  log = np.zeros((r, t_iters + 1, m), np.int32)
  losses = np.zeros((r, t_iters), np.float32)
  start_losses = np.zeros((r, t_iters), np.float32)
  accepted = np.zeros((r, t_iters), bool)
  net = model.params["net"]
  t0 = time.perf_counter()
  for restart in range(r):
    trigger = initial_trigger(model, p.layout, cfg, restart)
    log[restart, 0] = trigger
    for it in range(t_iters):
      krows, kpos = iteration_keys(cfg.seed, restart, it)
      f, l, w = iteration_rows(p, krows, cfg)
      out = search_step(model.arch, net, p.table, p.allowed, p.ids, p.eot, p.class_mask,
                        trigger, f, l, w, p.scale, p.bias, kpos,
                        num_candidates=cfg.num_candidates, chunk=cfg.candidate_chunk,
                        mesh=p.mesh)
      # Back to the host every iteration: the log needs it, and a host array keeps
      # the next call's argument placement (and so its compilation) unchanged.
      host = jax.device_get({k: out[k] for k in ("trigger", "loss", "start_loss", "accepted")})
      trigger = np.asarray(host["trigger"], np.int32)
      log[restart, it + 1] = trigger
      start_losses[restart, it] = host["start_loss"]
      losses[restart, it] = host["loss"]
      accepted[restart, it] = host["accepted"]
      if callback is not None:
        callback(restart, it, out)
  seconds = time.perf_counter() - t0
  seqs = [tuple(x) for x in log[:, 1:].reshape(-1, m).tolist()]
  loss_list = losses.reshape(-1)
  sums: dict = {}
  for s, lv in zip(seqs, loss_list):
    a, b = sums.get(s, (0.0, 0))
    sums[s] = (a + float(lv), b + 1)
  mean_loss = {s: a / b for s, (a, b) in sums.items()}
  ranked = artifacts.rank_prompts(seqs)
  # Equal counts: the lower mean loss first (stable sort keeps first appearance next).
  ranked = sorted(ranked, key=lambda kv: (-kv[1], mean_loss[kv[0]]))
  return SearchResult(log=log, losses=losses, start_losses=start_losses, accepted=accepted,
                      ranked=ranked, mean_loss=mean_loss, seconds=seconds)
