"""The written word: keyed random streams, RoZ's label loops, the uniform label."""
import numpy as np

from jaxbench.typographic import render, variants, vocabulary
from jaxbench.typographic import text as text_lib


IMAGENET = vocabulary.vocabulary("imagenet_t")
CIFAR = vocabulary.vocabulary("cifar10_t")
ROZ = variants.KIND_DEFAULTS["imagenet_t"]
# jaxbench's earlier, stricter selection rules, kept as a named variant (issue 18).
STRICT = variants.parse_variant("strict", "imagenet_t")[1]


def _render(image, variant, vocab, label, seed=0, eid="x"):
  return render.render(image, variant, vocab, label, text_lib.example_rng(seed, eid, "label"),
                     text_lib.example_rng(seed, eid, "place"))


def test_example_rng_streams_are_keyed():
  draw = lambda *a: text_lib.example_rng(*a).integers(1 << 30)
  assert draw(0, "a", "x") == draw(0, "a", "x")
  assert len({draw(0, "a", "x"), draw(1, "a", "x"), draw(0, "b", "x"), draw(0, "a", "y")}) == 4


def test_written_label_is_uniform_over_the_other_classes():
  counts = np.zeros(10, int)
  for i in range(1800):
    text, w = text_lib.choose_text(variants.KIND_DEFAULTS["cifar10_t"], CIFAR, 4,
                               text_lib.example_rng(0, str(i), "label"))
    assert text == CIFAR.words[w]
    counts[w] += 1
  assert counts[4] == 0
  others = np.delete(counts, 4)
  # 200 expected per class; chi-square with 8 dof, p = 0.001 threshold 26.1.
  assert ((others - 200) ** 2 / 200).sum() < 26.1
  ws = {text_lib.choose_text(STRICT, IMAGENET, 8, text_lib.example_rng(0, str(i), "l"))[1]
        for i in range(3000)}
  assert ws <= set(IMAGENET.eligible) - {8} and len(ws) > 280


def test_roz_label_loop_prefers_words_that_do_not_fit():
  """Issue 18: at width 140 RoZ skips ~95 % of images, the uniform label ~9 %."""
  img = np.zeros((120, 140, 3), np.uint8)
  runs = [(_render(img, ROZ, IMAGENET, 0, eid=str(i)).skipped,
           _render(img, STRICT, IMAGENET, 0, eid=str(i)).skipped) for i in range(300)]
  roz_skip = np.mean([a == "text_does_not_fit" for a, _ in runs])
  strict_skip = np.mean([b == "text_does_not_fit" for _, b in runs])
  assert roz_skip > 0.85 and strict_skip < 0.2, (roz_skip, strict_skip)


def test_roz_cifar_label_loop_redraws_the_true_label():
  # The CIFAR loop: redraw while equal to the true label (uniform over the others).
  _, cifar = variants.parse_variant("roz", "cifar10_t")
  r1 = text_lib.example_rng(0, "c", "label")
  r2 = text_lib.example_rng(0, "c", "label")
  got = text_lib.choose_text(cifar, CIFAR, 3, r1)[1]
  mis = 3
  while mis == 3:
    mis = int(r2.integers(10))
  assert got == mis
