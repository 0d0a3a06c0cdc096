"""Atomic writes (jaxbench/atomic.py): complete files or none, directories by one rename."""
import json
import os

import numpy as np
import pytest

from jaxbench import atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "sub" / "a.bin"
  atomic.atomic_write_bytes(str(path), b"old")
  atomic.atomic_write_bytes(str(path), b"new")
  assert path.read_bytes() == b"new"
  assert os.listdir(path.parent) == ["a.bin"]


def test_a_failing_write_keeps_the_old_file(tmp_path):
  path = tmp_path / "a.bin"
  path.write_bytes(b"old")

  def half(f):
    f.write(b"half of the new")
    raise RuntimeError("killed")

  with pytest.raises(RuntimeError, match="killed"):
    atomic.atomic_write(str(path), half)
  assert path.read_bytes() == b"old"
  assert os.listdir(tmp_path) == ["a.bin"]


def test_an_unwritable_path_raises_write_error_naming_it(tmp_path):
  (tmp_path / "file").write_text("x")
  target = str(tmp_path / "file" / "a.json")    # its directory is a file
  with pytest.raises(atomic.WriteError, match=f"cannot write {target}"):
    atomic.atomic_write_json(target, {"a": 1})


def test_json_has_sorted_keys_and_str_for_other_values(tmp_path):
  path = tmp_path / "a.json"
  atomic.atomic_write_json(str(path), {"b": 1, "a": "x", "c": object})
  text = path.read_text()
  assert json.loads(text) == {"a": "x", "b": 1, "c": str(object)}
  assert text.index('"a"') < text.index('"b"') < text.index('"c"')


def test_savez_writes_exactly_the_name_given(tmp_path):
  path = tmp_path / "chunk"            # np.savez(path) would append '.npz'
  atomic.atomic_savez(str(path), x=np.arange(3), y=np.eye(2, dtype=np.float32))
  with np.load(str(path)) as z:
    np.testing.assert_array_equal(z["x"], np.arange(3))
    np.testing.assert_array_equal(z["y"], np.eye(2))


def test_json_default_converts_numpy_values():
  doc = {"i": np.int64(3), "f": np.float32(0.5), "a": np.arange(2)}
  assert json.loads(json.dumps(doc, default=atomic.json_default)) == \
      {"i": 3, "f": 0.5, "a": [0, 1]}


def test_json_default_refuses_other_values():
  with pytest.raises(TypeError, match="not JSON serialisable: object"):
    json.dumps({"o": object()}, default=atomic.json_default)


def _dir(path, text):
  path.mkdir()
  (path / "f.txt").write_text(text)
  return str(path)


def test_rename_dir_moves_a_finished_directory(tmp_path):
  tmp = _dir(tmp_path / "d.tmp-1", "mine")
  assert atomic.atomic_rename_dir(tmp, str(tmp_path / "d"))
  assert (tmp_path / "d" / "f.txt").read_text() == "mine"
  assert not os.path.exists(tmp)


def test_rename_dir_lets_a_complete_concurrent_writer_win(tmp_path):
  final = _dir(tmp_path / "d", "theirs")
  tmp = _dir(tmp_path / "d.tmp-1", "mine")
  assert not atomic.atomic_rename_dir(tmp, final)
  assert (tmp_path / "d" / "f.txt").read_text() == "theirs"
  assert not os.path.exists(tmp)


def test_rename_dir_refuses_an_incomplete_final(tmp_path):
  final = _dir(tmp_path / "d", "half")
  tmp = _dir(tmp_path / "d.tmp-1", "mine")
  with pytest.raises(OSError):
    atomic.atomic_rename_dir(tmp, final, complete=lambda p: False)
  assert os.path.exists(tmp)


def test_take_over_removes_the_file_once(tmp_path):
  path = tmp_path / ".lock"
  path.write_text("{}")
  assert atomic.take_over(str(path))
  assert not atomic.take_over(str(path))
  assert os.listdir(tmp_path) == []


def test_only_the_atomic_module_renames_files_into_place():
  # Atomic writes have one home: a temp file + os.replace anywhere else is a second,
  # hand-rolled implementation.
  import ast
  import pathlib
  root = pathlib.Path(__file__).resolve().parents[1] / "jaxbench"
  found = []
  for path in sorted(root.rglob("*.py")):
    if path.name == "atomic.py" and path.parent == root:
      continue
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if (isinstance(node, ast.Attribute) and node.attr in ("replace", "rename")
          and isinstance(node.value, ast.Name) and node.value.id == "os"):
        found.append(f"{path.relative_to(root)}:{node.lineno}")
  assert not found, found
