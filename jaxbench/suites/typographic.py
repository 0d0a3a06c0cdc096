"""Typographic attacks (ImageNet-T, CIFAR-10-T): sets generated on first use, then passes.

The dataset specs carry everything (``src=`` generates the set under ``root`` on
first use, with its variants; ``--dry_run`` lists that as a phase; the metrics come
from each set's sequence_metric_fn), so the suite declares no section of its own.
"""
from jaxbench.suites.base import SUITES, Suite


class Typographic(Suite):
  name = "typographic"


SUITES.register("typographic", Typographic)
