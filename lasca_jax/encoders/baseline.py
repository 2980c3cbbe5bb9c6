"""Precomputed frozen baseline-encoder embeddings (Sec. 3.2, Table 2), pooled into windows.

The baselines of Tables 5-6 (VGGFace2, SwinFace, MAE-Face, Wav2Vec2, MAE-Audio, HiCMAE,
MMA-DFER, or any other backbone) are run once, outside this package or with
``experiments/extract_wav2vec2.py``, and stored as one ``.npz`` per recording,
``<dir>/<recording_id>.npz``. Two layouts are accepted:

* **Per frame** (preferred): ``embeddings`` ``float [T, D]`` and ``times`` ``float [T]`` seconds
  on the recording's *annotation* time base (the ``Recording.times`` clock; 0 = start of the
  recording), non-decreasing. A frame without an embedding (no face detected) is simply left out;
  ``T`` may be 0.
* **Per window**: ``embeddings`` ``float [W, D]`` and a scalar ``window_seconds``, optionally
  ``starts`` ``[W]`` (default ``k * window_seconds``). Valid only for that window length.

Other keys (``sample_rate``, ``model``, ...) are ignored. Values must be finite: NaN or infinity
is an error naming the file and the first bad row, as is any shape mismatch.

Windows are those of :mod:`lasca_jax.method.windows`: window ``k`` covers
``[k * w, (k + 1) * w)`` seconds from time 0, a frame at time ``t`` falls in window
``floor(t / w + 1e-9)``, and a window's embedding is the mean over the frames inside it (NaN,
with count 0, when none are). Frames before time 0 or past the last requested window are dropped.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

import numpy as np

# Same tolerance as lasca_jax.method.windows.make_windows: a frame exactly on a boundary opens the next.
BOUNDARY_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class EmbeddingTrack:
  """One recording's embeddings as stored.

  Attributes:
    embeddings: ``float32 [T, D]`` (frames) or ``[W, D]`` (windows).
    times: ``float64 [T]`` frame times in seconds; None for a per-window file.
    window_seconds: window length of a per-window file; None for a per-frame file.
    starts: ``float64 [W]`` window starts of a per-window file; None for a per-frame file.
    path: the file it was read from.
  """

  embeddings: np.ndarray
  times: np.ndarray | None
  window_seconds: float | None
  starts: np.ndarray | None
  path: str

  @property
  def dim(self) -> int:
    return int(self.embeddings.shape[1])


def embedding_path(directory: str | os.PathLike, recording_id: str) -> pathlib.Path:
  """``<directory>/<recording_id>.npz``."""
  return pathlib.Path(directory) / f"{recording_id}.npz"


def _check_finite(values: np.ndarray, name: str, path: str) -> None:
  bad = ~np.isfinite(values)
  if bad.any():
    rows = np.nonzero(bad.reshape(values.shape[0], -1).any(axis=1))[0]
    kind = "NaN" if np.isnan(values).any() else "infinite"
    raise ValueError(f"{path}: {kind} values in {name} at row {rows[0]} ({rows.size} rows in all)")


def load_embedding_file(path: str | os.PathLike) -> EmbeddingTrack:
  """Reads and validates one embedding file (see the module docstring for the format).

  Raises:
    FileNotFoundError: when the file does not exist.
    ValueError: naming the file on a missing key, a bad shape, non-finite values, or
      decreasing times.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: embedding file not found")
  with np.load(path, allow_pickle=False) as f:
    keys = set(f.files)
    if "embeddings" not in keys:
      raise ValueError(f"{path}: no 'embeddings' array (keys: {sorted(keys)})")
    emb = np.asarray(f["embeddings"])
    times = np.asarray(f["times"]) if "times" in keys else None
    window = np.asarray(f["window_seconds"]) if "window_seconds" in keys else None
    starts = np.asarray(f["starts"]) if "starts" in keys else None
  if emb.ndim != 2:
    raise ValueError(f"{path}: embeddings have shape {emb.shape}, expected [T, D]")
  if not np.issubdtype(emb.dtype, np.number):
    raise ValueError(f"{path}: embeddings have dtype {emb.dtype}, expected float")
  emb = emb.astype(np.float32)
  _check_finite(emb, "embeddings", path)
  if times is not None:
    if times.shape != (emb.shape[0],):
      raise ValueError(f"{path}: times have shape {times.shape}, expected ({emb.shape[0]},) "
                       f"to match embeddings {emb.shape}")
    times = times.astype(np.float64)
    _check_finite(times, "times", path)
    if times.size > 1 and (np.diff(times) < 0).any():
      i = int(np.argmax(np.diff(times) < 0))
      raise ValueError(f"{path}: times decrease at frame {i + 1} ({times[i]} -> {times[i + 1]})")
    return EmbeddingTrack(emb, times, None, None, path)
  if window is None:
    raise ValueError(f"{path}: neither 'times' (per-frame) nor 'window_seconds' (per-window)")
  if window.shape != () or not np.isfinite(window) or float(window) <= 0:
    raise ValueError(f"{path}: window_seconds must be a positive scalar, got {window!r}")
  w = float(window)
  if starts is None:
    starts = np.arange(emb.shape[0]) * w
  starts = np.asarray(starts, dtype=np.float64)
  if starts.shape != (emb.shape[0],):
    raise ValueError(f"{path}: starts have shape {starts.shape}, expected ({emb.shape[0]},)")
  _check_finite(starts, "starts", path)
  k = starts / w
  if (np.abs(k - np.round(k)) > 1e-6).any() or (k < -1e-6).any():
    raise ValueError(f"{path}: window starts are not non-negative multiples of {w} s")
  if np.unique(np.round(k)).size != k.size:
    raise ValueError(f"{path}: duplicate window starts")
  return EmbeddingTrack(emb, None, w, starts, path)


def window_index(times: np.ndarray, window_seconds: float) -> np.ndarray:
  """Window number of each frame time: ``floor(t / w + 1e-9)`` (as ``lasca_jax.method.windows``)."""
  return np.floor(np.asarray(times, np.float64) / window_seconds + BOUNDARY_EPS).astype(np.int64)


def pool_frames(embeddings: np.ndarray, times: np.ndarray, window_seconds: float,
                num_windows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Mean-pools per-frame embeddings into windows ``[k w, (k + 1) w)``.

  Args:
    embeddings: ``[T, D]`` finite values.
    times: ``[T]`` seconds.
    window_seconds: window length ``w``.
    num_windows: windows to return (the core's count for this recording); default: up to the
      window holding the last frame.

  Returns:
    ``pooled`` ``float32 [num_windows, D]`` (NaN rows for windows without frames) and
    ``counts`` ``int64 [num_windows]`` (frames pooled per window).
  """
  if window_seconds <= 0:
    raise ValueError(f"window_seconds must be positive, got {window_seconds}")
  embeddings = np.asarray(embeddings, np.float64)
  idx = window_index(times, window_seconds)
  if num_windows is None:
    num_windows = int(idx.max()) + 1 if idx.size and idx.max() >= 0 else 0
  keep = (idx >= 0) & (idx < num_windows)
  sums = np.zeros((num_windows, embeddings.shape[1]))
  np.add.at(sums, idx[keep], embeddings[keep])
  counts = np.bincount(idx[keep], minlength=num_windows).astype(np.int64)
  with np.errstate(invalid="ignore", divide="ignore"):
    pooled = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], np.nan)
  return pooled.astype(np.float32), counts


def pool_track(track: EmbeddingTrack, window_seconds: float,
               num_windows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Windows of one stored track: pools a per-frame file, re-indexes a per-window file.

  For a per-window file ``counts`` is 1 where the file has the window, 0 elsewhere.

  Raises:
    ValueError: when a per-window file was made for another window length.
  """
  if track.times is not None:
    return pool_frames(track.embeddings, track.times, window_seconds, num_windows)
  if abs(track.window_seconds - window_seconds) > 1e-9:
    raise ValueError(f"{track.path}: per-window embeddings for {track.window_seconds} s windows, "
                     f"requested {window_seconds} s")
  k = np.round(track.starts / window_seconds).astype(np.int64)
  if num_windows is None:
    num_windows = int(k.max()) + 1 if k.size else 0
  keep = k < num_windows
  pooled = np.full((num_windows, track.dim), np.nan, np.float32)
  pooled[k[keep]] = track.embeddings[keep]
  counts = np.zeros(num_windows, np.int64)
  counts[k[keep]] = 1
  return pooled, counts


def embeddings_for_windows(directory: str | os.PathLike, recording_ids: Sequence[str],
                           window_recording: np.ndarray, window_position: np.ndarray,
                           window_seconds: float) -> tuple[np.ndarray, np.ndarray]:
  """Embeddings for the core's windows, in the core's window order.

  Args:
    directory: folder of ``<recording_id>.npz`` files.
    recording_ids: ``[R]`` recording names (``make_windows``' ``recording_ids``).
    window_recording: ``[W]`` recording index of each window (``make_windows``' ``recording``).
    window_position: ``[W]`` window number within its recording (``position``).
    window_seconds: window length.

  Returns:
    ``embeddings`` ``float32 [W, D]`` (NaN where a window has no frame) and ``counts [W]``.

  Raises:
    FileNotFoundError / ValueError: naming the file that is missing or malformed, or whose
      dimension differs from the first file's.
  """
  window_recording = np.asarray(window_recording, np.int64)
  window_position = np.asarray(window_position, np.int64)
  out, counts, dim, first = None, np.zeros(window_recording.shape[0], np.int64), None, None
  for r, rec_id in enumerate(recording_ids):
    sel = np.nonzero(window_recording == r)[0]
    if sel.size == 0:
      continue
    track = load_embedding_file(embedding_path(directory, rec_id))
    if dim is None:
      dim, first = track.dim, track.path
      out = np.full((window_recording.shape[0], dim), np.nan, np.float32)
    elif track.dim != dim:
      raise ValueError(f"{track.path}: embedding dimension {track.dim} differs from {dim} "
                       f"in {first}")
    pooled, c = pool_track(track, window_seconds, int(window_position[sel].max()) + 1)
    out[sel] = pooled[window_position[sel]]
    counts[sel] = c[window_position[sel]]
  if out is None:
    raise ValueError("no windows to fill (window_recording selects no recording)")
  return out, counts


def frame_coverage(counts: np.ndarray, frame_period: float, window_seconds: float) -> np.ndarray:
  """Fraction of a full window's frames present: ``counts * period / w``, clipped to 1.

  Comparable with the core's per-stream coverage, for its ``min_valid_fraction`` rule.
  """
  return np.minimum(1.0, np.asarray(counts, np.float64) * frame_period / window_seconds)


def directory_fingerprint(directory: str | os.PathLike) -> dict:
  """Names, sizes and modification times of a folder's ``.npz`` files (for cache keys)."""
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"baseline embedding folder {directory} does not exist "
                            "(config.model.baseline_dir)")
  files = sorted(f for f in os.listdir(directory) if f.endswith(".npz"))
  return {"dir": os.path.abspath(directory),
          "files": [(f, os.path.getsize(os.path.join(directory, f)),
                     int(os.path.getmtime(os.path.join(directory, f)))) for f in files]}
