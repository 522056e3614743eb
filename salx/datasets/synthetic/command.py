r"""Writes a synthetic I3D-feature dataset in one of the real layouts.

    python -m salx.datasets.synthetic --out DIR [--layout sal|wtalc|acmnet]
        [--dataset thumos14] [--annotations GT.json --video_info CSV ...]
        [--<SyntheticSpec field>=VALUE ...] [--overwrite]

Without --annotations the demo dataset (the defaults of the SyntheticSpec flags are
those of `configs/synthetic.py`, so `--out DIR` alone writes the data the demo
trains on), or the sizes and difficulty given by those flags; with --annotations, a
copy of a real dataset's videos, lengths and instances with synthetic features. The
generator is the package, `salx.datasets.synthetic` (its docstring explains the knobs). A
progress bar counts the videos on stderr when it is a terminal. Exit status: 0
written (or already there), 2 bad input, with one line naming the flag or the file.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional, Sequence

from absl import flags

from salx.core import constants
from salx import cli
from salx.datasets import layouts
from salx.datasets import synthetic
from salx.datasets.errors import DataError

_PROGRAM = "python -m salx.datasets.synthetic"


def _define_flags(values: flags.FlagValues) -> None:
  """The command's flags, on their own FlagValues (importing defines nothing)."""
  def string(name, help_text, default=None):
    flags.DEFINE_string(name, default, help_text, flag_values=values)

  string("out", "The dataset folder to create (required). A folder that already "
         "holds the same synthetic dataset is kept as it is.")
  flags.mark_flag_as_required("out", flag_values=values)
  flags.DEFINE_enum("layout", "sal", layouts.LAYOUTS, "The feature layout to write: "
                    "sal (BaS-Net/SAL), wtalc (W-TALC) or acmnet (ACM-Net).",
                    flag_values=values)
  flags.DEFINE_enum("dataset", "thumos14", layouts.DATASETS,
                    "The benchmark whose conventions (subset names, file names, "
                    "class order) to follow.", flag_values=values)
  string("annotations", "An ActivityNet-style gt.json whose videos, lengths and "
         "instances to copy (default: the purely synthetic demo videos).")
  string("video_info", "With --annotations: a CSV of true durations (video, "
         "duration_s) for the copies (default: the gt.json durations).")
  string("split_train", "With --annotations: the split list of the train videos to "
         "copy (default: the gt.json subsets).")
  string("split_test", "With --annotations: the split list of the test videos to "
         "copy (default: the gt.json subsets).")
  string("class_list", "With --annotations: the class order, a classlist.txt or "
         "action_name.csv (default: THUMOS14's, else the sorted labels).")
  flags.DEFINE_integer("max_videos", None, "With --annotations: copy at most N "
                       "videos per split (default: all).", flag_values=values)
  flags.DEFINE_integer("max_snippets", None, "With --annotations: crop longer copies "
                       "to N snippets around their first instance, for fast tests "
                       "(default: no cropping).", flag_values=values)
  flags.DEFINE_bool("overwrite", False, "Replace whatever --out holds.",
                    flag_values=values)
  for field in dataclasses.fields(synthetic.SyntheticSpec):
    define = (flags.DEFINE_integer if isinstance(field.default, int)
              else flags.DEFINE_float)
    define(field.name, field.default, synthetic.FIELD_HELP[field.name],
           flag_values=values)


def spec_from_flags(values: flags.FlagValues) -> synthetic.SyntheticSpec:
  """The SyntheticSpec of the parsed flags (their defaults: the demo's).

  Raises:
    ValueError: the flags make an invalid spec.
  """
  return synthetic.SyntheticSpec(**{f.name: values[f.name].value
                                    for f in dataclasses.fields(synthetic.SyntheticSpec)})


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (without the program name); returns the exit status."""
  args, status = cli.parse_command(_PROGRAM, __doc__, _define_flags,
                                   sys.argv[1:] if argv is None else argv)
  if args is None:
    return status
  try:
    split_files = {split: args[f"split_{split}"].value for split in constants.SPLITS
                   if args[f"split_{split}"].value}
    spec = spec_from_flags(args)
    path = synthetic.make_synthetic_dataset(
        args.out, spec, args.layout, args.annotations, dataset=args.dataset,
        video_info=args.video_info, split_files=split_files or None,
        class_list=args.class_list, max_videos=args.max_videos,
        max_snippets=args.max_snippets, overwrite=args.overwrite)
    source = layouts.open_source(path, args.dataset, args.layout,
                                feature_dim=spec.feature_dim)
  except (DataError, ValueError) as e:
    return cli.command_error(_PROGRAM, f"{e} (see --help)")
  counts = {s: len(source.video_names(s)) for s in constants.SPLITS}
  print(f"wrote {path} ({args.layout} layout, {len(source.class_names)} classes, "
        f"{counts['train']} train / {counts['test']} test videos)")
  return 0

