"""timm checkpoint layout: ``config.json`` (architecture, pretrained_cfg) + ``model.safetensors``.

``config.json`` names the architecture (``resnet50``, ``vgg16``,
``efficientnet_b3``, ``vit_base_patch32_384``), the number of classes and, since
timm 1.0, the ``model_args`` the model was created with; ``pretrained_cfg``
holds the evaluation preprocessing. Families register their architectures in
:data:`FAMILIES`; an architecture no family implements is refused with the list
of known ones, and so is a ``model_args`` key a family does not understand.

Preprocessing follows timm's eval transform: resize the short side to
``floor(size / crop_pct)`` with ``interpolation``, center-crop ``size``
(``crop_mode='squash'`` resizes both sides instead), normalise with
``mean``/``std``. ``use_test_size=True`` takes ``test_input_size`` and
``test_crop_pct`` where the checkpoint gives them (timm's validate.py default).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

import jax.numpy as jnp

from jaxbench.models import api, efficientnet, hub, layers, resnet, vgg, vit


@dataclasses.dataclass(frozen=True)
class Family:
  name: str
  known: tuple[str, ...]                       # architecture names (or patterns), for messages
  matches: Callable[[str], bool]
  config: Callable[[str, dict, int, dict], Any]  # (arch, model_args, num_classes, config.json)
  module: Callable[[Any], Any]                 # config -> Flax module
  src: Callable[[Any], Callable]               # config -> (path, shape) -> Src
  args: frozenset


FAMILIES = (
    Family("resnet", resnet.TIMM_ARCHS, lambda a: a in resnet.TIMM_ARCHS,
           lambda a, args, n, c: resnet.timm_config(a, args, n), resnet.ResNet,
           lambda cfg: layers.default_src, frozenset(resnet.TIMM_ARGS)),
    Family("vgg", vgg.TIMM_ARCHS, lambda a: a in vgg.TIMM_ARCHS,
           lambda a, args, n, c: vgg.timm_config(a, args, n), vgg.VGG,
           lambda cfg: (lambda p, s: layers.default_src(vgg.timm_key(p), s)),
           frozenset(vgg.TIMM_ARGS)),
    Family("efficientnet", efficientnet.TIMM_ARCHS, lambda a: a in efficientnet.TIMM_ARCHS,
           lambda a, args, n, c: efficientnet.timm_config(a, args, n), efficientnet.EfficientNet,
           lambda cfg: layers.default_src, frozenset(efficientnet.TIMM_ARGS)),
    Family("vit", vit.TIMM_ARCHS, vit.timm_known,
           lambda a, args, n, c: vit.timm_config(a, args, n, c.get("global_pool")), vit.ViT,
           vit.timm_src, frozenset(vit.TIMM_ARGS)),
)


def known_architectures() -> list[str]:
  return [a for f in FAMILIES for a in f.known]


def family_for(arch: str, source: str = "") -> Family:
  for f in FAMILIES:
    if f.matches(arch):
      return f
  raise layers.UnknownArchitecture(
      f"{source}: timm architecture {arch!r} is not implemented; known: "
      f"{', '.join(known_architectures())}")


def preprocess_from_timm(pc: dict, use_test_size: bool = False) -> api.Preprocess:
  """timm ``pretrained_cfg`` -> Preprocess (timm's eval transform)."""
  size = pc.get("input_size", (3, 224, 224))
  crop_pct = pc.get("crop_pct", 0.875)
  if use_test_size:
    size = pc.get("test_input_size") or size
    crop_pct = pc.get("test_crop_pct") or crop_pct
  if size[1] != size[2]:
    raise ValueError(f"timm input_size {size} is not square; jaxbench evaluates square crops")
  side = int(size[1])
  interp = pc.get("interpolation", "bilinear")
  if interp not in layers.INTERPOLATIONS:
    raise ValueError(f"timm interpolation {interp!r} unknown; known: {layers.INTERPOLATIONS}")
  mode = pc.get("crop_mode", "center")
  return api.Preprocess(size=side, resize=int(math.floor(side / crop_pct)), interpolation=interp,
                        crop="center" if mode == "center" else mode,
                        mean=tuple(float(m) for m in pc.get("mean", api.IMAGENET_MEAN)),
                        std=tuple(float(s) for s in pc.get("std", api.IMAGENET_STD)))


def build(config: dict, source: str = ""):
  """(family, arch config, Flax module) for a timm config.json dict."""
  arch = config.get("architecture")
  if not arch:
    raise ValueError(f"{source}: config.json has no 'architecture' (keys: {sorted(config)})")
  fam = family_for(arch, source)
  args = dict(config.get("model_args") or {})
  unknown = sorted(set(args) - fam.args)
  if unknown:
    raise layers.UnknownArchitecture(
        f"{source}: timm {arch} model_args {unknown} are not implemented; known: "
        f"{sorted(fam.args)}")
  if int(args.get("in_chans", 3)) != 3:
    raise layers.UnknownArchitecture(f"{source}: in_chans={args['in_chans']}; only RGB (3)")
  pool = args.get("global_pool", config.get("global_pool", "avg"))
  if fam.name != "vit" and pool != "avg":
    raise layers.UnknownArchitecture(f"{source}: timm {arch} global_pool={pool!r} is not "
                                     "implemented; known: 'avg'")
  num_classes = int(args.get("num_classes", config.get("num_classes", 1000)))
  cfg = fam.config(arch, args, num_classes, config)
  return fam, cfg, fam.module(cfg)


def params_from_timm(tensors: dict, config: dict, size: int, source: str = ""):
  """(module, Flax params) from a timm state dict and config.json."""
  fam, cfg, module = build(config, source)
  if fam.name == "vit":
    size = cfg.image_size
  shapes = layers.param_shapes(module, jnp.zeros((1, size, size, 3), jnp.float32))
  params = layers.pull(shapes, tensors, fam.src(cfg), source=source,
                       what=f"timm {config['architecture']}", ignore=layers.bn_counter)
  return module, cfg, params


def load(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
         precision: str = "float32", use_test_size: bool = False, **unused) -> api.Model:
  """Loads a timm-layout repo or directory as a supervised Model.

  Args:
    ref: Hugging Face repo id (``timm/resnet50.tv_in1k``) or local directory.
    precision: 'float32' or 'bfloat16'.
    use_test_size: preprocess at ``test_input_size``/``test_crop_pct``.
  """
  if unused:
    raise ValueError(f"unknown options for a timm model: {sorted(unused)}; known: revision, "
                     "precision, use_test_size")
  layers.check_precision(precision)
  files = hub.resolve(ref, ["config.json"], revision=revision)
  config = hub.read_json(files["config.json"])
  if "pretrained_cfg" not in config:
    raise ValueError(f"{files['config.json']} has no 'pretrained_cfg': not a timm checkpoint")
  build(config, ref)                      # refuse unknown architectures before reading weights
  names = layers.safetensors_files(ref, revision, ["model.safetensors"],
                                   ("pytorch_model.bin",), layout="timm")
  files.update(hub.resolve(ref, names, revision=revision))
  tensors = hub.load_safetensors([files[n] for n in names])
  preprocess = preprocess_from_timm(config["pretrained_cfg"], use_test_size)
  module, cfg, net = params_from_timm(tensors, config, preprocess.size, source=ref)
  prov = hub.provenance(ref, files, revision, layout="timm")
  prov["architecture"] = config["architecture"]
  return layers.supervised_model(module, net, preprocess, name=spec or f"timm:{ref}",
                                 num_classes=getattr(cfg, "num_classes", 0), provenance=prov,
                                 precision=precision)


def detect(files: list[str], ref: str) -> bool:
  if "config.json" not in files:
    return False
  c = hub.config_json(ref)
  return "pretrained_cfg" in c and "architecture" in c
