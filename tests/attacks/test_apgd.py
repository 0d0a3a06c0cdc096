"""APGD hyperparameter checks (its results are checked in test_properties.py)."""
import pytest

from jaxbench import attacks


@pytest.mark.parametrize("spec,match", [
    ("apgd(loss='hinge')", r"loss='hinge'"),
])
def test_bad_hyperparameters_raise_clear_errors(spec, match):
  with pytest.raises(attacks.AttackInputError, match=match):
    attacks.get(spec)
