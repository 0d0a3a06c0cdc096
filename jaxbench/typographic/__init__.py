"""Typographic attacks: write a class name on an image (ImageNet-T, CIFAR-10-T).

RoZ (protocol.md §1.4) writes the name of a *different* class several times on
each evaluation image and measures how often a model then predicts the written
class. Everything typographic lives in this package, one job per module:

  errors.py      TypographicError, TextDoesNotFit
  vocabulary.py  the words a set may write (ImageNet's 309 single-word classes,
                 the CIFAR-10 names) and the non-class control words
  hershey.py     the font: OpenCV 4's Hershey Duplex strokes and metrics,
                 reproduced pixel for pixel (RoZ pinned opencv-python 4.1)
  variants.py    Variant (what is written and how), the kind defaults, the
                 named presets ('roz', 'strict', ...) and variant specs
  text.py        the per-example random streams and the written word (RoZ's
                 get_mis_text loop)
  layout.py      where the text goes (RoZ's rejection-sampled placements)
  render.py      writing on one image (OpenCV, or RoZ's matplotlib figures)
  codec.py       image bytes in and out as cv2.imread / cv2.imwrite did
  shift.py       the on-the-fly shift ``shift:typographic(...)``
  source.py      the examples a set is generated from (folder, CIFAR binary, .npz)
  roz_record.py  RoZ's published records of the written classes
  generate.py    ImageNet-T / CIFAR-10-T generation to a folder + manifest
  __main__.py    ``python -m jaxbench.typographic`` (generation's command line)
  sets.py        the generated sets as evaluation sets (``imagenet_t(...)``,
                 ``cifar10_t(...)``)
The metrics (accuracy, attack success rate) are pure functions of predictions
and stay with the other metrics in :mod:`jaxbench.metrics.typographic`.

Where the package sits: above the data, shift and metric floors. It reads files
through ``jaxbench.data`` (the decoder, source fingerprints, EvalSet), scores
with ``jaxbench.metrics.typographic`` and adds entries to two lower registries:
the dataset catalog (``imagenet_t``, ``cifar10_t``: :mod:`.sets`) and the shift
registry (``typographic``: :mod:`.shift`). Those floors must not name this
package, not even by a lazily imported string, so they find it through the
package root's plugin table, :data:`jaxbench.PLUGINS`: a registry that misses a
name imports the modules listed for its group ('datasets', 'shifts'), and each
registers itself on import. The root sits above every floor (it is the public
API and names the subpackages already), so the wiring lives at the top and
points down. The alternative, the dataset registration in the data floor and
the rendering below it, would have split this package again (generation needs
the data floor's decoder and sits between the two), so it was not taken.

Importing this package imports nothing (the modules above load on use), so the
plugin lookup and grain's worker processes stay cheap.
"""
