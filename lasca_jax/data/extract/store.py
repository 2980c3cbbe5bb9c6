"""The per-recording feature file: one compressed ``.npz`` written atomically.

Arrays (``N`` processed video frames, ``M`` MFCC frames):

  * ``frame_index`` ``int64 [N]``: index of each processed frame among all decoded frames.
  * ``frame_times`` ``float64 [N]``: seconds since the first decoded frame.
  * ``face`` ``float32 [N, 58]``: :data:`lasca_jax.data.types.FACE_FEATURE_NAMES`, NaN without a face.
  * ``face_valid`` ``bool [N]``: a face was found (and kept) in the frame.
  * ``audio_times`` ``float64 [M]``: MFCC frame centres, seconds on the same clock as frames.
  * ``mfcc`` ``float32 [M, 15]``: :data:`lasca_jax.data.types.MFCC_NAMES`.
  * ``meta``: a JSON string: format version, recording id, input files (name, size), extraction
    settings, frame rate, decoded frame count, whether audio was found, library versions.

A file is *current* for a job when it loads, has the format version, and its input files and
settings match the job's; the runner skips current files, so a killed run resumes where it
stopped. Writes go to a temporary file in the same folder, then ``os.replace``: a reader never
sees a half-written file and an existing file is only ever replaced by a complete one.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Mapping, Optional

import numpy as np

from lasca_jax.data import files as files_lib, types as data

FORMAT_VERSION = 1
ARRAYS = ("frame_index", "frame_times", "face", "face_valid", "audio_times", "mfcc")
# Meta keys the loaders read (``fps`` may be null for a recording without video).
REQUIRED_META = ("version", "fps", "num_frames", "settings")
REQUIRED_SETTINGS = ("frame_stride", "mfcc_hop_seconds")


def file_stamp(path: Optional[str]) -> Optional[dict]:
  """``{"name", "size"}`` of an input file (enough to notice a replaced file, robust to moves)."""
  if not path:
    return None
  return {"name": os.path.basename(path), "size": os.path.getsize(path)}


def save_features(path: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
  """Writes ``arrays`` and ``meta`` to ``path`` atomically (:mod:`lasca_jax.data.files`)."""
  files_lib.save_npz_atomic(path, {"meta": np.asarray(json.dumps(dict(meta), sort_keys=True)),
                                   **{k: np.asarray(arrays[k]) for k in ARRAYS}}, compress=True)


def remove_stale_temporaries(path: str) -> list[str]:
  """Deletes temporary files a killed writer of ``path`` left behind; returns their paths.

  Only call this for an output that no other process is writing (the runner gives every
  recording to exactly one shard).
  """
  pattern = os.path.join(os.path.dirname(os.path.abspath(path)),
                         ".tmp-" + glob.escape(os.path.basename(path)) + "*.npz")
  stale = glob.glob(pattern)
  for p in stale:
    os.remove(p)
  return stale


def load_features(path: str) -> dict:
  """Reads and checks a feature file.

  Returns:
    The arrays of :data:`ARRAYS` plus ``meta`` (a dict).

  Raises:
    FileNotFoundError: when ``path`` does not exist.
    ValueError: naming ``path`` when the file is unreadable, of another format version, or its
      arrays are inconsistent.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"feature file {path} does not exist")
  try:
    with np.load(path, allow_pickle=False) as z:
      out = {k: z[k] for k in ARRAYS}
      meta = json.loads(str(z["meta"]))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"feature file {path} is unreadable ({type(e).__name__}: {e}); delete it "
                     "and run experiments/extract.py again") from e
  if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
    version = meta.get("version") if isinstance(meta, dict) else None
    raise ValueError(f"feature file {path} has format version {version}, expected "
                     f"{FORMAT_VERSION}; run experiments/extract.py again")
  missing = [k for k in REQUIRED_META if k not in meta]
  settings = meta.get("settings")
  missing += [f"settings.{k}" for k in REQUIRED_SETTINGS
              if not isinstance(settings, dict) or k not in settings]
  if missing:
    raise ValueError(f"feature file {path}: its meta lacks {', '.join(missing)} (the .npz "
                     "feature format is in docs/data.md, 'The feature .npz format'); run "
                     "experiments/extract.py again or add them")
  n, m = out["frame_index"].shape[0], out["audio_times"].shape[0]
  shapes = {"frame_times": (n,), "face": (n, len(data.FACE_FEATURE_NAMES)),
            "face_valid": (n,), "mfcc": (m, data.NUM_MFCC)}
  for k, shape in shapes.items():
    if out[k].shape != shape:
      raise ValueError(f"feature file {path}: {k} has shape {out[k].shape}, expected {shape}")
  out["meta"] = meta
  return out


def is_current(path: str, inputs: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
  """Whether ``path`` is a valid feature file made from ``inputs`` with ``settings``."""
  try:
    meta = load_features(path)["meta"]
  except (FileNotFoundError, ValueError):
    return False
  return (meta.get("inputs") == json.loads(json.dumps(dict(inputs))) and
          meta.get("settings") == json.loads(json.dumps(dict(settings))))
