"""SEWA DB (Sec. 4.1): label files + video/audio -> Recordings.

Label formats (``config.data.label_format``, ``"auto"`` detects each file):

  * ``"avec2019"``: AVEC 2019 CES, ``;``-separated with header ``name;timestamp;arousal;valence;
    liking``, one row per 0.1 s, names like ``Train_DE_01`` (one file per recording, or several
    recordings in one file: rows are grouped by ``name``).
  * ``"avec2017"``: the AVEC 2017 layout (``labels/Train_01.csv``): the same five columns, no
    header.
  * ``"raters"``: raw SEWA DB per-recording CSVs, one for valence and one for arousal, with one
    column per rater; the mean over raters (ignoring empty cells) is the label (Sec. 4.1). A file
    is a raters file when its stem ends in ``valence`` / ``arousal`` (``DE_01_Valence.csv``,
    ``DE_01-arousal.csv``) or it lies in a folder named ``Valence`` / ``Arousal`` (then its stem
    is the recording). Separator ``,``, ``;`` or tab. An optional header row; the time column is
    the one whose header contains ``time`` (seconds) or ``frame`` (index / ``config.data.
    label_rate``), else the first column is time in seconds; ``config.data.raters_time_column=
    "none"`` means no time column (row / ``label_rate``). Every other column is a rater.

Label files are found by walking ``config.data.labels_dir`` (relative to root; default all of
root), skipping the features folder; CSVs of another shape (e.g. AVEC feature files) are ignored.

Media: ``<recording>.avi/.mp4/...`` video and ``<recording>.wav`` audio anywhere under root. The
separate ``.wav`` is used when present, else the video's audio track. Face frames are placed at
their presentation times (0 = first frame), the wav starts at 0, and both are mean-pooled onto
the 0.1 s label steps (:mod:`lasca_jax.data.extract.align`).

Subject id (``config.data.subject_id``): each SEWA recording shows one person, and AVEC numbers
recordings per partition, so ``Train_DE_01`` and ``Devel_DE_01`` are different people. The
default ``"recording"`` makes the subject the recording name. ``"strip_partition"`` drops the
partition prefix (``Train_DE_01`` -> ``DE_01``), which merges same-numbered recordings of
different partitions into one group (stricter splits, fewer groups).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import warnings
from typing import NamedTuple

import numpy as np

from lasca_jax.data import checks, files as files_lib, types as data
from lasca_jax.data.extract import load, runner

NAME = "sewa"
AVEC_HEADER = ("name", "timestamp", "arousal", "valence", "liking")
FORMATS = ("auto", "avec2019", "avec2017", "raters")
PARTITIONS = ("Train", "Devel", "Test")
_RATERS_STEM = re.compile(r"^(?P<rec>.+?)[_\-. ]?(?P<dim>valence|arousal)$", re.IGNORECASE)


def _split(line: str) -> list[str]:
  for sep in (";", "\t", ","):
    if sep in line:
      return [p.strip() for p in line.split(sep)]
  return line.split()


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def _read_lines(path: str) -> list[str]:
  with open(path, encoding="utf-8-sig", errors="replace") as f:
    return [line.rstrip("\r\n") for line in f if line.strip()]


def classify(path: str) -> tuple[str, str, str]:
  """``(format, recording or "", dimension or "")`` of a candidate label file; format "" = not one.

  Raters files get their recording and dimension from the name; AVEC files name their
  recordings in the rows.
  """
  lines = _read_lines(path)
  if not lines:
    return "", "", ""
  first = [p.lower() for p in lines[0].split(";")]
  if tuple(first) == AVEC_HEADER:
    return "avec2019", "", ""
  if len(first) == 5 and all(_is_number(p) for p in first[1:]):
    return "avec2017", "", ""
  stem = os.path.splitext(os.path.basename(path))[0]
  parent = os.path.basename(os.path.dirname(path)).lower()
  if parent in ("valence", "arousal"):
    return "raters", stem, parent
  m = _RATERS_STEM.match(stem)
  if m:
    return "raters", m.group("rec"), m.group("dim").lower()
  return "", "", ""


def label_files(data_config) -> list[tuple[str, str, str, str]]:
  """``(path, format, recording, dimension)`` of every label file, sorted by path."""
  root = os.path.join(os.path.expanduser(data_config.root),
                      os.path.expanduser(data_config.labels_dir))
  if not os.path.isdir(root):
    raise FileNotFoundError(f"SEWA label folder {root} does not exist "
                            "(set --config.data.root or --config.data.labels_dir)")
  if data_config.label_format not in FORMATS:
    raise ValueError(f"unknown SEWA label_format {data_config.label_format!r}; "
                     f"expected one of {FORMATS}")
  skip = (load.features_dir(data_config), load.csv_dir(data_config, "face"),
          load.csv_dir(data_config, "audio"))
  found = []
  for path in files_lib.walk_files(root, (".csv", ".txt", ".arff"), exclude=skip):
    kind, rec, dim = classify(path)
    if kind and data_config.label_format in ("auto", kind):
      found.append((path, kind, rec, dim))
  if not found:
    raise FileNotFoundError(f"no SEWA label files ({data_config.label_format}) under {root}; "
                            "see lasca_jax/data/datasets/sewa.py for the formats")
  return found


def read_avec(path: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """``{name: (times, valence, arousal)}`` of an AVEC 2017/2019 label file."""
  rows = collections.defaultdict(list)
  for i, line in enumerate(_read_lines(path), start=1):
    parts = [p.strip() for p in line.split(";")]
    if i == 1 and tuple(p.lower() for p in parts) == AVEC_HEADER:
      continue
    if len(parts) != 5:
      raise ValueError(f"{path}: line {i}: expected 5 ';'-separated columns "
                       f"(name;timestamp;arousal;valence;liking), got {len(parts)}")
    try:
      t, a, v = float(parts[1]), float(parts[2]), float(parts[3])
    except ValueError:
      raise ValueError(f"{path}: line {i}: non-numeric timestamp/arousal/valence in "
                       f"{line!r}") from None
    rows[parts[0].strip("'\"")].append((t, v, a))
  out = {}
  for name, r in rows.items():
    arr = np.asarray(r, np.float64)  # [T, 3]: time, valence, arousal
    out[name] = (arr[:, 0], arr[:, 1].astype(np.float32), arr[:, 2].astype(np.float32))
  return out


def read_raters(path: str, label_rate: float, time_column: str = "auto"
                ) -> tuple[np.ndarray, np.ndarray]:
  """``(times [T], mean over raters [T])`` of a raw SEWA per-rater CSV (module docstring)."""
  lines = _read_lines(path)
  if not lines:
    raise ValueError(f"{path}: empty label file")
  header = _split(lines[0])
  has_header = not all(_is_number(p) for p in header if p)
  body = [_split(line) for line in lines[1 if has_header else 0:]]
  width = len(header)
  for i, parts in enumerate(body, start=2 if has_header else 1):
    if len(parts) != width:
      raise ValueError(f"{path}: line {i}: {len(parts)} columns, expected {width}")
  try:
    table = np.array([[float(p) if p else np.nan for p in parts] for parts in body], np.float64)
  except ValueError as e:
    raise ValueError(f"{path}: non-numeric cell ({e})") from None
  if table.size == 0:
    raise ValueError(f"{path}: no label rows")
  names = [h.lower() for h in header] if has_header else [""] * width
  col, unit = 0, "seconds"
  if time_column == "none":
    col, unit = None, "rows"
  elif has_header:
    for j, name in enumerate(names):
      if "time" in name or "frame" in name:
        col, unit = j, ("frames" if "frame" in name and "time" not in name else "seconds")
        break
  if unit != "seconds" and label_rate <= 0:
    raise ValueError(f"{path}: the label time is given in {unit}; set config.data.label_rate "
                     "(labels per second)")
  if col is None:
    times = np.arange(table.shape[0]) / label_rate
    raters = table
  else:
    times = table[:, col] / (label_rate if unit == "frames" else 1.0)
    raters = np.delete(table, col, axis=1)
  if raters.shape[1] == 0:
    raise ValueError(f"{path}: no rater columns")
  with warnings.catch_warnings():  # A row no rater rated stays NaN, silently.
    warnings.simplefilter("ignore", RuntimeWarning)
    mean = np.nanmean(raters, axis=1)  # [T]
  return times, mean.astype(np.float32)


class Labels(NamedTuple):
  """One recording's continuous annotation and the files it was read from."""
  times: np.ndarray      # float [T] seconds
  valence: np.ndarray    # float32 [T]
  arousal: np.ndarray    # float32 [T]
  sources: list[str]


def read_labels(data_config) -> dict[str, Labels]:
  """``{recording: (times, valence, arousal, source files)}`` from every label file."""
  out = {}
  raters = collections.defaultdict(dict)
  for path, kind, rec, dim in label_files(data_config):
    if kind == "raters":
      if dim in raters[rec]:
        raise ValueError(f"{path}: a second {dim} file for {rec} ({raters[rec][dim]})")
      raters[rec][dim] = path
      continue
    for name, (t, v, a) in read_avec(path).items():
      if name in out:
        raise ValueError(f"{path}: recording {name} is also labelled in {out[name].sources[0]}")
      out[name] = Labels(t, v, a, [path])
  for rec, files in sorted(raters.items()):
    if set(files) != {"valence", "arousal"}:
      only = next(iter(files.values()))
      raise ValueError(f"{only}: no matching {({'valence', 'arousal'} - set(files)).pop()} "
                       f"file for recording {rec}")
    if rec in out:
      raise ValueError(f"{files['valence']}: recording {rec} is also labelled in "
                       f"{out[rec].sources[0]}")
    tv, v = read_raters(files["valence"], data_config.label_rate, data_config.raters_time_column)
    ta, a = read_raters(files["arousal"], data_config.label_rate, data_config.raters_time_column)
    n = min(tv.size, ta.size)
    if tv.size != ta.size:
      logging.warning("%s: valence has %d rows, arousal %d; using the first %d", rec, tv.size,
                      ta.size, n)
    if not np.allclose(tv[:n], ta[:n]):
      raise ValueError(f"{files['valence']} and {files['arousal']}: time columns differ")
    out[rec] = Labels(tv[:n], v[:n], a[:n], [files["valence"], files["arousal"]])
  return dict(sorted(out.items()))


def subject_of(recording_id: str, rule: str) -> str:
  """Subject id of a recording under ``rule`` (``"recording"`` or ``"strip_partition"``)."""
  if rule == "recording":
    return recording_id
  if rule == "strip_partition":
    for p in PARTITIONS:
      if recording_id.startswith(p + "_"):
        return recording_id[len(p) + 1:]
    return recording_id
  raise ValueError(f"unknown SEWA subject_id rule {rule!r}; use 'recording' or "
                   "'strip_partition'")


def media_jobs(data_config) -> list[runner.MediaJob]:
  """One extraction job per labelled recording: its video, and its ``.wav`` when there is one."""
  labels = read_labels(data_config)  # First: fails fast on a wrong root.
  root = os.path.expanduser(data_config.root)
  skip = [load.features_dir(data_config)]
  videos = load.index_files([root], load.VIDEO_EXTENSIONS, exclude=skip)
  audios = load.index_files([root], load.AUDIO_EXTENSIONS, exclude=skip)
  jobs = []
  for rec in labels:
    if rec not in videos and rec not in audios:
      logging.warning("%s: no video or audio file named %s.* under %s", rec, rec, root)
    jobs.append(runner.MediaJob(rec, videos.get(rec), audios.get(rec),
                                load.features_path(data_config, rec)))
  return jobs


def load_recordings(data_config) -> list[data.Recording]:
  """Every labelled recording as a :class:`lasca_jax.data.types.Recording` (module docstring)."""
  recordings = []
  for rec, (times, valence, arousal, sources) in read_labels(data_config).items():
    if times.size > 1 and not np.all(np.diff(times) > 0):
      raise ValueError(f"{sources[0]}: timestamps of {rec} are not strictly increasing")
    streams = load.read_streams(data_config, rec, NAME)
    if streams is None:
      continue
    values, names, mods = load.streams_on_time_base(streams, np.asarray(times, np.float64),
                                                    frame_clock="pts")
    recording = data.Recording(
        recording_id=rec, subject_id=subject_of(rec, data_config.subject_id),
        times=np.asarray(times, np.float64), features=values, feature_names=names,
        modalities=mods, valence=valence, arousal=arousal)
    recording.validate(sources[0])
    recordings.append(recording)
  return recordings


SEWA_LABEL_HZ = 10.0   # the AVEC CES labels' rate


def time_base_hz(data_config) -> float:
  """``data.label_rate`` when set, else the AVEC labels' 10 Hz."""
  rate = float(data_config.get("label_rate", 0.0) or 0.0)
  return rate if rate > 0 else SEWA_LABEL_HZ


def validate(data_config) -> list[str]:
  """Problems of the SEWA fields (see :mod:`lasca_jax.data.checks`)."""
  return (checks.root_problems(data_config, "SEWA dataset") +
          checks.field_problems(data_config, "data", checks.MEDIA_RULES + (
              ("label_format", checks.one_of(FORMATS)),
              ("subject_id", checks.one_of(("recording", "strip_partition"))),
              ("label_rate", checks.number_in(0, float("inf"))),
              ("raters_time_column", checks.one_of(("auto", "none"))))) +
          checks.csv_dir_problems(data_config))


def fingerprint(data_config) -> dict:
  """Every file :func:`load_recordings` reads (path, size, mtime) plus the data config."""
  files = label_files(data_config)
  recs = read_labels(data_config)
  return {"dataset": NAME, "config": load.config_fields(data_config),
          "labels": load.file_stamps(f[0] for f in files),
          **load.stream_stamps(data_config, recs)}
