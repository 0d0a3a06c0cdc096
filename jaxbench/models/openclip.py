"""OpenCLIP checkpoint layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``.

Used by OpenCLIP's Hugging Face repos (``timm/resnet50_clip.openai``,
``timm/vit_base_patch32_clip_224.openai``, ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``).
The config's ``model_cfg`` is OpenCLIP's model config; two image towers are
implemented:

* ViT (``vision_cfg.layers`` an int): mapped onto :class:`jaxbench.models.clip.CLIP`
  (the same modules as the transformers layout, so both layouts share one tested
  transformer);
* ModifiedResNet (``vision_cfg.layers`` four ints): :mod:`jaxbench.models.clip_resnet`
  with CLIP's text tower (:class:`ClipResNet`).

Other layouts are dispatched from :func:`load`: timm image towers (ConvNeXt,
SigLIP/CLIP-style ViTs, EVA, PE-Core, ViTamin; Swin and layer-scale ViTs from
:mod:`openclip_swin`) to :mod:`openclip_timm`, ViT options
(CLIPA's pooling, layer scale, bidirectional text) to :mod:`openclip_vit`, Hugging
Face text towers (RoBERTa, XLM-R, mT5, NLLB) to :mod:`openclip_hf_text`; families
not built (CoCa with a RoBERTa text tower) are refused with the reason
from :mod:`openclip_refusals`. Anything else unknown is refused with a message
naming it, never silently ignored. ``quick_gelu`` comes from the config or the spec
(``openclip:timm/resnet50_clip.openai(quick_gelu=True)``): OpenAI's weights need
it, and not every hub config records it.

Tokenizer: the repo's own tokenizer files if any, else the config's
``hf_tokenizer_name``, else CLIP's BPE (the vocabulary shipped in
``jaxbench/resources``), always with OpenCLIP's conventions (zero padding).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxbench.models import (api, clip, hub, layers, openclip_hf_text, openclip_refusals,
                             openclip_timm, openclip_vit)
from jaxbench.models import openclip_swin  # noqa: F401 (registers the Swin/layer-scale ViT trunks)
from jaxbench.models import openclip_coca, openclip_common
from jaxbench.models.clip_resnet import ModifiedResNet, ModifiedResNetConfig
from jaxbench.models.openclip_common import (  # noqa: F401 (re-exported: openclip.CONFIG, ...)
    CONFIG, PICKLES, TOKENIZER_FILES, WEIGHTS, OpenClipTokenizer, _TEXT_DEFAULTS, _TEXT_KNOWN,
    _TOP_KNOWN, _VISION_DEFAULTS, _VISION_KNOWN, _block_src, _check_options, clip_bpe_tokenizer,
    preprocess_from_config)


def _eps(c: dict) -> float:
  return float((c.get("norm_kwargs") or {}).get("eps", 1e-5))


@dataclasses.dataclass(frozen=True)
class OpenClipSpec:
  """What an open_clip_config.json describes, in our terms."""
  tower: str                       # 'vit' or 'resnet'
  clip_cfg: clip.ClipConfig        # text tower (and the ViT image tower)
  resnet: Optional[ModifiedResNetConfig] = None


def parse_config(model_cfg: dict, *, quick_gelu: Optional[bool] = None,
                 source: str = "") -> OpenClipSpec:
  """OpenClipSpec from OpenCLIP's ``model_cfg``.

  Args:
    quick_gelu: overrides ``model_cfg['quick_gelu']`` when not None.

  Raises:
    UnknownArchitecture: options outside what is implemented, named.
  """
  openclip_refusals.check(model_cfg, source)     # refused families: named, with the reason
  top_unknown = sorted(set(model_cfg) - _TOP_KNOWN)
  if top_unknown or model_cfg.get("custom_text"):
    raise layers.UnknownArchitecture(
        f"{source}: {CONFIG} model_cfg has unsupported keys "
        f"{top_unknown or ['custom_text']}; supported: {sorted(_TOP_KNOWN - {'custom_text'})}")
  v, t = dict(model_cfg["vision_cfg"]), dict(model_cfg["text_cfg"])
  _check_options(v, _VISION_DEFAULTS, _VISION_KNOWN, "vision_cfg", source)
  _check_options(t, _TEXT_DEFAULTS, _TEXT_KNOWN, "text_cfg", source)
  if t.get("pool_type", "argmax") not in ("argmax", "eos"):
    raise layers.UnknownArchitecture(f"{source}: text_cfg.pool_type {t['pool_type']!r} is not "
                                     "implemented; known: 'argmax', 'eos'")
  qg = bool(model_cfg.get("quick_gelu", False)) if quick_gelu is None else bool(quick_gelu)
  act = "quick_gelu" if qg else "gelu"
  tw = int(t.get("width", 512))
  text = clip.TowerConfig(width=tw, layers=int(t.get("layers", 12)), heads=int(t.get("heads", 8)),
                          mlp_dim=int(tw * float(t.get("mlp_ratio", 4.0))), act=act, eps=_eps(t))
  size = v.get("image_size", 224)
  if isinstance(size, (list, tuple)):
    if len(set(size)) != 1:
      raise layers.UnknownArchitecture(f"{source}: non-square image_size {size} is not supported")
    size = size[0]
  embed = int(model_cfg["embed_dim"])
  head_width = int(v.get("head_width", 64))
  vl = v.get("layers", 12)
  argmax = t.get("pool_type", "argmax") == "argmax"
  common = dict(image_size=int(size), vocab_size=int(t.get("vocab_size", 49408)),
                context_length=int(t.get("context_length", 77)), embed_dim=embed,
                eos_token_id=int(t.get("eos_id", 49407)) if not argmax else 49407,
                legacy_argmax_pool=argmax)
  if isinstance(vl, (list, tuple)):
    width = int(v.get("width", 64))
    resnet = ModifiedResNetConfig(layers=tuple(int(x) for x in vl), width=width,
                                  image_size=int(size), heads=width * 32 // head_width,
                                  output_dim=embed)
    # The ViT slot of ClipConfig is unused by ClipResNet; keep it minimal.
    cfg = clip.ClipConfig(vision=clip.TowerConfig(1, 0, 1, 1), text=text, patch_size=1, **common)
    return OpenClipSpec("resnet", cfg, resnet)
  vw = int(v.get("width", 768))
  vision = clip.TowerConfig(width=vw, layers=int(vl), heads=vw // head_width,
                            mlp_dim=int(vw * float(v.get("mlp_ratio", 4.0))), act=act, eps=_eps(v))
  cfg = clip.ClipConfig(vision=vision, text=text, patch_size=int(v.get("patch_size", 16)),
                        **common)
  return OpenClipSpec("vit", cfg)


class ClipResNet(clip.TextMethods, nn.Module):
  """CLIP with a ModifiedResNet image tower; same methods as :class:`clip.CLIP`."""
  cfg: clip.ClipConfig
  resnet: ModifiedResNetConfig

  def setup(self):
    self.visual = ModifiedResNet(self.resnet, name="visual")
    self.text_model = clip.TextTower(self.cfg, name="text_model")
    self.text_projection = nn.Dense(self.cfg.embed_dim, use_bias=False, name="text_projection")
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), ())

  def encode_image(self, x):
    return self.visual(x)

  def __call__(self, images, ids):
    return self.encode_image(images), self.encode_text(ids), self.logit_scale


# --- name maps ------------------------------------------------------------------

def _text_src(path: tuple, shape: tuple) -> layers.Src:
  """text_model/... of clip.TextTower -> OpenCLIP's top-level text names."""
  if path[0] == "token_embedding":
    return layers.copy("token_embedding.weight")
  if path[0] == "position_embedding":
    return layers.copy("positional_embedding")
  if path[0] == "final_layer_norm":
    return layers.named_src("ln_final", path[-1], shape)
  i = int(path[1].split("_")[1])       # encoder/layers_i/...
  return _block_src(path[2:], shape, f"transformer.resblocks.{i}.")


def _vit_src(path: tuple, shape: tuple) -> layers.Src:
  """vision_model/... of clip.VisionTower -> OpenCLIP's visual.* names."""
  head = path[0]
  if head == "patch_embedding":
    return layers.conv_kernel("visual.conv1.weight")
  if head == "class_embedding":
    return layers.copy("visual.class_embedding")
  if head == "position_embedding":
    return layers.copy("visual.positional_embedding")
  if head in ("pre_layrnorm", "post_layernorm"):
    name = "ln_pre" if head == "pre_layrnorm" else "ln_post"
    return layers.named_src("visual." + name, path[-1], shape)
  i = int(path[1].split("_")[1])
  return _block_src(path[2:], shape, f"visual.transformer.resblocks.{i}.")


def src(path: tuple, shape: tuple) -> layers.Src:
  """Our CLIP/ClipResNet param path -> OpenCLIP state-dict tensor."""
  top = path[0]
  if top == "logit_scale":
    return layers.copy("logit_scale")
  if top == "text_projection":
    return layers.copy("text_projection")       # used as x @ P: already (in, out)
  if top == "visual_projection":
    return layers.copy("visual.proj")
  if top == "text_model":
    return _text_src(path[1:], shape)
  if top == "vision_model":
    return _vit_src(path[1:], shape)
  if top == "visual":                          # ModifiedResNet: names match
    return layers.default_src(path[1:], shape, "visual.")
  raise KeyError(path)


def _ignore(key: str) -> bool:
  return layers.bn_counter(key) or key.endswith("attn_mask")


def params_from_openclip(tensors: dict, spec: OpenClipSpec, source: str = ""):
  """(module, Flax params) from an OpenCLIP state dict (NumPy)."""
  cfg = spec.clip_cfg
  img = jnp.zeros((1, cfg.image_size, cfg.image_size, 3))
  ids = jnp.zeros((1, cfg.context_length), jnp.int32)
  module = clip.CLIP(cfg) if spec.tower == "vit" else ClipResNet(cfg, spec.resnet)
  shapes = layers.param_shapes(module, img, ids)
  what = (f"OpenCLIP {spec.tower} (width {spec.resnet.width}, layers {spec.resnet.layers})"
          if spec.tower == "resnet" else
          f"OpenCLIP ViT (width {cfg.vision.width}, layers {cfg.vision.layers}, "
          f"patch {cfg.patch_size})")
  params = layers.pull(shapes, tensors, src, source=source, what=what, ignore=_ignore)
  return module, params


# --- loader -------------------------------------------------------------------

def load(ref: str, revision: Optional[str] = None, spec: Optional[str] = None,
         precision: str = "float32", quick_gelu: Optional[bool] = None, **unused) -> api.Model:
  """Loads an OpenCLIP-layout repo or directory as a zero-shot Model.

  Args:
    ref: Hugging Face repo id or local directory.
    revision: branch, tag or commit (hub repos).
    precision: 'float32' or 'bfloat16' (params and compute).
    quick_gelu: force QuickGELU on/off (OpenAI weights need it on).
  """
  if unused:
    raise ValueError(f"unknown options for an OpenCLIP model: {sorted(unused)}; "
                     "known: revision, precision, quick_gelu")
  layers.check_precision(precision)
  try:
    files = hub.resolve(ref, [CONFIG], revision=revision)
  except hub.WeightsError as e:
    try:
      pickled = any(p in hub.list_files(ref, revision) for p in PICKLES)
    except Exception:    # offline and not cached: the first message stands
      pickled = False
    if not pickled:
      raise
    # LAION's CoCa repos hold only the pickle: the converter can add open_clip's config.
    raise hub.WeightsError(f"{e}; {ref!r} holds only {list(PICKLES)}: convert it with "
                           f"`python -m jaxbench.convert --src {ref} --dst DIR "
                           "--openclip_config OPEN_CLIP_MODEL_NAME` and load DIR") from e
  config = hub.read_json(files[CONFIG])
  if "model_cfg" not in config:
    raise ValueError(f"{files[CONFIG]} has no 'model_cfg' (keys: {sorted(config)})")
  model_cfg = config["model_cfg"]
  openclip_refusals.check(model_cfg, ref)
  if openclip_hf_text.handles(model_cfg):        # Hugging Face text towers (RoBERTa, mT5, NLLB)
    return openclip_hf_text.load(ref, config, files, revision=revision, spec=spec,
                                 precision=precision, quick_gelu=quick_gelu)
  if openclip_timm.handles(model_cfg):           # timm image towers: their own module
    return openclip_timm.load(ref, config, files, revision=revision, spec=spec,
                              precision=precision, quick_gelu=quick_gelu)
  if openclip_vit.handles(model_cfg):            # ViT options (CLIPA, layer scale)
    return openclip_timm.load(ref, config, files, revision=revision, spec=spec,
                              precision=precision, quick_gelu=quick_gelu, family=openclip_vit)
  if openclip_coca.handles(model_cfg):           # CoCa: the contrastive towers only
    return openclip_coca.load(ref, config, files, revision=revision, spec=spec,
                              precision=precision, quick_gelu=quick_gelu)
  ocs = parse_config(model_cfg, quick_gelu=quick_gelu, source=ref)
  names = layers.safetensors_files(ref, revision, [WEIGHTS], PICKLES, layout="OpenCLIP")
  files.update(hub.resolve(ref, names, revision=revision))
  tensors = hub.load_safetensors([files[n] for n in names])
  module, net = params_from_openclip(tensors, ocs, source=ref)
  cfg = ocs.clip_cfg
  preprocess = preprocess_from_config(config.get("preprocess_cfg", {}), cfg.image_size)
  root, listing = openclip_common.tokenizer_files(ref, files, revision)
  tokenizer = OpenClipTokenizer(root, model_cfg["text_cfg"], cfg.context_length, listing)
  prov = hub.provenance(ref, files, revision, layout="openclip")
  prov.update(tokenizer=tokenizer.describe, architecture=f"openclip-{ocs.tower}",
              quick_gelu=cfg.text.act == "quick_gelu")
  return layers.zeroshot_model(module, net, preprocess, name=spec or f"openclip:{ref}",
                               provenance=prov, tokenizer=tokenizer,
                               context_length=cfg.context_length, precision=precision)


def detect(files: list[str], ref: str) -> bool:
  return CONFIG in files
