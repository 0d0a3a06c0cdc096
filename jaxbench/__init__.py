"""jaxbench: robustness of zero-shot and supervised image models, in JAX.

Public API::

    model = jaxbench.models.load("hf:openai/clip-vit-base-patch32")
    head = jaxbench.zeroshot.build_head(model, classnames="imagenet", templates="clip80")
    clf = model.with_head(head)
    attack = jaxbench.attacks.get("bim(eps=8/255, space='normalized')")
"""
import importlib

from jaxbench import cpu_flags

__version__ = "0.1.0"

# Before JAX starts its backend: XLA:CPU options that make the models' forward and
# backward passes faster on CPU (see jaxbench.cpu_flags: JAXBENCH_CPU_FLAGS=off for XLA's
# own options; a user's XLA_FLAGS wins).
cpu_flags.apply()

_SUBMODULES = ("models", "zeroshot", "attacks", "shifts", "data", "metrics", "report",
               "registry", "engine", "suites", "store", "parallel", "labels", "transforms")

# Plugins: modules above a floor that add entries to that floor's registry when
# imported. A registry that misses a name calls load_plugins(its group), so no
# lower floor names a higher one: the wiring lives here, at the top.
PLUGINS = {
    "datasets": ("jaxbench.typographic.sets",),     # jaxbench.data.catalog.DATASETS
    "shifts": ("jaxbench.typographic.shift",),      # jaxbench.shifts.SHIFTS
    "models": ("jaxbench.heads.model",),            # jaxbench.models ('probe:PATH')
}
# Optional plugins (the offline demo) are not listed: a config names them in
# ``config.plugins`` and the engine imports them (jaxbench.engine.plugins).


def load_plugins(group: str) -> None:
  """Imports the plugin modules of ``group`` ('datasets', 'shifts', 'models'); each
  registers itself."""
  for module in PLUGINS.get(group, ()):
    importlib.import_module(module)


def __getattr__(name):
  # Lazy: `import jaxbench` stays cheap; jaxbench.attacks etc. load on first use.
  if name in _SUBMODULES:
    return importlib.import_module(f"jaxbench.{name}")
  raise AttributeError(f"module 'jaxbench' has no attribute {name!r}")
