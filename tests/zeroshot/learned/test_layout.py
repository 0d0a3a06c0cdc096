"""Prompt layout: token ids back to text."""
import pytest

from jaxbench.zeroshot.learned import layout


@pytest.mark.parametrize("ids,text", [
    ([1848, 1664, 653, 912], "awesome cooingled"),
    ([320, 1125, 539, 320], "a photo of a"),
    ([23703, 1150, 316, 3628], "annually ates ] interesting")])
def test_decode_reads_clip_bpe(ids, text):
  assert layout.decode(ids) == text
