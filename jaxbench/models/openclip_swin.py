"""OpenCLIP image towers on timm's Swin and layer-scale ViT trunks.

Two trunk families that :mod:`jaxbench.models.openclip_timm` builds through its
family hook (:func:`openclip_timm.register_family`), with OpenCLIP's 'linear'
or 'mlp' head on the trunk's own pooling:

* ``swin``: timm's ``SwinTransformer`` (``swin_base_patch4_window7_224``): a
  4x4/4 patch conv + LayerNorm, four stages of window attention blocks; odd
  blocks shift the windows by half a window (``jnp.roll``) and mask attention
  between pixels that the roll brought together (timm's -100 mask); each
  window's attention adds a learned relative position bias table indexed by the
  pair's offset; stages 2-4 start with patch merging (2x2 neighbours
  concatenated in timm's order, LayerNorm, bias-free linear to twice the width);
  final LayerNorm then average pooling over the grid. A stage whose grid is no
  larger than the window uses one window of the grid's size and no shift (timm).
* ``vit_ls``: timm ViTs with layer scale in every residual branch and no
  ``fc_norm``, as in ``vit_medium_patch16_gap_256`` (no class token, learned
  positions, bias-free qkv, average pool after the final norm) and
  ``vit_relpos_medium_patch16_cls_224`` (class token, no absolute positions;
  every block's attention adds timm's ``RelPosMlp`` bias: an MLP of the
  log-spaced ('cr') relative coordinates, zero for the class token; token pool).

Flax module names follow timm's module paths (``layers_1/blocks_0/attn/qkv``
is ``layers.1.blocks.0.attn.qkv``), so the name map is
:func:`jaxbench.models.layers.default_src`; fused qkv weights stay fused.
Trunk hyper-parameters are timm's constructor arguments for the registered
name (:func:`openclip_timm.register_trunk`), so neither torch nor timm is needed.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.models import layers, openclip_common, openclip_timm


@dataclasses.dataclass(frozen=True)
class SwinCfg:
  """timm ``SwinTransformer`` constructor arguments (v1, NHWC, strict image size)."""
  image_size: int
  patch: int
  window: int
  embed_dim: int
  depths: tuple
  heads: tuple
  mlp_ratio: float = 4.0
  eps: float = 1e-5                  # torch.nn.LayerNorm's default (timm's Swin norm_layer)

  def grids(self) -> list[int]:
    """Each stage's grid side (patch grid, then halved by each patch merging)."""
    g = self.image_size // self.patch
    return [g // 2 ** i for i in range(len(self.depths))]

  def __post_init__(self):
    # timm pads grids that windows or merging do not divide; no registered Swin needs it.
    for i, g in enumerate(self.grids()):
      if self.image_size % self.patch or g % min(g, self.window) or \
          (i + 1 < len(self.depths) and g % 2):
        raise ValueError(f"Swin image_size {self.image_size} / patch {self.patch}: stage {i}'s "
                         f"{g}x{g} grid is not a whole number of {self.window}x{self.window} "
                         "windows (or of 2x2 merges); padded grids are not implemented")


@dataclasses.dataclass(frozen=True)
class LsViTCfg:
  """timm ViT with layer scale and no fc_norm (VisionTransformer or VisionTransformerRelPos)."""
  width: int
  depth: int
  heads: int
  patch: int
  image_size: int
  mlp_ratio: float = 4.0
  class_token: bool = False
  global_pool: str = "avg"           # 'avg' (over the patch tokens) or 'token'
  qkv_bias: bool = False
  pos_embed: bool = True             # learned absolute positions on the patch tokens
  rel_pos_dim: int = 0               # > 0: RelPosMlp ('cr' mode) of this hidden width
  eps: float = 1e-6


# --- shared pieces -----------------------------------------------------------------

def relative_index(h: int, w: int) -> np.ndarray:
  """(h*w, h*w) index into a ((2h-1)*(2w-1), ...) table of the offset between the query
  and key positions (timm's ``get_relative_position_index``, row-major 'ij' grid)."""
  coords = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).reshape(2, -1)
  rel = coords[:, :, None] - coords[:, None, :]
  return (rel[0] + h - 1) * (2 * w - 1) + (rel[1] + w - 1)


def _attend(q, k, v, bias):
  """softmax(q k^T / sqrt(d) + bias) v on (B, heads, N, d); bias broadcasts to
  (B, heads, N, N). Softmax in float32."""
  scale = q.shape[-1] ** -0.5
  logits = jnp.einsum("bhnd,bhmd->bhnm", q * scale, k)
  logits = logits.astype(jnp.float32) + bias
  return jnp.einsum("bhnm,bhmd->bhnd", jax.nn.softmax(logits, axis=-1).astype(v.dtype), v)


def _split_heads(qkv, heads: int):
  """(B, N, 3*C) fused projection -> q, k, v of (B, heads, N, C // heads)."""
  b, n, c3 = qkv.shape
  t = qkv.reshape(b, n, 3, heads, c3 // (3 * heads)).transpose(2, 0, 3, 1, 4)
  return t[0], t[1], t[2]


class Mlp(nn.Module):
  """timm ``Mlp``: fc1 -> exact GELU -> fc2."""
  hidden: int

  @nn.compact
  def __call__(self, x):
    y = nn.Dense(self.hidden, name="fc1", dtype=x.dtype)(x)
    return nn.Dense(x.shape[-1], name="fc2", dtype=x.dtype)(jax.nn.gelu(y, approximate=False))


# --- Swin ---------------------------------------------------------------------------

def shift_mask(grid: int, window: int, shift: int) -> np.ndarray:
  """(windows, window^2, window^2) additive mask of a shifted block: -100 between pixels
  of different regions (timm's ``get_attn_mask``; windows in row-major order)."""
  img = np.zeros((grid, grid), np.float32)
  cnt = 0
  for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
    for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
      img[hs, ws] = cnt
      cnt += 1
  g = grid // window
  win = img.reshape(g, window, g, window).transpose(0, 2, 1, 3).reshape(g * g, window ** 2)
  return np.where(win[:, None, :] != win[:, :, None], -100.0, 0.0).astype(np.float32)


class WindowAttention(nn.Module):
  """Multi-head attention inside each window with the relative position bias table."""
  heads: int
  window: int

  @nn.compact
  def __call__(self, x, mask):
    """Args: x (B*windows, window^2, C); mask None or (windows, window^2, window^2)."""
    n_win, area, c = x.shape
    table = self.param("relative_position_bias_table", nn.initializers.normal(0.02),
                       ((2 * self.window - 1) ** 2, self.heads))
    idx = relative_index(self.window, self.window).reshape(-1)
    bias = table.astype(jnp.float32)[idx].reshape(area, area, self.heads).transpose(2, 0, 1)
    q, k, v = _split_heads(nn.Dense(3 * c, name="qkv", dtype=x.dtype)(x), self.heads)
    if mask is None:
      o = _attend(q, k, v, bias[None])
    else:                                # (B, windows) order of window_partition
      w = mask.shape[0]
      rs = lambda t: t.reshape(n_win // w, w, *t.shape[1:])
      o = jax.vmap(lambda qq, kk, vv: _attend(qq, kk, vv, bias[None] + mask[:, None]))(
          rs(q), rs(k), rs(v)).reshape(n_win, self.heads, area, -1)
    o = o.transpose(0, 2, 1, 3).reshape(n_win, area, c)
    return nn.Dense(c, name="proj", dtype=x.dtype)(o)


class SwinBlock(nn.Module):
  """timm ``SwinTransformerBlock`` on (B, H, W, C)."""
  heads: int
  window: int
  shift: int
  mlp_ratio: float
  eps: float

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    ws, s = self.window, self.shift
    ln = lambda name: nn.LayerNorm(epsilon=self.eps, name=name, dtype=x.dtype)
    y = ln("norm1")(x)
    if s:
      y = jnp.roll(y, (-s, -s), axis=(1, 2))
    win = y.reshape(b, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    win = win.reshape(-1, ws * ws, c)
    mask = jnp.asarray(shift_mask(h, ws, s)) if s else None
    o = WindowAttention(self.heads, ws, name="attn")(win, mask)
    o = o.reshape(b, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
    if s:
      o = jnp.roll(o, (s, s), axis=(1, 2))
    x = x + o
    return x + Mlp(int(c * self.mlp_ratio), name="mlp")(ln("norm2")(x))


class PatchMerging(nn.Module):
  """2x2 neighbours -> 4C (timm's order: column offset, then row offset, then channel),
  LayerNorm, bias-free linear to ``out``."""
  out: int
  eps: float

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 4, 2, 5)
    x = x.reshape(b, h // 2, w // 2, 4 * c)
    x = nn.LayerNorm(epsilon=self.eps, name="norm", dtype=x.dtype)(x)
    return nn.Dense(self.out, use_bias=False, name="reduction", dtype=x.dtype)(x)


class _PatchEmbed(nn.Module):
  """timm ``PatchEmbed``: a p x p / p conv with a bias, then a LayerNorm if ``eps``; NHWC."""
  dim: int
  patch: int
  eps: float = 0.0

  @nn.compact
  def __call__(self, x):
    p = self.patch
    x = nn.Conv(self.dim, (p, p), strides=(p, p), padding="VALID", name="proj",
                dtype=x.dtype)(x)
    return nn.LayerNorm(epsilon=self.eps, name="norm", dtype=x.dtype)(x) if self.eps else x


class _SwinStage(nn.Module):
  dim: int
  depth: int
  heads: int
  window: int
  mlp_ratio: float
  eps: float
  downsample: bool

  @nn.compact
  def __call__(self, x):
    if self.downsample:
      x = PatchMerging(self.dim, self.eps, name="downsample")(x)
    grid = x.shape[1]
    # timm: a grid no larger than the window is one window, never shifted.
    ws = min(grid, self.window)
    shift = 0 if grid <= self.window else self.window // 2
    for i in range(self.depth):
      x = SwinBlock(self.heads, ws, shift if i % 2 else 0, self.mlp_ratio, self.eps,
                    name=f"blocks_{i}")(x)
    return x


class SwinTrunk(nn.Module):
  """timm ``SwinTransformer`` without its classifier: (N, S, S, 3) -> (N, features)."""
  cfg: SwinCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    openclip_common.check_image_size(x, c.image_size, "Swin")
    x = _PatchEmbed(c.embed_dim, c.patch, c.eps, name="patch_embed")(x)
    for i, (depth, heads) in enumerate(zip(c.depths, c.heads)):
      x = _SwinStage(c.embed_dim * 2 ** i, depth, heads, c.window, c.mlp_ratio, c.eps,
                     downsample=i > 0, name=f"layers_{i}")(x)
    x = nn.LayerNorm(epsilon=c.eps, name="norm", dtype=x.dtype)(x)
    return jnp.mean(x, axis=(1, 2))


# --- ViT with layer scale -------------------------------------------------------------

def relpos_log_coords(h: int, w: int) -> np.ndarray:
  """((2h-1), (2w-1), 2) relative coordinates, sign(x) * log(1 + |x|) (timm's 'cr' mode)."""
  ch = np.arange(-(h - 1), h, dtype=np.float32)
  cw = np.arange(-(w - 1), w, dtype=np.float32)
  t = np.stack(np.meshgrid(ch, cw, indexing="ij"), axis=-1)
  return np.sign(t) * np.log1p(np.abs(t))


class _ReluMlp(nn.Module):
  hidden: int
  out: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.out, name="fc2")(jax.nn.relu(nn.Dense(self.hidden, name="fc1")(x)))


class RelPosMlp(nn.Module):
  """timm ``RelPosMlp`` ('cr' mode): (heads, N, N) attention bias from an MLP of the log
  relative coordinates of a ``grid`` x ``grid`` patch grid; zero rows/columns for the
  ``prefix`` tokens."""
  heads: int
  hidden: int
  grid: int
  prefix: int

  @nn.compact
  def __call__(self, dtype):
    g = self.grid
    y = _ReluMlp(self.hidden, self.heads, name="mlp")(jnp.asarray(relpos_log_coords(g, g)))
    bias = y.reshape(-1, self.heads)[relative_index(g, g).reshape(-1)]   # y: (2g-1, 2g-1, heads)
    bias = bias.reshape(g * g, g * g, self.heads).transpose(2, 0, 1)
    p = self.prefix
    return jnp.pad(bias, ((0, 0), (p, 0), (p, 0))).astype(jnp.float32)


class _LsAttention(nn.Module):
  heads: int
  qkv_bias: bool
  rel_pos: tuple                      # () or (hidden, grid, prefix)

  @nn.compact
  def __call__(self, x):
    n, l, c = x.shape
    q, k, v = _split_heads(nn.Dense(3 * c, use_bias=self.qkv_bias, name="qkv",
                                    dtype=x.dtype)(x), self.heads)
    bias = jnp.zeros((), jnp.float32)
    if self.rel_pos:
      bias = RelPosMlp(self.heads, *self.rel_pos, name="rel_pos")(x.dtype)[None]
    o = _attend(q, k, v, bias).transpose(0, 2, 1, 3).reshape(n, l, c)
    return nn.Dense(c, name="proj", dtype=x.dtype)(o)


class _LayerScale(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x * self.param("gamma", nn.initializers.constant(1e-6), (x.shape[-1],)).astype(x.dtype)


class _LsBlock(nn.Module):
  cfg: LsViTCfg
  rel_pos: tuple

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    ln = lambda name: nn.LayerNorm(epsilon=c.eps, name=name, dtype=x.dtype)
    x = x + _LayerScale(name="ls1")(_LsAttention(c.heads, c.qkv_bias, self.rel_pos,
                                                 name="attn")(ln("norm1")(x)))
    return x + _LayerScale(name="ls2")(Mlp(int(c.width * c.mlp_ratio), name="mlp")(
        ln("norm2")(x)))


class LsViTTrunk(nn.Module):
  """timm ViT with layer scale, no fc_norm: (N, S, S, 3) -> (N, width)."""
  cfg: LsViTCfg

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    openclip_common.check_image_size(x, c.image_size, "ViT")
    x = _PatchEmbed(c.width, c.patch, name="patch_embed")(x)
    n, grid = x.shape[0], x.shape[1]
    x = x.reshape(n, -1, c.width)
    if c.pos_embed:     # the registered trunks with positions have no class token
      x = x + self.param("pos_embed", nn.initializers.normal(0.02),
                         (1, x.shape[1], c.width)).astype(x.dtype)
    if c.class_token:
      cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, c.width))
      x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (n, 1, c.width)), x], axis=1)
    rel = (c.rel_pos_dim, grid, int(c.class_token)) if c.rel_pos_dim else ()
    for i in range(c.depth):
      x = _LsBlock(c, rel, name=f"blocks_{i}")(x)
    x = nn.LayerNorm(epsilon=c.eps, name="norm", dtype=x.dtype)(x)
    if c.global_pool == "token":
      return x[:, 0]
    return jnp.mean(x[:, int(c.class_token):], axis=1)


# --- registration ----------------------------------------------------------------------

def trunk_src(path: tuple, shape: tuple, prefix: str) -> layers.Src:
  """Our trunk leaf -> timm tensor: the Flax path spells timm's module path."""
  return layers.default_src(path, shape, prefix)


def _register():
  openclip_timm.register_family(
      "swin", openclip_timm.TrunkFamily(SwinCfg, SwinTrunk, trunk_src, pools=("", "avg")))
  openclip_timm.register_family(
      "vit_ls", openclip_timm.TrunkFamily(LsViTCfg, LsViTTrunk, trunk_src, pools=("",)))
  # Values from timm 1.0's model definitions (swin_transformer.py, vision_transformer.py,
  # vision_transformer_relpos.py).
  for name, dim, depths, heads in (
      ("swin_tiny_patch4_window7_224", 96, (2, 2, 6, 2), (3, 6, 12, 24)),
      ("swin_small_patch4_window7_224", 96, (2, 2, 18, 2), (3, 6, 12, 24)),
      ("swin_base_patch4_window7_224", 128, (2, 2, 18, 2), (4, 8, 16, 32)),
      ("swin_large_patch4_window7_224", 192, (2, 2, 18, 2), (6, 12, 24, 48))):
    openclip_timm.register_trunk(name, "swin", image_size=224, patch=4, window=7,
                                 embed_dim=dim, depths=depths, heads=heads)
  openclip_timm.register_trunk("vit_medium_patch16_gap_256", "vit_ls", width=512, depth=12,
                               heads=8, patch=16, image_size=256, class_token=False,
                               global_pool="avg")
  openclip_timm.register_trunk("vit_relpos_medium_patch16_cls_224", "vit_ls", width=512,
                               depth=12, heads=8, patch=16, image_size=224, class_token=True,
                               global_pool="token", pos_embed=False, rel_pos_dim=256)


_register()
