"""A self-contained HTML page of flagged pairs, side by side, for human review.

Images are embedded as base64 JPEG thumbnails, so the page opens anywhere offline. Every id
and caption is HTML-escaped: ids come from untrusted shards.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from jaxbench import atomic
from jaxbench.overlap.analysis import Pair
from jaxbench.overlap.corpus import decode_image

ImageLike = Union[bytes, np.ndarray]


def thumbnail_uri(image: Optional[ImageLike], size: int = 160) -> Optional[str]:
  """A ``data:image/jpeg;base64,...`` URI of a thumbnail, or None if not decodable."""
  if image is None:
    return None
  try:
    arr = image if isinstance(image, np.ndarray) else decode_image(image)
  except ValueError:
    return None
  im = Image.fromarray(arr)
  im.thumbnail((size, size), Image.BICUBIC)
  buf = io.BytesIO()
  im.save(buf, format="JPEG", quality=85)
  return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(uri: Optional[str], label: str) -> str:
  img = (f'<img src="{uri}" alt="">' if uri else '<div class="missing">image not available'
         '</div>')
  return f'<td>{img}<div class="id">{html.escape(label)}</div></td>'


def render(pairs: Sequence[Pair], query_images: Mapping[str, ImageLike],
           corpus_images: Mapping[str, ImageLike], *, title: str, summary: dict,
           limit: int = 200) -> str:
  """The HTML text: the ``limit`` highest-scoring pairs, query left, corpus match right."""
  top = sorted(pairs, key=lambda p: (-p.score, p.query_id, p.corpus_id))[:limit]
  rows = []
  for p in top:
    how = (f"cosine {p.score:.4f} (rank {p.rank})" if p.method == "embedding"
           else f"{p.method} distance {p.distance}")
    rows.append("<tr>" + _cell(thumbnail_uri(query_images.get(p.query_id)), p.query_id)
                + _cell(thumbnail_uri(corpus_images.get(p.corpus_id)), p.corpus_id)
                + f'<td class="score">{html.escape(how)}</td></tr>')
  facts = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>"
                  for k, v in summary.items())
  return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td {{ border: 1px solid #ccc; padding: 4px; vertical-align: top; text-align: center; }}
.id {{ font-size: 11px; max-width: 170px; word-break: break-all; }}
.missing {{ width: 160px; height: 60px; color: #999; }}
.score {{ font-family: monospace; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<ul>{facts}</ul>
<p>{len(top)} of {len(pairs)} flagged pairs, highest score first.</p>
<table><tr><th>evaluation image</th><th>corpus match</th><th>score</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def write(path: str, *args, **kwargs) -> str:
  """Writes :func:`render`'s page to ``path`` atomically; returns the path."""
  atomic.atomic_write_bytes(path, render(*args, **kwargs).encode("utf-8"))
  return path
