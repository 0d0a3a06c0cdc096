"""Suites: what ``config.suite`` names, run on the engine (:mod:`jaxbench.engine`).

Built-in suites (one module each): zeroshot, natural, synthetic, adv, typographic,
clip_auto (prompts learned first), linear_probe (heads trained first), overlap
(a corpus searched after the passes) and auto (each row's suite derived from its
pass). :func:`run` is what the command line calls::

    rows = jaxbench.suites.run(config, workdir)

A config's plugins (``config.plugins``) are imported first, so a plugin may
register a suite of its own in :data:`SUITES`.
"""
from __future__ import annotations

from typing import Optional

from jaxbench.engine import keys as keys_lib, plugins
from jaxbench.suites import adv, auto, clip_auto, linear_probe, natural, overlap  # noqa: F401
from jaxbench.suites import synthetic, typographic, zeroshot  # noqa: F401  (register)
from jaxbench.suites.base import SUITES, Suite  # noqa: F401  (public)


def get(config) -> Suite:
  """The suite ``config.suite`` names (after importing ``config.plugins``).

  Raises:
    jaxbench.registry.SpecError: an unknown suite (naming the closest and the known).
  """
  plugins.load(config)
  return SUITES.get(str(keys_lib.get(config, "suite")))


def validate(config) -> None:
  """Checks the config's keys (the engine's and its suite's) and values."""
  get(config).validate(config)


def run(config, workdir: Optional[str], *, dry_run: bool = False, print_fn=print) -> list[dict]:
  """Runs (or with ``dry_run`` describes) ``config``; returns the rows written."""
  return get(config).run(config, workdir, dry_run=dry_run, print_fn=print_fn)


def results(config, workdir: str, written: list[dict]) -> list[dict]:
  """The rows to show after a run (every finished pass of the plan; overlap: its own)."""
  return get(config).results(config, workdir, written)
