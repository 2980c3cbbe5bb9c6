"""The per-frame data interface shared by every dataset loader and the stages.

A dataset loader (``lasca_jax.data.datasets.<name>``) turns whatever the dataset ships into a list
of :class:`Recording` objects on one *annotation time base*: one row per annotated time step,
features already aligned to it. Everything downstream (windows, normalisation, salience, prompts,
pairs) starts from these arrays.

Conventions:
  * ``features`` is ``float32 [T, F]``; a value that could not be measured (no face detected in
    the frame, audio missing) is ``NaN``, never zero-filled. Infinite values are an error.
  * ``valence`` and ``arousal`` are ``float32 [T]``; unannotated steps are ``NaN``.
  * ``modalities[i]`` is ``"face"`` or ``"audio"`` and says which template feature ``i`` enters.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

# The 52 MediaPipe Face Landmarker blendshape categories, in the order the model emits them.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
# Six head-pose values read off MediaPipe's 4x4 facial transformation matrix, which brings the
# paper's count to 58 facial values: Euler angles in degrees and translation in centimetres.
HEAD_POSE_NAMES: tuple[str, ...] = (
    "headPitch", "headYaw", "headRoll", "headTx", "headTy", "headTz",
)
FACE_FEATURE_NAMES: tuple[str, ...] = BLENDSHAPE_NAMES + HEAD_POSE_NAMES
NUM_MFCC = 15
MFCC_NAMES: tuple[str, ...] = tuple(f"mfcc_{i}" for i in range(NUM_MFCC))
MODALITIES = ("face", "audio")


@dataclasses.dataclass(frozen=True)
class Recording:
  """One recording of one subject on its annotation time base.

  Attributes:
    recording_id: unique name of the recording (e.g. ``Train_DE_01`` or ``video12_left``).
    subject_id: the person; splits never put one subject on both sides.
    times: ``float64 [T]`` seconds from the start of the recording, strictly increasing.
    features: ``float32 [T, F]``, NaN where a value is missing.
    feature_names: ``F`` names.
    modalities: ``F`` entries, each ``"face"`` or ``"audio"``.
    valence: ``float32 [T]``, NaN where unannotated.
    arousal: ``float32 [T]``, NaN where unannotated.
  """

  recording_id: str
  subject_id: str
  times: np.ndarray
  features: np.ndarray
  feature_names: tuple[str, ...]
  modalities: tuple[str, ...]
  valence: np.ndarray
  arousal: np.ndarray

  def validate(self, source: str = "") -> None:
    """Raises ``ValueError`` naming ``source`` (a file or recording) and the problem."""
    where = source or self.recording_id
    t = np.asarray(self.times)
    n = t.shape[0]
    if self.features.ndim != 2 or self.features.shape[0] != n:
      raise ValueError(f"{where}: features have shape {self.features.shape}, expected [{n}, F]")
    if len(self.feature_names) != self.features.shape[1]:
      raise ValueError(f"{where}: {len(self.feature_names)} feature names for "
                       f"{self.features.shape[1]} feature columns")
    if len(self.modalities) != len(self.feature_names):
      raise ValueError(f"{where}: {len(self.modalities)} modalities for "
                       f"{len(self.feature_names)} features")
    bad = sorted(set(self.modalities) - set(MODALITIES))
    if bad:
      raise ValueError(f"{where}: unknown modalities {bad}; expected one of {MODALITIES}")
    for name in ("valence", "arousal"):
      if np.asarray(getattr(self, name)).shape != (n,):
        raise ValueError(f"{where}: {name} has shape {np.shape(getattr(self, name))}, "
                         f"expected ({n},)")
    if n > 1 and not np.all(np.diff(t) > 0):
      raise ValueError(f"{where}: times are not strictly increasing")
    if n and t[0] < 0:
      raise ValueError(f"{where}: times start at {t[0]:g} s; times are seconds from the start "
                       "of the recording: shift them so the first is 0 or later")
    if np.isinf(self.features).any():
      rows, cols = np.nonzero(np.isinf(self.features))
      raise ValueError(f"{where}: infinite feature value at time step {rows[0]} "
                       f"(feature {self.feature_names[cols[0]]!r}); {rows.size} in all")
    for name in ("valence", "arousal"):
      if np.isinf(getattr(self, name)).any():
        raise ValueError(f"{where}: infinite {name} annotation")


def check_consistent(recordings: Sequence[Recording]) -> None:
  """All recordings must share feature names and modalities, and have unique ids."""
  if not recordings:
    raise ValueError("the dataset produced no recordings")
  first = recordings[0]
  seen = set()
  for r in recordings:
    r.validate()
    if r.recording_id in seen:
      raise ValueError(f"recording id {r.recording_id!r} appears twice")
    seen.add(r.recording_id)
    if r.feature_names != first.feature_names or r.modalities != first.modalities:
      raise ValueError(f"{r.recording_id}: feature columns differ from {first.recording_id}")
