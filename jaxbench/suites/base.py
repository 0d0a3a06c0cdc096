"""The suite contract and the SUITES registry.

A suite is what ``config.suite`` names: the engine's passes plus what the suite
adds. It declares its config sections (``sections``: {key: jaxbench.engine.keys.Key},
refused by the engine when another suite's config carries them), what it prepares
before the passes (``prepare``: learned prompts, trained heads), how it describes
that for ``--dry_run`` (``phases``), how it rewrites the config before planning
(``eval_config``: trained heads become ``probe:`` models), the suite its rows carry
(``row_suite``) and, where it has any, its own rows (``run`` is overridable: the
overlap suite searches a corpus after the passes).

A new suite is one module that subclasses :class:`Suite` and registers an instance:
``SUITES.register("name", lambda: MySuite())``; built-in suites are imported by
:mod:`jaxbench.suites`, others by naming their module in ``config.plugins``.
"""
from __future__ import annotations

from typing import Mapping, Optional

from jaxbench import registry
from jaxbench.engine import keys as keys_lib, run as engine_run

# name -> factory of the Suite instance (one per name).
SUITES = registry.Registry("suite")


class Suite:
  """A suite: the engine's passes with this suite's additions (see module docstring)."""

  name: str = ""
  sections: Mapping[str, keys_lib.Key] = {}

  # --- what the suite adds to the engine ---------------------------------------------

  def eval_config(self, config, workdir: Optional[str]):
    """The config the passes run on (default: ``config`` itself)."""
    del workdir
    return config

  def phases(self, config, workdir: Optional[str]) -> list[str]:
    """What :meth:`prepare` will do, in words (``--dry_run``)."""
    del config, workdir
    return []

  def prepare(self, config, workdir: str, mesh, print_fn=print) -> None:
    """Work before the passes (after every check, under the workdir lock)."""
    del config, workdir, mesh, print_fn

  def refill(self, config):
    """Survivor-refill settings for attack passes (default None: the fixed loop)."""
    del config
    return None

  def row_suite(self, config, transform, evalset) -> str:
    """The suite the rows of a pass carry (default: ``config.suite``)."""
    del transform, evalset
    return str(keys_lib.get(config, "suite"))

  # --- running --------------------------------------------------------------------------

  def hooks(self, config, print_fn=print) -> engine_run.Hooks:
    """This suite as the engine sees it, for ``config``."""
    return engine_run.Hooks(
        sections=dict(self.sections), elsewhere=declared_elsewhere(self.name),
        phases=self.phases,
        prepare=lambda c, w, mesh: self.prepare(c, w, mesh, print_fn=print_fn),
        row_suite=lambda transform, evalset: self.row_suite(config, transform, evalset),
        refill=self.refill(config))

  def validate(self, config) -> None:
    """Checks the config's keys (engine's and this suite's sections) and values."""
    engine_run.validate(config, self.hooks(config))

  def preflight(self, config, **kw):
    """:func:`jaxbench.engine.run.preflight` with this suite's keys."""
    return engine_run.preflight(config, hooks=self.hooks(config), **kw)

  def run(self, config, workdir: Optional[str], *, dry_run: bool = False,
          print_fn=print) -> list[dict]:
    """Runs (or with ``dry_run`` describes) the suite; returns the rows written."""
    engine_run.validate(config, self.hooks(config, print_fn))
    c = self.eval_config(config, workdir)
    return engine_run.run(c, workdir, dry_run=dry_run, print_fn=print_fn,
                          hooks=self.hooks(c, print_fn))

  def results(self, config, workdir: str, written: list[dict]) -> list[dict]:
    """The rows to show after a run: every finished pass of the config's plan."""
    del written
    return engine_run.plan_rows(self.eval_config(config, workdir), workdir)


def describe_set(spec: str, config) -> str:
  """A training set in words for ``--dry_run``: its size, or why it cannot be read
  (the run would stop there)."""
  from jaxbench.data import catalog
  try:
    es = catalog.get(spec, data_root=keys_lib.get(config, "data_root") or None,
                     tfds_dir=keys_lib.get(config, "tfds_dir") or None)
    return f"{spec} ({len(es)} examples)"
  except (ValueError, OSError) as e:
    return f"{spec} (NOT READABLE, the run would stop here: {' '.join(str(e).split())})"


def declared_elsewhere(name: str) -> dict[str, str]:
  """{section key: "suite 'X'"} for the sections of every registered suite but ``name``."""
  out = {}
  for other in SUITES.names():
    if other == name:
      continue
    for key in SUITES.get(other).sections:
      out.setdefault(key, f"suite {other!r}")
  return out
