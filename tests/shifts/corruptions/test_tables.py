"""jaxbench.shifts.corruptions.tables: which side each corruption runs on."""
import pytest

from jaxbench.shifts import corruptions as C


@pytest.mark.parametrize("res", C.RESOLUTIONS)
def test_spatter_is_host_at_water_severities_device_at_mud(res):
  assert [C.is_device("spatter", s, res) for s in range(1, 6)] == [False] * 3 + [True] * 2
