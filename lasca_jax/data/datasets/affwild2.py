"""Aff-Wild2, ABAW valence-arousal track (Sec. 4.1): annotation files + videos -> Recordings.

Layout, as the dataset ships (all folders under ``config.data.root``):

  * Annotations: one ``<name>.txt`` per annotated person, header ``valence,arousal`` and one line
    per video frame with values in [-1, 1]; ``-5`` marks an unannotated frame (-> NaN). Found by
    walking ``config.data.annotations_dir`` (default: the whole root) for ``.txt`` files whose
    first line is that header, so the ABAW folder names (``Train_Set``, ``Validation_Set``, ...)
    do not matter.
  * Videos: ``<name>.mp4`` or ``.avi`` in ``config.data.video_dirs`` (default ``batch1``,
    ``batch2``, ``new_vids``; the whole root when none of them exists). Two-person videos have
    two annotation files, ``<video>_left.txt`` and ``<video>_right.txt``; both read ``<video>``,
    and MediaPipe runs with two faces and keeps the left-most / right-most face in the image
    (see :mod:`lasca_jax.data.extract.video`). Audio is the video's track, shared by both persons.

Time base and alignment: annotation row ``i`` belongs to decoded frame ``i`` (ABAW's convention),
at ``i / fps`` seconds with ``fps`` read from each video. Rows and decoded frames often differ in
count (by one or many): rows past the last decoded frame get NaN features (and the windowing's
``min_valid_fraction`` drops windows made of them), frames past the last row are unused. With a
frame stride, a row between processed frames takes the nearest processed frame within half a
stride. MFCC frames (10 ms) are mean-pooled onto the rows.

Subject id: Aff-Wild2 has 558 videos of 458 people, and the same person appears in several
videos. ``config.data.subject_map`` (a CSV ``video,subject``, relative to root or absolute)
names the person of each annotation: a row for the annotation stem (``video5_left``) wins, then
a row for its video (``video5``; for a two-person video that puts both persons in one group,
which only makes splits stricter). Without a map the subject is the annotation file's stem and a
warning says that one person in several videos can then sit on both sides of a split; with a
map, an annotation it does not list is an error.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np

from lasca_jax.data import checks, files as files_lib, types as data
from lasca_jax.data.extract import load, runner

NAME = "affwild2"
HEADER = "valence,arousal"
UNANNOTATED = -5.0
SIDE_SUFFIXES = {"_left": "left", "_right": "right"}


def _first_line(path: str) -> str:
  with open(path, encoding="utf-8", errors="replace") as f:
    return f.readline().strip().lower().replace(" ", "")


def annotation_files(data_config) -> list[str]:
  """Every annotation file (``.txt`` with the ``valence,arousal`` header), sorted by stem."""
  root = os.path.join(os.path.expanduser(data_config.root),
                      os.path.expanduser(data_config.annotations_dir))  # Absolute wins.
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Aff-Wild2 annotation folder {root} does not exist "
                            "(set --config.data.root or --config.data.annotations_dir)")
  files = [path for path in files_lib.walk_files(root, (".txt",),
                                                 exclude=[load.features_dir(data_config)])
           if _first_line(path) == HEADER]
  if not files:
    raise FileNotFoundError(f"no Aff-Wild2 annotation files (.txt starting with "
                            f"'{HEADER}') under {root}")
  stems = [os.path.splitext(os.path.basename(p))[0] for p in files]
  dup = sorted({s for s in stems if stems.count(s) > 1})
  if dup:
    raise ValueError(f"Aff-Wild2 annotation names appear twice under {root}: {dup[:5]}")
  return sorted(files, key=lambda p: os.path.basename(p))


def read_annotation(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Valence and arousal ``float32 [T]`` of one annotation file, NaN where ``-5``.

  Raises:
    ValueError: naming the file and line for a bad header, a malformed line, a value outside
      [-1, 1] other than -5, or a file without rows.
  """
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = f.read().splitlines()
  if not lines or lines[0].strip().lower().replace(" ", "") != HEADER:
    raise ValueError(f"{path}: expected the header line {HEADER!r}")
  rows = []
  for i, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    parts = line.split(",")
    try:
      if len(parts) != 2:
        raise ValueError(f"{len(parts)} columns")
      rows.append((float(parts[0]), float(parts[1])))
    except ValueError as e:
      raise ValueError(f"{path}: line {i}: expected 'valence,arousal' numbers, got "
                       f"{line.strip()!r} ({e})") from None
  if not rows:
    raise ValueError(f"{path}: no annotation rows")
  va = np.asarray(rows, np.float64)  # [T, 2]
  invalid = va == UNANNOTATED
  bad = ~invalid & ~((va >= -1) & (va <= 1))
  if bad.any():
    i = int(np.nonzero(bad.any(axis=1))[0][0])
    raise ValueError(f"{path}: line {i + 2}: value {va[i].tolist()} is outside [-1, 1] and "
                     f"is not the unannotated marker {UNANNOTATED:g}")
  va[invalid] = np.nan
  return va[:, 0].astype(np.float32), va[:, 1].astype(np.float32)


def video_name(stem: str) -> tuple[str, str]:
  """``(video stem, side)`` of an annotation stem: ``x_left`` -> ``("x", "left")``."""
  for suffix, side in SIDE_SUFFIXES.items():
    if stem.endswith(suffix):
      return stem[:-len(suffix)], side
  return stem, "any"


def video_index(data_config) -> dict[str, str]:
  """``{stem: path}`` of the videos in ``config.data.video_dirs`` (or the whole root)."""
  root = os.path.expanduser(data_config.root)
  dirs = [d if os.path.isabs(d) else os.path.join(root, d)
          for d in str(data_config.video_dirs).split(",") if d.strip()]
  dirs = [d for d in dirs if os.path.isdir(d)] or [root]
  return load.index_files(dirs, load.VIDEO_EXTENSIONS, exclude=[load.features_dir(data_config)])


def find_video(stem: str, videos: dict[str, str]) -> tuple[Optional[str], str]:
  """The video and face side of an annotation stem (``(None, side)`` when absent)."""
  name, side = video_name(stem)
  if side != "any" and name in videos:
    return videos[name], side
  return videos.get(stem), "any"


def media_jobs(data_config) -> list[runner.MediaJob]:
  """One extraction job per annotation file (two per two-person video)."""
  annotations = annotation_files(data_config)  # First: fails fast on a wrong root.
  videos = video_index(data_config)
  jobs = []
  for path in annotations:
    stem = os.path.splitext(os.path.basename(path))[0]
    video, side = find_video(stem, videos)
    if video is None:
      logging.warning("%s: no video %s.mp4/.avi found", path, video_name(stem)[0])
    jobs.append(runner.MediaJob(stem, video, None, load.features_path(data_config, stem), side))
  return jobs


def row_frame_gap_message(stem: str, rows: int, frames: int) -> str:
  """What a different count of annotation rows and decoded frames means for ``stem``."""
  what = ("the rows past the last frame have no face features" if rows > frames else
          "the frames past the last row are unused")
  return (f"{stem}: {rows} annotation rows, {frames} decoded frames (aligned by frame index; "
          f"{what})")


def subject_map_path(data_config) -> str:
  path = data_config.get("subject_map", "")
  if not path:
    return ""
  return os.path.join(os.path.expanduser(data_config.root), os.path.expanduser(path))


def subject_of(stem: str, mapping: dict[str, str], path: str) -> str:
  """The person of an annotation stem under ``mapping`` (module docstring)."""
  if not mapping:
    return stem
  for key in (stem, video_name(stem)[0]):
    if key in mapping:
      return mapping[key]
  raise ValueError(f"{stem}: neither it nor its video {video_name(stem)[0]} is in the subject "
                   f"map {path} (config.data.subject_map)")


def load_recordings(data_config) -> list[data.Recording]:
  """Every annotated person as a :class:`lasca_jax.data.types.Recording` (see the module docstring)."""
  map_path = subject_map_path(data_config)
  mapping = load.read_subject_map(map_path) if map_path else {}
  if not mapping:
    logging.warning("Aff-Wild2 without config.data.subject_map: subject = annotation file stem, "
                    "so one person in several videos can sit on both sides of a split")
  recordings = []
  for path in annotation_files(data_config):
    stem = os.path.splitext(os.path.basename(path))[0]
    valence, arousal = read_annotation(path)
    streams = load.read_streams(data_config, stem, NAME)
    if streams is None:
      continue
    fps = streams.fps or float(data_config.get("fps", 0.0))
    if not fps:
      raise ValueError(f"{stem}: no video frame rate (its extracted feature file has none, or "
                       "there is none): set --config.data.fps, or re-run "
                       "experiments/extract.py on the video")
    times = np.arange(valence.shape[0]) / fps  # [T], row i <-> frame i.
    num_frames = streams.num_frames
    gap = abs(num_frames - valence.shape[0]) if num_frames is not None else 0
    if gap:  # Common by a frame or a few; a large gap suggests a wrong or truncated video.
      log = logging.warning if gap > max(5, 0.02 * num_frames) else logging.info
      log("%s", row_frame_gap_message(stem, valence.shape[0], num_frames))
    values, names, mods = load.streams_on_time_base(streams, times, frame_clock="index")
    rec = data.Recording(
        recording_id=stem, subject_id=subject_of(stem, mapping, map_path), times=times,
        features=values, feature_names=names, modalities=mods,
        valence=valence, arousal=arousal)
    rec.validate(path)
    recordings.append(rec)
  return recordings


def time_base_hz(data_config) -> float:
  """10 Hz. Aff-Wild2's labels follow each video's frames, whose rate differs between videos; a
  new recording is pooled onto a fixed 10 Hz grid instead, and its window means (over 30 or 50
  steps) hardly depend on that choice."""
  del data_config
  return 10.0


def validate(data_config) -> list[str]:
  """Problems of the Aff-Wild2 fields (see :mod:`lasca_jax.data.checks`)."""
  return (checks.root_problems(data_config, "Aff-Wild2 dataset") +
          checks.field_problems(data_config, "data", checks.MEDIA_RULES) +
          checks.csv_dir_problems(data_config))


def fingerprint(data_config) -> dict:
  """Every file :func:`load_recordings` reads (path, size, mtime) plus the data config."""
  files = annotation_files(data_config)
  stems = [os.path.splitext(os.path.basename(p))[0] for p in files]
  return {"dataset": NAME, "config": load.config_fields(data_config),
          "annotations": load.file_stamps(files),
          "subject_map": load.file_stamps([subject_map_path(data_config)]
                                          if subject_map_path(data_config) else []),
          **load.stream_stamps(data_config, stems)}
