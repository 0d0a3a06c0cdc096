"""Where jaxbench.typographic sits: above data/, shifts/, metrics/ and models/, which never
name it (not by import, not by a module-name string); the package root wires it in."""
import ast
import pathlib

import jaxbench

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOWER_FLOORS = ("data", "shifts", "metrics", "models")


def _names_of_the_package(path: pathlib.Path) -> list[str]:
  """Imports of jaxbench.typographic and string constants naming it, in one file."""
  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found += [a.name for a in node.names if a.name.startswith("jaxbench.typographic")]
    elif isinstance(node, ast.ImportFrom) and node.module:
      if node.module.startswith("jaxbench.typographic"):
        found.append(node.module)
      elif node.module == "jaxbench":
        found += [f"jaxbench.{a.name}" for a in node.names if a.name == "typographic"]
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
      if node.value.startswith("jaxbench.typographic") and " " not in node.value:
        found.append(node.value)
  return found


def test_lower_floors_do_not_name_the_package():
  named = {}
  for floor in LOWER_FLOORS:
    for path in sorted((ROOT / "jaxbench" / floor).rglob("*.py")):
      if names := _names_of_the_package(path):
        named[str(path.relative_to(ROOT))] = names
  assert not named, f"lower floors name jaxbench.typographic: {named}"


def test_the_root_plugin_table_wires_the_sets_and_the_shift():
  assert "jaxbench.typographic.sets" in jaxbench.PLUGINS["datasets"]
  assert "jaxbench.typographic.shift" in jaxbench.PLUGINS["shifts"]
