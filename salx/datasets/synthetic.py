r"""Writes a synthetic I3D-feature dataset in one of the real layouts.

    python -m salx.datasets.synthetic --out DIR [--layout sal|wtalc|acmnet]
        [--dataset thumos14] [--annotations GT.json --video_info CSV ...]
        [--<SyntheticSpec field>=VALUE ...] [--overwrite]

Without --annotations the demo dataset (or the sizes given by the SyntheticSpec
flags); with it, a copy of a real dataset's videos, lengths and instances with
synthetic features. The generator is `salx.datasets.synthesis` (its docstring
explains the knobs). Exit status: 0 written (or already there), 2 bad input, with
one line naming the flag or the file.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional, Sequence

from absl import flags

from salx.core import constants
from salx import cli
from salx.datasets import layouts
from salx.datasets import synthesis
from salx.datasets.errors import DataError

_PROGRAM = "python -m salx.datasets.synthetic"


def _define_flags(values: flags.FlagValues) -> None:
  """The command's flags, on their own FlagValues (importing defines nothing)."""
  def string(name, help_text, default=None):
    flags.DEFINE_string(name, default, help_text, flag_values=values)

  string("out", "the dataset folder to create (required)")
  flags.mark_flag_as_required("out", flag_values=values)
  flags.DEFINE_enum("layout", "sal", layouts.LAYOUTS, "the layout to write",
                    flag_values=values)
  flags.DEFINE_enum("dataset", "thumos14", layouts.DATASETS,
                    "the benchmark whose conventions to follow", flag_values=values)
  string("annotations", "an ActivityNet-style gt.json whose videos and instances to copy")
  string("video_info", "a CSV of true durations (video, duration_s) for the copies")
  string("split_train", "the split list of the train videos to copy")
  string("split_test", "the split list of the test videos to copy")
  string("class_list", "the class order: classlist.txt or action_name.csv")
  flags.DEFINE_integer("max_videos", None, "copy at most N videos per split",
                       flag_values=values)
  flags.DEFINE_integer("max_snippets", None,
                       "crop copied videos to N snippets (fast tests)", flag_values=values)
  flags.DEFINE_bool("overwrite", False, "replace whatever --out holds",
                    flag_values=values)
  for field in dataclasses.fields(synthesis.SyntheticSpec):
    define = (flags.DEFINE_integer if isinstance(field.default, int)
              else flags.DEFINE_float)
    define(field.name, None, f"SyntheticSpec.{field.name} (default {field.default})",
           flag_values=values)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (without the program name); returns the exit status."""
  args, status = cli.parse_command(_PROGRAM, __doc__, _define_flags,
                                   sys.argv[1:] if argv is None else argv)
  if args is None:
    return status
  try:
    overrides = {f.name: args[f.name].value
                 for f in dataclasses.fields(synthesis.SyntheticSpec)
                 if args[f.name].value is not None}
    split_files = {split: args[f"split_{split}"].value for split in constants.SPLITS
                   if args[f"split_{split}"].value}
    spec = synthesis.SyntheticSpec(**overrides)
    path = synthesis.make_synthetic_dataset(
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


if __name__ == "__main__":
  sys.exit(main())
