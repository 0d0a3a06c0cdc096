"""Natural distribution shifts (ImageNet-V2/-R/-Sketch/-A, ObjectNet, ImageNet-Vid/YTBB
robust) and their in-distribution controls: the engine's passes only."""
from jaxbench.suites.base import SUITES, Suite


class Natural(Suite):
  name = "natural"


SUITES.register("natural", Natural)
