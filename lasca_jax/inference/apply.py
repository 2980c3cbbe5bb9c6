"""A trained bundle applied to a new recording: frames -> windows -> decisions -> explanations.

:func:`read_input` turns the input into per-frame features with the bundle's columns:

* a video (``.mp4``, ``.avi``, ...): extracted exactly as the dataset path does
  (:func:`lasca_jax.data.extract.runner.extract`: MediaPipe blendshapes + head pose, PyAV + librosa
  MFCCs, with the run's extraction settings) and pooled onto a regular time base at the run's
  annotation rate (``bundle.json``'s ``time_base_hz``) with
  :func:`lasca_jax.data.extract.load.on_time_base`, as the media datasets pool onto their labels;
* an extracted feature file (``experiments/extract.py``'s per-recording ``.npz``): the same
  pooling;
* a per-frame table (``.csv`` or column ``.npz``, read as the custom dataset reads them) with a
  time column in seconds and (at least) the bundle's feature columns; the table's own time base
  is kept, as the custom dataset keeps it.

:func:`predict_recording` windows the frames (``windows.make_windows``), marks windows without
enough face or audio frames (``features.min_valid_fraction`` of the run, for the streams the
model uses), decides every pair of consecutive windows with every fold model, and explains each
decision (:mod:`lasca_jax.inference.attribution`). A pair with an unusable window is kept in the output
with an empty probability and the reason.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from typing import IO, Any

import numpy as np

from lasca_jax.data import files as files_lib
from lasca_jax.data.datasets import custom
from lasca_jax.data.extract import load as load_lib, runner, store
from lasca_jax.inference import attribution, ensemble
from lasca_jax.method import windows as windows_lib
from lasca_jax.model import bundle as bundle_lib
from lasca_jax.run import rundir

STREAMS = ("face", "audio")


@dataclasses.dataclass
class FrameInput:
  """Per-frame features of one recording in the bundle's column order.

  Attributes:
    times: ``float64 [T]`` seconds.
    features: ``float32 [T, F]`` (NaN where missing, e.g. no face in a frame).
    kind: ``"video"``, ``"feature file"`` or ``"table"``.
    frames: video frames decoded (0 for tables).
    warnings: extraction warnings.
  """
  times: np.ndarray
  features: np.ndarray
  kind: str
  frames: int = 0
  warnings: list = dataclasses.field(default_factory=list)


def _require_streams(path: str, predictor, has_face: bool, has_audio: bool) -> None:
  """One-line errors when the model's modality needs a stream the recording lacks."""
  mods = set(predictor.modalities)
  json_path = os.path.join(predictor.path, bundle_lib.JSON_FILE)
  if "face" in mods and not has_face:
    raise bundle_lib.BundleError(
        f"{path}: no face found in any frame, but the model {json_path} uses facial features "
        f"(modality {predictor.meta['modality']}); give a video showing a face, or a run trained "
        "with --config.features.modality=audio")
  if "audio" in mods and not has_audio:
    raise bundle_lib.BundleError(
        f"{path}: no audio track, but the model {json_path} uses audio features (modality "
        f"{predictor.meta['modality']}); give a recording with sound, or a run trained with "
        "--config.features.modality=visual")


def _columns(path: str, predictor, names: list[str], values: np.ndarray) -> np.ndarray:
  """``values [T, len(names)]`` reordered to the bundle's feature columns (or a clear error)."""
  index = {n: i for i, n in enumerate(names)}
  missing = [n for n in predictor.feature_names if n not in index]
  if missing:
    raise bundle_lib.BundleError(
        f"{path}: {len(missing)} of the model's {len(predictor.feature_names)} feature columns "
        f"are missing (e.g. {missing[:3]}); the input must have the columns listed under "
        f"feature_names in {os.path.join(predictor.path, bundle_lib.JSON_FILE)}")
  return values[:, [index[n] for n in predictor.feature_names]].astype(np.float32)


def _stream_end(times) -> float:
  """The end of a stream of frames at ``times``: the last one plus one frame period."""
  t = np.asarray(times, np.float64)
  if t.size == 0:
    return 0.0
  return float(t[-1]) + (float(np.median(np.diff(t))) if t.size > 1 else 0.0)


def time_base(frame_times, audio_times, hz: float) -> np.ndarray:
  """``float64 [T]`` the time base (steps ``k / hz``) that a recording's frames are pooled
  onto: up to the later stream's end. A stream covers its last frame's period too: a 6.0 s
  clip at 5 fps (last frame at 5.8 s) holds the whole 3-6 s window."""
  end = max(_stream_end(frame_times), _stream_end(audio_times))
  return np.arange(max(int(np.ceil(end * hz - 1e-6)), 1)) / hz


def _from_feature_file(path: str, predictor, features: dict, kind: str, frames: int,
                       warnings: list) -> FrameInput:
  meta = features["meta"]
  has_face = bool(np.asarray(features["face_valid"]).any())
  has_audio = bool(meta.get("has_audio", features["mfcc"].shape[0] > 0))
  _require_streams(path, predictor, has_face, has_audio)
  times = time_base(features["frame_times"], features["audio_times"],
                    float(predictor.meta["time_base_hz"]))
  values = load_lib.on_time_base(features, times, frame_clock="pts")        # [T, 73]
  return FrameInput(times, _columns(path, predictor, list(load_lib.FEATURE_NAMES), values), kind,
                    frames, warnings)


def read_input(path: str, predictor, face_model: str = "", time_column: str = "time"
               ) -> FrameInput:
  """Per-frame features of ``path`` with the bundle's columns (module docstring).

  Raises:
    BundleError / FileNotFoundError / ValueError: one line naming ``path`` and what to do.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"input {path} does not exist")
  ext = os.path.splitext(path)[1].lower()
  if ext in load_lib.VIDEO_EXTENSIONS + load_lib.AUDIO_EXTENSIONS:
    uses_face, uses_audio = ("face" in set(predictor.modalities),
                             "audio" in set(predictor.modalities))
    if ext in load_lib.AUDIO_EXTENSIONS and uses_face:
      _require_streams(path, predictor, False, True)    # an audio file has no face
    if uses_audio and not has_audio_stream(path):       # before minutes of face extraction
      _require_streams(path, predictor, True, False)
    data_config = predictor.meta["config"].get("data", {})
    settings = runner.settings_from_config(data_config)
    settings = dataclasses.replace(settings, face_model=face_model)
    # A model without facial features reads only the sound: no face model, no face pass.
    job = runner.MediaJob(os.path.splitext(os.path.basename(path))[0],
                          path if uses_face else None, None if uses_face else path, output="")
    arrays, meta = runner.extract(job, settings)
    warnings = [w for w in meta["warnings"] if uses_audio or "no audio track" not in w]
    return _from_feature_file(path, predictor, {**arrays, "meta": meta},
                              "video" if uses_face else "audio", int(meta["num_frames"]), warnings)
  if ext == ".npz":
    with np.load(path, allow_pickle=False) as z:
      is_store = {"frame_index", "face", "mfcc", "meta"} <= set(z.files)
    if is_store:
      features = store.load_features(path)
      return _from_feature_file(path, predictor, features, "feature file",
                                int(features["meta"].get("num_frames", 0)),
                                list(features["meta"].get("warnings", [])))
  if ext not in (".csv", ".npz"):
    raise ValueError(f"{path}: unknown input type {ext!r}; give a video "
                     f"({', '.join(load_lib.VIDEO_EXTENSIONS)}), a sound file for a model without "
                     f"facial features ({', '.join(load_lib.AUDIO_EXTENSIONS)}), an extracted "
                     "feature .npz, or a per-frame .csv/.npz table")
  columns = custom.read_table(path)
  if time_column not in columns:
    raise ValueError(f"{path}: no time column {time_column!r} (seconds); add one or pass "
                     "--time_column")
  times = np.asarray(columns[time_column], np.float64)
  check_table_times(path, times, time_column, float(predictor.meta["window_seconds"]))
  for name in predictor.feature_names:   # a model column that is there but not numbers
    if name in columns and columns[name].dtype.kind not in "fiub":
      row = next(i for i, v in enumerate(columns[name]) if not _is_number(v))
      raise ValueError(f"{path}: column {name!r} holds {str(columns[name][row])!r} in data row "
                       f"{row + 1}, not a number; write numbers (empty or nan for a missing "
                       "value)")
  names = [k for k, v in columns.items() if k != time_column and v.dtype.kind == "f"]
  values = np.stack([columns[k] for k in names], axis=1) if names else np.zeros((times.size, 0))
  feats = _columns(path, predictor, names, values)
  bad = ~np.isfinite(feats) & ~np.isnan(feats)
  if bad.any():
    row, col = (int(a[0]) for a in np.nonzero(bad))
    raise ValueError(f"{path}: infinite value in column {predictor.feature_names[col]!r}, data "
                     f"row {row + 1}; use a finite value, or empty / nan for a missing one")
  empty = [n for n, ok in zip(predictor.feature_names, np.isfinite(feats).any(0)) if not ok]
  if empty:
    raise ValueError(f"{path}: the model's column(s) {', '.join(empty[:5])} have no value in any "
                     "row; fill them (the model needs every column it was trained on)")
  mods = np.asarray(predictor.modalities)
  _require_streams(path, predictor,
                   bool(np.isfinite(feats[:, mods == "face"]).all(1).any()),
                   bool(np.isfinite(feats[:, mods == "audio"]).all(1).any()))
  window = float(predictor.meta["window_seconds"])
  late = ([f"{os.path.basename(path)} starts at {times[0]:g} s: the {int(times[0] // window)} "
           f"windows before it are empty and not decided (times are seconds from the "
           "recording's start; shift them if the recording starts there)"]
          if times[0] >= window else [])
  return FrameInput(times, feats, "table", 0, late)


def has_audio_stream(path: str) -> bool:
  """Whether the container at ``path`` holds an audio stream (True when it cannot be opened:
  the extraction then reports the decoding problem)."""
  import av  # pylint: disable=import-outside-toplevel
  try:
    with av.open(path) as container:
      return any(s.type == "audio" for s in container.streams)
  except Exception:  # pylint: disable=broad-except
    return True


def _is_number(value) -> bool:
  try:
    float(value)
    return True
  except (TypeError, ValueError):
    return False


def check_table_times(path: str, times: np.ndarray, column: str, window_seconds: float) -> None:
  """One-line errors for a table's time column: not increasing, negative (windows count from 0),
  or rows at least a window apart (milliseconds given as seconds)."""
  if times.size < 2 or not np.all(np.diff(times) > 0):
    raise ValueError(f"{path}: the time column {column!r} must be strictly increasing")
  if times[0] < 0:
    raise ValueError(f"{path}: the time column {column!r} starts at {times[0]:g} s; times are "
                     "seconds from the start of the recording: shift them so the first is 0 or "
                     "later")
  step = float(np.median(np.diff(times)))
  if step >= window_seconds:
    raise ValueError(f"{path}: rows of {column!r} are {step:g} s apart, not shorter than the "
                     f"model's {window_seconds:g} s window; is it in milliseconds? It must be "
                     "seconds")


def window_input(frames: FrameInput, predictor) -> windows_lib.Windows:
  """``windows.make_windows`` of the frames (labels set to 0: a new recording has none)."""
  zeros = np.zeros(frames.times.size, np.float32)
  arrays = windows_lib.Frames(
      times=frames.times, features=frames.features, valence=zeros, arousal=zeros,
      recording=np.zeros(frames.times.size, np.int32), recording_ids=np.array(["input"]),
      subject_ids=np.array(["input"]), feature_names=np.array(predictor.feature_names),
      modalities=np.array(predictor.modalities))
  return windows_lib.make_windows(arrays, float(predictor.meta["window_seconds"]))


def keeps_partial_windows(predictor) -> bool:
  """Whether the run kept a recording's trailing partial window (``features.partial_windows``)."""
  return bool(predictor.meta["config"].get("features", {}).get("partial_windows", False))


def unusable_reasons(win: windows_lib.Windows, predictor) -> list[str]:
  """Per window, ``""`` if usable, else e.g. ``"face in 12% of frames (< 50%)"``; a window
  shorter than the run's window is unusable unless the run kept partial windows
  (``features.partial_windows``), as in training."""
  need = float(predictor.meta["min_valid_fraction"])
  partial_ok = keeps_partial_windows(predictor)
  streams = [s for s in STREAMS if s in set(predictor.modalities)]
  out = []
  for cov, full in zip(win.coverage, win.full):
    parts = [f"{s} in {cov[STREAMS.index(s)]:.0%} of frames (< {need:.0%})" for s in streams
             if cov[STREAMS.index(s)] < need]
    if not full and not partial_ok:
      parts.append("shorter than one window (the model was trained on full windows)")
    out.append("; ".join(parts))
  return out


def held_fraction(frames: FrameInput, starts: np.ndarray, window_seconds: float) -> np.ndarray:
  """``[W]`` the share of a full window each window holds of the recording (1 for a full one;
  less for a trailing partial window), so that its coverage is judged on the frames it holds."""
  times = np.asarray(frames.times, np.float64)
  if times.size == 0:
    return np.ones(len(starts))
  period = float(np.median(np.diff(times))) if times.size > 1 else 0.0
  end = float(times[-1]) + period
  return np.clip((end - np.asarray(starts, np.float64)) / window_seconds, 1e-9, 1.0)


def length_warnings(frames: FrameInput, win: windows_lib.Windows, window_seconds: float,
                    predictor) -> list[str]:
  """A recording too short for one full window (a still image, a clip under the window
  length): nothing can be decided, and the summary says why."""
  if np.asarray(win.full).any() or (keeps_partial_windows(predictor) and np.asarray(win.start).size):
    return []
  times = np.asarray(frames.times)
  length = float(times[-1] - times[0]) if times.size else 0.0
  return [f"the recording spans {length:g} s ({times.size} frames), shorter than one "
          f"{window_seconds:g} s window: nothing to decide"]


OUT_OF_RANGE_WARNING = 0.05   # share of normalised values outside [0, 1] that is worth a warning


def input_warnings(predictor, raw: np.ndarray, usable: np.ndarray) -> list[str]:
  """What a user should know before trusting decisions on this input: a model trained on a
  demonstration dataset, and usable windows far outside the training range (the share of
  (fold, window, feature) values that min-max with the fold's training statistics puts outside
  [0, 1], before clipping, and the features most often out)."""
  out = []
  if predictor.meta.get("demonstration"):
    out.append(predictor.meta["demonstration"])
  if not usable.any():
    return out
  x = (np.asarray(raw)[usable][None] - predictor.lo[:, None]) / predictor.span[:, None]
  outside = np.isfinite(x) & ((x < 0.0) | (x > 1.0))                  # [K, N, F]
  share = float(outside.mean())
  if share > OUT_OF_RANGE_WARNING:
    per_feature = outside.mean(axis=(0, 1))
    top = np.argsort(-per_feature, kind="stable")[:5]
    names = ", ".join(f"{predictor.feature_names[i]} {per_feature[i]:.0%}" for i in top)
    out.append(f"{share:.0%} of this input's normalised feature values fall outside the range "
               f"the model was trained on (most often: {names}); its decisions extrapolate")
  return out


def modal_prompt(rep, window: int) -> tuple[str, float]:
  """The prompt most fold models give ``window`` and the fraction of folds that agree."""
  texts = rep.prompts[rep.index[:, window]]
  values, counts = np.unique(texts, return_counts=True)
  best = int(np.argmax(counts))
  return str(values[best]), float(counts[best] / texts.size)


def _fmt_cues(cues: list[tuple[str, float]]) -> str:
  return "; ".join(f"{name} {value:+.3f}" for name, value in cues)


@dataclasses.dataclass
class Prediction:
  """The outcome of :func:`predict_recording`."""
  table: Any                 # pandas.DataFrame, one row per consecutive window pair
  summary: dict
  windows: windows_lib.Windows
  explanation: attribution.Explanation | None
  decided: np.ndarray        # int [N] rows of ``table`` that were decided
  fold_prob: np.ndarray      # float32 [K, N] each fold model's P(increase) of those rows


def predict_recording(predictor, frames: FrameInput, explain: bool = True, top: int = 3,
                      ig_steps: int = 32) -> Prediction:
  """Decides and explains every consecutive window pair of one recording (module docstring)."""
  t0 = time.perf_counter()
  win = window_input(frames, predictor)
  end = float(frames.times[-1]) if frames.times.size else 0.0
  w = float(predictor.meta["window_seconds"])
  reasons = window_reasons(win, end, predictor)
  usable = np.array([r == "" for r in reasons])
  num_w = usable.size
  pairs = np.stack([np.arange(num_w - 1), np.arange(1, num_w)], 1) if num_w > 1 else np.zeros(
      (0, 2), int)
  decided = np.flatnonzero(usable[pairs[:, 0]] & usable[pairs[:, 1]]) if pairs.size else (
      np.zeros(0, int))
  encoded_before = encoded_count(predictor)
  rep = predictor.represent(win.features, recording=np.zeros(num_w, np.int32), usable=usable)
  k_idx = np.arange(predictor.num_folds)[:, None]
  first, second = pairs[decided, 0], pairs[decided, 1]
  prob = (predictor.probabilities(rep.z[k_idx, first], rep.z[k_idx, second])
          if decided.size else np.zeros((predictor.num_folds, 0), np.float32))   # [K, N]
  t_decide = time.perf_counter() - t0
  expl, cues = None, [[] for _ in decided]
  t1 = time.perf_counter()
  if explain and decided.size:
    expl = attribution.explain(predictor, rep, first, second, steps=ig_steps)
    cues = attribution.top_cues(expl, predictor.feature_names, top)
  t_explain = time.perf_counter() - t1
  table = _prediction_table(predictor, win, rep, pairs, decided, prob, cues, reasons)
  cov = win.coverage
  mods = set(predictor.modalities)
  need = predictor.meta["min_valid_fraction"] * held_fraction(frames, win.start, w)   # [W]
  summary = {
      "target": predictor.meta["target"], "model_label": predictor.meta["model_label"],
      "fusion": predictor.fusion, "modality": predictor.meta["modality"],
      "fold_models": predictor.num_folds, "window_seconds": w,
      "input_kind": frames.kind, "frames_decoded": frames.frames,
      "duration_s": float(frames.times[-1]) if frames.times.size else 0.0,
      "windows": int(num_w), "usable_windows": int(usable.sum()),
      "windows_without_face": [[float(s), float(s) + w] for s, c, n in zip(win.start, cov, need)
                               if "face" in mods and c[0] < n],
      "windows_without_audio": [[float(s), float(s) + w] for s, c, n in zip(win.start, cov, need)
                                if "audio" in mods and c[1] < n],
      "partial_windows": [[float(s), float(s) + w] for s, full in zip(win.start, win.full)
                          if not full],
      "pairs": int(len(pairs)), "decided": int(decided.size),
      "increase": int((prob.mean(0) >= 0.5).sum()) if decided.size else 0,
      "mean_p_increase": float(prob.mean()) if decided.size else None,
      "prompts_encoded": encoded_count(predictor) - encoded_before,
      "seconds_decide": round(t_decide, 4), "seconds_explain": round(t_explain, 4),
      "warnings": (list(frames.warnings) + length_warnings(frames, win, w, predictor) +
                   input_warnings(predictor, win.features, usable)),
  }
  if predictor.meta.get("salience_on_new_data"):
    summary["salience_statistics"] = predictor.meta["salience_on_new_data"]
  if expl is not None:
    summary["max_completeness_gap"] = float(np.abs(expl.completeness_gap).max())
  return Prediction(table, summary, win, expl, decided, prob)


def window_reasons(win: windows_lib.Windows, end: float, predictor) -> list[str]:
  """:func:`unusable_reasons`, a window running past ``end`` (the last time-base step) named
  as the recording's partial last window."""
  w = float(predictor.meta["window_seconds"])
  return [f"partial window (the recording ends at {end:g} s): {r}"
          if r and start + w > end + 1e-9 else r
          for r, start in zip(unusable_reasons(win, predictor), win.start)]


def encoded_count(predictor) -> int:
  """Prompts the predictor's embedding store has encoded so far (0 without one)."""
  store = predictor.embedder.store if predictor.uses_text else None
  return store.encoded_count if store is not None else 0


def _prediction_table(predictor, win, rep, pairs, decided, prob, cues, reasons):
  """``predictions.csv``: one row per consecutive window pair (module docstring)."""
  import pandas as pd  # pylint: disable=import-outside-toplevel
  row_of = {int(d): i for i, d in enumerate(decided)}
  rows = [pair_row(predictor, win.start, rep, a, b, prob[:, row_of[j]] if j in row_of else None,
                   cues[row_of[j]] if j in row_of else [], reasons)
          for j, (a, b) in enumerate(pairs)]
  return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


TABLE_COLUMNS = ("start_s", "end_s", "next_start_s", "next_end_s", "p_increase", "p_increase_std",
                 "direction", "prompt", "next_prompt", "prompt_fold_agreement", "top_cues",
                 "status")


def pair_row(predictor, starts, rep, a: int, b: int, prob: np.ndarray | None,
             cues: list[tuple[str, float]], reasons: list[str]) -> dict:
  """One row of ``predictions.csv`` (:data:`TABLE_COLUMNS`): windows ``a`` -> ``b`` (indices
  into ``starts``, ``rep`` and ``reasons``), ``prob [K]`` each fold's P(increase) (None: not
  decided, ``reasons`` say why)."""
  w = float(predictor.meta["window_seconds"])
  row = {"start_s": float(starts[a]), "end_s": float(starts[a]) + w,
         "next_start_s": float(starts[b]), "next_end_s": float(starts[b]) + w,
         "p_increase": np.nan, "p_increase_std": np.nan, "direction": "",
         "prompt": "", "next_prompt": "", "prompt_fold_agreement": np.nan,
         "top_cues": "", "status": "ok"}
  if predictor.uses_text:
    row["prompt"], agree_a = modal_prompt(rep, a)
    row["next_prompt"], agree_b = modal_prompt(rep, b)
    row["prompt_fold_agreement"] = min(agree_a, agree_b)
  if prob is not None:
    row.update(p_increase=float(prob.mean()), p_increase_std=float(prob.std()),
               direction="increase" if prob.mean() >= 0.5 else "decrease",
               top_cues=_fmt_cues(cues))
  else:
    bad = [f"window {starts[x]:g}-{starts[x] + w:g} s: {reasons[x]}" for x in (a, b)
           if reasons[x]]
    row["status"] = "not decided: " + "; ".join(bad)
  return row


def trajectory_figure(pred: Prediction, path: str | IO[bytes], title: str = "") -> None:
  """Predicted P(increase) over time (fold spread as error bars), unusable windows shaded, each
  decision's top cue written above it; ``path`` a file name or a binary file (PNG)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  t = pred.table
  fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(t) + 3), 3.6))
  for key, color, label in (("partial_windows", "#dbe9f6", "partial window"),
                            ("windows_without_face", "0.85", "no face"),
                            ("windows_without_audio", "#f3d9b1", "no audio")):
    for i, (a, b) in enumerate(pred.summary.get(key, [])):
      ax.axvspan(a, b, color=color, alpha=0.6, lw=0, label=label if i == 0 else None)
  ok = t["status"] == "ok"
  x = t["next_start_s"][ok].to_numpy()
  p = t["p_increase"][ok].to_numpy()
  colors = np.where(p >= 0.5, "tab:green", "tab:red")
  ax.errorbar(x, p, yerr=t["p_increase_std"][ok].to_numpy(), fmt="none", ecolor="0.4", lw=0.8)
  ax.scatter(x, p, c=colors, s=22, zorder=3)
  ax.axhline(0.5, color="0.3", lw=0.8, ls="--")
  for xi, pi, cue in zip(x, p, t["top_cues"][ok]):
    if cue:
      name = cue.split(";")[0].rsplit(" ", 1)
      ax.annotate(f"{name[0]} {name[1]}" if len(name) == 2 else name[0], (xi, pi),
                  textcoords="offset points", xytext=(0, 6), rotation=60, fontsize=6,
                  ha="left", va="bottom")
  ax.set_ylim(0, 1.15)
  ax.set_xlabel("time (s): start of the later window")
  ax.set_ylabel(f"P({pred.summary['target']} increases)")
  ax.set_title(title or f"{pred.summary['model_label']}: green = increase, red = decrease; "
               "label = top cue", fontsize=9)
  handles, labels = ax.get_legend_handles_labels()
  if handles:
    ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=130, format="png")
  plt.close(fig)


def run_predict(run_dir: str, input_path: str, output: str, face_model: str = "",
                text_model_path: str | None = None, cache_dir: str | None = None,
                time_column: str = "time", explain: bool = True, top: int = 3,
                ig_steps: int = 32) -> Prediction:
  """``experiments/predict.py``: loads the bundle of ``run_dir``, decides and explains
  ``input_path`` and writes ``predictions.csv``, ``trajectory.png`` and ``summary.json`` to
  ``output``."""
  predictor = ensemble.load_bundle(run_dir, cache_dir, text_model_path)
  with files_lib.hold_lock(output, "experiments/predict.py"):  # One writer per output folder.
    t0 = time.perf_counter()
    frames = read_input(input_path, predictor, face_model, time_column)
    seconds_input = time.perf_counter() - t0
    pred = predict_recording(predictor, frames, explain, top, ig_steps)
    seconds_total = time.perf_counter() - t0
    out = rundir.RunDir.start(output, outputs=rundir.PREDICT_OUTPUTS)
    out.write_bytes("predictions.csv", pred.table.to_csv(index=False).encode())
    figure = io.BytesIO()
    trajectory_figure(pred, figure)
    out.write_bytes("trajectory.png", figure.getvalue())
    pred.summary.update(
        run=os.path.abspath(run_dir), input=os.path.abspath(input_path),
        seconds_input=round(seconds_input, 3), seconds_total=round(seconds_total, 3),
        frames_per_second=(round(frames.frames / seconds_total, 2) if frames.frames else None))
    out.write_json("summary.json", pred.summary, indent=1)
  return pred
