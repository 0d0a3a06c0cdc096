"""Typographic attacks (ImageNet-T, CIFAR-10-T): sets generated on first use, then passes.

The dataset specs carry everything (``src=`` generates the set under ``root`` on
first use; ``--dry_run`` lists that as a phase); the section records the sets and
variants (the metrics come from each set's sequence_metric_fn).
"""
from jaxbench.engine.keys import Key
from jaxbench.suites.base import SUITES, Suite

SECTIONS = {
    "typographic": Key({
        "sets": Key({}, "{kind: dataset spec}", free=True),
        "variants": Key(("roz",), "variant presets"),
        "metrics": Key(("top1", "success_rate"), "metrics of each set"),
    }, "typographic sets (informational)"),
}


class Typographic(Suite):
  name = "typographic"
  sections = SECTIONS


SUITES.register("typographic", Typographic)
