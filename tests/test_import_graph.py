"""The module import graph of jaxbench/ has no circle.

Built from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a jaxbench module counts, wherever it stands (a lazy import
inside a function is still a dependency). ``from jaxbench.x import y`` is an edge to
``jaxbench.x.y`` when ``y`` is a module, else to ``jaxbench.x``.
"""

import ast
import graphlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "jaxbench"


def modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every .py file under jaxbench/."""
  out = {}
  for path in sorted((root / PACKAGE).rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def _known(name: str, mods: dict) -> str:
  """``name`` or its closest enclosing module that exists ('' if none)."""
  while name and name not in mods:
    name = name.rpartition(".")[0]
  return name


def import_graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
  """Module -> the jaxbench modules it imports (anywhere in its source)."""
  mods = modules(root)
  graph = {}
  for name, path in mods.items():
    graph[name] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      targets = []
      if isinstance(node, ast.Import):
        targets = [_known(a.name, mods) for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        if node.level:   # relative: 'from . import x', 'from ..y import z'
          base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
          source = ".".join(base + ([node.module] if node.module else []))
        else:
          source = node.module or ""
        for alias in node.names:
          sub = f"{source}.{alias.name}"
          targets.append(sub if sub in mods else _known(source, mods))
      for target in targets:
        if target and target != name:
          graph[name].add(target)
  return graph


def test_graph_sees_lazy_and_from_imports():
  # The builder itself must find the kinds of imports the circles were made of:
  # 'from pkg import module' and imports inside functions.
  graph = import_graph()
  assert "jaxbench.zeroshot.learned.heads" in graph["jaxbench.runner"]  # lazy
  assert "jaxbench.zeroshot.learned.autoprompt" in graph["jaxbench.zeroshot.learned.clip_auto"]  # lazy
  assert "jaxbench.overlap.corpus" in graph["jaxbench.overlap.embed"]
  assert "jaxbench.models.openclip_timm" in graph["jaxbench.models.openclip"]


def test_no_import_cycle():
  # graphlib (stdlib) refuses a graph with a cycle and names one: [a, b, ..., a].
  try:
    graphlib.TopologicalSorter(import_graph()).prepare()
  except graphlib.CycleError as e:
    raise AssertionError("import circle in jaxbench/: " + " -> ".join(e.args[1])) from None
