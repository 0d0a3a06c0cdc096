"""The model zoo: checkpoint layouts beyond transformers' CLIP, and the registry names.

Importing this module (``jaxbench.models`` does, lazily) registers:

* layouts: ``openclip:REPO`` (OpenCLIP), ``timm:REPO`` (timm), and under ``hf:``
  the transformers ViT, ResNet and SigLIP layouts (picked by ``model_type``);
  a local directory is recognised by its files;
* names (:data:`NAMES`) for the RoZ models and common extras, each a spec string.

Revisions. Every name points at the repo's ``main``: this package was built
without network access, so no commit id could be checked against the hub, and a
pinned id that was never resolved would be a guess. What a run actually used is
recorded instead: every Model's provenance holds the resolved snapshot commit
(from the Hugging Face cache path) and the SHA-256 of each weight file. Pin a
run by adding ``revision='<commit>'`` to a spec
(``timm:timm/resnet50.tv_in1k(revision='...')``).

Preprocessing override: RoZ feeds every model CLIP's preprocessing
(:func:`override_preprocess` with ``'clip'``); ``config.preprocess`` selects it.
"""
from __future__ import annotations

from typing import Optional

from jaxbench import models
from jaxbench.models import api, hf_vision, hub, layers, openclip, siglip, timm_layout

# name -> (spec, what it is). OpenAI's CLIP weights need QuickGELU; OpenCLIP's
# hub configs for them do not all record it, so the spec says it.
NAMES = {
    # CLIP ResNets (OpenAI weights, OpenCLIP layout).
    "clip_rn50": ("openclip:timm/resnet50_clip.openai(quick_gelu=True)", "CLIP RN50"),
    "clip_rn101": ("openclip:timm/resnet101_clip.openai(quick_gelu=True)", "CLIP RN101"),
    "clip_rn50x4": ("openclip:timm/resnet50x4_clip.openai(quick_gelu=True)", "CLIP RN50x4"),
    "clip_rn50x16": ("openclip:timm/resnet50x16_clip.openai(quick_gelu=True)", "CLIP RN50x16"),
    "clip_rn50x64": ("openclip:timm/resnet50x64_clip.openai(quick_gelu=True)", "CLIP RN50x64"),
    # CLIP ViTs in the OpenCLIP layout (the transformers-layout ones are clip_vit_*).
    "openclip_vit_b32": ("openclip:timm/vit_base_patch32_clip_224.openai(quick_gelu=True)",
                         "CLIP ViT-B/32, OpenAI weights"),
    "openclip_vit_b16": ("openclip:timm/vit_base_patch16_clip_224.openai(quick_gelu=True)",
                         "CLIP ViT-B/16, OpenAI weights"),
    "openclip_laion_vit_b32": ("openclip:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                               "OpenCLIP ViT-B/32, LAION-2B"),
    # Supervised ImageNet baselines (timm layout; *.tv_in1k are torchvision's weights).
    "resnet18_tv": ("timm:timm/resnet18.tv_in1k", "ResNet-18, torchvision"),
    "resnet34_tv": ("timm:timm/resnet34.tv_in1k", "ResNet-34, torchvision"),
    "resnet50_tv": ("timm:timm/resnet50.tv_in1k", "ResNet-50, torchvision"),
    "resnet101_tv": ("timm:timm/resnet101.tv_in1k", "ResNet-101, torchvision"),
    "resnet152_tv": ("timm:timm/resnet152.tv_in1k", "ResNet-152, torchvision"),
    "vgg16_tv": ("timm:timm/vgg16.tv_in1k", "VGG-16, torchvision"),
    "vgg19_tv": ("timm:timm/vgg19.tv_in1k", "VGG-19, torchvision"),
    "vgg16_bn_tv": ("timm:timm/vgg16_bn.tv_in1k", "VGG-16-BN, torchvision"),
    "effnet_b3": ("timm:timm/efficientnet_b3.ra2_in1k", "EfficientNet-B3, timm RA2"),
    "vit_b32_384": ("timm:timm/vit_base_patch32_384.augreg_in21k_ft_in1k",
                    "ViT-B/32 @384, AugReg IN-21k -> IN-1k (RoZ's supervised ViT)"),
    "vit_b16": ("timm:timm/vit_base_patch16_224.augreg2_in21k_ft_in1k",
                "ViT-B/16 @224, AugReg2 IN-21k -> IN-1k"),
    # transformers layout.
    "hf_vit_b16": ("hf:google/vit-base-patch16-224", "ViT-B/16, Google (transformers)"),
    "hf_resnet50": ("hf:microsoft/resnet-50", "ResNet-50 v1.5, Microsoft (transformers)"),
    "siglip_b16": ("hf:google/siglip-base-patch16-224", "SigLIP B/16 @224 (sigmoid head)"),
    **{name: (f"openclip:{repo}", what) for name, (repo, what) in {
        # OpenCLIP-layout repos of open_clip's pretrained tags (hf_hub of
        # open_clip.get_pretrained_cfg). OpenCLIP ViT towers:
        "openclip_vit_h14_laion2b": ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                                     "OpenCLIP ViT-H/14, LAION-2B"),
        "openclip_vit_bigg14_laion2b": ("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
                                        "OpenCLIP ViT-bigG/14, LAION-2B"),
        "dfn2b_vit_l14": ("apple/DFN2B-CLIP-ViT-L-14(quick_gelu=True)", "DFN-2B ViT-L/14"),
        "dfn5b_vit_h14": ("apple/DFN5B-CLIP-ViT-H-14(quick_gelu=True)", "DFN-5B ViT-H/14"),
        "dfn5b_vit_h14_378": ("apple/DFN5B-CLIP-ViT-H-14-378(quick_gelu=True)",
                              "DFN-5B ViT-H/14 @378"),
        "metaclip_vit_l14": ("timm/vit_large_patch14_clip_224.metaclip_2pt5b(quick_gelu=True)",
                             "MetaCLIP 2.5B ViT-L/14"),
        "metaclip_vit_h14": ("timm/vit_huge_patch14_clip_224.metaclip_2pt5b(quick_gelu=True)",
                             "MetaCLIP 2.5B ViT-H/14"),
        # timm ConvNeXt trunks:
        "convnext_base_laion400m": ("laion/CLIP-convnext_base-laion400M-s13B-b51K",
                                    "OpenCLIP ConvNeXt-Base, LAION-400M"),
        "convnext_base_w_laion2b": ("laion/CLIP-convnext_base_w-laion2B-s13B-b82K-augreg",
                                    "OpenCLIP ConvNeXt-Base (wide), LAION-2B augreg"),
        "convnext_large_d_320_laion2b": (
            "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup",
            "OpenCLIP ConvNeXt-Large (d, 320px), LAION-2B soup"),
        "convnext_xxlarge_laion2b": ("laion/CLIP-convnext_xxlarge-laion2B-s34B-b82K-augreg-soup",
                                     "OpenCLIP ConvNeXt-XXLarge, LAION-2B soup"),
        # timm SigLIP/SigLIP2 ViTs with OpenCLIP's text tower (sigmoid scoring):
        "openclip_siglip_b16": ("timm/ViT-B-16-SigLIP", "SigLIP B/16 @224 (OpenCLIP layout)"),
        "openclip_siglip_l16_384": ("timm/ViT-L-16-SigLIP-384", "SigLIP L/16 @384"),
        "openclip_siglip_so400m14_384": ("timm/ViT-SO400M-14-SigLIP-384",
                                         "SigLIP So400m/14 @384"),
        "siglip2_b16": ("timm/ViT-B-16-SigLIP2", "SigLIP2 B/16 @224"),
        "siglip2_l16_256": ("timm/ViT-L-16-SigLIP2-256", "SigLIP2 L/16 @256"),
        "siglip2_so400m14": ("timm/ViT-SO400M-14-SigLIP2", "SigLIP2 So400m/14 @224"),
        "siglip2_so400m14_378": ("timm/ViT-SO400M-14-SigLIP2-378", "SigLIP2 So400m/14 @378"),
        # timm CLIP-style ViT (token pool, trunk classifier as projection):
        "mobileclip2_l14": ("timm/MobileCLIP2-L-14-OpenCLIP", "MobileCLIP2-L/14 (DFNDR-2B)"),
        "mobileclip_b": ("apple/MobileCLIP-B-OpenCLIP", "MobileCLIP-B (DataCompDR)"),
        "mobileclip2_b": ("timm/MobileCLIP2-B-OpenCLIP", "MobileCLIP2-B (DFNDR-2B)"),
        # timm FastViT MCi trunks (training-time branches re-parameterised at load):
        "mobileclip_s1": ("apple/MobileCLIP-S1-OpenCLIP", "MobileCLIP-S1 (DataCompDR)"),
        "mobileclip_s2": ("apple/MobileCLIP-S2-OpenCLIP", "MobileCLIP-S2 (DataCompDR)"),
        "mobileclip2_s0": ("timm/MobileCLIP2-S0-OpenCLIP", "MobileCLIP2-S0 (DFNDR-2B)"),
        "mobileclip2_s2": ("timm/MobileCLIP2-S2-OpenCLIP", "MobileCLIP2-S2 (DFNDR-2B)"),
        "mobileclip2_s3": ("timm/MobileCLIP2-S3-OpenCLIP", "MobileCLIP2-S3 (DFNDR-2B)"),
        "mobileclip2_s4": ("timm/MobileCLIP2-S4-OpenCLIP", "MobileCLIP2-S4 (DFNDR-2B)"),
        # timm Perception Encoder trunks:
        "pe_core_b16": ("timm/PE-Core-B-16", "PE-Core B/16"),
        "pe_core_l14_336": ("timm/PE-Core-L-14-336", "PE-Core L/14 @336"),
        "pe_core_bigg14_448": ("timm/PE-Core-bigG-14-448", "PE-Core bigG/14 @448"),
        # OpenCLIP ViT variants (CLIPA: average pooling, BERT-tokenised text):
        "clipa_vit_h14_336": ("UCSC-VLAA/ViT-H-14-CLIPA-336-datacomp1B",
                              "CLIPA ViT-H/14 @336, DataComp-1B"),
        # Hugging Face text towers (openclip_hf_text; the encoder's config.json and the
        # tokenizer come from text_cfg.hf_model_name / hf_tokenizer_name):
        "roberta_vit_b32_laion2b": ("laion/CLIP-ViT-B-32-roberta-base-laion2B-s12B-b32k"
                                    "(quick_gelu=True)", "OpenCLIP ViT-B/32 + RoBERTa-base text"),
        "xlm_roberta_base_vit_b32_laion5b": (
            "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k",
            "OpenCLIP ViT-B/32 + XLM-R-base text (multilingual), LAION-5B"),
        "xlm_roberta_large_vit_h14_laion5b": (
            "laion/CLIP-ViT-H-14-frozen-xlm-roberta-large-laion5B-s13B-b90k",
            "OpenCLIP ViT-H/14 + frozen XLM-R-large text (multilingual), LAION-5B"),
        "nllb_clip_base": ("visheratin/nllb-clip-base-oc",
                           "NLLB-CLIP base: ViT-B/32 + NLLB-200-600M encoder"),
        "nllb_clip_large": ("visheratin/nllb-clip-large-oc",
                            "NLLB-CLIP large: ViT-H/14 + NLLB-200-1.3B encoder"),
        "nllb_clip_base_siglip": ("visheratin/nllb-clip-base-siglip",
                                  "NLLB-CLIP SigLIP base: SigLIP B/16 @384 + NLLB-600M"),
        "nllb_clip_large_siglip": ("visheratin/nllb-clip-large-siglip",
                                   "NLLB-CLIP SigLIP large: So400m/14 @384 + NLLB-1.3B"),
        # timm EVA-02 trunks with CLIP's text tower:
        "eva02_b16": ("timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k", "EVA02-B/16"),
        "eva02_l14": ("timm/eva02_large_patch14_clip_224.merged2b_s4b_b131k", "EVA02-L/14"),
        "eva02_l14_336": ("timm/eva02_large_patch14_clip_336.merged2b_s6b_b61k",
                          "EVA02-L/14 @336"),
        "eva02_e14": ("timm/eva02_enormous_patch14_clip_224.laion2b_s4b_b115k",
                      "EVA02-E/14, LAION-2B"),
        "eva02_e14_plus": ("timm/eva02_enormous_patch14_plus_clip_224.laion2b_s9b_b144k",
                           "EVA02-E/14+, LAION-2B"),
    }.items()},
}

# RoZ's models (protocol §2): six CLIP backbones and the supervised baselines.
ROZ_CLIP = ("clip_rn50", "clip_rn101", "clip_rn50x4", "clip_rn50x16", "clip_vit_b32",
            "clip_vit_b16")
ROZ_SUPERVISED = ("resnet50_tv", "resnet101_tv", "resnet152_tv", "vgg16_tv", "effnet_b3",
                  "vit_b32_384")


def clip_preprocess(size: int, interpolation: str = "bicubic") -> api.Preprocess:
  """CLIP's eval transform at ``size``: short side to ``size``, center crop, CLIP mean/std."""
  return api.Preprocess(size=size, resize=size, interpolation=interpolation, crop="center",
                        mean=api.CLIP_MEAN, std=api.CLIP_STD)


def override_preprocess(model: api.Model, mode: Optional[str]) -> api.Model:
  """The model with another preprocessing (config.preprocess).

  Args:
    mode: '' or None or 'own': unchanged. 'clip': CLIP's transform (bicubic resize
      of the short side, center crop, CLIP mean/std) at the model's input size, as
      RoZ feeds its supervised baselines. 'clip_bilinear': the same with
      torchvision's default bilinear resize (RoZ's natural-shift scripts).

  Raises:
    ValueError: unknown mode, listing the known ones.
  """
  if not mode or mode == "own":
    return model
  modes = {"clip": "bicubic", "clip_bilinear": "bilinear"}
  if mode not in modes:
    raise ValueError(f"unknown preprocess override {mode!r}; known: '', 'own', "
                     f"{', '.join(repr(m) for m in modes)}")
  return model.with_preprocess(clip_preprocess(model.preprocess.size, modes[mode]))


def _unknown_hf(ref: str, revision=None, spec=None, **unused):
  mtype = hub.config_json(ref, revision).get("model_type")
  raise layers.UnknownArchitecture(
      f"{ref}: transformers model_type {mtype!r} is not implemented; known: clip, siglip, "
      f"{', '.join(hf_vision.MODEL_TYPES)}")


def _catch_all(files: list[str], ref: str) -> bool:
  return "config.json" in files and "pretrained_cfg" not in hub.config_json(ref)


def _register():
  for layout in (
      models.Layout("openclip", "openclip", openclip.detect, openclip.load, priority=20),
      models.Layout("timm", "timm", timm_layout.detect, timm_layout.load, priority=15),
      models.Layout("transformers-siglip", "hf", siglip.detect, siglip.load, priority=10),
      models.Layout("transformers-vit", "hf", hf_vision.detect("vit"), hf_vision.load,
                    priority=10),
      models.Layout("transformers-resnet", "hf", hf_vision.detect("resnet"), hf_vision.load,
                    priority=10),
      # Last resort for hf:/directories with an unknown model_type: a message that
      # lists the implemented ones instead of "no layout".
      models.Layout("transformers-unknown", "hf", _catch_all, _unknown_hf, priority=-100),
  ):
    models.register_layout(layout)
  for name, (spec, _) in NAMES.items():
    if name not in models.NAMES:
      models.NAMES.register(name, (lambda s=spec: s))


_register()
