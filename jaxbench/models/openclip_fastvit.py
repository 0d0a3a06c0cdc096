"""timm's FastViT MCi trunks (MobileCLIP-S*, MobileCLIP2-S*) in their reparameterised form.

MobileCLIP's image towers are timm ``fastvit_mci0`` .. ``fastvit_mci4``: a conv
stem of three MobileOne blocks, stages of RepMixer blocks (depthwise token
mixing) and, in the last stage(s), attention blocks after a conditional
positional encoding (RepCPE), then a final MobileOne conv with squeeze-excite,
global average pooling and timm's classifier (OpenCLIP's projection). MCi3/MCi4
have a fifth stage, LayerNorm2d instead of BatchNorm before attention and no
1x1 'scale' branch in the stem.

The multi-branch training-time blocks are linear up to their activation, so timm
``reparameterize()`` folds them into one convolution each. jaxbench builds only
that inference form (:class:`FastViT`: one conv with bias per MobileOne block,
large-kernel conv, RepMixer and RepCPE). Checkpoints written by open_clip hold
the training-time branches (open_clip never reparameterises), so :func:`fuse`
folds them at load time in NumPy with timm's arithmetic (BatchNorm folded into
each branch, 1x1 and 3x3 kernels zero-padded to the block's kernel, identity
branches as a centred one-hot kernel, RepMixer's ``id + gamma * (mixer - norm)``).
A module already stored as ``reparam_conv`` (a state dict of timm's
reparameterised model) is taken as it is. The ConvMlp's conv + BatchNorm and the
attention blocks' norm stay separate layers, as in timm's reparameterised model.

Layout: NHWC. Flax module names spell the timm module path with ``__`` for
``.`` (:func:`make_src`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import layers, openclip_common

BN_EPS = 1e-5          # torch.nn.BatchNorm2d's default, used by every FastViT BatchNorm
HEAD_DIM = 32          # timm fastvit Attention: head_dim=32 (heads = dim // 32)


@dataclasses.dataclass(frozen=True)
class FastViTCfg:
  """timm ``FastVit`` constructor arguments (the MCi variants' values).

  Attributes:
    layers: blocks per stage.
    dims: embed_dims per stage.
    mixers: 'repmixer' or 'attention' per stage.
    mlp_ratios: ConvMlp expansion per stage.
    se_downsamples: squeeze-excite in each stage's downsampling large-kernel conv.
    pos_embs: RepCPE (7x7) before the stage's blocks.
    downsamples: explicit downsample flags (a stage also downsamples when its width changes).
    attn_norm: 'batchnorm' (MCi0-2) or 'layernorm' (LayerNorm2d eps 1e-5, MCi3/4) before attention.
    stem_scale: the stem's MobileOne blocks have the 1x1 scale branch.
    lkc_act: GELU after the downsampling large-kernel conv (``lkc_use_act``).
    cls_ratio: final_conv width = dims[-1] * cls_ratio.
  """
  layers: tuple
  dims: tuple
  mixers: tuple
  mlp_ratios: tuple
  se_downsamples: tuple
  pos_embs: tuple
  downsamples: tuple = (False, True, True, True)
  attn_norm: str = "batchnorm"
  stem_scale: bool = True
  lkc_act: bool = True
  cls_ratio: float = 2.0
  repmixer_kernel: int = 3
  down_patch: int = 7

  @property
  def num_features(self) -> int:
    return int(self.dims[-1] * self.cls_ratio)

  def downsample(self, i: int) -> bool:
    prev = self.dims[max(i - 1, 0)]
    return bool(self.downsamples[i]) or prev != self.dims[i]


def _make_divisible(v: float, divisor: int) -> int:
  """timm ``make_divisible(v, divisor, round_limit=0.)`` (squeeze-excite widths)."""
  return max(divisor, int(v + divisor / 2) // divisor * divisor)


# --- the re-parameterisable convolutions, shared by the module and the fusion ------------

@dataclasses.dataclass(frozen=True)
class RepConv:
  """One convolution of the inference form and the training-time branches it folds.

  Attributes:
    prefix: timm module path (``stages.1.downsample.proj.0``).
    kind: 'mobileone', 'large' (ReparamLargeKernelConv), 'repmixer' or 'cpe'.
    in_chs, out_chs, kernel, stride, groups: the fused convolution.
    scale: a 1x1 'conv_scale' branch (mobileone).
    identity: a BatchNorm 'identity' branch (mobileone; in == out, stride 1).
    kxk: number of kxk 'conv_kxk' branches (mobileone).
  """
  prefix: str
  kind: str
  in_chs: int
  out_chs: int
  kernel: int
  stride: int = 1
  groups: int = 1
  scale: bool = False
  identity: bool = False
  kxk: int = 1


def _mobileone(prefix, in_chs, out_chs, k, stride=1, groups=1, scale=True, kxk=1):
  return RepConv(prefix, "mobileone", in_chs, out_chs, k, stride, groups,
                 scale=scale and k > 1, identity=in_chs == out_chs and stride == 1, kxk=kxk)


def rep_convs(c: FastViTCfg) -> Iterator[RepConv]:
  """Every fused convolution of the trunk, in timm's module order."""
  c0 = c.dims[0]
  yield _mobileone("stem.0", 3, c0, 3, 2, scale=c.stem_scale)
  yield _mobileone("stem.1", c0, c0, 3, 2, groups=c0, scale=c.stem_scale)
  yield _mobileone("stem.2", c0, c0, 1, scale=c.stem_scale)
  prev = c0
  for i, dim in enumerate(c.dims):
    if c.downsample(i):
      p = f"stages.{i}.downsample.proj"
      yield RepConv(p + ".0", "large", prev, dim, c.down_patch, 2, groups=prev)
      yield _mobileone(p + ".1", dim, dim, 1)
    if c.pos_embs[i]:
      yield RepConv(f"stages.{i}.pos_emb", "cpe", dim, dim, 7, groups=dim)
    if c.mixers[i] == "repmixer":
      for j in range(c.layers[i]):
        yield RepConv(f"stages.{i}.blocks.{j}.token_mixer", "repmixer", dim, dim,
                      c.repmixer_kernel, groups=dim)
    prev = dim
  yield _mobileone("final_conv", prev, c.num_features, 3, groups=prev)


# --- Flax modules --------------------------------------------------------------------

def _name(prefix: str) -> str:
  return prefix.replace(".", "__")


def _gelu(x):
  return jax.nn.gelu(x, approximate=False)


def _conv(features: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True,
          name: Optional[str] = None) -> nn.Module:
  """PyTorch Conv2d with timm create_conv2d's padding (:func:`layers.conv`)."""
  return layers.conv(features, kernel, stride, ((stride - 1) + (kernel - 1)) // 2, groups,
                     bias=bias, name=name)


class _Rep(nn.Module):
  """A fused convolution (timm ``reparam_conv``): weight + bias, timm's symmetric padding."""
  rc: RepConv

  @nn.compact
  def __call__(self, x):
    r = self.rc
    return _conv(r.out_chs, r.kernel, r.stride, r.groups, name="reparam_conv")(x)


class _SE(nn.Module):
  """timm SEModule: mean over H, W -> 1x1 -> ReLU -> 1x1 -> sigmoid gate."""
  rd: int

  @nn.compact
  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.Dense(x.shape[-1], name="fc2")(jax.nn.relu(nn.Dense(self.rd, name="fc1")(s)))
    return x * jax.nn.sigmoid(s)


class _ConvMlp(nn.Module):
  """timm fastvit ConvMlp: depthwise 7x7 conv + BatchNorm, 1x1 -> GELU -> 1x1."""
  hidden: int

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    y = _conv(d, 7, groups=d, bias=False, name="conv__conv")(x)
    y = layers.BatchNorm(eps=BN_EPS, name="conv__bn")(y)
    return nn.Dense(d, name="fc2")(_gelu(nn.Dense(self.hidden, name="fc1")(y)))


def _layer_scale(mod: nn.Module, name: str, d: int):
  return mod.param(name, nn.initializers.constant(1e-5), (d,))


class _AttentionBlock(nn.Module):
  """timm fastvit AttentionBlock: x + ls1 * attn(norm(x)); x + ls2 * mlp(x)."""
  norm: str
  hidden: int

  @nn.compact
  def __call__(self, x):
    n, h, w, d = x.shape
    if self.norm == "layernorm":                       # LayerNorm2d over channels
      y = nn.LayerNorm(epsilon=1e-5, name="norm", dtype=x.dtype)(x)
    else:
      y = layers.BatchNorm(eps=BN_EPS, name="norm")(x)
    y = y.reshape(n, h * w, d)                          # row-major tokens, as timm's flatten(2)
    q, k, v = jnp.split(nn.Dense(3 * d, use_bias=False, name="token_mixer__qkv")(y), 3, axis=-1)
    y = openclip_common.multi_head_attention(q, k, v, d // HEAD_DIM)
    y = nn.Dense(d, name="token_mixer__proj")(y).reshape(n, h, w, d)
    x = x + _layer_scale(self, "layer_scale_1", d).astype(x.dtype) * y
    y = _ConvMlp(self.hidden, name="mlp")(x)
    return x + _layer_scale(self, "layer_scale_2", d).astype(x.dtype) * y


class FastViT(nn.Module):
  """timm FastVit (reparameterised): (N, H, W, 3) -> (N, num_classes), or the pooled
  (N, num_features) final-conv features when ``num_classes`` is 0.

  H and W: any size (timm's padding; the total stride is 32, or 64 with five stages,
  and MobileCLIP feeds 256); the trunk has no position table (RepCPE is a convolution).
  """
  cfg: FastViTCfg
  num_classes: int = 0

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    reps = {r.prefix: r for r in rep_convs(c)}
    rep = lambda p: _Rep(reps[p], name=_name(p))
    for i in range(3):
      x = _gelu(rep(f"stem.{i}")(x))
    for i, dim in enumerate(c.dims):
      if c.downsample(i):
        p = f"stages.{i}.downsample.proj"
        x = rep(p + ".0")(x)
        if c.se_downsamples[i]:
          x = _SE(_make_divisible(dim * 0.25, 8), name=_name(p + ".0.se"))(x)
        if c.lkc_act:
          x = _gelu(x)
        x = _gelu(rep(p + ".1")(x))
      if c.pos_embs[i]:
        x = rep(f"stages.{i}.pos_emb")(x)
      hidden = int(dim * c.mlp_ratios[i])
      for j in range(c.layers[i]):
        b = f"stages.{i}.blocks.{j}"
        if c.mixers[i] == "repmixer":
          x = rep(b + ".token_mixer")(x)
          gamma = _layer_scale(self, _name(b + ".layer_scale"), dim).astype(x.dtype)
          x = x + gamma * _ConvMlp(hidden, name=_name(b + ".mlp"))(x)
        else:
          x = _AttentionBlock(c.attn_norm, hidden, name=_name(b))(x)
    x = rep("final_conv")(x)
    x = _gelu(_SE(_make_divisible(c.num_features / 16, 1), name="final_conv__se")(x))
    x = jnp.mean(x, axis=(1, 2))
    if self.num_classes:
      x = nn.Dense(self.num_classes, name="head__fc")(x)
    return x


# --- name map ------------------------------------------------------------------------

def _conv1x1_as_dense(key: str) -> layers.Src:
  """PyTorch 1x1 Conv2d weight (O, I, 1, 1) -> Flax Dense kernel (I, O)."""
  return layers.Src(key, lambda a: a[:, :, 0, 0].T, lambda s: (s[1], s[0], 1, 1))


def src(path: tuple, shape: tuple, prefix: str) -> layers.Src:
  """FastViT Flax leaf -> tensor of timm's *reparameterised* state dict under ``prefix``."""
  mods = ".".join(path[:-1]).replace("__", ".")
  leaf = path[-1]
  if "layer_scale" in leaf:                    # (D,) <- LayerScale2d gamma (D, 1, 1)
    key = prefix + ".".join(m for m in (mods, leaf.replace("__", ".")) if m) + ".gamma"
    return layers.reshaped(key, lambda s: s + (1, 1))
  if leaf == "kernel" and len(shape) == 2 and mods.rsplit(".", 1)[-1] in ("fc1", "fc2"):
    return _conv1x1_as_dense(f"{prefix}{mods}.weight")        # ConvMlp / SE 1x1 convs
  return layers.named_src(prefix + mods, leaf, shape)


# --- load-time re-parameterisation -----------------------------------------------------

class _Reader:
  """Reads training-time tensors by name and expected PyTorch shape.

  Collects every missing or mis-shaped tensor (named with both shapes) instead of
  stopping at the first; ``spec`` mode returns zeros and only records the names
  and shapes (what a config needs, for :func:`unfused_shapes`).
  """

  def __init__(self, tensors: dict, spec: bool = False):
    self.tensors, self.spec = tensors, spec
    self.used: dict[str, tuple] = {}
    self.missing: list[str] = []
    self.bad: list[str] = []

  def __call__(self, key: str, shape: tuple) -> np.ndarray:
    self.used[key] = tuple(shape)
    if self.spec:
      return np.zeros(shape, np.float32)
    if key not in self.tensors:
      self.missing.append(f"{key} (expected shape {tuple(shape)})")
      return np.zeros(shape, np.float32)
    a = np.asarray(self.tensors[key], np.float32)
    if a.shape != tuple(shape):
      self.bad.append(f"{key}: expected {tuple(shape)}, found {a.shape}")
      return np.zeros(shape, np.float32)
    return a


def _fuse_bn(get: Callable, kernel: np.ndarray, bn: str, ch: int):
  """timm ``_fuse_bn_tensor``: (kernel * gamma / std, beta - mean * gamma / std)."""
  gamma, beta = get(bn + ".weight", (ch,)), get(bn + ".bias", (ch,))
  mean, var = get(bn + ".running_mean", (ch,)), get(bn + ".running_var", (ch,))
  std = np.sqrt(var + np.float32(BN_EPS))
  t = (gamma / std).reshape(-1, 1, 1, 1)
  return kernel * t, beta - mean * gamma / std


def _id_kernel(ch: int, groups: int, k: int) -> np.ndarray:
  """The identity as a (ch, ch // groups, k, k) convolution kernel (centred one-hot)."""
  in_dim = ch // groups
  w = np.zeros((ch, in_dim, k, k), np.float32)
  w[np.arange(ch), np.arange(ch) % in_dim, k // 2, k // 2] = 1.0
  return w


def _conv_bn(get, p: str, out: int, in_g: int, k: int):
  return _fuse_bn(get, get(p + ".conv.weight", (out, in_g, k, k)), p + ".bn", out)


def _fuse_mobileone(get, r: RepConv):
  """timm ``MobileOneBlock._get_kernel_bias``: conv_kxk branches + padded 1x1 + identity."""
  in_g = r.in_chs // r.groups
  k_scale = b_scale = k_id = b_id = k_conv = b_conv = 0
  if r.scale:
    k_scale, b_scale = _conv_bn(get, r.prefix + ".conv_scale", r.out_chs, in_g, 1)
    pad = r.kernel // 2
    k_scale = np.pad(k_scale, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  if r.identity:
    k_id, b_id = _fuse_bn(get, _id_kernel(r.in_chs, r.groups, r.kernel), r.prefix + ".identity",
                          r.in_chs)
  for i in range(r.kxk):
    kk, bb = _conv_bn(get, f"{r.prefix}.conv_kxk.{i}", r.out_chs, in_g, r.kernel)
    k_conv, b_conv = k_conv + kk, b_conv + bb
  kernel = k_conv + k_scale + k_id
  bias = b_conv + b_scale + b_id
  if np.ndim(kernel) == 0:          # a block without branches (none in FastViT)
    kernel = np.zeros((r.out_chs, in_g, r.kernel, r.kernel), np.float32)
    bias = np.zeros((r.out_chs,), np.float32)
  return kernel, bias


def _fuse(get, r: RepConv):
  """(weight (O, I/groups, k, k), bias (O,)) of ``r``'s reparam_conv, as timm computes it."""
  if r.kind == "mobileone":
    return _fuse_mobileone(get, r)
  in_g = r.in_chs // r.groups
  if r.kind == "large":             # ReparamLargeKernelConv.get_kernel_bias (small kernel 3)
    k, b = _conv_bn(get, r.prefix + ".large_conv", r.out_chs, in_g, r.kernel)
    sk, sb = _conv_bn(get, r.prefix + ".small_conv", r.out_chs, in_g, 3)
    pad = (r.kernel - 3) // 2
    return k + np.pad(sk, ((0, 0), (0, 0), (pad, pad), (pad, pad))), b + sb
  if r.kind == "cpe":               # RepConditionalPosEnc.reparameterize
    w = get(r.prefix + ".pos_enc.weight", (r.out_chs, in_g, r.kernel, r.kernel))
    return _id_kernel(r.in_chs, r.groups, r.kernel) + w, get(r.prefix + ".pos_enc.bias",
                                                             (r.out_chs,))
  # RepMixer.reparameterize: id + gamma * (mixer - norm), gamma * (b_mixer - b_norm).
  d = r.in_chs
  mixer = dataclasses.replace(r, prefix=r.prefix + ".mixer", kind="mobileone", scale=True,
                              identity=True, kxk=1)
  norm = dataclasses.replace(mixer, prefix=r.prefix + ".norm", scale=False, kxk=0)
  wm, bm = _fuse_mobileone(get, mixer)
  wn, bn = _fuse_mobileone(get, norm)
  gamma = get(r.prefix + ".layer_scale.gamma", (d, 1, 1))
  w = _id_kernel(d, r.groups, r.kernel) + gamma[..., None] * (wm - wn)
  return w, gamma.reshape(d) * (bm - bn)


def fuse(tensors: dict, cfg: FastViTCfg, prefix: str, *, source: str, what: str) -> dict:
  """Folds open_clip's training-time FastViT branches into timm's ``reparam_conv`` tensors.

  Args:
    tensors: checkpoint name -> array (an OpenCLIP state dict).
    cfg: the trunk.
    prefix: the trunk's name prefix (``visual.trunk.``).
    source, what: for messages.

  Returns:
    A new dict: each re-parameterisable module's branch tensors (and BatchNorm
    counters) replaced by ``<module>.reparam_conv.weight`` (O, I/groups, k, k) and
    ``.bias`` (O,); modules already stored as ``reparam_conv`` and every other
    tensor are passed through (the name map then checks what is left over).

  Raises:
    CheckpointMismatch: a branch tensor missing or mis-shaped (named with the
      expected and found shapes).
  """
  get = _Reader(tensors)
  out = dict(tensors)
  for r in rep_convs(cfg):
    p = prefix + r.prefix
    if p + ".reparam_conv.weight" in tensors:
      continue
    w, b = _fuse(get, dataclasses.replace(r, prefix=p))
    out[p + ".reparam_conv.weight"], out[p + ".reparam_conv.bias"] = w, b
  if get.missing or get.bad:
    def show(items):             # as layers.pull lists them
      more = f" ... and {len(items) - 12} more" if len(items) > 12 else ""
      return "[" + "; ".join(items[:12]) + "]" + more
    parts = ([f"shape mismatches {show(get.bad)}"] if get.bad else []) + (
        [f"missing tensors {show(get.missing)}"] if get.missing else [])
    raise layers.CheckpointMismatch(f"checkpoint {source!r} does not fit {what} (training-time "
                                    f"branches to re-parameterise): " + "; ".join(parts))
  for k in get.used:
    out.pop(k, None)
    if k.endswith(".running_var"):
      out.pop(k[:-len("running_var")] + "num_batches_tracked", None)
  return out


def unfused_shapes(cfg: FastViTCfg, prefix: str) -> tuple[dict, set]:
  """(training-time tensor name -> PyTorch shape, the reparam_conv names they replace)."""
  get = _Reader({}, spec=True)
  fused = set()
  for r in rep_convs(cfg):
    p = prefix + r.prefix
    _fuse(get, dataclasses.replace(r, prefix=p))
    fused |= {p + ".reparam_conv.weight", p + ".reparam_conv.bias"}
  return get.used, fused


def reparameterise(tensors: dict, cfg: FastViTCfg, prefix: str = "") -> dict:
  """Only the fused ``reparam_conv`` tensors of ``tensors`` (for tests against timm)."""
  get = _Reader(tensors)
  out = {}
  for r in rep_convs(cfg):
    w, b = _fuse(get, dataclasses.replace(r, prefix=prefix + r.prefix))
    out[r.prefix + ".reparam_conv.weight"], out[r.prefix + ".reparam_conv.bias"] = w, b
  return out
