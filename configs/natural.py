"""Natural distribution shifts (RoZ, after Taori et al.): the seven sets and their controls.

    python -m jaxbench.main --config=configs/natural.py --workdir=runs/natural \
      --config.data_root=/data --config.models="('clip_vit_b32',)"

Each set is found under ``config.data_root`` by its official folder name
(imagenet/val, imagenetv2-matched-frequency-format-val, imagenet-r, sketch,
imagenet-a, objectnet-1.0, imagenet_vid_ytbb_robust/{imagenet-vid-robust,
ytbb-robust}); a spec can also say where its data is, e.g.
``"imagenet_r(root='/elsewhere/imagenet-r')"`` or ``"imagenet_r(tfds_dir='/tfds')"``.
Select sets with ``--config.datasets="('imagenet_r', 'objectnet')"``.

Config args (``--config=configs/natural.py:ARGS``, comma-separated):
  roz         RoZ's zero-shot protocol: logit scale 100, CLIP preprocessing.
  all_v2      all three ImageNetV2 variants instead of matched-frequency only.
  no_controls the seven shifted sets only.
"""
from jaxbench import configs

NATURAL = ("imagenet_v2(variant='matched-frequency')", "imagenet_r", "objectnet",
           "imagenet_sketch", "imagenet_a", "imagenet_vid_robust", "ytbb_robust")
V2_ALL = ("imagenet_v2(variant='matched-frequency')", "imagenet_v2(variant='threshold-0.7')",
          "imagenet_v2(variant='top-images')")
# In-distribution references for effective robustness: ImageNet val, and val
# restricted to (and scored in the label space of) each class-subset set.
CONTROLS = ("imagenet", "imagenet_val_on_r_classes", "imagenet_val_on_a_classes",
            "imagenet_val_on_objectnet_classes", "imagenet_val_on_vid_robust_classes",
            "imagenet_val_on_ytbb_robust_classes")


def get_config(arg=None):
  args = configs.parse_args(arg, "configs/natural.py",
                            options=("roz", "all_v2", "no_controls")).options
  natural = list(NATURAL)
  if "all_v2" in args:
    natural = list(V2_ALL) + natural[1:]
  c = configs.base("natural",
                   datasets=natural + ([] if "no_controls" in args else list(CONTROLS)))
  if "roz" in args:
    configs.roz(c)
  return c
