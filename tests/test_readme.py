"""The README's library snippet runs as written (at a smaller hidden width and T)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(text: str):
  return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_library_snippet_runs():
  readme = (ROOT / "README.md").read_text()
  blocks = _python_blocks(readme)
  assert blocks, "README.md has no python example"
  code = blocks[0].replace("hidden_dim=512", "hidden_dim=16").replace("750", "40")
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["outputs"].cas.shape == (2, 40, 20)
  assert set(namespace["params"]) == {"encoder", "action_rgb", "action_flow", "cls",
                                      "cls_rgb", "cls_flow", "fc", "fc1"}


def test_readme_names_the_two_commands():
  readme = (ROOT / "README.md").read_text()
  assert "python -m salx.main --config=configs/synthetic.py" in readme
  assert "bash .ci/run" in readme
  assert "-m pytest -q" in (ROOT / ".ci" / "run").read_text()
