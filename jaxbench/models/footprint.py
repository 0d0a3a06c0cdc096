"""A model's parameter count and memory per device, from its config alone (``--dry_run``).

No weights are read: the family's Flax module is built from the checkpoint's
config (``open_clip_config.json``, ``config.json``) and its parameters are
shaped with ``jax.eval_shape`` of the module's init, the same tree the loader
fills. Memory per device follows the run's precision (bfloat16 parameters take
2 bytes, float32/tf32 4) and its ``param_sharding``: 'replicate' keeps every
leaf whole on every device; 'fsdp' splits each leaf the rule of
:mod:`jaxbench.models.sharding` splits over the mesh's ``model`` axis, so a
split leaf costs 1/``model`` of its bytes per device (exact: the rule only
splits dimensions the axis divides).

Hub repositories are not contacted: their config is read from the local
Hugging Face cache, or the model is reported as not sized. Layouts without a
module builder here (trained heads, demo models, families added later) are
sized from the safetensors headers of their local weight files (checkpoint
tensors, which can differ from the loaded tree by buffers and fused
projections); the line says which.
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import registry
from jaxbench.models import hub, layers, sharding

GiB = float(1 << 30)
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class NotSized(ValueError):
  """A model whose parameters cannot be shaped without reading or fetching weights."""


@dataclasses.dataclass(frozen=True)
class Footprint:
  """What a model's parameters cost.

  Attributes:
    params: number of parameter elements.
    bytes_total: their bytes at the run's precision.
    bytes_per_device: bytes one device holds under the run's sharding.
    split_fraction: fraction of ``bytes_total`` in leaves split over the model axis.
    model_axis: size of the mesh's model axis the leaves are split over (1: replicated).
    dtype: the parameter dtype ('float32', 'bfloat16').
    source: how the shapes were obtained (for the dry-run line).
  """
  params: int
  bytes_total: int
  bytes_per_device: int
  split_fraction: float
  model_axis: int
  dtype: str
  source: str


def footprint(shapes: Any, *, dtype, model_axis: int = 1,
              min_size: int = sharding.DEFAULT_MIN_SIZE, source: str = "") -> Footprint:
  """Sizes a pytree of parameter shapes (ShapeDtypeStructs or arrays).

  Args:
    shapes: the parameter pytree; only leaf shapes are used.
    dtype: the parameter dtype at the run's precision (``jnp.bfloat16``, ...).
    model_axis: the mesh's model axis size when parameters are FSDP-sharded, 1 when
      replicated.
    min_size: the FSDP rule's smallest split leaf (:func:`sharding.leaf_spec`).
    source: recorded in the result.

  Returns:
    A :class:`Footprint`.
  """
  item = jnp.dtype(dtype).itemsize
  count = total = per_device = split = 0
  for leaf in jax.tree.leaves(shapes):
    shape = tuple(np.shape(leaf))
    n = int(np.prod(shape, dtype=np.int64))
    count += n
    total += n * item
    spec = sharding.leaf_spec(shape, model_axis, min_size=min_size)
    if any(p is not None for p in spec):
      per_device += n * item // model_axis
      split += n * item
    else:
      per_device += n * item
  return Footprint(count, total, per_device, split / max(total, 1), model_axis,
                   jnp.dtype(dtype).name, source)


# --- spec -> parameter shapes ----------------------------------------------------

def _config_path(ref: str, name: str, revision: Optional[str]) -> Optional[str]:
  """Local path of ``name`` in a directory, or in the HF cache for a hub repo (no network)."""
  if hub.is_local(ref):
    path = os.path.join(os.path.expanduser(ref), name)
    return path if os.path.isfile(path) else None
  import huggingface_hub as hf
  path = hf.try_to_load_from_cache(ref, name, revision=revision)
  return path if isinstance(path, str) else None


def _read_config(ref: str, name: str, revision: Optional[str]) -> dict:
  path = _config_path(ref, name, revision)
  if path is None:
    where = ("" if hub.is_local(ref) else
             " (hub repos are not contacted by a dry run: their config is read from the "
             "local Hugging Face cache; it is fetched at load time)")
    raise NotSized(f"{name} of {ref!r} not found{where}")
  return hub.read_json(path)


def _image_text(module, size: int, context: int):
  return layers.param_shapes(module, jnp.zeros((1, size, size, 3)),
                             jnp.zeros((1, context), jnp.int32))


def _openclip_shapes(ref: str, revision, quick_gelu=None, **_):
  """An OpenCLIP-layout checkpoint: the family openclip.load would build."""
  from jaxbench.models import openclip, openclip_refusals, openclip_timm, openclip_vit
  model_cfg = _read_config(ref, openclip.CONFIG, revision).get("model_cfg")
  if model_cfg is None:
    raise NotSized(f"{openclip.CONFIG} of {ref!r} has no 'model_cfg'")
  openclip_refusals.check(model_cfg, ref)
  for fam, cls in ((openclip_timm, "TimmClip"), (openclip_vit, "OcVitClip")):
    if fam.handles(model_cfg):
      cfg = fam.parse(model_cfg, quick_gelu=quick_gelu, source=ref)
      module = getattr(fam, cls)(cfg)
      what = (f"OpenCLIP timm {cfg.visual.family} trunk {cfg.visual.trunk_name}"
              if fam is openclip_timm else f"OpenCLIP ViT ({cfg.vision.pool} pool)")
      return _image_text(module, cfg.image_size, cfg.text.context_length), \
          f"eval_shape of {what}"
  if any(k in model_cfg for k in ("multimodal_cfg",)) or \
      model_cfg.get("text_cfg", {}).get("hf_model_name"):
    raise NotSized(f"{ref!r}: no module builder for this OpenCLIP family in the dry run")
  ocs = openclip.parse_config(model_cfg, quick_gelu=quick_gelu, source=ref)
  from jaxbench.models import clip
  module = clip.CLIP(ocs.clip_cfg) if ocs.tower == "vit" else \
      openclip.ClipResNet(ocs.clip_cfg, ocs.resnet)
  return _image_text(module, ocs.clip_cfg.image_size, ocs.clip_cfg.context_length), \
      f"eval_shape of OpenCLIP {ocs.tower}"


def _hf_shapes(ref: str, revision, **_):
  """A transformers-layout checkpoint, by its ``model_type``."""
  c = _read_config(ref, "config.json", revision)
  mtype = c.get("model_type")
  if mtype == "clip":
    from jaxbench.models import clip
    cfg = clip.config_from_transformers(c)
    return _image_text(clip.CLIP(cfg), cfg.image_size, cfg.context_length), \
        "eval_shape of CLIP"
  if mtype == "siglip":
    from jaxbench.models import siglip
    cfg = siglip.config_from_transformers(c)
    return _image_text(siglip.Siglip(cfg), cfg.image_size, cfg.context_length), \
        "eval_shape of Siglip"
  from jaxbench.models import hf_vision, resnet, vit
  if mtype == "vit":
    cfg = vit.hf_config(c)
    module, size = vit.ViT(cfg), cfg.image_size
  elif mtype == "resnet":
    module, size = resnet.ResNet(resnet.hf_config(c)), 224
  else:
    raise NotSized(f"{ref!r}: transformers model_type {mtype!r} is not implemented; known: "
                   f"clip, siglip, {', '.join(hf_vision.MODEL_TYPES)}")
  return layers.param_shapes(module, jnp.zeros((1, size, size, 3))), \
      f"eval_shape of transformers {mtype}"


def _timm_shapes(ref: str, revision, use_test_size: bool = False, **_):
  from jaxbench.models import timm_layout
  c = _read_config(ref, "config.json", revision)
  if "pretrained_cfg" not in c:
    raise NotSized(f"config.json of {ref!r} has no 'pretrained_cfg': not a timm checkpoint")
  fam, cfg, module = timm_layout.build(c, ref)
  size = cfg.image_size if fam.name == "vit" else \
      timm_layout.preprocess_from_timm(c["pretrained_cfg"], use_test_size).size
  return layers.param_shapes(module, jnp.zeros((1, size, size, 3))), \
      f"eval_shape of timm {c.get('architecture')}"


# Module builders by spec prefix (each layout's loader builds the same module).
BUILDERS: dict[str, Callable[..., tuple]] = {
    "openclip": _openclip_shapes, "hf": _hf_shapes, "timm": _timm_shapes}


def _header_shapes(paths: list[str]) -> dict[str, tuple]:
  """{tensor: (shape, safetensors dtype)} from safetensors headers (8-byte length + JSON)."""
  out = {}
  for path in paths:
    with open(path, "rb") as f:
      (n,) = struct.unpack("<Q", f.read(8))
      header = json.loads(f.read(n))
    for k, v in header.items():
      if k != "__metadata__":
        out[k] = (tuple(v["shape"]), v["dtype"])
  return out


def _checkpoint_shapes(ref: str, revision):
  """Float tensors of a local checkpoint's safetensors files (headers only)."""
  if not hub.is_local(ref):
    raise NotSized(f"{ref!r}: no module builder for this layout and no local weight files "
                   "to read headers from")
  names = hub.find_weight_files(ref, revision)
  root = os.path.expanduser(ref)
  found = _header_shapes([os.path.join(root, n) for n in names])
  return ({k: jax.ShapeDtypeStruct(s, jnp.float32) for k, (s, dt) in found.items()
           if dt.startswith(("F", "BF"))},
          "safetensors header (checkpoint tensors)")


def resolve(spec: str) -> tuple[str, str, dict]:
  """(layout prefix, ref, options) of a model spec, as :func:`jaxbench.models.load`
  would dispatch it, without reading weights or contacting the hub.

  Raises:
    NotSized: a directory in no known layout.
  """
  from jaxbench import models
  models.known()                      # registers the layouts and registry names
  name, _, kwargs = registry.parse(spec)
  if name in models.NAMES:
    target, _, tkwargs = registry.parse(models.NAMES.factory(name)())
    name, kwargs = target, {**tkwargs, **kwargs}
  prefix, sep, ref = name.partition(":")
  prefixes = {l.prefix for l in models.LAYOUTS.values()}
  if sep and prefix in prefixes:
    return prefix, ref, kwargs
  if os.path.isdir(os.path.expanduser(name)):
    files = hub.list_files(name)
    for layout in sorted(models.LAYOUTS.values(), key=lambda l: -l.priority):
      if layout.detect(files, name):
        return layout.prefix, name, kwargs
  raise NotSized(f"{spec!r} names no checkpoint directory or prefixed repo to size")


def model_shapes(spec: str, *, precision: str = "float32") -> tuple[Any, Any, str]:
  """(parameter shapes pytree, parameter dtype, how they were obtained) of a model spec
  at ``precision``; no weights read.

  Args:
    spec: a model spec (registry name, ``prefix:REPO``, directory).
    precision: the run's precision; 'float32' defers to the spec's own
      ``precision=`` option (as :func:`jaxbench.model_setup.load_model`).

  Raises:
    NotSized: the config is not available locally, or the family cannot be shaped.
    layers.UnknownArchitecture: a family jaxbench refuses.
  """
  prefix, ref, kwargs = resolve(spec)
  if precision == "float32":
    precision = str(kwargs.pop("precision", "float32"))
  kwargs.pop("precision", None)
  dtype = layers.check_precision(precision)
  revision = kwargs.pop("revision", None)
  if prefix in BUILDERS:
    shapes, source = BUILDERS[prefix](ref, revision, **kwargs)
  else:
    shapes, source = _checkpoint_shapes(ref, revision)
  return shapes, dtype, source


def model_footprint(spec: str, *, precision: str = "float32", model_axis: int = 1,
                    min_size: int = sharding.DEFAULT_MIN_SIZE) -> Footprint:
  """The :class:`Footprint` of a model spec (see :func:`model_shapes`) with its leaves
  split over ``model_axis`` devices by the FSDP rule (1: replicated)."""
  shapes, dtype, source = model_shapes(spec, precision=precision)
  return footprint(shapes, dtype=dtype, model_axis=model_axis, min_size=min_size,
                   source=source)


def device_memory() -> Optional[tuple[int, str]]:
  """(bytes_limit, device) of the first local device, or None where the backend does
  not report it (CPU)."""
  try:
    dev = jax.local_devices()[0]
    stats = dev.memory_stats() or {}
  except Exception:  # backends without memory_stats raise various errors
    return None
  limit = stats.get("bytes_limit")
  return (int(limit), str(dev)) if limit else None


def _fmt_count(n: int) -> str:
  return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,}"


def describe(specs, *, precision: str, param_sharding: str, model_axis: int,
             n_devices: int, memory: Optional[tuple[int, str]] = None) -> list[str]:
  """Dry-run lines: each model's parameter count and memory per device, with a warning
  line where the parameters alone exceed a device's memory.

  Args:
    specs: model specs.
    precision: config.precision.
    param_sharding: 'replicate' or 'fsdp'.
    model_axis: config.mesh.model.
    n_devices: devices in the mesh (for the suggested model axis).
    memory: (bytes_limit, device name) of one device, None if unknown.

  Returns:
    One line per model, plus warning lines.
  """
  axis = model_axis if param_sharding == "fsdp" else 1
  how = (f"fsdp over the mesh's model axis ({model_axis} devices)" if axis > 1 else
         "replicated on every device")
  lines = [f"parameters: precision {precision}, {how}"
           + (f"; device memory {memory[0] / GiB:.2f} GiB ({memory[1]})" if memory else "")]
  if model_axis < 1 or n_devices % model_axis:
    lines.append(f"  warning: config.mesh.model={model_axis} does not divide the {n_devices} "
                 "devices: the run will refuse this mesh")
  for spec in dict.fromkeys(specs):
    try:
      shapes, dtype, source = model_shapes(spec, precision=precision)
    except (NotSized, ValueError, OSError) as e:
      lines.append(f"  model={spec}: parameters not sized: {e}")
      continue
    fp = footprint(shapes, dtype=dtype, model_axis=axis, source=source)
    split = (f" ({100 * fp.split_fraction:.1f}% of the bytes split {axis} ways)"
             if axis > 1 else "")
    lines.append(f"  model={spec}: {fp.params:,} parameters ({_fmt_count(fp.params)}), "
                 f"{fp.bytes_total / GiB:.3f} GiB in {fp.dtype}, "
                 f"{fp.bytes_per_device / GiB:.3f} GiB per device{split} [{fp.source}]")
    if memory and fp.bytes_per_device > memory[0]:
      fits = [k for k in range(2, n_devices + 1) if n_devices % k == 0 and footprint(
          shapes, dtype=dtype, model_axis=k).bytes_per_device <= memory[0]]
      hint = (f"; config.param_sharding='fsdp' with config.mesh.model={fits[0]} fits them"
              if fits else f"; no model axis of these {n_devices} devices fits them")
      what = "replicated parameters" if axis == 1 else "parameters per device"
      lines.append(f"  warning: model={spec}: its {fp.bytes_per_device / GiB:.2f} GiB of "
                   f"{what} exceed a device's memory ({memory[0] / GiB:.2f} GiB, "
                   f"{memory[1]}){hint}")
  return lines

