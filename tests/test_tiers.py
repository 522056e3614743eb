"""The house rules: salx's tiers import one way, and each only what it may.

core (jax, flax, optax, numpy) <- postprocess (numpy) <- datasets (numpy; TensorFlow
in the feed and the TFDS builders); core and postprocess <- methods (jax, flax,
optax, numpy); all of them <- app (absl, clu, orbax, ml_collections) and the
commands users type. Every import statement of every module is read, also the
ones inside functions.
"""

import ast
import pathlib
import sys

import pytest

SALX = pathlib.Path(__file__).resolve().parents[1] / "salx"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

# Tier -> (salx tiers it may import, third-party top-level packages it may import).
TIERS = {
    "core": ({"core"}, {"jax", "flax", "optax", "numpy"}),
    "postprocess": ({"core", "postprocess"}, {"numpy"}),
    "datasets": ({"core", "postprocess", "datasets"}, {"numpy"}),
    "methods": ({"core", "postprocess", "methods"}, {"jax", "flax", "optax", "numpy"}),
    "app": ({"core", "postprocess", "datasets", "methods", "app", "viz"},
            {"jax", "flax", "optax", "numpy", "absl", "clu", "orbax", "ml_collections",
             "matplotlib"}),
    "viz": ({"core", "postprocess", "viz"}, {"numpy", "matplotlib"}),
}
# The datasets files that may use TensorFlow (and JAX's process layout) and the
# thin command modules that parse absl flags.
DATASETS_TF_FILES = {"input_pipeline.py", "tfds_builders.py"}
DATASETS_TF_PACKAGES = {"tensorflow", "tensorflow_datasets", "array_record", "jax"}
COMMANDS = {"check.py", "command.py", "convert.py"}
# postprocess may read these core modules, which import no JAX.
JAX_FREE_CORE = {"salx.core.constants"}


def _imports(path: pathlib.Path):
  """(module name, line) of every import in the file."""
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      yield node.module, node.lineno
      if node.module == "salx" or node.module.startswith("salx."):
        for alias in node.names:
          yield f"{node.module}.{alias.name}", node.lineno


def _modules(tier):
  return sorted((SALX / tier).rglob("*.py"))


def _violations(tier, path):
  salx_tiers, packages = TIERS[tier]
  if tier == "datasets" and path.name in DATASETS_TF_FILES:
    packages = packages | DATASETS_TF_PACKAGES
  if tier == "datasets" and path.name in COMMANDS:
    packages = packages | {"absl"}
  for name, line in _imports(path):
    top = name.split(".")[0]
    where = f"{path.relative_to(SALX.parent)}:{line} imports {name}"
    if top == "salx":
      parts = name.split(".")
      if len(parts) < 3 or parts[1] not in TIERS:
        continue   # `from salx.core import x` yields salx.core.x too.
      if parts[1] not in salx_tiers:
        yield where + f" (the {tier} tier may import only {sorted(salx_tiers)})"
      elif tier == "postprocess" and parts[1] == "core" and \
          ".".join(parts[:3]) not in JAX_FREE_CORE:
        yield where + " (postprocess may read only the JAX-free core modules)"
    elif top not in STDLIB and top not in packages:
      yield where + f" (the {tier} tier may import only {sorted(packages)})"


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_tier_imports_point_down_and_stay_in_their_packages(tier):
  assert _modules(tier), f"salx/{tier} holds no module"
  problems = [v for path in _modules(tier) for v in _violations(tier, path)]
  assert not problems, "\n".join(problems)


def test_jax_free_core_modules_import_no_jax():
  for name in JAX_FREE_CORE:
    path = SALX.parent / (name.replace(".", "/") + ".py")
    imported = {n.split(".")[0] for n, _ in _imports(path)}
    assert not imported & {"jax", "flax", "optax"}, name


def test_every_module_lives_in_a_tier_or_is_a_command():
  top_level = {p.name for p in SALX.glob("*.py")}
  assert top_level <= {"__init__.py", "cli.py", "main.py", "evaluate.py",
                       "visualize.py", "detect.py"}, top_level
  folders = {p.name for p in SALX.iterdir() if p.is_dir() and p.name != "__pycache__"}
  assert folders <= set(TIERS) | {"viz"}, folders

