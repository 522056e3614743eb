"""Manifests: `python -m salx.datasets.check --write_manifest` records a folder's files
and annotation counts; `--manifest` names every file and count that differs."""

import json
import os

import numpy as np
import pytest

from salx.datasets import check
from salx.datasets import manifest
from salx.datasets import synthetic

SPEC = dict(num_classes=3, num_train=6, num_test=4, min_length=20, max_length=40)


@pytest.fixture
def folder(tmp_path):
  return synthetic.make_synthetic_dataset(tmp_path / "data",
                                          synthetic.SyntheticSpec(**SPEC),
                                          layout="sal", progress=False)


def _write(folder, path, capsys):
  assert check.main(["--dataset=thumos14", f"--data_dir={folder}",
                     f"--write_manifest={path}"]) == 0
  assert f"wrote {path}" in capsys.readouterr().out


def _compare(folder, path, capsys, status):
  assert check.main(["--dataset=thumos14", f"--data_dir={folder}",
                     f"--manifest={path}"]) == status
  return capsys.readouterr().out.strip().splitlines()


def test_a_manifest_records_every_file_and_the_annotation_counts(folder, tmp_path,
                                                                 capsys):
  path = tmp_path / "m.json"
  _write(folder, path, capsys)
  written = json.loads(path.read_text())
  rgb = "features/test/rgb/synthetic_test_0000.npy"
  entry = written["files"][rgb]
  assert set(entry) == {"bytes", "sha256", "shape", "dtype"}
  assert entry["dtype"] == "<f4" and entry["shape"][1] == 1024
  assert len(entry["sha256"]) == 64 and "sha256" in written["files"]["gt.json"]
  assert len([f for f in written["files"] if f.endswith(".npy")]) == 2 * 10
  counts = written["annotations"]
  assert counts["videos"] == {"train": 6, "test": 4} and counts["layout"] == "sal"
  assert sum(counts["instances"].values()) == sum(counts["instances_per_class"].values())
  assert counts["classes"] == ["action_00", "action_01", "action_02"]
  assert _compare(folder, path, capsys, 0)[-1].endswith(
      f"matches the manifest {path} ({len(written['files'])} files)")


def test_a_mismatch_names_the_file(folder, tmp_path, capsys):
  path = tmp_path / "m.json"
  _write(folder, path, capsys)
  changed = os.path.join(folder, "features", "train", "flow", "synthetic_train_0002.npy")
  features = np.load(changed)
  features[3, 5] += 1e-3
  np.save(changed, features)
  gone = os.path.join(folder, "features", "test", "rgb", "synthetic_test_0001.npy")
  os.remove(gone)
  extra = os.path.join(folder, "notes.md")
  with open(extra, "w") as f:
    f.write("mine")
  shorter = os.path.join(folder, "features", "train", "rgb", "synthetic_train_0000.npy")
  np.save(shorter, np.load(shorter)[:-1])
  lines = _compare(folder, path, capsys, 1)
  assert lines[-1].startswith("4 differences between")
  assert f"{changed}: contents differ: sha256 " in "\n".join(lines)
  assert f"{gone}: in the manifest, missing here" in lines
  assert f"{extra}: here, not in the manifest" in lines
  (line,) = [l for l in lines if l.startswith(shorter)]
  assert "size" in line and "shape [" in line
  assert len(lines) == 5


def test_an_annotation_difference_names_the_file_and_the_count(folder, tmp_path,
                                                               capsys):
  path = tmp_path / "m.json"
  _write(folder, path, capsys)
  gt_file = os.path.join(folder, "gt.json")
  with open(gt_file) as f:
    gt = json.load(f)
  video = next(v for v in gt["database"].values()
               if v["subset"] == "test" and v["annotations"])
  label = video["annotations"].pop()["label"]
  with open(gt_file, "w") as f:
    json.dump(gt, f)
  lines = _compare(folder, path, capsys, 1)
  assert any(l.startswith(f"{gt_file}: test split instances") for l in lines)
  assert any(l.startswith(f"{gt_file}: class {label}:") for l in lines)
  assert any(l.startswith(f"{gt_file}: size ") for l in lines)   # The file itself.


def test_a_wtalc_folder_compares_with_its_manifest(tmp_path):
  folder = synthetic.make_synthetic_dataset(
      tmp_path / "w", synthetic.SyntheticSpec(**SPEC), layout="wtalc", progress=False)
  written = manifest.make_manifest(folder, "thumos14")
  features = written["files"]["Thumos14reduced-I3D-JOINTFeatures.npy"]
  assert features["dtype"] == "object" and features["shape"] == [10]
  assert written["annotations"]["layout"] == "wtalc"
  assert list(manifest.compare(folder, written)) == []
  other = dict(written, dataset="activitynet12")
  differences = [str(d) for d in manifest.compare(folder, other, dataset="thumos14")]
  assert any("dataset 'thumos14' here, 'activitynet12' in the manifest" in d
             for d in differences)


def test_a_manifest_inside_the_folder_leaves_itself_out(folder, capsys):
  path = os.path.join(folder, "MANIFEST.json")
  _write(folder, path, capsys)
  assert "MANIFEST.json" not in json.loads(open(path).read())["files"]
  assert _compare(folder, path, capsys, 0)


@pytest.mark.slow
@pytest.mark.parametrize("content, says", [
    (None, "manifest not found"),
    ("{not json", "unreadable manifest"),
    ('{"files": {}}', "not a salx manifest"),
])
def test_an_unusable_manifest_exits_2_with_one_line(folder, tmp_path, capsys, content,
                                                    says):
  path = tmp_path / "m.json"
  if content is not None:
    path.write_text(content)
  assert check.main(["--dataset=thumos14", f"--data_dir={folder}",
                     f"--manifest={path}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and says in err[0] and str(path) in err[0]


@pytest.mark.slow
def test_both_manifest_flags_or_an_unopenable_folder_exit_2(folder, tmp_path, capsys):
  assert check.main(["--dataset=thumos14", f"--data_dir={folder}",
                     "--manifest=a.json", "--write_manifest=b.json"]) == 2
  assert "not both" in capsys.readouterr().err
  assert check.main(["--dataset=thumos14", f"--data_dir={tmp_path / 'none'}",
                     f"--write_manifest={tmp_path / 'm.json'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "none" in err[0]
  assert not (tmp_path / "m.json").exists()
