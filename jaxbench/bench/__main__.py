"""Dispatches ``python -m jaxbench.bench NAME`` to ``jaxbench.bench.NAME.main``."""
import importlib
import pkgutil
import sys

import jaxbench.bench as _pkg


def _names():
  return sorted(m.name for m in pkgutil.iter_modules(_pkg.__path__)
                if not m.name.startswith("_") and m.name != "common")


def main():
  if len(sys.argv) < 2 or sys.argv[1] not in _names():
    print(f"usage: python -m jaxbench.bench NAME [flags]; NAME one of {_names()}")
    sys.exit(2)
  name = sys.argv.pop(1)
  module = importlib.import_module(f"jaxbench.bench.{name}")
  module.main(sys.argv)


if __name__ == "__main__":
  main()
