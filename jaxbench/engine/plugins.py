"""Plugin modules: imported before a config is resolved, they register what they bring.

A plugin is any module that registers models (:func:`jaxbench.models.register_layout`,
``jaxbench.models.NAMES``), datasets (``jaxbench.data.catalog.DATASETS``), shifts,
attacks or suites (``jaxbench.suites.SUITES``) when imported. A config names the
ones it needs in ``config.plugins`` (``("jaxbench.demo",)``); the built-in ones
(``jaxbench.PLUGINS``: typographic sets and shift, trained heads) are always loaded:
they are part of jaxbench but sit above the registries they fill.
"""
from __future__ import annotations

import importlib

import jaxbench
from jaxbench.engine import keys
from jaxbench.model_setup import ConfigError

# Always loaded: every built-in plugin of the package root's table.
CORE = tuple(m for group in jaxbench.PLUGINS.values() for m in group)


def load(config=None) -> list[str]:
  """Imports :data:`CORE` and ``config.plugins``; returns the module names.

  Raises:
    ConfigError: a plugin module that does not exist (errors inside one surface as
      they are).
  """
  names = list(CORE) + [str(p) for p in (keys.get(config, "plugins") if config is not None
                                          else ()) or ()]
  for name in names:
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as e:
      if e.name and name.startswith(e.name):
        raise ConfigError(f"config.plugins: no module {name!r} (a plugin is an importable "
                          "module that registers models, datasets, shifts, attacks or "
                          "suites)") from e
      raise
  return names
