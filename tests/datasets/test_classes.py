"""Class orders: the ActivityNet 1.3 default is the authors' (sorted names); a folder's
classlist.txt always wins."""

import csv
import json
import shutil

import pytest

from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets.errors import DataError
from tests.conftest import data_file


def _csv_rows(path):
  with open(path, newline="") as f:
    return [row[0] for row in list(csv.reader(f))[1:]]


def _annotated_folder(folder, labels):
  """An 'acmnet' folder (no features needed to open it) with one video per label."""
  folder.mkdir(exist_ok=True)
  (folder / "train").mkdir(exist_ok=True)
  names = [f"v_{i}" for i in range(len(labels))]
  database = {name: {"subset": "train", "annotations": [
      {"label": label, "segment": [1.0, 2.0]}]} for name, label in zip(names, labels)}
  (folder / "gt.json").write_text(json.dumps({"database": database}))
  (folder / "split_train.txt").write_text("\n".join(names) + "\n")
  (folder / "split_test.txt").write_text("")
  return folder


def test_action_name_csv_gives_the_sorted_names():
  path = data_file("activitynet13/action_name.csv")
  rows = _csv_rows(path)
  assert len(rows) == 200
  assert rows != sorted(rows)   # BSN's file has an order of its own.
  order = classes.read_class_list(path)
  assert order == tuple(sorted(rows))
  assert order[:5] == ("Applying sunscreen", "Archery", "Arm wrestling",
                       "Assembling bicycle", "BMX")


def test_activitynet13_real_labels_sorted_are_the_default_order(tmp_path):
  gt = json.loads(data_file("activitynet13/gt_from_bsn.json").read_text())["database"]
  used = {a["label"] for video in gt.values() for a in video["annotations"]}
  expected = tuple(sorted(used))
  assert classes.default_class_names("activitynet13", used, "gt.json") == expected
  assert expected == classes.read_class_list(data_file("activitynet13/action_name.csv"))
  # A folder of these labels and no class list gets the same order.
  folder = _annotated_folder(tmp_path / "plain", sorted(used, reverse=True))
  assert layouts.open_source(folder, "activitynet13").class_names == expected
  # So does one holding BSN's action_name.csv.
  folder = _annotated_folder(tmp_path / "bsn", ["Archery"])
  shutil.copy(data_file("activitynet13/action_name.csv"), folder / "action_name.csv")
  assert layouts.open_source(folder, "activitynet13").class_names == expected


def test_the_order_is_by_code_point_not_case_insensitive():
  # Upper case before lower case: the authors' list has "BMX" before "Baking cookies".
  names = ["archery", "Baking cookies", "Zumba", "BMX"] + [f"Class {i:03d}"
                                                        for i in range(196)]
  order = classes.default_class_names("activitynet13", names, "gt.json")
  assert len(order) == 200
  positions = [order.index(n) for n in ("BMX", "Baking cookies", "Zumba", "archery")]
  assert positions == sorted(positions)
  assert order[-1] == "archery"


def test_classlist_txt_takes_precedence(tmp_path):
  folder = _annotated_folder(tmp_path / "data", ["Run", "Jump"])
  (folder / "classlist.txt").write_text("Run\nJump\n")
  (folder / "action_name.csv").write_text("action\nJump\nRun\n")
  assert layouts.open_source(folder, "activitynet13").class_names == ("Run", "Jump")
  (folder / "classlist.txt").unlink()
  assert layouts.open_source(folder, "activitynet13").class_names == ("Jump", "Run")


@pytest.mark.parametrize("dataset,count", [("activitynet12", 100),
                                           ("activitynet13", 200)])
def test_activitynet_without_all_classes_or_a_list_is_a_clear_error(tmp_path, dataset,
                                                                    count):
  folder = _annotated_folder(tmp_path / "data", ["Run", "Jump"])
  with pytest.raises(DataError) as error:
    layouts.open_source(folder, dataset)
  message = str(error.value)
  assert message.startswith(f"{folder / 'gt.json'}: cannot tell the class order of "
                            f"{dataset} (2 classes used, {count} expected)")
  assert "classlist.txt" in message and "action_name.csv" in message


@pytest.mark.parametrize("content,message", [
    ("", "the class list is empty"),
    ("Run\nJump\nRun\n", "the class list repeats ['Run']"),
])
def test_bad_class_lists(tmp_path, content, message):
  path = tmp_path / "classlist.txt"
  path.write_text(content)
  with pytest.raises(DataError) as error:
    classes.read_class_list(path)
  assert str(error.value) == f"{path}: {message}"
