"""Shared test helpers: where the authors' fixtures and the real annotations live.

The reference fixtures ship with the repository in `tests/fixtures/`; a missing
one there is a broken checkout and fails its test. `SALX_FIXTURES_DIR` points the
tests at another folder of files in the same format; a file that folder lacks
skips its test with the reason. The public annotations are not shipped: tests
that read them (under `SALX_DATA_DIR`, default `../shared/data`) skip when absent.
"""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED_FIXTURES_DIR = ROOT / "tests" / "fixtures"
FIXTURES_OVERRIDE = os.environ.get("SALX_FIXTURES_DIR")
FIXTURES_DIR = pathlib.Path(FIXTURES_OVERRIDE) if FIXTURES_OVERRIDE else SHIPPED_FIXTURES_DIR
DATA_DIR = pathlib.Path(
    os.environ.get("SALX_DATA_DIR", ROOT.parent / "shared" / "data"))


def fixture_file(name: str) -> pathlib.Path:
  """Path of a reference fixture.

  Fails when the shipped folder lacks it; skips with the reason when the folder
  given by SALX_FIXTURES_DIR lacks it.
  """
  path = FIXTURES_DIR / name
  if path.exists():
    return path
  if FIXTURES_OVERRIDE:
    pytest.skip(f"reference fixture {path} is absent from SALX_FIXTURES_DIR "
                f"({FIXTURES_OVERRIDE}); unset it to use the shipped tests/fixtures/")
  pytest.fail(f"shipped reference fixture {path} is missing: the checkout is incomplete "
              "(tests/fixtures/ holds every file its README.md lists)", pytrace=False)


def data_file(relative: str) -> pathlib.Path:
  """Path of a real annotation file under SALX_DATA_DIR; skips when absent."""
  path = DATA_DIR / relative
  if not path.exists():
    pytest.skip(f"annotation file {path} is absent "
                "(set SALX_DATA_DIR to the folder holding the public annotations)")
  return path
