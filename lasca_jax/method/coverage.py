"""Why windows or subjects are unusable, said with names, before any fold is drawn.

* :func:`check_target` - the dataset must hold labels of the target (a valence-only dataset asked
  for arousal is an error that says so).
* :func:`empty_subjects` - subjects none of whose windows is usable (no face found, no audio
  track, no annotation, or only partial windows), each with the reason and its recordings; the
  pipeline leaves them out of the protocol and logs the list.
* :func:`explain_unusable` - the message when no window at all is usable: which stream lacks
  data, which feature columns are never finite, and which setting to change.
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
