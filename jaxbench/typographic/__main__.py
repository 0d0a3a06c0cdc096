r"""Generates ImageNet-T / CIFAR-10-T from the command line (:mod:`.generate`).

    python -m jaxbench.typographic --src=~/data/imagenet/val --dst=~/data/imagenet_t \
        --kind=imagenet_t --seed=0 [--variant=roz --variant="typo(count=4)"] [--workers=8]

``--src``: see :mod:`jaxbench.typographic.source`; ``--dst``, the output layout
and the no-op / refusal rules: :mod:`jaxbench.typographic.generate`;
``--roz_record``: RoZ's ``imgNet_record.pickle`` / ``cifar10_record.pickle``
(:mod:`jaxbench.typographic.roz_record`), whose written classes the
'other_class' variants then reproduce. Errors end in one line and exit code 1.
"""
import sys

from absl import app
from absl import flags

from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.generate import generate
from jaxbench.typographic.variants import PRESETS
from jaxbench.typographic.vocabulary import KINDS


def main(argv):
  f = flags.FLAGS
  if len(argv) > 1:
    raise SystemExit(f"unexpected arguments: {argv[1:]}")
  try:
    generate(f.src, f.dst, f.kind, seed=f.seed, variants=f.variant or ["roz"],
             workers=f.workers, max_examples=f.max_examples, image_format=f.image_format,
             jpeg_quality=f.jpeg_quality, roz_record=f.roz_record)
  except TypographicError as e:
    print(f"error: {e}", file=sys.stderr)
    raise SystemExit(1) from e


def _define_flags():
  flags.DEFINE_string("src", None, "source: image folder, CIFAR-10 test_batch.bin or .npz")
  flags.DEFINE_string("dst", None, "output folder")
  flags.DEFINE_enum("kind", None, list(KINDS), "which set to generate")
  flags.DEFINE_integer("seed", 0, "generation seed")
  flags.DEFINE_multi_string("variant", [], "variant spec, repeatable (default 'roz'): a "
                            f"preset {sorted(PRESETS)} or typo(field=value, ...)")
  flags.DEFINE_integer("workers", 0, "grain worker processes (0 = in process)")
  flags.DEFINE_integer("max_examples", -1, "first N source examples only (-1 = all)")
  flags.DEFINE_enum("image_format", "auto", ["auto", "jpeg", "png"], "output image format")
  flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality (RoZ: cv2.imwrite default 95)")
  flags.DEFINE_string("roz_record", None, "RoZ's imgNet_record.pickle / cifar10_record.pickle:"
                      " write RoZ's class on RoZ's images")
  flags.mark_flags_as_required(["src", "dst", "kind"])


if __name__ == "__main__":
  _define_flags()
  app.run(main)
