"""The test suite, a package so that test files in different folders may share a basename.

Folders with an ``__init__.py`` (tests/metrics, tests/models, ...) give their modules
qualified names (``tests.models.test_clip``); import their helpers as
``from tests.models import zoo_helpers``. tests/data stays a plain folder: TFDS looks up
the source of a builder class defined in a package module through ``importlib_resources``,
which is not installed, so its test modules keep bare (unique) names.
"""
