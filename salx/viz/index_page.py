"""index.html: one static page of a run's pictures, opened from the file system.

No server, no scripts, no external fonts or styles: the report table at the top
(pre-formatted), then the figures, then the videos sorted by AP, worst first, each
shown as a thumbnail. Every thumbnail (and every figure, shown at the page's width)
is a link to its picture at full size. Every link is relative to the page's folder
and every name is HTML-escaped.
"""

from __future__ import annotations

import html
import math
import os
import posixpath
from typing import Optional, Sequence, Tuple
from urllib import parse

INDEX_FILE = "index.html"

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 12px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ccc; }
table { border-collapse: collapse; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; }
td img { width: 640px; border: 1px solid #ccc; }
td.ap { text-align: right; font-variant-numeric: tabular-nums; }
"""


def relative_url(relpath: str, field: str) -> str:
  """`relpath` (a path inside the page's folder) as an escaped, quoted URL.

  Raises:
    ValueError: an absolute path, a URL, or one leaving the folder.
  """
  text = os.fspath(relpath).replace(os.sep, "/")
  normal = posixpath.normpath(text)
  if (not text or posixpath.isabs(text) or parse.urlsplit(text).scheme
      or normal == ".." or normal.startswith("../")):
    raise ValueError(f"write_index: {field} must be a relative path inside the "
                     f"page's folder, got {relpath!r}")
  return html.escape(parse.quote(normal, safe="/"), quote=True)


def _ap_key(ap: Optional[float]) -> float:
  if ap is None:
    return math.inf
  try:
    value = float(ap)
  except (TypeError, ValueError):
    raise ValueError(f"write_index: a video's ap must be a number or None, got "
                     f"{ap!r}") from None
  return value if math.isfinite(value) else math.inf


def _ap_text(ap: Optional[float]) -> str:
  return "-" if _ap_key(ap) == math.inf else f"{100 * float(ap):.2f}"


def _thumbnail(url: str, alt: str, lazy: bool = True) -> str:
  """The picture at `url` shown small, as a link to itself at full size."""
  loading = ' loading="lazy"' if lazy else ""
  return (f'<a href="{url}" title="open full size"><img src="{url}" alt="{alt}"'
          f"{loading}></a>")


def write_index(folder: str, *, table_text: str,
                videos: Sequence[Tuple[str, str, Optional[float]]],
                figures: Sequence[Tuple[str, str]], title: str = "salx run") -> str:
  """Writes folder/index.html and returns its path.

  Args:
    folder: the page's folder (made if missing); every relpath is inside it.
    table_text: the run's report table, shown pre-formatted at the top.
    videos: (name, png_relpath, ap) per video; ap a fraction in [0, 1] or None
      (no ground truth); sorted by ap, the worst first, those without last.
    figures: (title, png_relpath) per figure, in the given order.
    title: the page's title.
  """
  for i, entry in enumerate(videos):
    if len(entry) != 3:
      raise ValueError(f"write_index: videos[{i}] must be (name, png_relpath, ap)")
  rows = []
  ordered = sorted(enumerate(videos), key=lambda item: (_ap_key(item[1][2]), item[0]))
  for rank, (i, (name, relpath, ap)) in enumerate(ordered, 1):
    url = relative_url(relpath, f"videos[{i}] png_relpath")
    label = html.escape(str(name))
    rows.append(f'<tr><td>{rank}</td><td><a href="{url}">{label}</a></td>'
                f'<td class="ap">{_ap_text(ap)}</td><td>{_thumbnail(url, label)}'
                "</td></tr>")
  blocks = []
  for i, entry in enumerate(figures):
    if len(entry) != 2:
      raise ValueError(f"write_index: figures[{i}] must be (title, png_relpath)")
    caption, relpath = entry
    url = relative_url(relpath, f"figures[{i}] png_relpath")
    caption = html.escape(str(caption))
    blocks.append(f"<figure>{_thumbnail(url, caption, lazy=False)}"
                  f"<figcaption>{caption}</figcaption></figure>")
  page_title = html.escape(str(title))
  parts = [
      "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
      f"<title>{page_title}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
      f"<h1>{page_title}</h1>", "<h2>Report</h2>",
      f"<pre>{html.escape(str(table_text))}</pre>"]
  if blocks:
    parts += ["<h2>Figures</h2>"] + blocks
  if rows:
    parts += [f"<h2>Videos ({len(rows)}), by average AP over the tIoU thresholds, "
              "worst first</h2>",
              "<table><tr><th>#</th><th>video</th><th>AP (%)</th>"
              "<th>timeline (click for full size)</th></tr>"]
    parts += rows + ["</table>"]
  parts += ["</body>", "</html>", ""]
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, INDEX_FILE)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(parts))
  return path
