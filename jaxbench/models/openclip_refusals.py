"""Which OpenCLIP model configs jaxbench refuses, and why (one reason per family).

:data:`REFUSED` lists, by name, every open_clip 3.3 config (``open_clip.list_models()``)
jaxbench does not build, each with its family key; :data:`REASONS` says why per
family. :func:`check` classifies a checkpoint's ``model_cfg`` into one of these
families and raises :class:`UnknownArchitecture` with the architecture, the
reason, the implemented families and the closest supported config. The test
``tests/models/test_openclip_families.py`` enumerates ``list_models()``: every
config must load or be listed here, so this list only shrinks.
"""
from __future__ import annotations

import difflib
from typing import Optional

from jaxbench.models import layers

IMPLEMENTED = (
    "OpenCLIP ViT (incl. quickgelu, -378/-336 sizes) + CLIP text",
    "ModifiedResNet (RN50..RN50x64) + CLIP text",
    "timm ConvNeXt trunk (tiny..xxlarge, _w/_320/_d) with linear/mlp head",
    "timm SigLIP/SigLIP2 ViT trunk (map pooling) + OpenCLIP bidirectional text tower",
    "timm CLIP-style ViT trunk (token pooling, trunk classifier as projection; MobileCLIP-B's "
    "conv-stem ViT)",
    "timm EVA-01/EVA-02 trunk (rotary embeddings, SwiGLU, sub-LN, post-norm) + CLIP text",
    "timm Perception Encoder (PE-Core) trunk (2-D rotary 'xy' grid, attention pooling)",
    "timm ViTamin trunk (MBConv stages + GeGLU ViT) with linear head",
    "OpenCLIP ViT without ln_pre / average pooling / final LN after pool / layer scale "
    "(CLIPA, ViT-M-16-alt) + bidirectional last-token text",
    "timm Swin trunk (shifted windows, relative position bias, patch merging) with linear head",
    "timm layer-scale ViT trunks (vit_medium_patch16_gap_256, vit_relpos_medium_patch16_cls_224"
    ": relative-position MLP bias) with linear head",
    "Hugging Face text towers (RoBERTa, XLM-R, mT5, NLLB/M2M100 encoders; mean/cls pooler, "
    "linear/mlp projection) with an OpenCLIP ViT or timm SigLIP image tower",
    "timm FastViT MCi0-MCi4 trunk (MobileCLIP-S*/MobileCLIP2-S*; training-time branches "
    "re-parameterised at load) + CLIP text",
    "CoCa contrastive path (OpenCLIP ViT with attentional pool, text tower with appended CLS; "
    "the captioning decoder is not run)",
)

# Configs that jaxbench accepts, for "closest supported" hints (a sample per family).
SUPPORTED_EXAMPLES = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-H-14", "ViT-bigG-14",
                      "ViT-H-14-378-quickgelu", "RN50", "RN50x64", "convnext_base_w",
                      "convnext_xxlarge", "ViT-B-16-SigLIP", "ViT-SO400M-14-SigLIP2",
                      "MobileCLIP2-L-14", "EVA02-B-16", "EVA02-L-14", "EVA01-g-14", "ViTamin-B",
                      "ViTamin-L-384", "ViT-H-14-CLIPA", "PE-Core-L-14-336", "MobileCLIP-B",
                      "swin_base_patch4_window7_224", "vit_medium_patch16_gap_256",
                      "vit_relpos_medium_patch16_cls_224",
                      "MobileCLIP2-S0", "MobileCLIP2-S4", "coca_ViT-B-32")

REASONS = {
    "coca": "CoCa with a Hugging Face (RoBERTa) text tower: CoCa's contrastive path is built "
            "for OpenCLIP's own text tower (openclip_coca); the RoBERTa encoder is not wired "
            "into it",
}

_BY_FAMILY = {
    "coca": ("coca_roberta-ViT-B-32",),
}

REFUSED: dict[str, str] = {name: REASONS[fam] for fam, names in _BY_FAMILY.items()
                           for name in names}
"""open_clip config name -> why jaxbench refuses it."""


def family(model_cfg: dict) -> Optional[str]:
  """The refused family ``model_cfg`` belongs to, or None."""
  t = model_cfg.get("text_cfg", {})
  if "multimodal_cfg" in model_cfg and t.get("hf_model_name"):
    return "coca"            # CoCa with OpenCLIP's own text tower: openclip_coca
  return None


def closest(name: str) -> str:
  m = difflib.get_close_matches(name, SUPPORTED_EXAMPLES, n=1, cutoff=0.0)
  return m[0] if m else SUPPORTED_EXAMPLES[0]


def check(model_cfg: dict, source: str):
  """Raises UnknownArchitecture naming the reason if ``model_cfg`` is a refused family."""
  fam = family(model_cfg)
  if fam is None:
    return
  arch = (model_cfg.get("vision_cfg", {}).get("timm_model_name")
          or model_cfg.get("text_cfg", {}).get("hf_model_name") or fam)
  same = _BY_FAMILY[fam]
  raise layers.UnknownArchitecture(
      f"{source}: OpenCLIP architecture {arch!r} ({fam}) is not implemented: {REASONS[fam]}. "
      f"open_clip configs of this family: {list(same)}. Implemented families: "
      f"{'; '.join(IMPLEMENTED)}. Closest supported config: {closest(same[0])!r}")
