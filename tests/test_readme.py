"""The README's library snippet runs as written (at a smaller hidden width and T),
its two set-up commands are the ones CI runs, and its links point to files that exist."""

import pathlib
import re

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme() -> str:
  return (ROOT / "README.md").read_text()


def _python_blocks(text: str):
  return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_library_snippet_runs():
  blocks = _python_blocks(_readme())
  assert blocks, "README.md has no python example"
  assert "hidden_dim=512" in blocks[0] and "750" in blocks[0]
  code = blocks[0].replace("hidden_dim=512", "hidden_dim=16").replace("750", "40")
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  outputs = namespace["outputs"]
  assert outputs["cas"].shape == (2, 40, 20)
  assert outputs["action_flow"].shape == outputs["action_rgb"].shape == (2, 40)
  assert outputs["video_logits"].shape == (2, 20)
  assert set(namespace["params"]) == {"encoder", "action_rgb", "action_flow", "cls",
                                      "cls_rgb", "cls_flow", "fc", "fc1"}
  metrics = namespace["metrics"]
  assert {"loss", "mil", "bg", "act", "mix", "mc", "se"} <= set(metrics)
  assert np.isfinite(float(metrics["loss"]))
  assert int(namespace["state"].step) == 1
  assert namespace["localized"].predicted.shape == (2, 20)
  assert 0.0 <= namespace["result"].average_mAP <= 1.0
  assert set(namespace["predictions"]) >= {"results"}


@pytest.mark.slow
def test_readme_names_the_two_commands():
  readme = _readme()
  assert ("python3 -m venv .venv && .venv/bin/pip install -q -e '.[train]' && "
          ".venv/bin/python -m salx.main --config=configs/synthetic.py "
          "--workdir=/tmp/salx-demo") in readme
  assert "bash .ci/run" in readme
  assert "-m pytest -q" in (ROOT / ".ci" / "run").read_text()


def test_readme_links_point_to_files_in_the_repository():
  targets = re.findall(r"\]\(([^)#\s]+)\)", _readme())
  local = [t for t in targets if not re.match(r"[a-z]+://", t)]
  assert local, "README.md links no file of the repository"
  missing = [t for t in local if not (ROOT / t).exists()]
  assert not missing, f"README.md links missing files: {missing}"
