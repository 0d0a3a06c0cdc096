"""The on-the-fly shift ``typographic(...)``: host_fn, host_fn_record, skips, registry."""
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxbench import registry
from jaxbench.typographic import errors, vocabulary
from jaxbench.typographic import shift as shift_lib

import typographic_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


CIFAR = vocabulary.vocabulary("cifar10_t")


def _registry():
  reg = registry.Registry("shift")
  shift_lib.register(reg)
  return reg


def test_host_fn_writes_text_deterministically():
  shift = _registry().get("typographic(kind='cifar10_t', variant='random_word', count=2)")
  img = fx.photo(32, 32)
  out = shift.host_fn(img, np.random.default_rng(7))
  assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
  assert np.array_equal(out, shift.host_fn(img, np.random.default_rng(7)))
  assert shift.host_fn.stage == "raw" and shift.spec.startswith("typographic(")


def test_host_fn_record_writes_another_class():
  img = fx.photo(32, 32)
  rec = _registry().get("typographic(kind='cifar10_t', variant='roz')").host_fn_record(
      {"id": "a", "label": 3, "image": img}, np.random.default_rng(0))
  assert rec["written_label"] not in (3, -1) and rec["typographic_text"] == CIFAR.words[rec["written_label"]]


def test_host_fn_refuses_the_attack_text_without_a_label():
  # The attack text needs the label: host_fn alone refuses it.
  img = fx.photo(32, 32)
  with pytest.raises(errors.TypographicError, match="needs the true label"):
    _registry().get("typographic(kind='cifar10_t', variant='roz')").host_fn(
        img, np.random.default_rng(0))


def test_text_that_does_not_fit_raises():
  tiny = fx.photo(10, 12)
  with pytest.raises(errors.TextDoesNotFit, match="cannot be placed on a 12x10"):
    _registry().get("typographic()").host_fn(tiny, np.random.default_rng(0))


def test_on_skip_keep_returns_the_image():
  tiny = fx.photo(10, 12)
  keep = _registry().get("typographic(on_skip='keep')")
  assert keep.host_fn(tiny, np.random.default_rng(0)) is tiny


def test_shift_registry_finds_typographic():
  # The package's shift registry has it too, through jaxbench.PLUGINS['shifts']: in a
  # fresh interpreter that has not imported jaxbench.typographic.
  code = ("import sys; from jaxbench import shifts; "
          "print('typographic' in shifts.names(), 'jaxbench.typographic.shift' in sys.modules)")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                     env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
  assert r.returncode == 0, r.stderr
  assert r.stdout.split() == ["True", "True"]
