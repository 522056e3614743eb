"""`python -m salx.detect`: the actions in any videos' I3D features.

    weights = weights_of_run("W")                                  # or
    weights = weights_of_checkpoint("CAS_Only.pkl", config)
    videos, skipped = find_videos(["features/test", "clip.npy"], feature_dim=2048)
    result = detect(weights, videos, fps=30.0)
    write_outputs(result, out="detections.json", plots="plots/")

The weights are a trained salx run's (its best params, else its latest; any member)
or an authors' checkpoint file of the config's method. The features are `.npy`
files of [L, D] (RGB then flow halves), folders of them, or a folder holding `rgb/`
and `flow/` of [L, D/2] files (the BaS-Net layout's `features/<split>`); a video
is named by its file name. Salx does not extract features.

Each video goes through the method's own test-time handling, as `--mode=evaluate`
feeds test videos: resampled to T snippets with the method's test sampling (videos
of L <= T kept whole when the config says so), or whole when the method keeps test
videos whole. Videos are batched, padded and masked (whole videos grouped by
length, each batch padded to a bucket of lengths so that few shapes compile); the
files of the next batch are read while the model runs. The outputs are localized by
the method (`Method.localize`) into one `Detections`, in seconds at `fps` and
`frames_per_snippet` (default: the method's, 25 and 16).

A file that cannot be used (missing, not .npy, unreadable, the wrong width, no
snippets, NaN or infinite values, RGB and flow of different lengths) is skipped,
one `Skipped` line each; the rest still goes on.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import jax
import ml_collections
import numpy as np

from salx.app import checkpoints as checkpoint_lib
from salx.app import config as config_lib
from salx.app import pictures
from salx.app.checkpoints import load_init_params
from salx.app.runtime import ConfigError
from salx.core import hparams as hparams_lib
from salx.core import members as core_members
from salx.core import progress_bar
from salx.core import sharding
from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import sampling as sampling_lib
from salx.datasets.errors import DataError
from salx.postprocess.detections import Detections

STREAMS = ("rgb", "flow")
WHICH = ("best", "latest")


# ----------------------------------------------------------------------- weights


@dataclasses.dataclass(frozen=True)
class Weights:
  """What detection runs: the config, its method, hyperparameters and model, one
  member's params (host arrays) and the class names of the model's C outputs.

  Attributes:
    description: where the params come from, for reports.
  """
  config: ml_collections.ConfigDict
  method: Any
  hp: Any
  model: Any
  params: Any
  class_names: Tuple[str, ...]
  description: str


def read_class_names(path: str) -> Tuple[str, ...]:
  """A classlist.txt (one class per line) or BSN's action_name.csv.

  Raises:
    DataError: a missing or unreadable file.
  """
  return classes.read_class_list(os.path.expanduser(path))


def class_names_of(config: ml_collections.ConfigDict,
                   class_names_file: Optional[str] = None) -> Tuple[str, ...]:
  """The class order of the model's outputs.

  `class_names_file` when given; else the run's data folder's (as the run read
  it); for the synthetic dataset its generator's names; else the dataset's default
  order (THUMOS14's 20 classes).

  Raises:
    ConfigError: no class order can be told (name the file to read it from).
  """
  if class_names_file:
    return read_class_names(class_names_file)
  if config.dataset == "synthetic":
    from salx.datasets import synthetic  # pylint: disable=g-import-not-at-top
    return synthetic.synthetic_class_names(int(config.synthetic.num_classes))
  problem = "config.data_dir is empty"
  if config.get("data_dir") and config.get("data_source", "folder") == "folder":
    try:
      return tuple(layouts.open_source(config.data_dir, config.dataset, config.layout,
                                       feature_dim=config.feature_dim).class_names)
    except (DataError, ValueError) as e:
      problem = f"the data folder cannot be read ({' '.join(str(e).split())})"
  if config.dataset == "thumos14":
    return classes.THUMOS14_CLASSES
  raise ConfigError(f"cannot tell the {config.dataset} class order: {problem}; pass "
                    "--class_names FILE (a classlist.txt, one class per line, in the "
                    "order the model was trained with)")


def _checked_config(config: ml_collections.ConfigDict, where: str
                    ) -> ml_collections.ConfigDict:
  try:
    config_lib.check_config(config)
  except ConfigError as e:
    raise ConfigError(f"{where}: {e}") from None
  return config


def weights_of_run(workdir: str, member: int = 0, which: Optional[str] = None,
                   class_names_file: Optional[str] = None) -> Weights:
  """Member `member`'s params of the salx run in `workdir`.

  Args:
    workdir: the run's folder (W/metrics.json and its checkpoints).
    member: which member (0 for a run of one).
    which: 'best' (the best params), 'latest' (the last saved state), or None for
      the best, else the latest.
    class_names_file: the class order (default: `class_names_of` the run's config).

  Raises:
    pictures.NoRunError: no finished run or no such checkpoint in `workdir`.
    ConfigError: a bad member, or a saved config that cannot be used.
  """
  if which not in (None,) + WHICH:
    raise ConfigError(f"--which must be one of {WHICH}, got {which!r}")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  metrics = pictures.read_metrics(workdir)
  config = _checked_config(ml_collections.ConfigDict(metrics["config"]),
                           os.path.join(workdir, pictures.METRICS_FILE))
  method = config_lib.method_of(config)
  members = config_lib.members_of(config)
  if not 0 <= member < len(members):
    raise ConfigError(f"--member {member}: the run in {workdir} trained "
                      f"{len(members)} member(s), 0 to {len(members) - 1}")
  names = class_names_of(config, class_names_file)
  hp = members[member].hp
  model = config_lib.make_model(config, len(names), method, hp)
  mesh = sharding.make_mesh(num_members=len(members))
  state, _, _ = config_lib.init_members(method, model, config, members, mesh)
  params, step, kind = None, None, None
  with checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
    if which in (None, "best"):
      restored = ckpts.restore_best(state.params)
      if restored is not None:
        params, step, kind = restored[0], int(restored[2]), "best"
    if params is None and which in (None, "latest"):
      restored = ckpts.restore_latest(state)
      if restored is not None:
        params = restored[0].params
        step, kind = int(jax.device_get(restored[0].step)[member]), "latest"
  if params is None:
    folders = {"best": checkpoint_lib.BEST_DIR, "latest": checkpoint_lib.LATEST_DIR}
    wanted = [which] if which else list(WHICH)
    raise pictures.NoRunError(
        f"{workdir}: no {' and no '.join(wanted)} checkpoint ("
        + ", ".join(f"{folders[w]}/" for w in wanted) + ")")
  params = jax.tree_util.tree_map(lambda x: np.asarray(x)[member], params)
  what = (f"{kind} params of the run {workdir} (member {member}"
          f"{f', seed {members[member].seed}' if len(members) > 1 else ''}, step {step})")
  return Weights(config, method, hp, model, params, tuple(names), what)


def weights_of_checkpoint(path: str, config: ml_collections.ConfigDict,
                          class_names_file: Optional[str] = None) -> Weights:
  """The params of an authors' checkpoint file (or a salx run folder's best, member
  0) for the model `config` describes.

  Raises:
    FileNotFoundError: nothing at `path`.
    ConfigError: a bad config, or weights that do not fit it (the fields named).
  """
  config = _checked_config(config, "--config")
  method = config_lib.method_of(config)
  hp = config_lib.members_of(config)[0].hp
  names = class_names_of(config, class_names_file)
  model = config_lib.make_model(config, len(names), method, hp)
  shape = (1, method.num_segments(hp), config.feature_dim)
  template = jax.eval_shape(
      lambda key: method.init_params(model, hp, key, shape), jax.random.key(0))
  mesh = sharding.make_mesh(num_members=1)
  params, what = load_init_params(method, path, template, mesh)
  return Weights(config, method, hp, model, jax.device_get(params), tuple(names), what)


# ------------------------------------------------------------------------ videos


@dataclasses.dataclass(frozen=True)
class Video:
  """One video to detect actions in.

  Attributes:
    name: the file name without '.npy'.
    files: (the [L, D] file,) or (the RGB file, the flow file) of [L, D/2].
    num_snippets: L, from the files' headers.
  """
  name: str
  files: Tuple[str, ...]
  num_snippets: int


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A file left out, and why."""
  file: str
  reason: str

  def __str__(self) -> str:
    return f"{self.file}: {self.reason}"


class _Bad(Exception):
  """Internal: a file cannot be used (`Skipped`)."""

  def __init__(self, file: str, reason: str):
    super().__init__(reason)
    self.file, self.reason = file, reason


def _reason(error: DataError, path: str) -> str:
  text = " ".join(str(error).split())
  return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


def _npy_files(folder: str, skipped: List[Skipped]) -> Dict[str, str]:
  """{name: path} of the .npy files right inside `folder`; other entries skipped."""
  out = {}
  try:
    entries = sorted(os.listdir(folder))
  except OSError as e:
    skipped.append(Skipped(folder, f"cannot list the folder ({e.strerror or e})"))
    return out
  for entry in entries:
    path = os.path.join(folder, entry)
    if entry.startswith("."):
      continue
    if os.path.isdir(path):
      skipped.append(Skipped(path, "a folder inside a features folder (give it its own "
                                   "--features)"))
    elif not entry.endswith(".npy"):
      skipped.append(Skipped(path, "not a .npy file"))
    else:
      out[entry[:-len(".npy")]] = path
  return out


def _header_length(path: str, width: int) -> int:
  """L of a [L, width] .npy file, from its header."""
  try:
    shape = npy.read_npy_shape(path)
  except DataError as e:
    raise _Bad(path, _reason(e, path)) from None
  if len(shape) != 2 or shape[1] != width:
    raise _Bad(path, f"features of shape {list(shape)}, expected [L, {width}]")
  if shape[0] < 1:
    raise _Bad(path, "no snippets (an empty array)")
  return int(shape[0])


def _candidates(paths: Sequence[str], skipped: List[Skipped]
                ) -> Iterator[Tuple[str, Tuple[str, ...]]]:
  """(name, files) of every video the paths give, in order."""
  for given in paths:
    path = os.path.expanduser(given)
    if os.path.isdir(path):
      rgb_dir, flow_dir = (os.path.join(path, s) for s in STREAMS)
      if os.path.isdir(rgb_dir) and os.path.isdir(flow_dir):
        rgb, flow = _npy_files(rgb_dir, skipped), _npy_files(flow_dir, skipped)
        for name in sorted(set(rgb) | set(flow)):
          if name not in flow:
            skipped.append(Skipped(rgb[name], f"no flow file {os.path.join(flow_dir, name)}"
                                              ".npy for this RGB file"))
          elif name not in rgb:
            skipped.append(Skipped(flow[name], f"no RGB file {os.path.join(rgb_dir, name)}"
                                               ".npy for this flow file"))
          else:
            yield name, (rgb[name], flow[name])
      else:
        for name, file in _npy_files(path, skipped).items():
          yield name, (file,)
    elif os.path.isfile(path):
      if path.endswith(".npy"):
        yield os.path.basename(path)[:-len(".npy")], (path,)
      else:
        skipped.append(Skipped(path, "not a .npy file"))
    else:
      skipped.append(Skipped(path, "no such file or folder"))


def find_videos(paths: Sequence[str], feature_dim: int
                ) -> Tuple[List[Video], List[Skipped]]:
  """The videos the `--features` paths give, and the files skipped.

  Reads only the files' headers: a file that is missing, not .npy, unreadable, of
  the wrong width or empty is skipped here; its values are checked when it is read.
  A name given twice keeps its first files.
  """
  skipped: List[Skipped] = []
  videos: List[Video] = []
  seen: Dict[str, Tuple[str, ...]] = {}
  half = feature_dim // 2
  for name, files in _candidates(paths, skipped):
    if name in seen:
      skipped.append(Skipped(files[0], f"video {name} is also given by {seen[name][0]}; "
                                       "the first is kept"))
      continue
    try:
      lengths = [_header_length(f, feature_dim if len(files) == 1 else half)
                 for f in files]
    except _Bad as e:
      skipped.append(Skipped(e.file, e.reason))
      continue
    if len(set(lengths)) > 1:
      skipped.append(Skipped(files[1], f"{lengths[1]} flow snippets but {lengths[0]} RGB "
                                       f"snippets in {files[0]}"))
      continue
    seen[name] = files
    videos.append(Video(name, tuple(files), lengths[0]))
  return videos, skipped


def read_features(video: Video, feature_dim: int) -> np.ndarray:
  """[L, D] float32 features of `video`.

  Raises:
    _Bad: an unreadable file, values that are not real numbers, NaN or infinite.
  """
  parts = []
  width = feature_dim if len(video.files) == 1 else feature_dim // 2
  for path in video.files:
    try:
      array = npy.read_npy(path)
    except DataError as e:
      raise _Bad(path, _reason(e, path)) from None
    if array.dtype.hasobject or not np.issubdtype(array.dtype, np.number) or \
        np.iscomplexobj(array):
      raise _Bad(path, f"holds {array.dtype} values, not real numbers")
    if array.shape != (video.num_snippets, width):
      raise _Bad(path, f"features of shape {list(array.shape)}, expected "
                       f"[{video.num_snippets}, {width}]")
    finite = np.isfinite(array)
    if not finite.all():
      nan = int(np.isnan(array).sum())
      raise _Bad(path, f"{nan} NaN and {int(finite.size - finite.sum()) - nan} infinite "
                       "feature values")
    parts.append(np.asarray(array, np.float32))
  return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


# --------------------------------------------------------------------- detection


@dataclasses.dataclass(frozen=True)
class DetectResult:
  """What `detect` found.

  Attributes:
    detections: every processed video's detections (video_names: those videos,
      in the order given).
    skipped: the files left out.
    entries: with `timelines`, per video the arguments of a timeline picture
      (`pictures.batch_entries`), in the order given.
    description: the weights and the settings, for reports.
  """
  detections: Optional[Detections]
  skipped: List[Skipped]
  entries: List[Dict[str, Any]]
  description: str


class _NoAnnotations:
  """A stand-in data source for `pictures.batch_entries`: class names, no ground truth."""

  def __init__(self, class_names: Sequence[str]):
    self.class_names = tuple(class_names)

  def annotation(self, name: str):
    del name
    return None


def with_timing(hp: Any, fps: Optional[float], frames_per_snippet: Optional[int]) -> Any:
  """`hp` with `feature_fps` / `frames_per_segment` replaced when given.

  Raises:
    ConfigError: a value that is not positive, or a method whose hyperparameters
      hold no such field.
  """
  changes = {}
  for flag, field, value in (("--fps", "feature_fps", fps),
                             ("--frames_per_snippet", "frames_per_segment",
                              frames_per_snippet)):
    if value is None:
      continue
    if not value > 0:
      raise ConfigError(f"{flag} must be positive, got {value}")
    if not hasattr(hp, field):
      raise ConfigError(f"{flag}: the method's hyperparameters have no {field} field")
    kind = type(getattr(hp, field))
    changes[field] = int(value) if kind is int and float(value).is_integer() else value
  return dataclasses.replace(hp, **changes) if changes else hp


def length_bucket(length: int) -> int:
  """The padded length of a batch of whole videos at most `length` long: 16, 24,
  32, 48, 64, 96, ... (at most 1.5 times the length: few shapes to compile)."""
  bucket = 16
  while bucket < length:
    bucket = bucket * 3 // 2 if bucket & (bucket - 1) == 0 else bucket * 4 // 3
  return bucket


@dataclasses.dataclass(frozen=True)
class _Plan:
  """One batch: its videos and its padded length T."""
  videos: Tuple[Video, ...]
  num_segments: int


def plan_batches(videos: Sequence[Video], batch_size: int, whole: bool,
                 num_segments: int) -> List[_Plan]:
  """The batches: videos in order at T = `num_segments`; or, whole, by length (each
  batch at the bucket of its longest video)."""
  if not whole:
    return [_Plan(tuple(videos[i:i + batch_size]), num_segments)
            for i in range(0, len(videos), batch_size)]
  ordered = sorted(videos, key=lambda v: v.num_snippets)
  plans = []
  for i in range(0, len(ordered), batch_size):
    chunk = tuple(ordered[i:i + batch_size])
    plans.append(_Plan(chunk, length_bucket(max(v.num_snippets for v in chunk))))
  return plans


def _host_batch(plan: _Plan, rows: int, feature_dim: int, num_classes: int,
                sampling: str, keep_all_if_shorter: Optional[bool],
                skipped: List[Skipped]) -> Dict[str, np.ndarray]:
  """The padded, masked batch of `plan` (as `batches.eval_batch` makes a test batch);
  files that cannot be used are skipped (their rows stay padding)."""
  t = plan.num_segments
  out = {"features": np.zeros((rows, t, feature_dim), np.float32),
         "mask": np.zeros((rows, t), bool),
         "num_snippets": np.zeros((rows,), np.int64),
         "names": np.full((rows,), "", object),
         "labels": np.zeros((rows, num_classes), np.float32),
         "valid": np.zeros((rows,), bool)}
  for row, video in enumerate(plan.videos):
    try:
      features = read_features(video, feature_dim)
    except _Bad as e:
      skipped.append(Skipped(e.file, e.reason))
      continue
    index = sampling_lib.eval_indices(features.shape[0], t, sampling, keep_all_if_shorter)
    if index.size > t:
      skipped.append(Skipped(video.files[0], f"sampled to {index.size} snippets, more "
                                             f"than T = {t}"))
      continue
    out["features"][row, :index.size] = features[index]
    out["mask"][row, :index.size] = True
    out["num_snippets"][row] = features.shape[0]
    out["names"][row] = video.name
    out["valid"][row] = True
  return out


def _prefetched(plans: Sequence[_Plan], load: Callable[[_Plan], Any]) -> Iterator[Any]:
  """load(plan) of each plan in order, the next one read while the caller works."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    pending = pool.submit(load, plans[0]) if plans else None
    for i in range(len(plans)):
      batch = pending.result()
      pending = pool.submit(load, plans[i + 1]) if i + 1 < len(plans) else None
      yield batch


def _in_order(parts: Sequence[Detections], names: Sequence[str]) -> Detections:
  """The detections of `parts` with the videos `names` (every part's videos among
  them), each video's detections in their order."""
  whole = Detections.concatenate(list(parts))
  position = {n: i for i, n in enumerate(names)}
  video = np.asarray([position[whole.video_names[v]] for v in whole.video], np.int64)
  order = np.argsort(video, kind="stable")
  return Detections(tuple(names), whole.class_names, video[order], whole.label[order],
                    whole.score[order], whole.start[order], whole.end[order],
                    source=whole.source)


def filter_detections(detections: Detections, top_per_class: Optional[int] = None,
                      score_threshold: Optional[float] = None) -> Detections:
  """The detections scoring at least `score_threshold`, at most `top_per_class` per
  (video, class) (the best by score); the order kept."""
  keep = np.ones(len(detections), bool)
  if score_threshold is not None:
    keep &= detections.score >= score_threshold
  if top_per_class is not None and len(detections):
    index = np.flatnonzero(keep)
    order = index[np.lexsort((-detections.score[index], detections.label[index],
                              detections.video[index]))]
    group = detections.video[order] * (len(detections.class_names) + 1) + \
        detections.label[order]
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(order.size), 0))
    rank = np.arange(order.size) - first
    keep[:] = False
    keep[order[rank < top_per_class]] = True
  return detections.take(keep)


def detect(weights: Weights, videos: Sequence[Video], *, fps: Optional[float] = None,
           frames_per_snippet: Optional[int] = None, batch_size: Optional[int] = None,
           top_per_class: Optional[int] = None, score_threshold: Optional[float] = None,
           timelines: bool = False, progress: Optional[bool] = None,
           on_skip: Optional[Callable[[Skipped], None]] = None) -> DetectResult:
  """The detections of `videos` with `weights` (module docstring).

  Args:
    weights: the model and its params.
    videos: from `find_videos`.
    fps, frames_per_snippet: the features' frame rate and frames per snippet
      (default: the method's, 25 and 16): the seconds of the output.
    batch_size: videos per forward (default: config.eval_batch_size), rounded up
      to the devices.
    top_per_class, score_threshold: keep at most this many detections per video
      and class, and only those scoring at least this (default: all).
    timelines: also make the arguments of each video's timeline picture.
    progress: a bar of the videos done on stderr (None: when it is a terminal).
    on_skip: called with each file skipped while reading (as it is found).

  Raises:
    ConfigError: a bad --fps or --frames_per_snippet.
  """
  config, method, model = weights.config, weights.method, weights.model
  hp = with_timing(weights.hp, fps, frames_per_snippet)
  sampling = method.eval_sampling(weights.hp)
  whole = method.eval_keeps_whole_videos(weights.hp)
  keep_all = True if whole else bool(config.eval_keep_all_if_shorter)
  if sampling == sampling_lib.ACTIVITYNET and not keep_all:
    keep_all = None
  mesh = sharding.make_mesh(num_members=1)
  devices = sharding.data_axis_size(mesh)
  batch_size = int(batch_size or config.eval_batch_size)
  rows = -(-batch_size // devices) * devices
  plans = plan_batches(videos, rows, whole, method.num_segments(weights.hp))
  forward = sharding.jit_members_eval_forward(
      core_members.make_members_eval_forward(method, model), mesh)
  member = sharding.member_sharded(mesh)
  params = jax.device_put(jax.tree_util.tree_map(lambda x: np.asarray(x)[None],
                                                 weights.params), member)
  stacked = jax.device_put(hparams_lib.stack([weights.hp]), member)
  data = sharding.batch_sharded(mesh)
  skipped: List[Skipped] = []

  def load(plan: _Plan) -> Tuple[Dict[str, np.ndarray], List[Skipped]]:
    found: List[Skipped] = []
    return (_host_batch(plan, rows, config.feature_dim, len(weights.class_names),
                        sampling, keep_all, found), found)

  parts, entries = [], {}
  source = _NoAnnotations(weights.class_names)
  with progress_bar.ProgressBar(total=len(videos), label="detecting", unit="videos",
                                enabled=progress) as bar:
    for plan, (batch, found) in zip(plans, _prefetched(plans, load)):
      for item in found:
        skipped.append(item)
        if on_skip is not None:
          on_skip(item)
      if batch["valid"].any():
        features, mask = (jax.make_array_from_callback(
            batch[k].shape, data, lambda index, x=batch[k]: x[index])
                          for k in ("features", "mask"))
        outputs = jax.device_get(forward(params, features, mask, stacked))
        outputs = {k: np.asarray(v[0]) for k, v in outputs.items()}
        valid = batch["valid"]
        localized = method.localize(
            {k: v[valid] for k, v in outputs.items()}, batch["mask"][valid].sum(axis=1),
            batch["num_snippets"][valid], hp, video_names=list(batch["names"][valid]),
            class_names=weights.class_names)
        parts.append(localized.detections)
        if timelines:
          for entry in pictures.batch_entries(outputs, batch, method, hp, source):
            entry["detections"] = filter_detections(entry["detections"], top_per_class,
                                                    score_threshold)
            entries[entry["video"]] = entry
      bar.update(len(plan.videos))
  processed = {name for p in parts for name in p.video_names}
  done = [v.name for v in videos if v.name in processed]
  detections = None
  if parts:
    detections = filter_detections(_in_order(parts, done), top_per_class,
                                   score_threshold)
  settings = (f"{method.describe(weights.hp)}; {getattr(hp, 'feature_fps', 25)} fps, "
              f"{getattr(hp, 'frames_per_segment', 16)} frames per snippet; "
              + (f"whole videos ({sampling} sampling)" if whole else
                 f"T = {method.num_segments(weights.hp)} ({sampling} sampling)"))
  return DetectResult(detections, skipped, [entries[n] for n in done if n in entries],
                      f"weights: {weights.description}\n{settings}")


# ----------------------------------------------------------------------- outputs


def write_outputs(result: DetectResult, out: Optional[str], plots: Optional[str] = None,
                  top_per_class: Optional[int] = None,
                  score_threshold: Optional[float] = None) -> List[str]:
  """Writes the detections as ActivityNet JSON to `out`, and with `plots` a timeline
  per video and index.html into that folder (`salx.viz.run_pictures.draw_run`, as
  `python -m salx.visualize` draws them). Returns the files written, index.html
  last."""
  from salx.app import report  # pylint: disable=g-import-not-at-top
  files = []
  if result.detections is None:
    return files
  if out:
    out = os.path.abspath(os.path.expanduser(out))
    report.write_json(out, result.detections.to_json(
        details=f"salx.detect; {' '.join(result.description.split())}"))
    files.append(out)
  if plots:
    from salx.viz import run_pictures  # pylint: disable=g-import-not-at-top
    videos = len(result.detections.video_names)
    table = (f"{len(result.detections)} detections in {videos} videos"
             + (f", {len(result.skipped)} files skipped" if result.skipped else "")
             + f"\n{result.description}")
    files += run_pictures.draw_run(
        os.path.abspath(os.path.expanduser(plots)), per_video=result.entries, history=[],
        records=None, table_text=table, top_per_class=top_per_class or 10,
        score_threshold=score_threshold, title="salx detections")
  return files
