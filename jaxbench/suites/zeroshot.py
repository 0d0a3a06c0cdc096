"""Zero-shot (or supervised) top-1/top-5 on ImageNet-style sets: the engine's passes only."""
from jaxbench.suites.base import SUITES, Suite


class Zeroshot(Suite):
  name = "zeroshot"


SUITES.register("zeroshot", Zeroshot)
