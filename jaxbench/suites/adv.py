"""Adversarial attacks: the engine's attack passes, with the attack section.

``config.attack.refill`` / ``chunk_steps``: survivor refill for attacks that stop
per example (:mod:`jaxbench.attacks.refill`); ``preset`` and ``roz`` record which
of ``configs/adv.py``'s presets built the specs and RoZ's settings (the specs
carry them).
"""
from jaxbench.engine.keys import Key
from jaxbench.suites.base import SUITES, Suite

SECTIONS = {
    "attack": Key({
        "preset": Key("roz", "the configs/adv.py preset that built the transforms"),
        "refill": Key(True, "survivor refill where attacks stop per example"),
        "chunk_steps": Key(2, "attack iterations between refills"),
        "roz": Key({}, "RoZ's settings, recorded (the specs carry them)", free=True),
    }, "attack settings"),
}


class Adv(Suite):
  name = "adv"
  sections = SECTIONS


SUITES.register("adv", Adv)
