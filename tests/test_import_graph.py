"""The module import graph of jaxbench/ has no circle, and no module imports a higher floor.

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
  assert "jaxbench.zeroshot.learned.heads" in graph["jaxbench.engine.heads"]  # lazy
  assert "jaxbench.overlap.corpus" in graph["jaxbench.overlap.embed"]
  assert "jaxbench.models.openclip_timm" in graph["jaxbench.models.openclip"]


def test_no_import_cycle():
  # graphlib (stdlib) refuses a graph with a cycle and names one: [a, b, ..., a].
  try:
    graphlib.TopologicalSorter(import_graph()).prepare()
  except graphlib.CycleError as e:
    raise AssertionError("import circle in jaxbench/: " + " -> ".join(e.args[1])) from None


# The floors of jaxbench/, lowest first (docs/ARCHITECTURE.md): a module may import its
# own floor and the floors below, never a higher one. Entries are top-level modules or
# packages of jaxbench, or single modules placed on another floor than their package
# (most specific entry wins). Every ``__main__`` module is an entry point (top floor).
FLOORS = [
    ("base", ("registry", "atomic", "store", "precision", "stopping", "console", "progress",
              "cpu_flags")),
    # zeroshot.tokenizer/prompts: CLIP's BPE tokenizer and the prompt/class-name tables
    # are text components of the models (models/openclip_common tokenizes with them).
    ("components", ("models", "data", "shifts", "attacks", "metrics", "labels", "parallel",
                    "convert", "zeroshot.tokenizer", "zeroshot.prompts")),
    # jaxbench.typographic registers its sets and its shift as plugins of the data
    # catalog and the shift registry (jaxbench.PLUGINS, at the package root).
    ("tasks", ("zeroshot", "heads", "typographic", "overlap", "report", "transforms",
               "model_setup")),
    ("engine", ("engine",)),
    ("suites", ("suites", "configs")),
    ("entry", ("cli", "main", "bench", "demo")),
]


def floor_of(module: str) -> int:
  """The floor index of a jaxbench module (-1 for the package itself)."""
  parts = module.split(".")
  if parts[-1] == "__main__":
    return len(FLOORS) - 1
  if len(parts) == 1:
    return -1   # jaxbench/__init__.py: lazy attribute access only
  best, depth = None, 0
  for i, (_, names) in enumerate(FLOORS):
    for name in names:
      n = name.split(".")
      if parts[1:1 + len(n)] == n and len(n) > depth:
        best, depth = i, len(n)
  if best is None:
    raise AssertionError(f"{module} is on no floor: add it to FLOORS in {__file__}")
  return best


def test_every_module_is_on_a_floor():
  for module in import_graph():
    floor_of(module)


def test_no_module_imports_a_higher_floor():
  graph = import_graph()
  upward = sorted(f"{m} ({FLOORS[floor_of(m)][0]}) imports {t} ({FLOORS[floor_of(t)][0]})"
                  for m, targets in graph.items() for t in targets
                  if floor_of(m) >= 0 and floor_of(t) > floor_of(m))
  assert not upward, "upward imports in jaxbench/:\n" + "\n".join(upward)


def test_floor_check_catches_an_upward_import(tmp_path):
  # The check itself must see an upward import: a model module importing the engine.
  pkg = tmp_path / PACKAGE
  (pkg / "models").mkdir(parents=True)
  (pkg / "engine").mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "models" / "__init__.py").write_text("")
  (pkg / "engine" / "__init__.py").write_text("")
  (pkg / "engine" / "run.py").write_text("")
  (pkg / "models" / "bad.py").write_text("def f():\n  from jaxbench.engine import run\n")
  graph = import_graph(tmp_path)
  assert "jaxbench.engine.run" in graph["jaxbench.models.bad"]
  assert floor_of("jaxbench.engine.run") > floor_of("jaxbench.models.bad")


def test_engine_knows_no_suite():
  # The engine runs any suite through Hooks: it imports no suite and names none.
  graph = import_graph()
  engine = [m for m in graph if m.startswith("jaxbench.engine")]
  assert engine
  for m in engine:
    assert not any(t.startswith("jaxbench.suites") for t in graph[m]), m
  suite_names = ("typographic", "adv", "linear_probe", "clip_auto", "overlap",
                 "synthetic", "natural", "auto")
  for path in sorted((ROOT / PACKAGE / "engine").glob("*.py")):
    text = path.read_text()
    for name in suite_names:
      assert f"'{name}'" not in text and f'"{name}"' not in text, (path.name, name)
