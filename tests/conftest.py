"""Shared test helpers: where the authors' fixtures and the real annotations live."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES_DIR = pathlib.Path(
    os.environ.get("SALX_FIXTURES_DIR", ROOT.parent / "shared" / "fixtures"))
DATA_DIR = pathlib.Path(
    os.environ.get("SALX_DATA_DIR", ROOT.parent / "shared" / "data"))


def fixture_file(name: str) -> pathlib.Path:
  """Path of a reference fixture; skips the test with the reason when absent."""
  path = FIXTURES_DIR / name
  if not path.exists():
    pytest.skip(f"reference fixture {path} is absent "
                "(set SALX_FIXTURES_DIR to the folder holding the authors' outputs)")
  return path


def data_file(relative: str) -> pathlib.Path:
  """Path of a real annotation file under SALX_DATA_DIR; skips when absent."""
  path = DATA_DIR / relative
  if not path.exists():
    pytest.skip(f"annotation file {path} is absent "
                "(set SALX_DATA_DIR to the folder holding the public annotations)")
  return path
