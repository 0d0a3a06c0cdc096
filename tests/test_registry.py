"""The spec parser refuses what could hang or exhaust memory, at once."""
import pytest

from jaxbench import registry


@pytest.mark.parametrize("spec,message", [
    ("bim(eps=10**10**10)", "'\\*\\*' is not allowed"),
    ("bim(eps=2**-8)", "'\\*\\*' is not allowed"),
    ("bim(eps=1e400)", "out of range"),
    ("bim(steps=123456789012345678901234567890)", "out of range"),
    ("bim(eps=1e10*1e10)", "out of range"),
    ("f(x='ab'*1000000000)", "numbers only"),
    ("f(x=(1,)*1000000000)", "numbers only"),
    ("f(x=1/0)", "division by zero"),
    ("f(x=(" + "1," * 100_001 + "))", "at most 100000"),
    ("f(x='" + "a" * 100_001 + "')", "characters long"),
])
def test_spec_parser_refuses_unbounded_specs(spec, message):
  with pytest.raises(registry.SpecError, match=message):
    registry.parse(spec)


def test_spec_parser_keeps_ordinary_arithmetic():
  assert registry.parse("bim(eps=8/255, steps=-(-3), grid=(1/1000, 2/1000))") == (
      "bim", (), {"eps": 8 / 255, "steps": 3, "grid": (0.001, 0.002)})
  assert registry.canonical("f(a=1e-3, b='x'  , c=True)") == "f(a=0.001, b='x', c=True)"


def test_unknown_name_suggests_the_closest():
  r = registry.Registry("attack")
  for name in ("bim", "fgsm", "pgd"):
    r.register(name, lambda **kw: kw)
  with pytest.raises(registry.SpecError,
                     match="unknown attack 'fgms' \\(did you mean 'fgsm'\\?\\); known attacks: "
                           "bim, fgsm, pgd"):
    r.get("fgms(eps=1/255)")
