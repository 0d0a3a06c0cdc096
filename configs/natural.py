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
import ml_collections

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
  args = {a.strip() for a in (arg or "").split(",") if a.strip()}
  unknown = args - {"roz", "all_v2", "no_controls"}
  if unknown:
    raise ValueError(f"configs/natural.py: unknown config args {sorted(unknown)}; known: "
                     "roz, all_v2, no_controls")
  c = ml_collections.ConfigDict()
  c.suite = "natural"
  c.seed = 0
  c.models = ("clip_vit_b32",)   # tuples: overridable from the command line
  c.zeroshot = ml_collections.ConfigDict(dict(classnames="imagenet", templates="clip80",
                                              head="imagenet", logit_scale="model"))
  c.preprocess = ""
  c.data_root = "~/data"
  c.tfds_dir = ""   # fallback TFDS data_dir for sets not found under data_root
  natural = list(NATURAL)
  if "all_v2" in args:
    natural = list(V2_ALL) + natural[1:]
  c.datasets = tuple(natural + ([] if "no_controls" in args else list(CONTROLS)))
  c.transforms = ("clean",)
  c.batch_size = 128
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  c.param_sharding = "replicate"
  c.checkpoint_every = 50
  c.log_every = 10
  c.num_workers = 8
  c.precision = "float32"
  c.max_examples = -1
  c.report = False
  c.workdir_policy = "strict"
  if "roz" in args:   # fixed logit scale 100, CLIP preprocessing for every model
    c.zeroshot.logit_scale = "100"
    c.preprocess = "clip"
  return c
