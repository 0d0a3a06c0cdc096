"""Console progress (jaxbench/progress.py): a live bar on a terminal, log lines elsewhere.

(Moved from tests/test_accel.py.)
"""
import io
import logging

import pytest

from jaxbench import progress

LABEL = "m | d | clean"


def test_live_bar_rewrites_one_line_with_rate_and_eta():
  progress.start_run(3)
  out = io.StringIO()
  bar = progress.PassBar(LABEL, 100, 4, stream=out, live=True)
  bar.first_batch(25, 2.0, compiled=True)
  for b in (2, 3, 4):
    bar.update(b, 25 * b)
  bar.close()
  text = out.getvalue()
  assert text.count("\r") >= 1 and "pass 1/3 m | d | clean" in text
  assert "100/100" in text and "img/s" in text and "ETA" in text


def test_plain_bar_logs_every_few_batches(caplog):
  progress.start_run(3)
  progress.next_pass()     # the second pass of three
  caplog.set_level(logging.INFO)
  plain = progress.PassBar(LABEL, 100, 4, stream=io.StringIO(), live=False, log_every=2)
  plain.first_batch(25, 1.0, compiled=False)
  plain.update(2, 50)
  assert "pass 2/3 m | d | clean: batch 2/4" in caplog.text


@pytest.mark.parametrize("seconds,want", [(3725, "1:02:05"), (65, "1:05")])
def test_fmt_seconds(seconds, want):
  assert progress.fmt_seconds(seconds) == want
