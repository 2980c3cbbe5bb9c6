"""Feature files + annotations -> :class:`lasca_jax.data.types.Recording` (shared by dataset loaders).

Every media-based recording has the same 73 columns: the 58 face values
(:data:`lasca_jax.data.types.FACE_FEATURE_NAMES`, modality ``"face"``) then the 15 MFCCs
(:data:`lasca_jax.data.types.MFCC_NAMES`, modality ``"audio"``), pooled onto the annotation time base
with :func:`lasca_jax.data.extract.align.pool_to_time_base`.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from typing import Iterable, Optional

import numpy as np

from lasca_jax.data import files as files_lib, types as data
from lasca_jax.data.extract import align, store

FEATURE_NAMES: tuple[str, ...] = data.FACE_FEATURE_NAMES + data.MFCC_NAMES
MODALITIES: tuple[str, ...] = (("face",) * len(data.FACE_FEATURE_NAMES) +
                               ("audio",) * len(data.MFCC_NAMES))
DEFAULT_FEATURES_DIR = "lasca_features"


def features_dir(data_config) -> str:
  """``config.data.features_dir``, or ``<root>/lasca_features`` when empty."""
  folder = data_config.get("features_dir", "") or os.path.join(data_config.root,
                                                               DEFAULT_FEATURES_DIR)
  return os.path.expanduser(folder)


def features_path(data_config, recording_id: str) -> str:
  return os.path.join(features_dir(data_config), f"{recording_id}.npz")


def extract_command(dataset: str, root: str) -> str:
  return (f"python experiments/extract.py --config=configs/{dataset}.py "
          f"--config.data.root={root}")


def read_features(path: str, recording_id: str, dataset: str, root: str,
                  skip_missing: bool) -> Optional[dict]:
  """Loads a recording's feature file; a missing one raises (or warns and gives ``None``).

  Raises:
    FileNotFoundError: naming the file and the extraction command, unless ``skip_missing``.
    ValueError: when the file exists but is invalid (from :func:`store.load_features`).
  """
  if not os.path.exists(path):
    failure = extraction_failure(os.path.dirname(path), recording_id)
    if failure:
      reason, report = failure
      others = [r for r in failed_recordings(report) if r != recording_id]
      also = (f"; {len(others)} more failed too: {', '.join(others[:8])}"
              f"{' ...' if len(others) > 8 else ''}" if others else "")
      message = (f"{recording_id}: extraction failed for it ({reason}; see {report}{also}): fix "
                 f"or replace their media and run `{extract_command(dataset, root)}` again")
    else:
      message = (f"{recording_id}: feature file {path} is missing; run "
                 f"`{extract_command(dataset, root)}` first")
    if skip_missing:
      logging.warning("%s (skipped: config.data.skip_missing=True)", message)
      return None
    raise FileNotFoundError(message + " (or set --config.data.skip_missing=True)")
  return store.load_features(path)


def read_subject_map(path: str) -> dict[str, str]:
  """``{recording or video: subject}`` from a two-column CSV (``,``, ``;`` or tab; an optional
  header row whose second cell is ``subject``)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"subject map {path} does not exist (config.data.subject_map)")
  with open(path, newline="", encoding="utf-8-sig") as f:
    first = f.readline()
    f.seek(0)
    rows = [r for r in csv.reader(f, delimiter=files_lib.sniff_delimiter(first))
            if any(c.strip() for c in r)]
  if rows and len(rows[0]) > 1 and rows[0][1].strip().lower() == "subject":
    rows = rows[1:]
  out = {}
  for i, r in enumerate(rows, start=1):
    if len(r) < 2 or not r[0].strip() or not r[1].strip():
      raise ValueError(f"{path}: line {i}: expected 'recording,subject'")
    key = r[0].strip()
    if key in out and out[key] != r[1].strip():
      raise ValueError(f"{path}: line {i}: {key} is mapped to two subjects ({out[key]}, "
                       f"{r[1].strip()})")
    out[key] = r[1].strip()
  return out


def failed_recordings(report: str) -> list[str]:
  """The recordings an extraction report lists as failed, in its order."""
  try:
    with open(report) as f:
      results = json.load(f).get("results", [])
  except (OSError, ValueError, AttributeError):
    return []
  return [str(r.get("recording_id")) for r in results
          if isinstance(r, dict) and r.get("status") == "failed"]


def extraction_failure(folder: str, recording_id: str) -> Optional[tuple[str, str]]:
  """``(reason, report path)`` when an extraction report in ``folder`` lists the recording as
  failed (the newest report that mentions it wins), else ``None``."""
  reports = sorted(glob.glob(os.path.join(glob.escape(folder), "extract_report*.json")),
                   key=os.path.getmtime, reverse=True)
  for report in reports:
    try:
      with open(report) as f:
        results = json.load(f).get("results", [])
    except (OSError, ValueError, AttributeError):
      continue
    for r in results:
      if isinstance(r, dict) and r.get("recording_id") == recording_id:
        if r.get("status") == "failed":
          return str(r.get("reason", "no reason recorded")), report
        return None
  return None


def on_time_base(features: dict, times: np.ndarray, frame_clock: str = "pts") -> np.ndarray:
  """The 73 feature columns of a feature file on annotation ``times``.

  Args:
    features: from :func:`store.load_features`.
    times: ``float64 [T]`` annotation times in seconds (0 = first video frame).
    frame_clock: ``"pts"`` places frames at their presentation times; ``"index"`` at
      ``frame_index / fps`` (annotations given one row per frame, as in Aff-Wild2).

  Returns:
    ``float32 [T, 73]``.
  """
  meta = features["meta"]
  stride = meta["settings"]["frame_stride"]
  fps = meta.get("fps") or 0.0
  if frame_clock == "index" and fps:
    frame_times = features["frame_index"] / fps
  elif frame_clock in ("pts", "index"):
    frame_times = features["frame_times"]
  else:
    raise ValueError(f"unknown frame clock {frame_clock!r}")
  period = stride / fps if fps else 0.0
  face = align.pool_to_time_base(frame_times, features["face"], times, period)  # [T, 58]
  hop = meta["settings"]["mfcc_hop_seconds"]
  mfcc = align.pool_to_time_base(features["audio_times"], features["mfcc"], times, hop)  # [T, 15]
  return np.concatenate([face, mfcc], axis=1)


def file_stamps(paths: Iterable[str]) -> list[dict]:
  """``[{"path", "size", "mtime"}]`` of files (``"missing": True`` for absent ones)."""
  out = []
  for p in sorted(set(paths)):
    if os.path.exists(p):
      st = os.stat(p)
      out.append({"path": os.path.abspath(p), "size": st.st_size, "mtime": st.st_mtime})
    else:
      out.append({"path": os.path.abspath(p), "missing": True})
  return out


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".mpg", ".mpeg")
AUDIO_EXTENSIONS = (".wav", ".m4a", ".mp3", ".flac", ".ogg", ".aac", ".opus")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


def index_files(folders: Iterable[str], extensions: Iterable[str],
                exclude: Iterable[str] = ()) -> dict[str, str]:
  """``{stem: path}`` of the files with one of ``extensions`` (any case) under ``folders``.

  Folders are walked recursively in sorted order; ``exclude`` folders (e.g. the features folder)
  are skipped. When two files share a stem, the first in walk order wins and a warning is logged.
  """
  extensions, exclude = tuple(extensions), tuple(exclude)
  found: dict[str, str] = {}
  for folder in folders:
    for path in files_lib.walk_files(folder, extensions, exclude):
      stem = os.path.splitext(os.path.basename(path))[0]
      if stem in found:
        logging.warning("two media files named %s: using %s, ignoring %s", stem, found[stem], path)
        continue
      found[stem] = path
  return found


# Data fields that do not change the loaded frames: the lexicon (used by the prompts stage only)
# and the extraction settings (they act through the feature files, whose stamps are in the
# fingerprint). A dataset's fingerprint leaves them out, so changing them recomputes nothing.
NOT_IN_FINGERPRINT = ("lexicon", "face_model", "frame_stride", "num_faces", "sample_rate",
                      "mfcc_hop_seconds", "mfcc_window_seconds", "mfcc_top_db")


def config_fields(data_config) -> dict:
  """The data config as a plain JSON-ready dict (for fingerprints), minus
  :data:`NOT_IN_FINGERPRINT`."""
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(data_config.items())
          if k not in NOT_IN_FINGERPRINT}


# ----------------------------------------------------------------------------- pre-extracted CSVs

CSV_TIME_COLUMNS = ("frametime", "timestamp", "time", "frame_time", "time_s", "seconds")


def csv_dir(data_config, modality: str) -> str:
  """``config.data.<face|audio>_csv_dir`` resolved against root ("" when unset)."""
  folder = data_config.get(f"{modality}_csv_dir", "")
  if not folder:
    return ""
  return os.path.join(os.path.expanduser(data_config.root), os.path.expanduser(folder))


def csv_path(data_config, modality: str, recording_id: str) -> str:
  return os.path.join(csv_dir(data_config, modality), f"{recording_id}.csv")


def read_feature_csv(path: str, time_column: str = "auto", exclude: str = ""
                     ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
  """``(times [N], names [F], values [N, F])`` of a per-frame feature CSV (AVEC style).

  ``;``, ``,`` or tab separated with a header row; ``time_column`` ("auto": the first of
  :data:`CSV_TIME_COLUMNS`, any case) in seconds; every other numeric column is a feature
  except those in the comma list ``exclude``; text columns (AVEC's ``name``) are ignored.
  """
  columns = files_lib.read_csv(path)
  if time_column == "auto":
    lower = {k.lower().strip("'\""): k for k in columns}
    found = next((lower[c] for c in CSV_TIME_COLUMNS if c in lower), None)
    if found is None:
      raise ValueError(f"{path}: no time column (looked for {', '.join(CSV_TIME_COLUMNS)}); "
                       "set --config.data.csv_time_column")
    time_column = found
  if time_column not in columns or columns[time_column].dtype.kind != "f":
    raise ValueError(f"{path}: no numeric time column {time_column!r} "
                     "(config.data.csv_time_column)")
  times = columns[time_column]
  if np.isnan(times).any() or (times.size > 1 and not np.all(np.diff(times) > 0)):
    raise ValueError(f"{path}: the time column {time_column!r} must be finite and strictly "
                     "increasing (seconds)")
  skip = {time_column} | {c.strip() for c in str(exclude).split(",") if c.strip()}
  names = tuple(k for k, v in columns.items() if k not in skip and v.dtype.kind == "f")
  if not names:
    raise ValueError(f"{path}: no numeric feature columns")
  values = np.stack([columns[k] for k in names], axis=1).astype(np.float32)  # [N, F]
  if np.isinf(values).any():
    row, col = (int(i[0]) for i in np.nonzero(np.isinf(values)))
    raise ValueError(f"{path}: infinite value at row {row + 2} (column {names[col]!r})")
  return times, names, values


class Streams:
  """The per-frame sources of one recording: the extraction ``.npz`` and/or feature CSVs."""

  def __init__(self, npz: Optional[dict], csvs: dict):
    self.npz = npz      # from store.load_features, or None
    self.csvs = csvs    # {"face"|"audio": (times, names, values)}

  @property
  def fps(self) -> Optional[float]:
    return (self.npz["meta"].get("fps") or None) if self.npz else None

  @property
  def num_frames(self) -> Optional[int]:
    return self.npz["meta"]["num_frames"] if self.npz else None


def read_streams(data_config, recording_id: str, dataset: str) -> Optional[Streams]:
  """Reads what a recording's features come from (``None``: skipped, see ``skip_missing``).

  Each modality comes from its CSV folder when ``data.<face|audio>_csv_dir`` is set, else from
  the extraction ``.npz``. When one CSV folder is set and no extraction was ever run (no
  features folder), the other modality is absent (no columns), so data holding only, say,
  pre-extracted audio features runs with ``features.modality=audio``.
  """
  csvs = {}
  for modality in ("face", "audio"):
    if not csv_dir(data_config, modality):
      continue
    path = csv_path(data_config, modality, recording_id)
    if not os.path.isfile(path):
      message = (f"{recording_id}: pre-extracted {modality} feature file {path} is missing "
                 f"(config.data.{modality}_csv_dir)")
      if data_config.skip_missing:
        logging.warning("%s (skipped: config.data.skip_missing=True)", message)
        return None
      raise FileNotFoundError(message + " (or set --config.data.skip_missing=True)")
    csvs[modality] = read_feature_csv(path, data_config.get("csv_time_column", "auto"),
                                      data_config.get("csv_exclude_columns", ""))
  npz = None
  if len(csvs) < 2 and (not csvs or os.path.isdir(features_dir(data_config))):
    npz = read_features(features_path(data_config, recording_id), recording_id, dataset,
                        data_config.root, data_config.skip_missing)
    if npz is None:
      return None
    warn_settings_differ(npz.get("meta", {}).get("settings", {}), data_config, recording_id)
  return Streams(npz, csvs)


# Extraction settings a feature file records that the config also names.
EXTRACTION_FIELDS = ("frame_stride", "num_faces", "sample_rate", "mfcc_hop_seconds",
                     "mfcc_window_seconds", "mfcc_top_db")
# Settings a feature file records only when they differ from these defaults.
UNRECORDED_DEFAULTS = {"mfcc_top_db": 80.0}
_WARNED: set = set()


def warn_settings_differ(saved: dict, data_config, recording_id: str) -> list[str]:
  """Warns (once per field and values in a process) when a feature file was extracted with
  other settings than the config names: training reads the file as it is, but ``predict.py``
  extracts a new video with the config's (the bundle's) settings, so the two would differ.
  Returns the fields that differ."""
  differ = []
  for field in EXTRACTION_FIELDS:
    if (field not in saved and field not in UNRECORDED_DEFAULTS) or field not in data_config:
      continue
    mine, theirs = data_config[field], saved.get(field, UNRECORDED_DEFAULTS.get(field))
    if float(mine) != float(theirs):
      differ.append(field)
      key = (field, theirs, mine)
      if key not in _WARNED:
        _WARNED.add(key)
        logging.warning(
            "feature files were extracted with %s=%s but config.data.%s=%s (first: %s): "
            "training reads them as extracted, while predict.py extracts a new video with %s; "
            "extract again with the config's value, or set --config.data.%s=%s",
            field, theirs, field, mine, recording_id, mine, field, theirs)
  return differ


def _median_step(times: np.ndarray) -> float:
  return float(np.median(np.diff(times))) if times.size > 1 else 0.0


def streams_on_time_base(streams: Streams, times: np.ndarray, frame_clock: str = "pts"
                         ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
  """``(features [T, F], names, modalities)`` of a recording on annotation ``times``.

  CSV features are pooled like extracted ones (:func:`align.pool_to_time_base`, their period
  the median step of their time column); extracted ones as in :func:`on_time_base`.
  """
  extracted = on_time_base(streams.npz, times, frame_clock) if streams.npz else None  # [T, 73]
  parts, names, mods = [], [], []
  for modality, cols, base_names in (("face", slice(0, len(data.FACE_FEATURE_NAMES)),
                                      data.FACE_FEATURE_NAMES),
                                     ("audio", slice(len(data.FACE_FEATURE_NAMES), None),
                                      data.MFCC_NAMES)):
    if modality in streams.csvs:
      src_times, src_names, values = streams.csvs[modality]
      parts.append(align.pool_to_time_base(src_times, values, times, _median_step(src_times)))
      names += src_names
      mods += (modality,) * len(src_names)
    elif extracted is not None:
      parts.append(extracted[:, cols])
      names += base_names
      mods += (modality,) * len(base_names)
  return np.concatenate(parts, axis=1), tuple(names), tuple(mods)


def stream_stamps(data_config, recording_ids: Iterable[str]) -> dict:
  """File stamps of every source :func:`read_streams` may read (for fingerprints)."""
  ids = list(recording_ids)
  out = {"features": file_stamps(features_path(data_config, r) for r in ids)}
  for modality in ("face", "audio"):
    if csv_dir(data_config, modality):
      out[f"{modality}_csv"] = file_stamps(csv_path(data_config, modality, r) for r in ids)
  return out
