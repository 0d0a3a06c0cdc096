"""What is written and how: :class:`Variant`, the kind defaults, named presets, specs.

The field defaults are RoZ's ImageNet-T settings (the ``'roz'`` preset). The
``'strict'`` preset keeps jaxbench's earlier, stricter rules: no two boxes
intersect (half-open pixel rectangles), at most ``max_tries=1000`` draws per
placement before skipping with ``'no_room'``, and a uniform written label
(``label_loop='uniform'``). A variant spec is a preset name or
``typo(field=value, ...)`` (:func:`parse_variant`); the generator, the set
reader and the on-the-fly shift all take specs.
"""
from __future__ import annotations

import dataclasses

from jaxbench import registry as registry_lib
from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.hershey import FONTS
from jaxbench.typographic.vocabulary import KINDS

POLICIES = ("random", "centered", "large")
TEXT_MODES = ("other_class", "true_class", "random_class", "random_word", "fixed")
RENDERERS = ("opencv", "roz_matplotlib")
OVERLAPS = ("corners", "boxes")
LABEL_LOOPS = ("roz", "uniform")


@dataclasses.dataclass(frozen=True)
class Variant:
  """What is written and how. Field defaults are RoZ's ImageNet-T settings.

  Attributes:
    count: number of placements (RoZ: 8 on ImageNet, 4 on CIFAR).
    font: 'hershey_duplex' (RoZ: OpenCV 4's Hershey strokes, reproduced) or a
      'cv2_*' face drawn by the installed OpenCV (OpenCV 5: TrueType sans).
    scale: OpenCV fontScale on the drawing canvas.
    thickness: stroke thickness on the canvas (pixels).
    measure_thickness: thickness passed to getTextSize for the box (RoZ: 2).
    color: RGB text colour, 0..255.
    outline: outline width in canvas pixels drawn under the text (0 = none).
    outline_color: RGB outline colour.
    policy: 'random' (RoZ), 'centered' (count copies stacked at the centre) or
      'large' (one word whose width is ``large_width`` of the image, centred).
    large_width: text width / image width for policy 'large'.
    text: one of TEXT_MODES.
    word: the text for text='fixed'.
    supersample: canvas scale factor; text is drawn at this scale and area
      averaged back (1 = draw directly, binary pixels as in RoZ).
    renderer: 'opencv' (the font above) or 'roz_matplotlib' (RoZ's CIFAR-10-T
      figures; only the text, count, colour and selection fields apply).
    max_tries: rejection-sampling budget per placement before 'no_room'; 0 = no
      limit (RoZ; a safety stop of :data:`UNBOUNDED_STOP` draws raises).
    overlap: 'corners' (RoZ: reject when a corner lies strictly inside an earlier
      box) or 'boxes' (reject any intersection).
    label_loop: 'roz' (RoZ's get_mis_text loop, which prefers words that do not
      fit) or 'uniform' (a uniform eligible label other than the true one).
  """
  count: int = 8
  font: str = "hershey_duplex"
  scale: float = 0.8
  thickness: int = 1
  measure_thickness: int = 2
  color: tuple = (255, 255, 255)
  outline: int = 0
  outline_color: tuple = (0, 0, 0)
  policy: str = "random"
  large_width: float = 0.8
  text: str = "other_class"
  word: str = ""
  supersample: int = 1
  renderer: str = "opencv"
  max_tries: int = 0
  overlap: str = "corners"
  label_loop: str = "roz"

  def __post_init__(self):
    def bad(field, value, expected):
      raise TypographicError(f"typographic variant: {field}={value!r}, expected {expected}")
    if not isinstance(self.count, int) or self.count < 1:
      bad("count", self.count, "an int >= 1")
    if self.font not in FONTS:
      bad("font", self.font, f"one of {list(FONTS)}")
    if not self.scale > 0:
      bad("scale", self.scale, "> 0")
    for name in ("thickness", "measure_thickness", "supersample"):
      v = getattr(self, name)
      if not isinstance(v, int) or v < 1:
        bad(name, v, "an int >= 1")
    if not isinstance(self.max_tries, int) or self.max_tries < 0:
      bad("max_tries", self.max_tries, "an int >= 0 (0 = no limit, as RoZ)")
    if self.overlap not in OVERLAPS:
      bad("overlap", self.overlap, f"one of {OVERLAPS}")
    if self.label_loop not in LABEL_LOOPS:
      bad("label_loop", self.label_loop, f"one of {LABEL_LOOPS}")
    if not isinstance(self.outline, int) or self.outline < 0:
      bad("outline", self.outline, "an int >= 0")
    for name in ("color", "outline_color"):
      v = tuple(getattr(self, name))
      if len(v) != 3 or any(not isinstance(c, int) or not 0 <= c <= 255 for c in v):
        bad(name, getattr(self, name), "3 ints in 0..255 (RGB)")
      object.__setattr__(self, name, v)
    if self.policy not in POLICIES:
      bad("policy", self.policy, f"one of {POLICIES}")
    if self.policy == "large" and self.count != 1:
      bad("count", self.count, "1 with policy='large'")
    if not 0 < self.large_width <= 1:
      bad("large_width", self.large_width, "in (0, 1]")
    if self.text not in TEXT_MODES:
      bad("text", self.text, f"one of {TEXT_MODES}")
    if (self.text == "fixed") != bool(self.word):
      bad("word", self.word, "a non-empty word exactly when text='fixed'")
    if self.renderer not in RENDERERS:
      bad("renderer", self.renderer, f"one of {RENDERERS}")
    if self.renderer == "roz_matplotlib" and (self.policy != "random" or self.outline):
      bad("renderer", self.renderer, "'opencv' with policy "
          f"{self.policy!r} / outline {self.outline} (RoZ's figures place text randomly, "
          "without outline)")

  def replace(self, **kw) -> "Variant":
    return dataclasses.replace(self, **kw)


# Kind defaults: the RoZ settings of each set. CIFAR-10-T at 32x32 draws the
# same Hershey Duplex strokes on an 8x canvas: scale 1.25 makes the longest
# name ('automobile') 228 canvas px wide (28.5 of 32 output px) and 3.8 px
# high, about the largest size at which it still fits; strokes of 7 canvas px
# (0.9 output px) are area averaged into anti-aliased text that stays legible
# after the bicubic upsampling to 224 px that models apply.
KIND_DEFAULTS = {
    "imagenet_t": Variant(),
    "cifar10_t": Variant(count=4, scale=1.25, thickness=7, measure_thickness=8, supersample=8,
                         renderer="roz_matplotlib"),
}

# Named presets (variant specs without arguments), applied over the kind defaults.
PRESETS = {
    "roz": {},
    "strict": {"overlap": "boxes", "max_tries": 1000, "label_loop": "uniform"},
    "roz_matplotlib": {"renderer": "roz_matplotlib"},
    "on_image": {"renderer": "opencv"},
    "true_class": {"text": "true_class"},
    "random_word": {"text": "random_word"},
    "random_class": {"text": "random_class"},
    # Only the opencv renderer places text by policy or draws outlines.
    "centered": {"policy": "centered", "count": 1, "renderer": "opencv"},
    "large": {"policy": "large", "count": 1, "renderer": "opencv"},
    "outline": {"outline": 1, "outline_color": (0, 0, 0), "renderer": "opencv"},
}


def parse_variant(spec: str, kind: str) -> tuple[str, Variant]:
  """A variant spec to (name, Variant) over the kind's defaults.

  Specs: a preset name ('roz', 'true_class', ...) or ``typo(field=value, ...)``
  with Variant fields, optionally ``typo(preset='large', color=(255, 0, 0))``.
  The name is the canonical spec made path-safe; it keys ids and directories.
  """
  if kind not in KIND_DEFAULTS:
    raise TypographicError(f"unknown typographic kind {kind!r}; expected one of {KINDS}")
  try:
    name, args, kwargs = registry_lib.parse(spec)
  except registry_lib.SpecError as e:
    raise TypographicError(str(e)) from e
  base = KIND_DEFAULTS[kind]
  if name in PRESETS and not args and not kwargs:
    return name, base.replace(**PRESETS[name])
  if name != "typo" or args:
    raise TypographicError(
        f"variant spec {spec!r}: expected a preset ({sorted(PRESETS)}) or "
        f"typo(field=value, ...) with fields of Variant")
  preset = kwargs.pop("preset", "roz")
  if preset not in PRESETS:
    raise TypographicError(f"variant spec {spec!r}: unknown preset {preset!r}")
  fields = {f.name for f in dataclasses.fields(Variant)}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise TypographicError(f"variant spec {spec!r}: unknown fields {unknown}; known {sorted(fields)}")
  variant = base.replace(**{**PRESETS[preset], **kwargs})
  # Path-safe name: the canonical spec without spaces and quotes.
  canon = registry_lib.canonical(spec)
  return "".join(c for c in canon if c not in " '\"").replace("/", "_"), variant
