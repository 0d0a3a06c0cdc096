"""Synthetic distribution shifts: ImageNet-C, ImageNet-P, Stylized-ImageNet, cue conflict.

The sections below are what ``configs/synthetic.py`` turns into datasets and
transforms (its ``plan``); the passes are the engine's.
"""
from jaxbench.engine.keys import Key
from jaxbench.suites.base import SUITES, Suite

SECTIONS = {
    "parts": Key("imagenet_c,imagenet_p,stylized",
                 "comma list of imagenet_c, imagenet_p, stylized, cue_conflict"),
    "imagenet_c": Key({
        "source": Key("disk", "disk | tfds | generated"),
        "root": Key("", "ImageNet-C folder ('' = data_root/imagenet-c)"),
        "tfds_dir": Key("", "TFDS data_dir of imagenet2012_corrupted"),
        "corruptions": Key("benchmark", "'benchmark' (15), 'all' (19) or a comma list"),
        "severities": Key("1,2,3,4,5", "comma list of severities"),
        "preprocess": Key("center_crop", "'center_crop' (hendrycks test.py) or "
                          "'resize_crop'"),
    }, "ImageNet-C"),
    "imagenet_p": Key({
        "source": Key("disk", "disk | generated"),
        "root": Key("", "ImageNet-P folder"),
        "perturbations": Key("all", "'all' or a comma list"),
        "difficulties": Key("1", "'1' or e.g. '1,2,3'"),
        "seed": Key(0, "generation seed (generated only)"),
        "max_images": Key(-1, "-1: every image (generated only)"),
    }, "ImageNet-P"),
    "stylized": Key({"root": Key("", "default: data_root/stylized_imagenet[/val]")},
                    "Stylized-ImageNet"),
    "cue_conflict": Key({"tfds_dir": Key("", "TFDS geirhos_conflict_stimuli")},
                        "shape bias"),
    "imagenet": Key({"root": Key("", "clean ImageNet val"),
                     "tfds_dir": Key("", "TFDS fallback of clean ImageNet val")},
                    "clean ImageNet val (relative mCE needs its error)"),
}


class Synthetic(Suite):
  name = "synthetic"
  sections = SECTIONS


SUITES.register("synthetic", Synthetic)
