"""CoOp: gradients against PyTorch autograd, optimiser against torch.optim.SGD, training."""
import numpy as np
import optax
import pytest
import torch

import clip_auto_testlib as tl
from jaxbench import parallel
from jaxbench.zeroshot.learned import coop, heads, layout as layout_lib

CFG = tl.coop_config()


@pytest.fixture(scope="module")
def t():
  return tl.trained()


def _torch_loss_and_grad(ref, names, ctx, feats, labels):
  """CoOp as its authors do it: embed 'X X X X <name>.', overwrite the X embeddings."""
  from transformers import CLIPTokenizer
  tok = CLIPTokenizer.from_pretrained(tl.trained().model_dir)
  ids = tok([f"x x x x {n}." for n in names], padding=True, return_tensors="pt")["input_ids"]
  assert (ids[:, 1:5] == 343).all()              # four single 'x' tokens
  ctx_t = torch.tensor(ctx, requires_grad=True)

  def replace(module, inputs, out):
    out = out.clone()
    out[:, 1:5] = ctx_t if ctx_t.dim() == 3 else ctx_t.expand(out.shape[0], -1, -1)
    return out

  handle = ref.text_model.embeddings.token_embedding.register_forward_hook(replace)
  try:
    z = ref.get_text_features(input_ids=ids)
  finally:
    handle.remove()
  z = getattr(z, "pooler_output", z)
  z = z / z.norm(dim=-1, keepdim=True)
  logits = ref.logit_scale.exp() * torch.tensor(feats) @ z.T
  loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels, dtype=torch.long))
  loss.backward()
  return float(loss.detach()), ctx_t.grad.numpy()


@pytest.mark.parametrize("class_specific", [False, True])
def test_gradient_of_a_training_step_matches_pytorch(t, class_specific):
  """One plain SGD step (lr 1, no momentum, no decay) moves the context by -grad."""
  rng = np.random.default_rng(1)
  feats = rng.normal(size=(80, 16)).astype(np.float32)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  labels = rng.integers(0, 5, 80).astype(np.int32)
  layout = layout_lib.make_layout(t.model, tl.NAMES, 4, "{}.")
  ctx = 0.1 * rng.normal(size=((5,) if class_specific else ()) + (4, 32)).astype(np.float32)
  hp = coop.hyperparams(coop.CoopConfig(lr=1.0, momentum=0.0, weight_decay=0.0,
                                        warmup_epochs=0, epochs=100), 5)
  order = np.arange(80, dtype=np.int32).reshape(5, 16)
  weights = np.zeros((5, 16), np.float32)
  weights[0] = 1.0       # only the first step sees data; the others change nothing
  state = coop.optimizer(hp).init(ctx)
  scale = float(np.exp(np.asarray(t.model.params["net"]["logit_scale"])))
  new, _, losses, _ = coop.train_epoch(t.model.arch, t.model.params["net"], layout.ids,
                                       layout.eot, np.ones(5, bool), ctx, state, hp, feats,
                                       labels, order, weights, scale, None, mesh=None)
  grad = ctx - np.asarray(new)
  loss_t, grad_t = _torch_loss_and_grad(t.torch_ref, tl.NAMES, ctx, feats[:16], labels[:16])
  np.testing.assert_allclose(float(losses[0]), loss_t, rtol=1e-5)
  np.testing.assert_allclose(grad, grad_t, rtol=2e-3, atol=2e-4 * np.abs(grad_t).max())
  assert np.abs(grad_t).max() > 1e-2


def _schedule():
  cfg = coop.CoopConfig(lr=0.002, warmup_epochs=1, warmup_lr=1e-5, epochs=4,
                        momentum=0.9, weight_decay=5e-4)
  hp = coop.hyperparams(cfg, 10)
  ref = optax.join_schedules([optax.constant_schedule(1e-5),
                              optax.cosine_decay_schedule(0.002, 30)], [10])
  return hp, ref


def test_schedule_matches_optax_warmup_then_cosine():
  hp, ref = _schedule()
  for step in (0, 9, 10, 11, 25, 39, 40):
    np.testing.assert_allclose(float(coop.learning_rate(step, hp)), float(ref(step)),
                               rtol=1e-5)


def test_optimizer_matches_torch_sgd():
  # torch.optim.SGD with the same learning rates and gradients.
  hp, ref = _schedule()
  rng = np.random.default_rng(0)
  p0 = rng.normal(size=(4, 8)).astype(np.float32)
  grads = rng.normal(size=(12, 4, 8)).astype(np.float32)
  opt = coop.optimizer(hp)
  p, s = p0, opt.init(p0)
  pt = torch.tensor(p0, requires_grad=True)
  sgd = torch.optim.SGD([pt], lr=1.0, momentum=0.9, weight_decay=5e-4)
  for step, g in enumerate(grads):      # across the end of the warm-up (step 10)
    u, s = opt.update(g, s, p)
    p = optax.apply_updates(p, u)
    sgd.param_groups[0]["lr"] = float(ref(step))
    pt.grad = torch.tensor(g)
    sgd.step()
  np.testing.assert_allclose(np.asarray(p), pt.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_training_runs_every_step():
  res = tl.coop_trained()[3]
  assert res.steps == CFG.epochs * 5 and res.losses.shape == (res.steps,)


def test_training_raises_accuracy(t):
  _, feats, labels, res = tl.coop_trained()
  start = heads.context_head(t.model, res.init_ctx, tl.NAMES)
  learned = heads.context_head(t.model, res.ctx, tl.NAMES)
  acc0 = heads.accuracy(start, feats, labels)
  acc1 = heads.accuracy(learned, feats, labels)
  assert acc1 >= acc0 + 0.1, (acc0, acc1)


def test_initial_context_is_a_photo_of_a(t):
  # The initial context is 'a photo of a': its head equals that discrete prompt's.
  res = tl.coop_trained()[3]
  start = heads.context_head(t.model, res.init_ctx, tl.NAMES)
  same = heads.trigger_head(t.model, [tl.START], tl.NAMES, suffix="{}.",
                            logit_scale="model")
  np.testing.assert_allclose(start.weights, same.weights, atol=1e-5)


def test_training_is_deterministic(t):
  _, feats, labels, res = tl.coop_trained()
  again = coop.train(t.model, feats, labels, tl.NAMES, CFG)
  np.testing.assert_array_equal(again.ctx, res.ctx)


def test_train_refuses_bad_input(t):
  feats, labels = t.feats[:32], t.labels[:32]
  with pytest.raises(ValueError, match="batch_size 12 is not a multiple of the mesh's data axis"):
    coop.train(t.model, feats, labels, tl.NAMES, coop.CoopConfig(batch_size=12, epochs=2),
               mesh=parallel.make_mesh(8, 1))
  with pytest.raises(ValueError, match="coop init 'a photo of a' is 4 tokens"):
    coop.train(t.model, feats, labels, tl.NAMES, coop.CoopConfig(num_tokens=16, epochs=2))
  with pytest.raises(ValueError, match="longer than the model's context length 77"):
    coop.train(t.model, feats, labels, ["digit " * 74] * 5, coop.CoopConfig(epochs=2))


def test_config_refuses_warmup_past_the_end():
  with pytest.raises(ValueError, match="warmup_epochs 3 must be in"):
    coop.CoopConfig(epochs=3, warmup_epochs=3)
