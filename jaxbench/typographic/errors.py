"""The typographic package's errors: one base class, so callers catch one type."""


class TypographicError(ValueError):
  """Bad typographic input or settings (names the value and what was expected)."""


class TextDoesNotFit(TypographicError):
  """Raised by the on-the-fly shift when the text cannot be placed."""

