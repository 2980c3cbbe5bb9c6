"""Your own labelled videos: a folder of videos + continuous annotation traces -> Recordings.

Layout under ``config.data.root`` (both folders relative to root, or absolute):

  * ``config.data.videos_dir`` (default ``videos``): one video per recording, ``<recording>.mp4``
    (``.avi``, ``.mov``, ``.mkv``, ``.webm``, ...; searched recursively). Its own audio track is
    the audio. Face frames sit at their presentation times (0 = first frame) and, like the
    MFCCs, are mean-pooled onto the label clock (:mod:`lasca_jax.data.extract.align`).
  * ``config.data.annotations_dir`` (default ``annotations``): ``.csv``/``.tsv`` annotation
    files, either one per recording with both dimensions (``<recording>.csv``) or one per
    recording and dimension (``<recording>_valence.csv``, ``<recording>_arousal.csv``; the
    separator before the dimension may also be ``-``, ``.`` or a space, any case).

Annotation formats (``config.data.annotation_format``; ``"auto"`` tells each file's format from
its first lines; a forced format makes any other file an error naming it):

  * ``"plain"``: a header row, then one row per sample; separator ``,``, ``;`` or tab. A time
    column in seconds named ``time`` (or ``time_s``, ``seconds``, ``sec``; any case), strictly
    increasing, at any rate, regular or not. A per-dimension file has one more column (any
    name; ``value`` or the dimension's name when there are several); a both-dimension file has
    the columns ``config.data.valence_column`` and ``config.data.arousal_column`` (default
    ``valence``, ``arousal``; any case). Empty or ``nan`` cells are unannotated.
  * ``"carma"``: an export of CARMA (Girard, continuous rating of one dimension; its
    ``fig_collect_*.m`` since v14, 2017): nine header rows (``Multimedia File``, ``Lower Label``,
    ``Upper Label``, ``Minimum Value``, ``Maximum Value``, ``Number of Steps``, then
    ``Second,Rating`` and a ``%%%%%%`` row), then ``Second,Rating`` rows: the mean rating over
    the bin that ends at ``Second`` (1 s by default). One dimension per file, so the file is
    ``<recording>_valence.csv`` or ``..._arousal.csv``. The scale is the file's
    ``Minimum Value`` .. ``Maximum Value``.
  * ``"darma"``: an export of DARMA (Girard & Wright, two axes with a joystick): five header
    rows (``Time of Rating``, ``Multimedia File``, ``Magnitude``, then ``Second,<X label>,<Y
    label>,Button`` and a ``%%%%%%`` row), then one row per bin as in CARMA. The axis whose
    label is ``config.data.valence_column`` / ``arousal_column`` (any case; DARMA's preset
    labels are ``Valence`` and ``Arousal``) is that dimension. The scale is
    ``-Magnitude .. Magnitude``.
  * ``"pagan"``: a PAGAN log (Melhart et al., the web platform that also runs RankTrace and
    GTrace-style annotation): the researcher's download ``OriginalName,DatabaseName,
    Participant,SessionID,Timestamp,VideoTime,Value`` (every video and participant of one
    project, one dimension) or the test-mode download ``Timestamp,VideoTime,Value`` (one
    session). ``VideoTime`` is milliseconds of video time, ``Value`` the annotator's level
    (RankTrace: unbounded, 0 at the start; bounded mode: -100..100). PAGAN logs a row only when
    the value changes, so a value holds until the next row; the last row of a session (a 0
    logged when the session ends) only ends the trace. The recording of a row is its
    ``OriginalName`` without PAGAN's `` - <duration>`` suffix and the video extension (the
    test-mode file's recording is its file name); the dimension comes from the file name
    (``<anything>_arousal.csv``). Several sessions of a recording (several annotators) are
    averaged after re-sampling. PAGAN's binary mode (+1/-1 change events) is not a level and is
    not supported.

Not supported, because their export layout could not be established from public documentation
or code: GTrace (Cowie et al.'s stand-alone program), FEELTRACE, the stand-alone RankTrace tool.
Convert such traces to the plain format (time in seconds + value).

Label clock: ``config.data.label_rate`` Hz (default 10), steps ``k / label_rate`` from 0 to the
end of the longest trace. Plain, CARMA and DARMA traces are interpolated linearly between their
samples (CARMA/DARMA bin means placed at their bins' centres); PAGAN traces hold each value.
Nothing is extrapolated: steps before a trace's first sample or after its last are NaN
(unannotated), as are steps next to an unannotated sample. Several traces of one recording and
dimension are averaged where at least one is annotated.

Scale (``config.data.label_range``): pairs keep a change of the window means only when it
exceeds the margin *relative to the earlier mean* (``|a(t+1) - a(t)| / max(|a(t)|, eps)``,
:mod:`lasca_jax.method.pairs`), as in the paper's SEWA and Aff-Wild2 labels in [-1, 1] with 0
neutral. A factor leaves that unchanged, but an offset does not (on a 1..9 scale a step from 5
to 5.4 is 8 %, on -1..1 the same step from 0 to 0.1 is any ratio), so traces are mapped onto
[-1, 1]: ``"auto"`` maps the scale a tool file declares (CARMA's minimum/maximum, DARMA's
magnitude) and requires other files' values to lie in [-1, 1] (else an error naming the file,
the values' span and this field); ``"lo,hi"`` maps every file from [lo, hi] (a value outside is
an error); ``"none"`` uses the values as they are.

Subject: ``config.data.subject_map`` (CSV ``recording,subject``, header optional, relative to
root or absolute); a recording it does not list is an error naming the file. Without a map the
subject is the recording id and a warning says so (only right when nobody appears in two
recordings). A video without annotation, or an annotation without a video, is skipped with a
warning naming it.
"""

from __future__ import annotations

import collections
import csv
import logging
import math
import os
import re
import warnings
from typing import NamedTuple, Optional

import numpy as np

from lasca_jax.data import checks, files as files_lib, types as data
from lasca_jax.data.extract import load, runner

NAME = "videos"
FORMATS = ("auto", "plain", "carma", "darma", "pagan")
DIMENSIONS = ("valence", "arousal")
ANNOTATION_EXTENSIONS = (".csv", ".tsv")
TIME_COLUMNS = ("time", "time_s", "seconds", "sec")
PAGAN_HEADER = ("originalname", "databasename", "participant", "sessionid", "timestamp",
                "videotime", "value")
PAGAN_TEST_HEADER = ("timestamp", "videotime", "value")
MARKER = "%%%%%%"   # CARMA's and DARMA's end-of-header row
_DIM_STEM = re.compile(r"^(?P<rec>.+?)[_\-. ](?P<dim>valence|arousal)$", re.IGNORECASE)
_PAGAN_DURATION = re.compile(r"\s+-\s+[0-9.eE+-]+$")


class Trace(NamedTuple):
  """One continuous annotation of one dimension, as read from its file."""
  times: np.ndarray       # float64 [N] seconds, strictly increasing
  values: np.ndarray      # float64 [N] on the file's scale; NaN = unannotated
  source: str             # the file it came from
  scale: Optional[tuple[float, float]] = None   # (low, high) the file declares
  hold: bool = False      # True: a value holds until the next sample; False: linear


# ----------------------------------------------------------------------------- reading files


def _lines(path: str) -> list[str]:
  with open(path, encoding="utf-8-sig", errors="replace") as f:
    return [line.rstrip("\r\n") for line in f if line.strip()]


def _cells(line: str, delimiter: str) -> list[str]:
  return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]


def _number(text: str, path: str, line: int, column: str) -> float:
  if not text:
    return math.nan
  try:
    return float(text)
  except ValueError:
    raise ValueError(f"{path}: line {line}: {column} {text!r} is not a number") from None


def _tool_header(lines: list[str]) -> tuple[str, int, str]:
  """``(format, index of the column-name row, delimiter)`` of a CARMA/DARMA file, else
  ``("", -1, "")``: the row starting with ``Second`` followed by a ``%%%%%%`` row."""
  for i, line in enumerate(lines[:12]):
    m = re.match(r'^\s*"?second"?\s*([,;\t])', line, re.IGNORECASE)
    if m and i + 1 < len(lines) and lines[i + 1].lstrip().lstrip('"').startswith(MARKER):
      names = [c.lower() for c in _cells(line, m.group(1))]
      if len(names) == 2:
        return "carma", i, m.group(1)
      if len(names) == 4 and names[3] == "button":
        return "darma", i, m.group(1)
  return "", -1, ""


def detect_format(path: str) -> str:
  """The annotation format of a file from its first lines (module docstring)."""
  lines = _lines(path)
  if not lines:
    raise ValueError(f"{path}: empty annotation file (expected a header row such as "
                     "'time,valence,arousal' or 'time,value', then one row per sample)")
  header = tuple(c.lower() for c in _cells(lines[0], files_lib.sniff_delimiter(lines[0])))
  if header in (PAGAN_HEADER, PAGAN_TEST_HEADER):
    return "pagan"
  kind, _, _ = _tool_header(lines)
  return kind or "plain"


def file_dimension(path: str) -> tuple[str, str]:
  """``(recording, dimension)`` a file's name gives: ``x_valence.csv`` -> ``("x", "valence")``;
  ``x.csv`` -> ``("x", "")`` (both dimensions)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  m = _DIM_STEM.match(stem)
  return (m.group("rec"), m.group("dim").lower()) if m else (stem, "")


def _increasing(times: np.ndarray, path: str, first_line: int) -> None:
  bad = np.flatnonzero(~(np.diff(times) > 0))
  if bad.size:
    i = int(bad[0]) + 1
    raise ValueError(f"{path}: line {first_line + i}: time {times[i]:g} does not come after "
                     f"{times[i - 1]:g}; times must increase (seconds)")


def read_plain(path: str, dimension: str, columns: dict[str, str]
               ) -> dict[str, Trace]:
  """``{dimension: trace}`` of a plain file; ``dimension`` "" = a both-dimension file whose
  columns are ``columns`` (``{dimension: column name}``, dimensions not annotated left out)."""
  lines = _lines(path)
  if not lines:
    raise ValueError(f"{path}: empty annotation file (expected a header row such as "
                     "'time,valence,arousal' or 'time,value', then one row per sample)")
  delimiter = files_lib.sniff_delimiter(lines[0])
  header = _cells(lines[0], delimiter)
  lower = [h.lower() for h in header]
  time_col = next((lower.index(c) for c in TIME_COLUMNS if c in lower), None)
  if time_col is None:
    raise ValueError(f"{path}: no time column (a header cell named {' or '.join(TIME_COLUMNS)}, "
                     f"in seconds); the header is {header}")
  if dimension:
    others = [j for j in range(len(header)) if j != time_col]
    named = [j for j in others if lower[j] in ("value", dimension)]
    if len(others) == 1:
      wanted = {dimension: others[0]}
    elif len(named) == 1:
      wanted = {dimension: named[0]}
    else:
      raise ValueError(f"{path}: expected the columns time and value (one {dimension} trace), "
                       f"got {header}")
  else:
    wanted = {}
    for dim, name in columns.items():
      if name.lower() not in lower:
        raise ValueError(f"{path}: no {dim} column {name!r} (columns: {', '.join(header)}); "
                         f"set --config.data.{dim}_column to its name, or to '' for data "
                         f"without {dim} labels")
      wanted[dim] = lower.index(name.lower())
  rows = [_cells(line, delimiter) for line in lines[1:]]
  if not rows:
    raise ValueError(f"{path}: no annotation rows after the header")
  for i, r in enumerate(rows, start=2):
    if len(r) != len(header):
      raise ValueError(f"{path}: line {i}: {len(r)} cells, the header has {len(header)}")
  times = np.array([_number(r[time_col], path, i, "time")
                    for i, r in enumerate(rows, start=2)], np.float64)
  if np.isnan(times).any():
    raise ValueError(f"{path}: line {int(np.flatnonzero(np.isnan(times))[0]) + 2}: empty time")
  _increasing(times, path, 2)
  out = {}
  for dim, j in wanted.items():
    values = np.array([_number(r[j], path, i, header[j]) for i, r in enumerate(rows, start=2)],
                      np.float64)
    out[dim] = Trace(times, values, path)
  return out


def _bin_rows(lines: list[str], start: int, delimiter: str, path: str, width: int
              ) -> np.ndarray:
  """The ``[N, width]`` numbers after a CARMA/DARMA header, rows of empty bins left out."""
  rows = []
  for i, line in enumerate(lines[start:], start=start + 1):
    cells = _cells(line, delimiter)
    if len(cells) < width:
      raise ValueError(f"{path}: line {i}: {len(cells)} cells, expected {width}")
    rows.append([_number(c, path, i, "cell") for c in cells[:width]])
  table = np.array(rows, np.float64).reshape(-1, width)
  table = table[np.isfinite(table[:, 0])]   # a bin without samples: NaN or empty second
  if not table.shape[0]:
    raise ValueError(f"{path}: no rated bins after the header")
  _increasing(table[:, 0], path, start + 1)
  return table


def _bin_centres(seconds: np.ndarray) -> np.ndarray:
  """CARMA/DARMA's ``Second`` is the end of the bin a row averages; its centre is half a bin
  earlier. Seconds are multiples of the bin size, so it is the smallest of the first second
  and the steps (rows of empty bins are left out)."""
  size = float(np.min(np.r_[seconds[:1], np.diff(seconds)]))
  return seconds - size / 2


def _meta(lines: list[str], end: int, delimiter: str) -> dict[str, str]:
  out = {}
  for line in lines[:end]:
    cells = _cells(line, delimiter)
    if len(cells) > 1:
      out[cells[0].lower()] = cells[1]
  return out


def read_carma(path: str, dimension: str) -> dict[str, Trace]:
  """``{dimension: trace}`` of a CARMA export (module docstring)."""
  lines = _lines(path)
  kind, at, delimiter = _tool_header(lines)
  if kind != "carma":
    raise ValueError(f"{path}: not a CARMA export (no 'Second,Rating' row followed by "
                     f"'{MARKER}' in its first lines)")
  if not dimension:
    raise ValueError(f"{path}: a CARMA file holds one dimension; name it "
                     f"{file_dimension(path)[0]}_valence.csv or {file_dimension(path)[0]}"
                     "_arousal.csv")
  meta = _meta(lines, at, delimiter)
  try:
    scale = (float(meta["minimum value"]), float(meta["maximum value"]))
  except (KeyError, ValueError):
    raise ValueError(f"{path}: CARMA header without numeric 'Minimum Value' and 'Maximum "
                     "Value' rows") from None
  table = _bin_rows(lines, at + 2, delimiter, path, 2)
  return {dimension: Trace(_bin_centres(table[:, 0]), table[:, 1], path, scale)}


def read_darma(path: str, dimension: str, columns: dict[str, str]) -> dict[str, Trace]:
  """``{dimension: trace}`` of a DARMA export: the axes labelled as ``columns`` says."""
  lines = _lines(path)
  kind, at, delimiter = _tool_header(lines)
  if kind != "darma":
    raise ValueError(f"{path}: not a DARMA export (no 'Second,<X>,<Y>,Button' row followed by "
                     f"'{MARKER}' in its first lines)")
  labels = _cells(lines[at], delimiter)[1:3]
  meta = _meta(lines, at, delimiter)
  try:
    magnitude = float(meta["magnitude"])
  except (KeyError, ValueError):
    raise ValueError(f"{path}: DARMA header without a numeric 'Magnitude' row") from None
  wanted = {dimension: columns.get(dimension) or dimension} if dimension else columns
  axes = {}
  for dim, name in wanted.items():
    hits = [j for j, label in enumerate(labels) if label.lower() == name.lower()]
    if not hits:
      raise ValueError(f"{path}: no DARMA axis labelled {name!r} (the axes are "
                       f"{labels[0]!r} and {labels[1]!r}); set --config.data.{dim}_column to "
                       f"the label of the {dim} axis, or to '' for data without {dim} labels")
    axes[dim] = hits[0] + 1
  table = _bin_rows(lines, at + 2, delimiter, path, 4)
  times = _bin_centres(table[:, 0])
  return {dim: Trace(times, table[:, j], path, (-magnitude, magnitude))
          for dim, j in axes.items()}


def pagan_recording(original_name: str) -> str:
  """A PAGAN ``OriginalName`` without the `` - <duration>`` PAGAN adds and a video extension."""
  name = os.path.basename(_PAGAN_DURATION.sub("", original_name.strip()))
  stem, ext = os.path.splitext(name)
  return stem if ext.lower() in load.VIDEO_EXTENSIONS else name


def read_pagan(path: str) -> dict[str, list[Trace]]:
  """``{recording: [trace per session]}`` of a PAGAN log (module docstring)."""
  lines = _lines(path)
  if not lines:
    raise ValueError(f"{path}: empty annotation file")
  delimiter = files_lib.sniff_delimiter(lines[0])
  header = tuple(c.lower() for c in _cells(lines[0], delimiter))
  if header not in (PAGAN_HEADER, PAGAN_TEST_HEADER):
    raise ValueError(f"{path}: not a PAGAN log (expected the header "
                     f"{','.join(PAGAN_HEADER)} or {','.join(PAGAN_TEST_HEADER)})")
  full = header == PAGAN_HEADER
  sessions = collections.defaultdict(list)
  for i, line in enumerate(lines[1:], start=2):
    cells = _cells(line, delimiter)
    if len(cells) != len(header):
      raise ValueError(f"{path}: line {i}: {len(cells)} cells, the header has {len(header)}")
    rec = pagan_recording(cells[0]) if full else file_dimension(path)[0]
    key = (rec, cells[2], cells[3]) if full else (rec, "", "")
    t = _number(cells[-2], path, i, "VideoTime")
    v = _number(cells[-1], path, i, "Value")
    if math.isnan(t):
      raise ValueError(f"{path}: line {i}: empty VideoTime")
    sessions[key].append((t / 1000.0, v))
  if not sessions:
    raise ValueError(f"{path}: no annotation rows after the header")
  out = collections.defaultdict(list)
  for (rec, _, _), rows in sorted(sessions.items()):
    arr = np.array(rows, np.float64)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    keep = np.r_[np.diff(arr[:, 0]) > 0, True]   # one time logged twice: the later row
    arr = arr[keep]
    values = arr[:, 1].copy()
    values[-1] = np.nan                            # the session-end row only ends the trace
    out[rec].append(Trace(arr[:, 0], values, path, None, hold=True))
  return dict(out)


# ----------------------------------------------------------------------------- the dataset


def _folder(data_config, field: str) -> str:
  return os.path.join(os.path.expanduser(data_config.root),
                      os.path.expanduser(str(data_config.get(field, ""))))


def subject_map_path(data_config) -> str:
  path = data_config.get("subject_map", "")
  return _folder(data_config, "subject_map") if path else ""


def annotated_columns(data_config) -> dict[str, str]:
  """``{dimension: column name}`` of the dimensions the data is annotated with."""
  return {dim: str(data_config.get(f"{dim}_column", dim)) for dim in DIMENSIONS
          if data_config.get(f"{dim}_column", dim)}


def annotation_files(data_config) -> list[str]:
  """Every ``.csv``/``.tsv`` under ``config.data.annotations_dir`` (sorted), except the subject
  map and the features folder."""
  folder = _folder(data_config, "annotations_dir")
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"annotation folder {folder} does not exist (set --config.data.root "
                            "or --config.data.annotations_dir)")
  skip = {os.path.abspath(subject_map_path(data_config))} if subject_map_path(data_config) else set()
  files = [p for p in files_lib.walk_files(folder, ANNOTATION_EXTENSIONS,
                                           exclude=[load.features_dir(data_config)])
           if os.path.abspath(p) not in skip]
  if not files:
    raise FileNotFoundError(f"no .csv annotation files under {folder}; see "
                            "lasca_jax/data/datasets/videos.py for the formats")
  return files


def read_file(path: str, data_config) -> dict[tuple[str, str], list[Trace]]:
  """``{(recording, dimension): [traces]}`` of one annotation file."""
  fmt = str(data_config.get("annotation_format", "auto"))
  kind = detect_format(path)
  if fmt != "auto" and kind != fmt:
    raise ValueError(f"{path}: not a {fmt} annotation file (it reads as {kind}; "
                     "config.data.annotation_format)")
  rec, dim = file_dimension(path)
  columns = annotated_columns(data_config)
  if kind == "pagan":
    if not dim:
      raise ValueError(f"{path}: a PAGAN log holds one dimension; name it "
                       f"{rec}_valence.csv or {rec}_arousal.csv")
    return {(r, dim): traces for r, traces in read_pagan(path).items()}
  if kind == "carma":
    traces = read_carma(path, dim)
  elif kind == "darma":
    traces = read_darma(path, dim, columns)
  else:
    traces = read_plain(path, dim, columns)
  return {(rec, d): [t] for d, t in traces.items()}


class Annotation(NamedTuple):
  """One recording's traces, by dimension, and the files they came from."""
  traces: dict[str, list[Trace]]
  sources: list[str]


def read_annotations(data_config) -> dict[str, Annotation]:
  """``{recording: Annotation}`` from every annotation file, sorted by recording.

  Raises:
    ValueError: naming the file: a bad file, a recording and dimension annotated by two files,
      or a recording without a dimension the config asks for.
  """
  found: dict[str, dict[str, list[Trace]]] = collections.defaultdict(dict)
  sources: dict[str, list[str]] = collections.defaultdict(list)
  columns = annotated_columns(data_config)
  for path in annotation_files(data_config):
    for (rec, dim), traces in read_file(path, data_config).items():
      if dim not in columns:
        continue
      if dim in found[rec]:
        raise ValueError(f"{path}: {dim} of recording {rec} is also annotated in "
                         f"{found[rec][dim][0].source}; keep one file per recording and "
                         "dimension")
      found[rec][dim] = traces
      if path not in sources[rec]:
        sources[rec].append(path)
  for rec, traces in found.items():
    for dim in columns:
      if dim not in traces:
        raise ValueError(f"{sources[rec][0]}: recording {rec} has no {dim} annotation (add "
                         f"{rec}_{dim}.csv or a {columns[dim]!r} column; for data without "
                         f"{dim} labels set --config.data.{dim}_column='')")
  return {rec: Annotation(found[rec], sources[rec]) for rec in sorted(found)}


def parse_label_range(text: str) -> Optional[tuple[float, float]] | str:
  """``"auto"``/``"none"`` as they are, ``"lo,hi"`` as ``(lo, hi)``.

  Raises:
    ValueError: anything else, or ``lo >= hi``.
  """
  text = str(text).strip().lower()
  if text in ("auto", "none"):
    return text
  parts = text.split(",")
  try:
    lo, hi = (float(p) for p in parts)
  except ValueError:
    raise ValueError(f"config.data.label_range={text!r}: use 'auto', 'none' or 'low,high' "
                     "(the ends of the rating scale, e.g. '1,9')") from None
  if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
    raise ValueError(f"config.data.label_range={text!r}: need finite low < high")
  return lo, hi


def to_unit_scale(trace: Trace, label_range: str) -> np.ndarray:
  """The trace's values mapped onto [-1, 1] as ``config.data.label_range`` says (module
  docstring)."""
  rule = parse_label_range(label_range)
  values = trace.values
  finite = values[np.isfinite(values)]
  if rule == "none":
    return values
  if rule == "auto":
    if trace.scale is not None:
      lo, hi = trace.scale
    else:
      if finite.size and (finite.min() < -1 or finite.max() > 1):
        raise ValueError(
            f"{trace.source}: values span [{finite.min():g}, {finite.max():g}], outside [-1, 1]; "
            "the pair margin is relative to the value's size, so give the rating scale's ends, "
            "e.g. --config.data.label_range=1,9 (mapped onto [-1, 1]), or "
            "--config.data.label_range=none to use the values as they are")
      return values
  else:
    lo, hi = rule
    if finite.size and (finite.min() < lo or finite.max() > hi):
      raise ValueError(f"{trace.source}: values span [{finite.min():g}, {finite.max():g}], "
                       f"outside config.data.label_range=[{lo:g}, {hi:g}]")
  if not hi > lo:
    raise ValueError(f"{trace.source}: the declared scale [{lo:g}, {hi:g}] is empty")
  return 2.0 * (values - lo) / (hi - lo) - 1.0


def resample(times: np.ndarray, values: np.ndarray, clock: np.ndarray, hold: bool = False
             ) -> np.ndarray:
  """``values`` at ``times`` re-sampled onto ``clock``: linear between samples (``hold``: the
  previous sample), NaN outside ``[times[0], times[-1]]`` and next to a NaN sample."""
  out = np.full(clock.shape, np.nan)
  inside = (clock >= times[0]) & (clock <= times[-1])
  c = clock[inside]
  i = np.clip(np.searchsorted(times, c, side="right") - 1, 0, times.size - 1)
  if hold or times.size == 1:
    out[inside] = values[i]
    return out
  j = np.minimum(i + 1, times.size - 1)
  span = times[j] - times[i]
  frac = (c - times[i]) / np.where(span > 0, span, 1.0)
  out[inside] = np.where(c == times[i], values[i], values[i] + frac * (values[j] - values[i]))
  return out


def label_clock(annotation: Annotation, rate: float) -> np.ndarray:
  """``k / rate`` seconds from 0 to the end of the recording's longest trace."""
  end = max(float(t.times[-1]) for traces in annotation.traces.values() for t in traces)
  return np.arange(int(math.floor(end * rate + 1e-9)) + 1) / rate


def labels_on_clock(annotation: Annotation, data_config
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(times [T], valence [T], arousal [T])`` of one recording on its label clock (float32
  labels, NaN where unannotated or not a dimension of the data)."""
  clock = label_clock(annotation, float(data_config.label_rate))
  out = {}
  for dim in DIMENSIONS:
    traces = annotation.traces.get(dim)
    if not traces:
      out[dim] = np.full(clock.shape, np.nan, np.float32)
      continue
    stack = np.stack([resample(t.times, to_unit_scale(t, data_config.label_range), clock, t.hold)
                      for t in traces])   # [traces, T]
    with warnings.catch_warnings():  # A step no trace annotates stays NaN, silently.
      warnings.simplefilter("ignore", RuntimeWarning)
      out[dim] = np.nanmean(stack, axis=0).astype(np.float32)
  return clock, out["valence"], out["arousal"]


def video_index(data_config) -> dict[str, str]:
  """``{stem: path}`` of the videos under ``config.data.videos_dir``."""
  folder = _folder(data_config, "videos_dir")
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"video folder {folder} does not exist (set --config.data.root or "
                            "--config.data.videos_dir)")
  return load.index_files([folder], load.VIDEO_EXTENSIONS, exclude=[load.features_dir(data_config)])


def paired(data_config) -> tuple[dict[str, Annotation], dict[str, str]]:
  """The annotated recordings that have a video, and ``{recording: video}``; every annotation
  without a video and every video without an annotation is named in a warning.

  Raises:
    FileNotFoundError: when no recording has both.
  """
  annotations = read_annotations(data_config)
  videos = video_index(data_config)
  for rec in sorted(set(annotations) - set(videos)):
    logging.warning("%s: no video %s.* under %s: recording %s skipped",
                    annotations[rec].sources[0], rec, _folder(data_config, "videos_dir"), rec)
  for rec in sorted(set(videos) - set(annotations)):
    logging.warning("%s: no annotation for it under %s: skipped", videos[rec],
                    _folder(data_config, "annotations_dir"))
  both = {rec: a for rec, a in annotations.items() if rec in videos}
  if not both:
    raise FileNotFoundError(f"no recording has both a video under "
                            f"{_folder(data_config, 'videos_dir')} and an annotation under "
                            f"{_folder(data_config, 'annotations_dir')} (file stems must match, "
                            "e.g. videos/p01.mp4 and annotations/p01.csv)")
  return both, {rec: videos[rec] for rec in both}


def media_jobs(data_config) -> list[runner.MediaJob]:
  """One extraction job per annotated video (its own audio track)."""
  annotations, videos = paired(data_config)
  return [runner.MediaJob(rec, videos[rec], None, load.features_path(data_config, rec))
          for rec in annotations]


def subjects(data_config, recordings: list[str]) -> dict[str, str]:
  """``{recording: subject}`` (module docstring)."""
  path = subject_map_path(data_config)
  if not path:
    logging.warning("own videos without config.data.subject_map: subject = recording id, so "
                    "one person in several recordings can sit on both sides of a split")
    return {rec: rec for rec in recordings}
  mapping = load.read_subject_map(path)
  for rec in recordings:
    if rec not in mapping:
      raise ValueError(f"{path}: no row for recording {rec} (config.data.subject_map); add "
                       f"'{rec},<subject>'")
  return {rec: mapping[rec] for rec in recordings}


def load_recordings(data_config) -> list[data.Recording]:
  """Every annotated video as a :class:`lasca_jax.data.types.Recording` (module docstring)."""
  annotations, _ = paired(data_config)
  subject = subjects(data_config, list(annotations))
  recordings = []
  for rec, annotation in annotations.items():
    times, valence, arousal = labels_on_clock(annotation, data_config)
    streams = load.read_streams(data_config, rec, NAME)
    if streams is None:
      continue
    values, names, mods = load.streams_on_time_base(streams, times, frame_clock="pts")
    recording = data.Recording(
        recording_id=rec, subject_id=subject[rec], times=times, features=values,
        feature_names=names, modalities=mods, valence=valence, arousal=arousal)
    recording.validate(annotation.sources[0])
    recordings.append(recording)
  return recordings


def time_base_hz(data_config) -> float:
  """``data.label_rate``: a new recording is pooled onto the clock the labels were."""
  return float(data_config.label_rate)


def _label_range_ok(value) -> bool:
  try:
    parse_label_range(value)
    return True
  except ValueError:
    return False


RULES = checks.MEDIA_RULES + (
    ("label_rate", checks.number_in(0, math.inf, lo_open=True)),
    ("annotation_format", checks.one_of(FORMATS)),
    ("label_range", (_label_range_ok, "'auto', 'none' or 'low,high' with low < high "
                                      "(the rating scale's ends, e.g. '1,9')")),
    ("valence_column", ((lambda v: isinstance(v, str)), "a column name, or '' (no valence)")),
    ("arousal_column", ((lambda v: isinstance(v, str)), "a column name, or '' (no arousal)")),
)


def validate(data_config) -> list[str]:
  """Problems of the own-videos fields (see :mod:`lasca_jax.data.checks`)."""
  out = checks.root_problems(data_config, "folder of your videos and annotations")
  out += checks.field_problems(data_config, "data", RULES)
  if not out:
    for field, what in (("videos_dir", "videos"), ("annotations_dir", "annotation files")):
      if not os.path.isdir(_folder(data_config, field)):
        out.append(checks.problem(f"data.{field}", data_config.get(field, ""),
                                  f"an existing folder of {what} (relative to data.root or "
                                  "absolute)"))
    path = subject_map_path(data_config)
    if path and not os.path.isfile(path):
      out.append(checks.problem("data.subject_map", data_config.subject_map, "an existing CSV "
                                "recording,subject (relative to data.root or absolute)"))
  if not data_config.get("valence_column", "") and not data_config.get("arousal_column", ""):
    out.append(checks.problem("data.valence_column", "", "a name; at most one of "
                              "data.valence_column and data.arousal_column may be ''"))
  return out + checks.csv_dir_problems(data_config)


def fingerprint(data_config) -> dict:
  """Every file :func:`load_recordings` reads (path, size, mtime) plus the data config."""
  path = subject_map_path(data_config)
  return {"dataset": NAME, "config": load.config_fields(data_config),
          "annotations": load.file_stamps(annotation_files(data_config)),
          "subject_map": load.file_stamps([path] if path else []),
          **load.stream_stamps(data_config, read_annotations(data_config))}
