"""Pieces every model family shares: inference BatchNorm, checked weight import, builders.

Weights are *pulled*, not pushed: a family builds its Flax module, asks JAX for
the parameter shapes (``jax.eval_shape``, no compute) and then, for every leaf,
names the checkpoint tensor it comes from and how it is laid out
(:class:`Src`). :func:`pull` fetches and converts each tensor and reports, in
one error, every tensor that is missing, has the wrong shape (expected and
found, in the checkpoint's own layout) or is left over. This keeps name maps
explicit and makes bad checkpoints fail with a message that names the tensor.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Iterable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import api, hub

# Model precisions and their parameter dtypes (matmul precision: jaxbench.precision).
PRECISIONS = {"float32": jnp.float32, "tf32": jnp.float32, "bfloat16": jnp.bfloat16}


class CheckpointMismatch(ValueError):
  """A checkpoint whose tensors do not fit the architecture its config names."""


class UnknownArchitecture(ValueError):
  """A config naming an architecture (or option) this package does not implement."""


# --- layers ------------------------------------------------------------------

class BatchNorm(nn.Module):
  """BatchNorm in inference mode with its statistics stored as parameters.

  Evaluation never updates statistics, so keeping them in ``params`` keeps the
  model one pytree (``{'net': ...}``) that jit shards like any other weight.
  Computes ``(x - mean) / sqrt(var + eps) * scale + bias`` as one affine map.
  """
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean = self.param("mean", nn.initializers.zeros, (c,))
    var = self.param("var", nn.initializers.ones, (c,))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    inv = f32(scale) * jax.lax.rsqrt(f32(var) + self.eps)
    shift = f32(bias) - f32(mean) * inv
    return x * inv.astype(x.dtype) + shift.astype(x.dtype)


def conv(features: int, kernel: int, stride: int = 1, padding: Optional[int] = None,
         groups: int = 1, bias: bool = False, name: Optional[str] = None) -> nn.Module:
  """A PyTorch-style Conv2d (symmetric explicit padding, default kernel // 2): ``nn.Conv``,
  or :class:`GroupedConv` (same parameters) when ``groups`` > 1."""
  p = kernel // 2 if padding is None else padding
  if groups > 1:
    return GroupedConv(features, kernel, stride, groups, bias, padding=p, name=name)
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((p, p), (p, p)), use_bias=bias, name=name)


class GroupedConv(nn.Module):
  """A grouped PyTorch Conv2d (symmetric padding) with ``nn.Conv``'s parameters
  (``kernel`` (k, k, I / groups, O), ``bias``; same initialisers), so name maps and
  seeded inits are unchanged. Groups of one input channel (depthwise, or with a
  channel multiplier) go through :func:`depthwise_conv` (see :data:`DEPTHWISE_IMPL`:
  XLA's CPU grouped convolution is 10-30x slower), other groupings through XLA's.

  Args (call): x: (N, H, W, I).

  Returns:
    (N, Ho, Wo, O) in ``x``'s dtype.
  """
  features: int
  kernel: int
  stride: int = 1
  groups: int = 1
  bias: bool = True
  padding: int = 0                   # each side; :func:`conv` passes PyTorch's default

  @nn.compact
  def __call__(self, x):
    c, k, pad = x.shape[-1], self.kernel, self.padding
    w = self.param("kernel", nn.initializers.lecun_normal(),
                   (k, k, c // self.groups, self.features))
    if self.groups == c:
      y = depthwise_conv(x, w, self.stride, pad)
    else:
      y = jax.lax.conv_general_dilated(x, w.astype(x.dtype), (self.stride, self.stride),
                                       ((pad, pad), (pad, pad)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=self.groups)
    if self.bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    return y


# How one-input-channel-per-group convolutions (depthwise, or with a channel multiplier
# as most of FastViT's) are computed: None = by backend ('shifted' on CPU, 'xla'
# elsewhere; cuDNN/TPU have depthwise kernels, the shifted form is untested for speed
# there). XLA's CPU grouped convolution is 10-30x slower than k * k shifted
# multiply-adds, which XLA fuses into one loop: ConvNeXt-Base's 7x7 convs at batch 32
# took 1.41 s vs 0.12 s at 56x56x128 (PyTorch 0.14 s), which made the tower 0.46x
# open_clip's speed. Both give the same sums up to fp32 rounding (tested).
DEPTHWISE_IMPL = None


def depthwise_conv(x, kernel, stride: int = 1, pad: int = 0, impl: Optional[str] = None):
  """A grouped convolution with one input channel per group.

  Args:
    x: (N, H, W, C).
    kernel: (k, k, 1, O), O a multiple of C (output o reads input channel o // (O // C),
      PyTorch's channel order for groups=C).
    stride, pad: symmetric zero padding ``pad`` on H and W, then stride.
    impl: 'shifted' (k * k shifted multiply-adds, summed in float32 as a
      convolution's accumulator) or 'xla' (``lax.conv_general_dilated``); None:
      :data:`DEPTHWISE_IMPL` or by backend.

  Returns:
    (N, Ho, Wo, O) in ``x``'s dtype, Ho = (H + 2 pad - k) // stride + 1.
  """
  impl = impl or DEPTHWISE_IMPL or ("shifted" if jax.default_backend() == "cpu" else "xla")
  k, c, o = kernel.shape[0], x.shape[-1], kernel.shape[-1]
  dtype = x.dtype
  if impl == "xla":
    return jax.lax.conv_general_dilated(x, kernel.astype(dtype), (stride, stride),
                                        ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=c)
  if o != c:
    x = jnp.repeat(x, o // c, axis=-1)
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(jnp.float32)
  kf = kernel.astype(dtype).astype(jnp.float32)
  ho = (x.shape[1] + 2 * pad - k) // stride + 1
  wo = (x.shape[2] + 2 * pad - k) // stride + 1
  out = None
  for i in range(k):
    for j in range(k):
      tap = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
      out = tap * kf[i, j, 0] if out is None else out + tap * kf[i, j, 0]
  return out.astype(dtype)


class DepthwiseConv(nn.Module):
  """A depthwise (one filter per channel) k x k convolution, stride 1, 'same' padding.

  Same parameters as ``nn.Conv(C, (k, k), padding=k // 2, feature_group_count=C)``
  (``kernel`` (k, k, 1, C), optional ``bias``, same initialisers), so name maps
  and seeded inits are unchanged; computed by :func:`depthwise_conv`.

  Args (call): x: (N, H, W, C).

  Returns:
    (N, H, W, C).
  """
  kernel_size: int
  use_bias: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    k, c = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c))
    dtype = self.dtype or x.dtype
    y = depthwise_conv(x.astype(dtype), kernel.astype(dtype), 1, k // 2)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (c,)).astype(dtype)
    return y


def gelu(x, approximate: bool = False):
  """GELU, ``x * Phi(x)``; exact (erf) unless ``approximate`` (PyTorch's 'tanh' form).

  The exact form is written as PyTorch computes it, ``x/2 * (1 + erf(x/sqrt(2)))``.
  ``jax.nn.gelu(approximate=False)`` uses ``erfc(-x/sqrt(2))`` instead, which XLA's
  CPU backend evaluates about 25% slower (ConvNeXt-Base's stage-1 GELU at batch 32:
  119 ms vs 93 ms; PyTorch 83 ms); both are within ~1e-6 of the float64 value
  (erfc is closer far in the negative tail, where GELU is ~0 anyway).
  """
  if approximate:
    return jax.nn.gelu(x, approximate=True)
  half = jnp.asarray(0.5, x.dtype)
  return x * (half + half * jax.lax.erf(x * jnp.asarray(np.sqrt(0.5), x.dtype)))


def avg_pool(x, k: int):
  """AvgPool2d(k) (stride k, no padding, floor) on NHWC."""
  return nn.avg_pool(x, (k, k), strides=(k, k), padding="VALID")


def max_pool_3x3_s2(x):
  """MaxPool2d(3, stride 2, padding 1): pads with -inf like PyTorch."""
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def adaptive_avg_pool(x, out_hw: tuple[int, int]):
  """PyTorch's adaptive_avg_pool2d on NHWC for static shapes (also upsamples).

  Output cell i averages input rows floor(i*H/out) .. ceil((i+1)*H/out) - 1.
  """
  def matrix(n_in, n_out):
    a = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
      s, e = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
      a[i, s:e] = 1.0 / (e - s)
    return jnp.asarray(a, x.dtype)
  h, w = x.shape[1:3]
  x = jnp.einsum("oh,nhwc->nowc", matrix(h, out_hw[0]), x)
  return jnp.einsum("pw,nowc->nopc", matrix(w, out_hw[1]), x)


class PatchEmbed(nn.Module):
  """ViT patch embedding: a (p x p, stride p) convolution computed as one matmul.

  Same parameters as ``nn.Conv(features, (p, p), strides=(p, p), padding='VALID')``
  (``kernel`` (p, p, C, features), optional ``bias``, same initialisers, so
  checkpoints and seeded inits are unchanged), but the image is cut into
  patches by a reshape and multiplied by the flattened kernel. The result is
  the same sum; what changes is the gradient with respect to the image (every
  attack's first backward step): a plain matmul instead of a strided
  transposed convolution over 3 input channels, which GPU convolution kernels
  handle poorly.

  Returns:
    (N, H // p, W // p, features), like the convolution.
  """
  features: int
  patch: int
  use_bias: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    p = self.patch
    n, h, w, c = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, c, self.features))
    dtype = self.dtype or x.dtype
    gh, gw = h // p, w // p
    x = x[:, :gh * p, :gw * p].astype(dtype)            # VALID: drop a partial border
    x = x.reshape(n, gh, p, gw, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, gh, gw, p * p * c)
    y = x @ kernel.astype(dtype).reshape(p * p * c, self.features)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
    return y


def _attention_cpu(q, k, v, *, is_causal: bool = False, mask=None):
  """``softmax(q k^T / sqrt(d)) v`` laid out for XLA's CPU backend.

  ``jax.nn.dot_product_attention``'s XLA path contracts (N, T, H, d) operands in
  place and normalises the (N, H, T, S) weights before the second product; on CPU
  that took 180 ms for ViT-B/16's shapes at batch 32 (PyTorch's fused kernel:
  28 ms), about a tenth of the tower. Here the operands go heads-major first
  (batched matmuls over contiguous (T, d) tiles), the scale is applied to q (T*d
  multiplies instead of T*S), and the division by the softmax sum waits until
  after the product with v (T*d divisions instead of T*S): 55 ms. The same
  function up to fp32 rounding (the max-shift cancels in the ratio; it is held
  constant for the gradient, which does not change it). Logits, exponentials and
  sums are float32 for low-precision inputs.

  Args:
    q: (N, T, H, d); k, v: (N, S, H, d).
    is_causal: mask keys after each query.
    mask: optional boolean, broadcastable to (N, H, T, S); False masks the key.

  Returns:
    (N, T, H, d) in q's dtype.
  """
  f32 = jnp.float32
  scale = np.float32(1.0 / np.sqrt(q.shape[-1]))
  qh = (q * scale.astype(q.dtype)).transpose(0, 2, 1, 3)
  kh, vh = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
  s = jnp.einsum("nhtd,nhsd->nhts", qh, kh, preferred_element_type=f32)
  if is_causal:
    t, sk = s.shape[-2:]
    causal = jnp.tril(jnp.ones((t, sk), bool))
    mask = causal if mask is None else jnp.logical_and(mask, causal)
  if mask is not None:
    s = jnp.where(mask, s, jnp.finfo(f32).min)     # like jax: a fully masked row is uniform
  e = jnp.exp(s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True)))
  o = jnp.einsum("nhts,nhsd->nhtd", e.astype(v.dtype), vh, preferred_element_type=f32)
  o = o / jnp.sum(e, axis=-1, keepdims=True)
  return o.astype(q.dtype).transpose(0, 2, 1, 3)


def attention(q, k, v, *, is_causal: bool = False, mask=None):
  """Multi-head attention ``softmax(q k^T / sqrt(d)) v`` on (N, L, heads, d) arrays.

  ``jax.nn.dot_product_attention`` with ``implementation=None`` always lowers to
  XLA's unfused einsum-softmax-einsum (jax 0.10: "defaults to XLA for now"), so
  on an NVIDIA GPU with bf16/fp16 inputs this asks for cuDNN's fused flash
  attention explicitly (forward and backward), and falls back to XLA when
  cuDNN refuses the shapes (head dim not a multiple of 8, ...) or is absent.
  float32 always takes the XLA path, whose dots follow the precision policy in
  force (:mod:`jaxbench.precision`). The softmax accumulates in float32 either way.
  On CPU the XLA path is :func:`_attention_cpu` (same function, a layout XLA's
  CPU backend runs about 3x faster).

  ``JAXBENCH_ATTENTION=xla`` in the environment forces the XLA path (to
  measure what the fused kernel brings).

  Args:
    q: (N, T, heads, d); k, v: (N, S, heads, d), one dtype.
    is_causal: mask keys after each query (text towers).
    mask: optional boolean, broadcastable to (N, heads, T, S); False masks the key.

  Returns:
    (N, T, heads, d) in the inputs' dtype.
  """
  if (q.dtype in (jnp.bfloat16, jnp.float16) and jax.default_backend() == "gpu"
      and os.environ.get("JAXBENCH_ATTENTION", "") != "xla"):
    try:
      return jax.nn.dot_product_attention(q, k, v, is_causal=is_causal, mask=mask,
                                          implementation="cudnn")
    except (NotImplementedError, ValueError, RuntimeError):
      pass   # shapes or a cuDNN version that the fused kernel does not take
  if jax.default_backend() == "cpu":
    return _attention_cpu(q, k, v, is_causal=is_causal, mask=mask)
  return jax.nn.dot_product_attention(q, k, v, is_causal=is_causal, mask=mask)


# --- checked weight import ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Src:
  """Where one Flax leaf comes from in a checkpoint.

  Attributes:
    key: the checkpoint tensor's name.
    fwd: checkpoint array -> Flax array.
    want: Flax shape -> the shape the checkpoint tensor must have.
  """
  key: str
  fwd: Callable[[np.ndarray], np.ndarray]
  want: Callable[[tuple], tuple]


def copy(key: str) -> Src:
  return Src(key, lambda a: a, lambda s: tuple(s))


def conv_kernel(key: str) -> Src:
  """PyTorch (O, I/groups, kh, kw) -> Flax (kh, kw, I/groups, O)."""
  return Src(key, lambda a: np.transpose(a, (2, 3, 1, 0)),
             lambda s: (s[3], s[2], s[0], s[1]))


def dense_kernel(key: str) -> Src:
  """PyTorch Linear (out, in) -> Flax Dense (in, out)."""
  return Src(key, lambda a: a.T, lambda s: (s[1], s[0]))


def reshaped(key: str, src_shape: Callable[[tuple], tuple]) -> Src:
  """Same elements, other shape (``(1, 1, D)`` class tokens -> ``(D,)``); :func:`pull`
  reshapes every leaf to its Flax shape."""
  return Src(key, lambda a: a, lambda s: tuple(src_shape(tuple(s))))


def chunk(key: str, i: int, n: int, *, transpose: bool) -> Src:
  """Part ``i`` of ``n`` along axis 0 (fused qkv projections).

  Args:
    transpose: the part is a Linear weight (out, in) going to a Dense kernel.
  """
  def fwd(a):
    part = np.split(a, n, axis=0)[i]
    return part.T if transpose else part

  def want(s):
    if transpose:
      return (n * s[1], s[0])
    return (n * s[0],) + tuple(s[1:])
  return Src(key, fwd, want)


def torch_name(path: Sequence[str]) -> tuple[str, str]:
  """Default Flax path -> (PyTorch module name, PyTorch leaf name).

  Flax submodules are named like PyTorch ones with indices after underscores
  (``layer1_0/downsample_1`` is ``layer1.0.downsample.1``); leaves map
  kernel/scale/mean/var/embedding to weight/weight/running_mean/running_var/weight.
  """
  mods = [re.sub(r"_(\d+)", r".\1", p) for p in path[:-1]]
  leaf = {"kernel": "weight", "scale": "weight", "mean": "running_mean",
          "var": "running_var", "embedding": "weight"}.get(path[-1], path[-1])
  return ".".join(mods), leaf


def default_src(path: Sequence[str], shape: tuple, prefix: str = "") -> Src:
  """Src for the common case (convs, linears, norms) via :func:`torch_name`."""
  mod, leaf = torch_name(path)
  key = prefix + (f"{mod}.{leaf}" if mod else leaf)
  if path[-1] == "kernel":
    return conv_kernel(key) if len(shape) == 4 else dense_kernel(key)
  return copy(key)


def named_src(module_key: str, leaf: str, shape: tuple) -> Src:
  """Src for one Flax leaf of the PyTorch module named ``module_key`` (verbatim)."""
  name = {"kernel": "weight", "scale": "weight", "mean": "running_mean",
          "var": "running_var", "embedding": "weight"}.get(leaf, leaf)
  key = f"{module_key}.{name}"
  if leaf == "kernel":
    return conv_kernel(key) if len(shape) == 4 else dense_kernel(key)
  return copy(key)


def param_shapes(module: nn.Module, *inputs, method=None) -> Any:
  """Parameter ShapeDtypeStructs of ``module`` for example inputs (no compute)."""
  kwargs = {"method": method} if method is not None else {}
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs, **kwargs))["params"]


def _path_str(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", k)) for k in path)


def pull(shapes: Any, tensors: dict[str, np.ndarray], src: Callable[[tuple, tuple], Src], *,
         source: str, what: str, ignore: Callable[[str], bool] = lambda k: False) -> dict:
  """Builds the Flax params for ``shapes`` from checkpoint ``tensors``.

  Args:
    shapes: pytree of ShapeDtypeStruct (from :func:`param_shapes`).
    tensors: checkpoint name -> NumPy array.
    src: (Flax path tuple, Flax shape) -> :class:`Src`.
    source: the repo or directory, for messages.
    what: the architecture, for messages ("timm resnet50").
    ignore: checkpoint names that are expected to go unused (BN counters, buffers).

  Returns:
    Nested dict of float32 NumPy arrays with the structure of ``shapes``.

  Raises:
    CheckpointMismatch: listing shape mismatches (tensor, expected, found),
      missing tensors (with expected shape) and unexpected tensors.
  """
  out: dict = {}
  used, missing, bad = set(), [], []
  for path, sds in jax.tree_util.tree_leaves_with_path(shapes):
    p = _path_str(path)
    s = src(p, tuple(sds.shape))
    want = tuple(s.want(tuple(sds.shape)))
    if s.key not in tensors:
      missing.append(f"{s.key} (expected shape {want})")
      continue
    a = tensors[s.key]
    used.add(s.key)
    if tuple(a.shape) != want:
      bad.append(f"{s.key}: expected {want}, found {tuple(a.shape)}")
      continue
    value = np.asarray(s.fwd(a)).reshape(sds.shape)
    node = out
    for k in p[:-1]:
      node = node.setdefault(k, {})
    node[p[-1]] = value
  unexpected = sorted(k for k in tensors if k not in used and not ignore(k))
  if missing or bad or unexpected:
    def show(items):
      head = items[:12]
      more = f" ... and {len(items) - 12} more" if len(items) > 12 else ""
      return "[" + "; ".join(head) + "]" + more
    parts = []
    if bad:
      parts.append(f"shape mismatches {show(bad)}")
    if missing:
      parts.append(f"missing tensors {show(missing)}")
    if unexpected:
      parts.append(f"unexpected tensors {show(unexpected)}")
    raise CheckpointMismatch(f"checkpoint {source!r} does not fit {what}: " + "; ".join(parts))
  return out


def bn_counter(key: str) -> bool:
  """BatchNorm's ``num_batches_tracked`` counters carry no weights."""
  return key.endswith("num_batches_tracked")


# --- files -----------------------------------------------------------------

def safetensors_files(ref: str, revision: Optional[str], names: Iterable[str],
                      pickles: Iterable[str], *, layout: str) -> list[str]:
  """The safetensors weight files of one layout (not any .safetensors in the repo).

  Repos often hold several layouts side by side (timm's CLIP repos have timm's
  ``model.safetensors`` *and* OpenCLIP's ``open_clip_model.safetensors``), so
  each layout asks for its own file names.

  Args:
    names: acceptable weight files in order of preference; ``X.safetensors``
      also accepts a sharded ``X.safetensors.index.json``.
    pickles: this layout's pickle names, for the converter hint.

  Raises:
    hub.WeightsError: only pickles (names the converter) or nothing.
  """
  files = hub.list_files(ref, revision)
  for n in names:
    if n in files:
      return [n]
    index = n + ".index.json"
    if index in files:
      path = hub.resolve(ref, [index], revision=revision)[index]
      return sorted(set(hub.read_json(path)["weight_map"].values()))
  found = [p for p in pickles if p in files or p + ".index.json" in files]
  if found:
    raise hub.WeightsError(
        f"{ref!r} holds {layout} weights only as pickle {found}; jaxbench never unpickles. "
        f"Convert once with `python -m jaxbench.convert --src {ref} --dst DIR` (needs torch) "
        "and load DIR.")
  raise hub.WeightsError(f"{ref!r} has no {layout} weights: expected one of {list(names)}; "
                         f"files: {files}")


# --- models ----------------------------------------------------------------

def check_precision(precision: str):
  if precision not in PRECISIONS:
    raise ValueError(f"unknown precision {precision!r}; known: {sorted(PRECISIONS)}")
  return PRECISIONS[precision]


def cast(params, precision: str):
  """Params as jnp arrays in the model's precision (params and compute share it)."""
  dtype = check_precision(precision)
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), params)


def supervised_model(module: nn.Module, net_params, preprocess: api.Preprocess, *, name: str,
                     num_classes: int, provenance: dict, precision: str = "float32",
                     label_space: Optional[str] = None) -> api.Model:
  """Wraps a classifier ``module(x_normalised) -> logits`` in the Model contract."""
  def net_logits(p, x):
    return module.apply({"params": p}, x)
  if label_space is None:
    label_space = "imagenet1k" if num_classes == 1000 else f"{num_classes}-way"
  return api.Model(name=name, params={"net": cast(net_params, precision)},
                   preprocess=preprocess, kind="supervised", label_space=label_space,
                   num_classes=num_classes, provenance=provenance, net_logits=net_logits,
                   precision=precision, arch=module)


def zeroshot_model(module: nn.Module, net_params, preprocess: api.Preprocess, *, name: str,
                   provenance: dict, tokenizer, context_length: int,
                   precision: str = "float32", score: str = "softmax") -> api.Model:
  """Wraps an image-text ``module`` with ``encode_image``/``encode_text`` methods."""
  def net_image(p, x):
    return module.apply({"params": p}, x, method="encode_image")

  def net_text(p, ids):
    return module.apply({"params": p}, ids, method="encode_text")
  return api.Model(name=name, params={"net": cast(net_params, precision)},
                   preprocess=preprocess, kind="zeroshot", provenance=provenance,
                   net_image=net_image, net_text=net_text, tokenizer=tokenizer,
                   context_length=context_length, precision=precision, score=score,
                   arch=module)


INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
