"""Why windows or subjects are unusable, said with names, before any fold is drawn.

* :func:`check_target` - the dataset must hold labels of the target (a valence-only dataset asked
  for arousal is an error that says so).
* :func:`empty_subjects` - subjects none of whose windows is usable (no face found, no audio
  track, no annotation, or only partial windows), each with the reason and its recordings; the
  pipeline leaves them out of the protocol and logs the list.
* :func:`explain_unusable` - the message when no window at all is usable: which stream lacks
  data, which feature columns are never finite, and which setting to change.
* Degenerate set-ups: :func:`check_window_length` (a window shorter than the frame period is an
  error naming ``features.window_seconds``) and :func:`pair_warnings` (folds with too few
  validation or test pairs, naming the margin). Folds whose model learned nothing:
  :mod:`lasca_jax.model.degenerate`.
"""

from __future__ import annotations

import numpy as np

from lasca_jax.method import windows as windows_lib

TARGETS = ("valence", "arousal")
STREAM_NAMES = {"face": "face features", "audio": "audio features"}


def check_target(win: windows_lib.Windows, target: str) -> None:
  """Raises ``ValueError`` when no window has a single annotated ``target`` frame."""
  j = TARGETS.index(target)
  if not (win.label_coverage[:, j] > 0).any():
    other = TARGETS[1 - j]
    has_other = bool((win.label_coverage[:, 1 - j] > 0).any())
    hint = (f"; the data has {other} labels: use --config.pairs.target={other}" if has_other
            else "; no label of either target is annotated: check the label columns/files")
    raise ValueError(f"the dataset has no {target} labels (every {target} value is missing)"
                     + hint)


def _reason(cov: np.ndarray, label_cov: np.ndarray, full: np.ndarray, streams, target: str,
            min_valid_fraction: float, partial: bool) -> str:
  """Why none of a subject's windows (rows of ``cov [n, 3]``) is usable."""
  reasons = []
  for s in streams:
    best = cov[:, ("face", "audio").index(s)].max(initial=0.0)
    if best == 0:
      reasons.append("no face found in any frame" if s == "face" else "no audio (no track)")
    elif best < min_valid_fraction:
      reasons.append(f"{STREAM_NAMES[s]} in at most {best:.0%} of a window's frames")
  best = label_cov.max(initial=0.0)
  if best == 0:
    reasons.append(f"no {target} annotation")
  elif best < min_valid_fraction:
    reasons.append(f"{target} annotated in at most {best:.0%} of a window's frames")
  if not reasons and not partial and not full.any():
    reasons.append("shorter than one full window")
  return "; ".join(reasons) or (f"no window reaches min_valid_fraction={min_valid_fraction} in "
                                "every stream at once")


def empty_subjects(win: windows_lib.Windows, usable: np.ndarray, modality: str,
                   target: str, min_valid_fraction: float, partial: bool = False
                   ) -> dict[str, dict]:
  """``{subject: {"reason", "recordings"}}`` for subjects without a usable window."""
  subject_of_window = win.subject
  streams = windows_lib.MODALITY_STREAMS[modality]
  j = TARGETS.index(target)
  out = {}
  for subject in np.unique(win.subject_ids):
    rows = subject_of_window == subject
    if usable[rows].any():
      continue
    recordings = sorted(win.recording_ids[win.subject_ids == subject].tolist())
    out[str(subject)] = {
        "reason": _reason(win.coverage[rows], win.label_coverage[rows, j],
                          win.full[rows], streams, target, min_valid_fraction, partial),
        "recordings": recordings}
  return out


def describe_empty(empty: dict[str, dict], limit: int = 8) -> str:
  """``subject (recordings): reason; ...`` for the first ``limit`` subjects."""
  parts = [f"{s} ({', '.join(e['recordings'][:3])}): {e['reason']}"
           for s, e in list(empty.items())[:limit]]
  more = f"; and {len(empty) - limit} more" if len(empty) > limit else ""
  return "; ".join(parts) + more


def explain_unusable(win: windows_lib.Windows, modality: str, target: str,
                     min_valid_fraction: float, partial: bool = False) -> str:
  """The error message when not one window is usable."""
  cols = windows_lib.modality_columns(win.modalities, modality)
  never = [str(win.feature_names[c]) for c in cols
           if not np.isfinite(win.features[:, c]).any()]
  parts = []
  for s in windows_lib.MODALITY_STREAMS[modality]:
    best = win.coverage[:, ("face", "audio").index(s)].max(initial=0.0)
    if best < min_valid_fraction:
      parts.append(f"{STREAM_NAMES[s]} cover at most {best:.0%} of any window's frames")
  best = win.label_coverage[:, TARGETS.index(target)].max(initial=0.0)
  if best < min_valid_fraction:
    parts.append(f"{target} is annotated in at most {best:.0%} of any window's frames")
  if never:
    shown = ", ".join(repr(n) for n in never[:8]) + (f" and {len(never) - 8} more"
                                                     if len(never) > 8 else "")
    parts.append(f"feature columns never finite in any recording: {shown} (a window needs "
                 "every feature of its streams; drop them, e.g. --config.data.exclude_columns, "
                 "or choose another features.modality)")
  if not partial and not win.full.any():
    parts.append("every recording is shorter than one window (lower "
                 "features.window_seconds or set features.partial_windows=True)")
  return (f"no usable window for modality {modality!r} and target {target!r} "
          f"(min_valid_fraction={min_valid_fraction}): " + "; ".join(
              parts or ["no window reaches the coverage in every stream at once"]))


# ----------------------------------------------------------------------------- degenerate set-ups

MIN_PAIRS_PER_FOLD = 20   # below this, a fold's validation or test accuracy is mostly noise:
                          # its standard error is at least 0.5 / sqrt(20) = 0.11


def frame_period(times: np.ndarray, recording: np.ndarray) -> float:
  """The median step between consecutive frames of the same recording (seconds; 0 when no
  recording has two frames)."""
  steps = np.diff(times)[np.diff(recording) == 0]
  steps = steps[steps > 0]
  return float(np.median(steps)) if steps.size else 0.0


def check_window_length(times: np.ndarray, recording: np.ndarray, window_seconds: float) -> None:
  """A ``ValueError`` naming ``features.window_seconds`` when a window is shorter than the frame
  period (it would hold at most one frame, and every later error would blame something else)."""
  period = frame_period(times, recording)
  if period and window_seconds < period:
    if period >= 1.0:   # seconds apart: far more likely a time column in milliseconds
      raise ValueError(
          f"the frames are {period:g} s apart, longer than features.window_seconds="
          f"{window_seconds:g}: is the time column in milliseconds? It must be seconds")
    raise ValueError(
        f"features.window_seconds={window_seconds:g} is shorter than the frames' period "
        f"({period:g} s, {1.0 / period:g} Hz): a window holds at most one frame; use a window "
        f"of several frames (at least {period:g} s; the paper uses 3 or 5 s)")


def pair_warnings(margin: float, target: str, val_counts: np.ndarray, test_counts: np.ndarray,
                  total: int) -> list[str]:
  """Warnings when folds have too few validation or test pairs to mean anything, naming the
  margin that made them few."""
  out = []
  for what, counts, effect in (
      ("validation", val_counts, "early stopping picks its epoch on noise"),
      ("test", test_counts, "their accuracy has a standard error above 0.11")):
    few = np.flatnonzero(np.asarray(counts) < MIN_PAIRS_PER_FOLD)
    if few.size:
      out.append(
          f"{few.size} of {len(counts)} folds have fewer than {MIN_PAIRS_PER_FOLD} {what} pairs "
          f"(fewest {int(np.min(counts))}; {total} pairs in all at pairs.margin={margin:g} on "
          f"{target}): {effect}; " + ("lower pairs.margin or give more recordings" if margin > 0
                                      else "give more or longer recordings"))
  return out
