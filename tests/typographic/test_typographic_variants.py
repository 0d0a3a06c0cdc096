"""Variants: presets, kind defaults, canonical names, bad specs named."""
import pytest

from jaxbench.typographic import errors, variants


@pytest.mark.parametrize("spec, match", [
    ("typo(count=0)", "count=0"),
    ("typo(font='arial')", "font='arial'"),
    ("typo(font='hershey_simplex')", "font='hershey_simplex'"),
    ("typo(color=(300, 0, 0))", "color"),
    ("typo(policy='diagonal')", "policy='diagonal'"),
    ("typo(text='fixed')", "word="),
    ("typo(policy='large', count=2)", "count=2"),
    ("typo(colour=(1, 2, 3))", "unknown fields \\['colour'\\]"),
    ("blue", "expected a preset"),
])
def test_bad_variants_are_named(spec, match):
  with pytest.raises(errors.TypographicError, match=match):
    variants.parse_variant(spec, "imagenet_t")


def test_variant_names_are_canonical_and_path_safe():
  name, _ = variants.parse_variant("typo(count = 4, color=(1,2,3))", "imagenet_t")
  assert name == "typo(color=(1,2,3),count=4)"


def test_roz_preset_is_roz_settings():
  _, roz = variants.parse_variant("roz", "imagenet_t")
  assert roz == variants.KIND_DEFAULTS["imagenet_t"]
  assert (roz.overlap, roz.label_loop, roz.max_tries) == ("corners", "roz", 0)


def test_cifar10_t_defaults_to_roz_matplotlib_figures():
  # It is CIFAR-10-T's default rendering.
  _, v = variants.parse_variant("roz_matplotlib", "cifar10_t")
  assert variants.KIND_DEFAULTS["cifar10_t"].renderer == "roz_matplotlib"
  assert variants.parse_variant("roz", "cifar10_t")[1] == v
