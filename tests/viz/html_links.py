"""Checking the links of a drawn run's index page (a helper of the picture tests)."""

import html.parser
import pathlib
from urllib import parse


class _Links(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.links, self.text = [], []

  def handle_starttag(self, tag, attrs):
    self.links += [v for k, v in attrs if k in ("href", "src")]

  def handle_data(self, data):
    self.text.append(data)


def check_links(folder):
  """Every href and src of folder/index.html resolves to a file; returns the parser."""
  page = (pathlib.Path(folder) / "index.html").read_text(encoding="utf-8")
  parser = _Links()
  parser.feed(page)
  assert parser.links
  for link in parser.links:
    target = parse.urlsplit(link)
    assert not target.scheme and not target.netloc, link
    assert (pathlib.Path(folder) / parse.unquote(target.path)).is_file(), link
  return parser, page
