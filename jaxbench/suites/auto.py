"""suite='auto': one config with passes of several suites, each row's suite derived.

A row's suite is its dataset's own (``metadata['suite']``, e.g. a typographic set),
else what its transform says (:meth:`jaxbench.transforms.Transform.default_suite`:
'adv' for attacks, 'synthetic' or 'typographic' for shifts, 'zeroshot' for clean).
"""
from jaxbench.suites.base import SUITES, Suite


class Auto(Suite):
  name = "auto"

  def row_suite(self, config, transform, evalset):
    if evalset is not None and evalset.metadata.get("suite"):
      return str(evalset.metadata["suite"])
    return transform.default_suite(evalset)


SUITES.register("auto", Auto)
