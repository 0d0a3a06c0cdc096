"""transformers image classifiers: ViTForImageClassification, ResNetForImageClassification.

``config.json``'s ``model_type`` ('vit', 'resnet') picks the family; the weights
map onto :mod:`jaxbench.models.vit` and :mod:`jaxbench.models.resnet`, the same
modules timm checkpoints use. Preprocessing comes from
``preprocessor_config.json``: ``ViTImageProcessor`` resizes both sides to the
input size (no crop: ``crop='squash'``); ``ConvNextImageProcessor`` (the one
``microsoft/resnet-50`` ships) resizes the short side to ``size / crop_pct`` and
center-crops ``size``.
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

from jaxbench.models import api, hub, layers, resnet, vit

MODEL_TYPES = ("vit", "resnet")


def preprocess_from_processor(pp: dict, size: int, default_mean, default_std) -> api.Preprocess:
  """Preprocess from a transformers ``preprocessor_config.json`` dict."""
  def side(v):
    if isinstance(v, dict):
      for k in ("shortest_edge", "height"):
        if k in v:
          return int(v[k])
      return size
    return int(v) if v is not None else size
  interp = layers.PIL_RESAMPLE.get(pp.get("resample", 2), "bilinear")
  mean = tuple(float(m) for m in pp.get("image_mean", default_mean))
  std = tuple(float(s) for s in pp.get("image_std", default_std))
  s = side(pp.get("size", size))
  kind = pp.get("image_processor_type", pp.get("feature_extractor_type", ""))
  if "crop_pct" in pp and "ConvNext" in kind:
    # ConvNext processor: below 384 px, resize short side to size / crop_pct, crop size.
    crop_pct = float(pp["crop_pct"] or 1.0)
    if s < 384:
      return api.Preprocess(size=s, resize=int(s / crop_pct), interpolation=interp,
                            crop="center", mean=mean, std=std)
    return api.Preprocess(size=s, resize=s, interpolation=interp, crop="squash", mean=mean,
                          std=std)
  if pp.get("do_center_crop"):
    c = side(pp.get("crop_size", s))
    return api.Preprocess(size=c, resize=s, interpolation=interp, crop="center", mean=mean,
                          std=std)
  return api.Preprocess(size=s, resize=s, interpolation=interp, crop="squash", mean=mean,
                        std=std)


def _resnet_src(path, shape):
  return layers.named_src(resnet.hf_key(path).rsplit(".", 1)[0], path[-1], shape)


def load(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
         precision: str = "float32", **unused) -> api.Model:
  """Loads a transformers ViT or ResNet image classifier (safetensors only)."""
  if unused:
    raise ValueError(f"unknown options for a transformers image classifier: {sorted(unused)}; "
                     "known: revision, precision")
  layers.check_precision(precision)
  files = hub.resolve(ref, ["config.json"], revision=revision,
                      optional=["preprocessor_config.json"])
  c = hub.read_json(files["config.json"])
  mtype = c.get("model_type")
  if mtype == "vit":
    cfg = vit.hf_config(c)
    module, src, size = vit.ViT(cfg), vit.hf_src, cfg.image_size
    ignore = lambda k: vit.hf_ignore(k)
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
  elif mtype == "resnet":
    cfg = resnet.hf_config(c)
    module, src, size = resnet.ResNet(cfg), _resnet_src, 224
    ignore = layers.bn_counter
    mean, std = api.IMAGENET_MEAN, api.IMAGENET_STD
  else:
    raise layers.UnknownArchitecture(
        f"{ref}: transformers model_type {mtype!r} is not an implemented image classifier; "
        f"known: {MODEL_TYPES} (and 'clip', 'siglip' as zero-shot models)")
  names = layers.safetensors_files(ref, revision, ["model.safetensors"], ("pytorch_model.bin",),
                                   layout="transformers")
  files.update(hub.resolve(ref, names, revision=revision))
  tensors = hub.load_safetensors([files[n] for n in names])
  shapes = layers.param_shapes(module, jnp.zeros((1, size, size, 3)))
  net = layers.pull(shapes, tensors, src, source=ref, ignore=ignore,
                    what=f"transformers {mtype} {c.get('architectures') or ''}")
  pp = hub.read_json(files["preprocessor_config.json"]) if "preprocessor_config.json" in files \
      else {}
  preprocess = preprocess_from_processor(pp, size, mean, std)
  if mtype == "vit" and preprocess.size != cfg.image_size:
    raise ValueError(f"{ref}: preprocessor size {preprocess.size} != ViT image_size "
                     f"{cfg.image_size}")
  prov = hub.provenance(ref, files, revision, layout=f"transformers-{mtype}")
  prov["architecture"] = (c.get("architectures") or [mtype])[0]
  return layers.supervised_model(module, net, preprocess, name=spec or f"hf:{ref}",
                                 num_classes=cfg.num_classes, provenance=prov,
                                 precision=precision)


def detect(model_type: str):
  def fn(files: list[str], ref: str) -> bool:
    return "config.json" in files and hub.config_json(ref).get("model_type") == model_type
  return fn

