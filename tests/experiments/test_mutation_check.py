"""The mutation drill: its list applies to today's code, copies change one file, and
caught / survived are told apart on a toy repository (the real suite never runs)."""

import io
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import mutation_check  # noqa: E402  pylint: disable=wrong-import-position

MUTATIONS = mutation_check.MUTATIONS


def test_the_list_has_25_mutations_spanning_the_tiers():
  assert len(MUTATIONS) >= 25
  assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)
  per_tier = {tier: sum(m.tier == tier for m in MUTATIONS) for tier in mutation_check.TIERS}
  assert set(m.tier for m in MUTATIONS) == set(mutation_check.TIERS)
  assert min(per_tier.values()) >= 3, per_tier
  for m in MUTATIONS:
    assert m.file.startswith("salx/") and m.snippet != m.replacement, m.name
    assert 1 <= len(m.tests) <= 4, m.name


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_every_snippet_occurs_exactly_once_today(mutation):
  mutation_check.check_mutation(str(ROOT), mutation)   # Raises when stale.
  text = (ROOT / mutation.file).read_text(encoding="utf-8")
  assert text.count(mutation.snippet) == 1
  mutated = mutation_check.mutated_source(text, mutation)
  assert mutated != text
  compile(mutated, mutation.file, "exec")   # A bug, not a syntax error.


def test_a_stale_mutation_is_reported_naming_its_file(tmp_path, capsys):
  mutation = MUTATIONS[0]
  stale = f"occurs 0 times in {mutation.file}"
  with pytest.raises(mutation_check.MutationError, match=stale):
    mutation_check.mutated_source("nothing here", mutation)
  with pytest.raises(mutation_check.MutationError, match="occurs 2 times"):
    mutation_check.mutated_source(mutation.snippet * 2, mutation)
  # A repository whose file has changed: the drill stops before running anything.
  fake = tmp_path / "repo"
  for test in mutation.tests:
    (fake / test.split("::")[0]).parent.mkdir(parents=True, exist_ok=True)
    (fake / test.split("::")[0]).write_text("")
  (fake / mutation.file).parent.mkdir(parents=True, exist_ok=True)
  (fake / mutation.file).write_text(
      (ROOT / mutation.file).read_text().replace(mutation.snippet, mutation.replacement))
  assert mutation_check.main(["--root", str(fake), "--only", mutation.name]) == 2
  err = capsys.readouterr().err
  assert f"stale mutation {mutation.name}" in err and mutation.file in err
  assert "Traceback" not in err


@pytest.mark.slow   # Starts git / pytest subprocesses.
def test_applying_a_mutation_to_a_copy_changes_exactly_that_file(tmp_path):
  mutation = next(m for m in MUTATIONS if m.tier == "postprocess")
  files = mutation_check.repository_files(str(ROOT))
  assert mutation.file in files and "tests/experiments/test_mutation_check.py" in files
  assert not any(f.split("/")[0] in (".git", ".venv") for f in files)
  copy = tmp_path / "copy"
  mutation_check.copy_repository(str(ROOT), files, str(copy))
  mutation_check.apply_mutation(str(copy), mutation)
  copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
  assert copied == sorted(files)
  changed = [f for f in files if (copy / f).read_bytes() != (ROOT / f).read_bytes()]
  assert changed == [mutation.file]
  original = (ROOT / mutation.file).read_text(encoding="utf-8")
  assert mutation.snippet in original   # The repository itself is untouched.
  assert (copy / mutation.file).read_text(encoding="utf-8") == (
      mutation_check.mutated_source(original, mutation))


def _toy_repository(root: pathlib.Path) -> None:
  """A git working tree with one function, a test of it and a test that always fails."""
  (root / "toypkg").mkdir(parents=True)
  (root / "tests").mkdir()
  (root / "toypkg" / "__init__.py").write_text("")
  (root / "toypkg" / "calc.py").write_text("def add(a, b):\n  return a + b\n")
  (root / "tests" / "test_calc.py").write_text(
      "from toypkg import calc\n\n"
      "def test_add():\n  assert calc.add(2, 3) == 5\n\n"
      "def test_broken():\n  assert False\n")
  subprocess.run(["git", "init", "-q", str(root)], check=True)


@pytest.mark.slow   # Starts git / pytest subprocesses.
def test_the_drill_tells_caught_from_survived_and_leaves_baseline_failures_out(tmp_path):
  root = tmp_path / "toy"
  _toy_repository(root)
  tests = ("tests/test_calc.py",)
  bug = mutation_check.Mutation("minus", "toypkg/calc.py", "a + b", "a - b", tests)
  same = mutation_check.Mutation("commuted", "toypkg/calc.py", "a + b", "b + a", tests)
  log = io.StringIO()
  drill = mutation_check.Drill(str(root), quick=True, timeout=120, log=log)
  drill.prepare([bug, same])
  assert "baseline: tests/test_calc.py::test_broken fails" in log.getvalue()
  assert drill.check(bug) == ("caught", "tests/test_calc.py::test_add")
  # test_broken fails in every copy; left out, the equivalent edit survives.
  assert drill.check(same) == ("survived", "")
  assert (root / "toypkg" / "calc.py").read_text().count("a + b") == 1


def test_list_result_line_and_bad_arguments(capsys):
  assert mutation_check.main(["--list"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == len(MUTATIONS)
  assert lines[0].startswith(f"{MUTATIONS[0].name} {MUTATIONS[0].tier} {MUTATIONS[0].file}")
  outcomes = [(MUTATIONS[0], "caught", "t"), (MUTATIONS[1], "caught", "t"),
              (MUTATIONS[2], "survived", "")]
  assert mutation_check.result_line(outcomes) == (
      "mutation_check mutations=3 caught=2 survived=1 survival_rate=0.333")
  for argv in (["--only", "no_such_mutation"], ["--jobs", "0"]):
    assert mutation_check.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mutation_check: ") and "Traceback" not in err


@pytest.mark.slow   # Starts git / pytest subprocesses.
def test_the_mutated_copy_runs_with_this_python_and_its_own_path(tmp_path):
  root = tmp_path / "probe"
  (root / "tests").mkdir(parents=True)
  (root / "tests" / "test_env.py").write_text(
      "import os, sys\n\n"
      f"def test_env():\n  assert sys.executable == {sys.executable!r}\n"
      "  assert os.environ['PYTHONPATH'] == os.getcwd()\n")
  run = mutation_check.run_pytest(str(root), ["tests/test_env.py"], stop_first=True,
                                  timeout=120)
  assert run.returncode == 0 and run.failures == (), run.tail
