"""One generic registry; objects are built from canonical spec strings.

A spec string is a Python call expression with literal arguments, e.g.
``bim(eps=8/255, space='normalized')`` or just ``fgsm``. Arguments may use
arithmetic on numbers (``8/255``), tuples, lists, strings, booleans and None.
Specs are parsed with :mod:`ast`, never ``eval``: nothing in a spec can run code,
and sizes are bounded (no ``**``, spec length, number magnitude, element count), so
no spec can make the parser hang or exhaust memory (``eps=10**10**10``).

The canonical form of a spec (:func:`canonical`) sorts keyword arguments and
prints floats with ``repr`` so that two spellings of one object share one key in
the results store.
"""
from __future__ import annotations

import ast
import operator
from typing import Any, Callable

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
# Bounds on what a spec may describe: far above any real grid or radius.
MAX_SPEC_CHARS = 100_000
MAX_ELEMENTS = 100_000          # items in one tuple/list/dict literal
MAX_ABS_NUMBER = 1e18           # magnitude of any number, literal or computed


class SpecError(ValueError):
  """A spec string that cannot be parsed or names nothing registered."""


def _literal(node: ast.AST, spec: str) -> Any:
  """Evaluates a literal expression node (numbers, strings, arithmetic)."""
  if isinstance(node, ast.Constant):
    return _bounded(node.value, spec)
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
    value = _literal(node.operand, spec)
    return -value if isinstance(node.op, ast.USub) else value
  if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
    raise SpecError(f"spec {spec!r}: '**' is not allowed; write the number out "
                    f"(e.g. 1e-3), got {ast.unparse(node)!r}")
  if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
    left, right = _literal(node.left, spec), _literal(node.right, spec)
    if not all(_is_number(v) for v in (left, right)):
      # 'ab' * 10**9 or list concatenation would build huge objects: numbers only.
      raise SpecError(f"spec {spec!r}: arithmetic is allowed on numbers only, got "
                      f"{ast.unparse(node)!r}")
    try:
      value = _BINOPS[type(node.op)](left, right)
    except ZeroDivisionError as e:
      raise SpecError(f"spec {spec!r}: division by zero in {ast.unparse(node)!r}") from e
    return _bounded(value, spec)
  if isinstance(node, (ast.Tuple, ast.List, ast.Dict)):
    n = len(node.keys) if isinstance(node, ast.Dict) else len(node.elts)
    if n > MAX_ELEMENTS:
      raise SpecError(f"spec: a literal with {n} elements; at most {MAX_ELEMENTS} allowed")
  if isinstance(node, (ast.Tuple, ast.List)):
    values = [_literal(e, spec) for e in node.elts]
    return tuple(values) if isinstance(node, ast.Tuple) else values
  if isinstance(node, ast.Dict):
    return {_literal(k, spec): _literal(v, spec) for k, v in zip(node.keys, node.values)}
  if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
    return {"True": True, "False": False, "None": None}[node.id]
  raise SpecError(f"spec {spec!r}: only literal arguments are allowed, got "
                  f"{ast.unparse(node)!r}")


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounded(value: Any, spec: str) -> Any:
  """``value`` if it is not a number, or a number of magnitude <= MAX_ABS_NUMBER."""
  if _is_number(value) and not abs(value) <= MAX_ABS_NUMBER:
    if isinstance(value, float) and value != value:   # nan is a value, not a size
      return value
    shown = f"{value:.3g}" if isinstance(value, float) else f"an integer of " \
        f"{value.bit_length()} bits"
    raise SpecError(f"spec {spec[:200]!r}: number {shown} is out of range "
                    f"(|x| <= {MAX_ABS_NUMBER:g})")
  return value


def parse(spec: str) -> tuple[str, tuple, dict]:
  """Parses ``name(arg, key=value)`` into (name, args, kwargs).

  Names may contain dots, dashes, slashes and colons (``imagenet_c/fog``,
  ``hf:openai/clip-vit-base-patch32``) when they carry no arguments.
  """
  spec = spec.strip()
  if not spec:
    raise SpecError("empty spec string")
  if len(spec) > MAX_SPEC_CHARS:
    raise SpecError(f"spec {spec[:80]!r}... is {len(spec)} characters long; at most "
                    f"{MAX_SPEC_CHARS} allowed")
  if "(" not in spec:
    return spec, (), {}
  head, _, _ = spec.partition("(")
  name = head.strip()
  try:
    tree = ast.parse("_f" + spec[len(head):], mode="eval")
  except SyntaxError as e:
    raise SpecError(f"spec {spec!r} is not of the form name(arg=value, ...): {e}") from e
  call = tree.body
  if not isinstance(call, ast.Call):
    raise SpecError(f"spec {spec!r} is not of the form name(arg=value, ...)")
  args = tuple(_literal(a, spec) for a in call.args)
  kwargs = {k.arg: _literal(k.value, spec) for k in call.keywords}
  return name, args, kwargs


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, tuple):
    inner = ", ".join(_fmt(v) for v in value)
    return f"({inner},)" if len(value) == 1 else f"({inner})"
  if isinstance(value, list):
    return "[" + ", ".join(_fmt(v) for v in value) + "]"
  return repr(value)


def format_spec(name: str, args: tuple = (), kwargs: dict | None = None) -> str:
  """Formats a canonical spec string: positional args, then sorted kwargs."""
  kwargs = kwargs or {}
  if not args and not kwargs:
    return name
  parts = [_fmt(a) for a in args] + [f"{k}={_fmt(kwargs[k])}" for k in sorted(kwargs)]
  return f"{name}({', '.join(parts)})"


def canonical(spec: str) -> str:
  """The canonical spelling of a spec string."""
  return format_spec(*parse(spec))


class Registry:
  """Maps names to factories; ``get(spec)`` calls the factory with the spec's args."""

  def __init__(self, kind: str):
    self.kind = kind
    self._factories: dict[str, Callable[..., Any]] = {}

  def register(self, name: str, factory: Callable[..., Any] | None = None):
    """Registers ``factory`` under ``name``; usable as a decorator."""
    def add(f):
      if name in self._factories and self._factories[name] is not f:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._factories[name] = f
      return f
    return add(factory) if factory is not None else add

  def names(self) -> list[str]:
    return sorted(self._factories)

  def __contains__(self, name: str) -> bool:
    return name in self._factories

  def factory(self, name: str) -> Callable[..., Any]:
    if name not in self._factories:
      import difflib
      known = ", ".join(self.names()) or "(none registered)"
      close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)
      hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
      raise SpecError(f"unknown {self.kind} {name!r}{hint}; known {self.kind}s: {known}")
    return self._factories[name]

  def get(self, spec: str, **overrides) -> Any:
    """Builds the object a spec string names; ``overrides`` win over spec kwargs."""
    name, args, kwargs = parse(spec)
    kwargs.update(overrides)
    factory = self.factory(name)
    try:
      return factory(*args, **kwargs)
    except TypeError as e:
      raise SpecError(f"{self.kind} spec {spec!r}: {e}") from e
