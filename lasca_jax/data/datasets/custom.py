"""Your own data: per-recording tables of features and continuous labels -> Recordings.

Any per-frame features with continuous valence/arousal (OpenFace, openSMILE/eGeMAPS LLDs, your
own) run through LaScA without media extraction. ``config.data.root`` holds one table per
recording (searched recursively); the recording id is the file stem.

  * CSV (``,``, ``;`` or tab separated, header row; empty cells, ``nan`` -> NaN) or ``.npz``
    with one 1-D array per column (or ``features [T, F]`` + ``feature_names [F]`` + the time and
    label columns).
  * ``config.data.time_column`` (seconds, strictly increasing), ``valence_column``,
    ``arousal_column``: required, except that a dataset with one target sets the other's name
    to "" (``--config.data.arousal_column=''`` for valence-only data): no fake column is needed,
    its windows pair up on the target they have, and asking for the missing target is an
    error that says so. Unannotated rows: empty/NaN.
  * Subject: ``config.data.subject_map`` (CSV ``recording,subject``, header optional) wins; else
    the ``config.data.subject_column`` of the table (one value per file); else the recording id
    (a warning says so: only right if every subject has one recording).
  * Features: every other numeric column, or those matching the regex
    ``config.data.feature_columns``, minus the comma list ``config.data.exclude_columns`` (e.g.
    OpenFace's ``frame,face_id,confidence,success``). Every table must give the same features.
  * Modality: a feature whose name matches the regex ``config.data.audio_columns`` (default:
    ``audio_`` prefix, MFCCs and openSMILE eGeMAPS/ComParE names, all 88 eGeMAPS functionals
    included) is ``"audio"``; every other feature is ``"face"`` (OpenFace action units, pose,
    gaze, ...). The run's log (``frames`` event, ``columns_by_modality``) lists both groups.
  * Already-windowed features (one row per window, e.g. openSMILE functionals per 5 s): give
    each row the window's start time in the time column and its mean label, and set
    ``features.window_seconds`` to the table's window length: every window then holds exactly
    one row (coverage 1) and the pipeline pools nothing.
  * Lexicon: ``config.data.lexicon`` is a JSON object or two-column CSV mapping feature name ->
    phrase (:func:`lasca_jax.method.lexicon.read_lexicon_file`); features without a phrase fall back to
    the feature-name lexicon.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Optional

import numpy as np

from lasca_jax.data import checks, files as files_lib, types as data
from lasca_jax.data.extract import load

NAME = "custom"
TABLE_EXTENSIONS = (".csv", ".npz")
# openSMILE names: eGeMAPS v01/v02 functionals and LLDs (all 88 / 25), ComParE 2016 LLDs and
# functionals, MFCCs. eGeMAPS's spectral slopes (slopeV0-500, slopeUV500-1500, ...) and its
# voiced/unvoiced segment and pause statistics (VoicedSegmentsPerSec,
# MeanUnvoicedSegmentLength, ...) are audio too.
DEFAULT_AUDIO_COLUMNS = (
    r"(?i)^(audio_|mfcc|pcm_|audspec|F0|loudness|jitter|shimmer|HNR|logHNR|alphaRatio|"
    r"hammarbergIndex|slope(U?V)?\d|spectralFlux|logRelF0|F[1-3](frequency|bandwidth|amplitude)|"
    r"voicingFinal|voiceProb|lsp|zcr|equivalentSoundLevel|VoicedSegmentsPerSec|"
    r"(Mean|Stddev)(Unv|V)oicedSegmentLength)")


def _expand(path: str, root: str) -> str:
  return os.path.join(os.path.expanduser(root), os.path.expanduser(path)) if path else ""


def table_files(data_config) -> list[str]:
  """Every table under root (sorted), except the subject map and the lexicon."""
  root = os.path.expanduser(data_config.root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"custom data folder {root} does not exist (set --config.data.root)")
  skip = {os.path.abspath(_expand(p, root)) for p in (data_config.subject_map,
                                                       data_config.lexicon) if p}
  files = [path for path in files_lib.walk_files(root, TABLE_EXTENSIONS)
           if os.path.abspath(path) not in skip]
  if not files:
    raise FileNotFoundError(f"no .csv or .npz tables under {root}")
  return files


def read_npz(path: str) -> dict[str, np.ndarray]:
  """``{column: values}`` of an ``.npz`` table (column arrays, or ``features`` + names)."""
  try:
    with np.load(path, allow_pickle=False) as z:
      raw = {k: z[k] for k in z.files}
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{path}: unreadable .npz ({type(e).__name__}: {e})") from e
  if "features" in raw:
    feats, names = raw.pop("features"), raw.pop("feature_names", None)
    if names is None or feats.ndim != 2 or len(names) != feats.shape[1]:
      raise ValueError(f"{path}: 'features' needs a 2-D array and matching 'feature_names'")
    raw.update({str(n): feats[:, j] for j, n in enumerate(names)})
  out = {}
  for k, v in raw.items():
    v = np.asarray(v)
    if v.ndim == 0:
      v = np.full(len(next(iter(raw.values()))), v)
    out[k] = v.astype(np.float64) if v.dtype.kind in "biuf" else v.astype(str)
  return out


def read_table(path: str) -> dict[str, np.ndarray]:
  columns = read_npz(path) if path.lower().endswith(".npz") else files_lib.read_csv(path)
  lengths = {k: v.shape for k, v in columns.items()}
  if len({s for s in lengths.values()}) != 1 or any(len(s) != 1 for s in lengths.values()):
    raise ValueError(f"{path}: columns must be 1-D and of one length, got {lengths}")
  return columns


def read_subject_map(data_config) -> dict[str, str]:
  """``{recording: subject}`` from ``config.data.subject_map`` (empty when unset)."""
  path = _expand(data_config.subject_map, data_config.root)
  if not path:
    return {}
  return load.read_subject_map(path)


def feature_columns(columns: dict[str, np.ndarray], data_config) -> list[str]:
  """The feature columns of a table, in table order (module docstring)."""
  reserved = {data_config.time_column, data_config.valence_column, data_config.arousal_column,
              data_config.subject_column}
  reserved |= {c.strip() for c in str(data_config.exclude_columns).split(",") if c.strip()}
  pattern = re.compile(data_config.feature_columns) if data_config.feature_columns else None
  return [k for k, v in columns.items()
          if k not in reserved and v.dtype.kind == "f" and (pattern is None or pattern.search(k))]


def modality_of(name: str, audio_pattern: str) -> str:
  return "audio" if audio_pattern and re.search(audio_pattern, name) else "face"


def _subject(path: str, rec: str, columns: dict, data_config, mapping: dict) -> str:
  if rec in mapping:
    return mapping[rec]
  col = data_config.subject_column
  if col and col in columns:
    values = np.unique(np.asarray(columns[col]).astype(str))
    if values.size != 1:
      raise ValueError(f"{path}: column {col!r} holds {values.size} subjects; one table is one "
                       "recording of one subject")
    value = str(values[0])
    return value[:-2] if value.endswith(".0") and value[:-2].isdigit() else value
  if mapping:
    raise ValueError(f"{path}: recording {rec} is not in the subject map "
                     f"{data_config.subject_map}")
  logging.warning("%s: no subject column %r and no subject map: subject = recording id %s", path,
                  col, rec)
  return rec


def recording_from_table(path: str, data_config, mapping: dict,
                         names: Optional[tuple[str, ...]] = None) -> Optional[data.Recording]:
  """One table as a :class:`lasca_jax.data.types.Recording`; ``names``: features the first table had.

  A file with none of the time/valence/arousal columns (e.g. a mapping file kept beside the
  tables) is not a table: a warning, and ``None``. A file with only some of them is an error.
  """
  rec = os.path.splitext(os.path.basename(path))[0]
  columns = read_table(path)
  required = ("time_column", "valence_column", "arousal_column")
  if not any(data_config[k] and data_config[k] in columns for k in required):
    logging.warning("%s: no %s column: not a recording table, ignored", path,
                    "/".join(data_config[k] for k in required if data_config[k]))
    return None
  labels = [k for k in ("valence_column", "arousal_column") if data_config[k]]
  for key in ("time_column",) + tuple(labels):
    if data_config[key] not in columns:
      name = key.split("_")[0]
      extra = "" if key == "time_column" else f", or to '' for data without {name} labels"
      raise ValueError(f"{path}: no {name} column {data_config[key]!r} (set "
                       f"--config.data.{key}{extra}); columns are {sorted(columns)[:12]}")
  for key in ("time_column",) + tuple(labels):
    col = data_config[key]
    if columns[col].dtype.kind != "f":
      raise ValueError(f"{path}: column {col!r} is not numeric")
  n = columns[data_config.time_column].shape[0]
  absent = np.full(n, np.nan)  # A dataset with one target: the other label is unannotated.
  feats = tuple(feature_columns(columns, data_config))
  if not feats:
    raise ValueError(f"{path}: no numeric feature columns")
  if names is not None and feats != names:
    extra, missing = sorted(set(feats) - set(names)), sorted(set(names) - set(feats))
    raise ValueError(f"{path}: feature columns differ from the first table "
                     f"(extra {extra[:5]}, missing {missing[:5]}, or another order)")
  recording = data.Recording(
      recording_id=rec, subject_id=_subject(path, rec, columns, data_config, mapping),
      times=columns[data_config.time_column].astype(np.float64),
      features=np.stack([columns[k] for k in feats], axis=1).astype(np.float32),  # [T, F]
      feature_names=feats,
      modalities=tuple(modality_of(k, data_config.audio_columns) for k in feats),
      valence=columns.get(data_config.valence_column, absent).astype(np.float32),
      arousal=columns.get(data_config.arousal_column, absent).astype(np.float32))
  if np.isnan(recording.times).any():
    raise ValueError(f"{path}: empty or NaN cell in the time column {data_config.time_column!r}")
  recording.validate(path)
  return recording


def lexicon_path(data_config) -> str:
  """``config.data.lexicon`` resolved against root ("" when unset); must exist when set."""
  path = _expand(data_config.lexicon, data_config.root)
  if path and not os.path.isfile(path):
    raise FileNotFoundError(f"lexicon file {path} (config.data.lexicon) does not exist")
  return path


def load_recordings(data_config) -> list[data.Recording]:
  """Every table under ``config.data.root`` as a Recording (module docstring)."""
  lexicon_path(data_config)
  mapping = read_subject_map(data_config)
  recordings, names = [], None
  for path in table_files(data_config):
    recording = recording_from_table(path, data_config, mapping, names)
    if recording is not None:
      names = recording.feature_names
      recordings.append(recording)
  if not recordings:
    raise ValueError(f"no table under {data_config.root} has the columns "
                     f"{data_config.time_column!r} and {data_config.valence_column!r} or "
                     f"{data_config.arousal_column!r}")
  check_columns(recordings, data_config)
  return recordings


def check_columns(recordings: list[data.Recording], data_config) -> None:
  """A feature column empty (NaN) in every table is an error naming it; logs the modalities.

  Such a column would make every window unusable (a window needs each feature of its streams).
  """
  first = recordings[0]
  finite = np.zeros(len(first.feature_names), bool)
  for r in recordings:
    finite |= np.isfinite(r.features).any(axis=0)
  if not finite.all():
    empty = [n for n, ok in zip(first.feature_names, finite) if not ok]
    raise ValueError(
        f"feature column{'s' if len(empty) > 1 else ''} {', '.join(map(repr, empty[:8]))}"
        f"{f' and {len(empty) - 8} more' if len(empty) > 8 else ''} "
        f"{'are' if len(empty) > 1 else 'is'} empty in every table under {data_config.root} "
        f"(e.g. {first.recording_id}); leave {'them' if len(empty) > 1 else 'it'} out with "
        f"--config.data.exclude_columns={','.join(empty)}")
  for m in data.MODALITIES:
    names = [n for n, mod in zip(first.feature_names, first.modalities) if mod == m]
    logging.info("custom data: %d %s columns: %s", len(names), m, ", ".join(names))


def media_jobs(data_config) -> list:
  """Custom tables hold features already: nothing to extract."""
  del data_config
  return []


def time_base_hz(data_config) -> float:
  """10 Hz for a new video (a table keeps its own time base when it is applied, as its
  recordings do here); ``data.frame_rate`` when the config sets one."""
  rate = float(data_config.get("frame_rate", 0.0) or 0.0)
  return rate if rate > 0 else 10.0


def validate(data_config) -> list[str]:
  """Problems of the custom-table fields (see :mod:`lasca_jax.data.checks`)."""
  out = checks.root_problems(data_config, "tables")
  for field in ("feature_columns", "audio_columns"):
    try:
      re.compile(str(data_config.get(field, "")))
    except re.error as e:
      out.append(checks.problem(f"data.{field}", data_config[field], f"a valid regular expression: {e}"))
  if not data_config.get("time_column", ""):
    out.append(checks.problem("data.time_column", "", "the name of the time column (seconds)"))
  if not data_config.get("valence_column", "") and not data_config.get("arousal_column", ""):
    out.append(checks.problem("data.valence_column", "", "a label column name; at most one of "
                         "data.valence_column and data.arousal_column may be ''"))
  return out


def fingerprint(data_config) -> dict:
  """Every file :func:`load_recordings` reads (path, size, mtime) plus the data config."""
  extra = [p for p in (_expand(data_config.subject_map, data_config.root),) if p]
  lexicon_path(data_config)  # Checked here, but keyed by the prompts stage (its content).
  return {"dataset": NAME, "config": load.config_fields(data_config),
          "tables": load.file_stamps(table_files(data_config)),
          "other": load.file_stamps(extra)}
