"""Feature files + annotations -> :class:`lasca_jax.data.Recording` (shared by dataset loaders).

Every media-based recording has the same 73 columns: the 58 face values
(:data:`lasca_jax.data.FACE_FEATURE_NAMES`, modality ``"face"``) then the 15 MFCCs
(:data:`lasca_jax.data.MFCC_NAMES`, modality ``"audio"``), pooled onto the annotation time base
with :func:`lasca_jax.extract.align.pool_to_time_base`.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from typing import Iterable, Optional

import numpy as np

from lasca_jax import data
from lasca_jax.extract import align
from lasca_jax.extract import store

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
      message = (f"{recording_id}: extraction failed for it ({reason}; see {report}): fix or "
                 f"replace its media and run `{extract_command(dataset, root)}` again")
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
    delimiter = max((";", "\t", ","), key=first.count)
    rows = [r for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)]
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
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


def index_files(folders: Iterable[str], extensions: Iterable[str],
                exclude: Iterable[str] = ()) -> dict[str, str]:
  """``{stem: path}`` of the files with one of ``extensions`` (any case) under ``folders``.

  Folders are walked recursively in sorted order; ``exclude`` folders (e.g. the features folder)
  are skipped. When two files share a stem, the first in walk order wins and a warning is logged.
  """
  extensions = tuple(e.lower() for e in extensions)
  skip = {os.path.abspath(os.path.expanduser(e)) for e in exclude if e}
  found: dict[str, str] = {}
  for folder in folders:
    for dirpath, dirnames, filenames in os.walk(os.path.expanduser(folder)):
      dirnames[:] = sorted(d for d in dirnames
                           if os.path.abspath(os.path.join(dirpath, d)) not in skip)
      for name in sorted(filenames):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in extensions or name.startswith("."):
          continue
        path = os.path.join(dirpath, name)
        if stem in found:
          logging.warning("two media files named %s: using %s, ignoring %s", stem, found[stem],
                          path)
          continue
        found[stem] = path
  return found


# Data fields that do not change the loaded frames: the lexicon (used by the prompts stage only)
# and the extraction settings (they act through the feature files, whose stamps are in the
# fingerprint). A dataset's fingerprint leaves them out, so changing them recomputes nothing.
NOT_IN_FINGERPRINT = ("lexicon", "face_model", "frame_stride", "num_faces", "sample_rate",
                      "mfcc_hop_seconds", "mfcc_window_seconds")


def config_fields(data_config) -> dict:
  """The data config as a plain JSON-ready dict (for fingerprints), minus
  :data:`NOT_IN_FINGERPRINT`."""
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(data_config.items())
          if k not in NOT_IN_FINGERPRINT}
