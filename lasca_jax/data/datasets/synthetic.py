"""The embedded synthetic dataset: subjects with latent affect, cues that follow it, raters.

Every subject has smooth latent valence and arousal trajectories in [-1, 1] (a sum of slow
sinusoids with random periods of 15-120 s, phases and amplitudes, squashed by ``tanh``). Per-frame
features on a ``frame_rate`` Hz time base (10 Hz by default, SEWA's label rate) follow the latent
affect through fixed cue-affect relations, plus subject-specific offsets and temporally
correlated noise:

* 52 MediaPipe blendshapes in [0, 1]: a tonic level
  ``tonic_scale * sigmoid(base + subject offset + tonic_loading * loading . [v, a] + noise)`` plus
  transient actions (0.5-2.5 s bumps, shared by left/right partners) whose rate is
  ``action_rate * exp(1.2 * loading . [v, a])``. Smiles, cheek squints and dimples rise with valence; frowns, brow lowering, sneers, lip presses
  and upper-lip raises fall with it; wide eyes, jaw opening, raised brows and mouth stretches rise
  with arousal; blinks and downward gaze fall with it. Other blendshapes carry small random
  loadings.
* 6 head-pose values (degrees, cm): slow random walks; pitch and the amount of motion rise with
  arousal.
* 15 MFCCs: speech alternates with pauses (about 65 % speech); during speech the energy
  coefficient ``mfcc_0`` rises with arousal, ``mfcc_1`` with valence, ``mfcc_2``-``mfcc_5`` carry
  weaker mixed loadings, the rest subject timbre and noise. Pauses have low energy.
* Face detections fail in short bursts (``face_dropout`` of frames), which become NaN.

Annotations: ``num_raters`` raters each follow the latent trace with their own reaction lag
(0.5-2.5 s), bias and smoothed noise; the label is their mean, clipped to [-1, 1] (Sec. 4.1).
Everything is drawn from ``numpy.random.default_rng([seed, subject])``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from lasca_jax.data import checks, files as files_lib
from lasca_jax.data.types import BLENDSHAPE_NAMES, FACE_FEATURE_NAMES, MFCC_NAMES, Recording

# (feature, valence loading, arousal loading) on the logit scale.
CUE_LOADINGS = {
    "mouthSmileLeft": (2.0, 0.3), "mouthSmileRight": (2.0, 0.3),
    "cheekSquintLeft": (1.2, 0.2), "cheekSquintRight": (1.2, 0.2),
    "mouthDimpleLeft": (0.8, 0.0), "mouthDimpleRight": (0.8, 0.0),
    "mouthFrownLeft": (-1.5, 0.0), "mouthFrownRight": (-1.5, 0.0),
    "browDownLeft": (-1.2, 0.4), "browDownRight": (-1.2, 0.4),
    "noseSneerLeft": (-1.0, 0.3), "noseSneerRight": (-1.0, 0.3),
    "mouthPressLeft": (-0.6, 0.2), "mouthPressRight": (-0.6, 0.2),
    "mouthUpperUpLeft": (-0.8, 0.2), "mouthUpperUpRight": (-0.8, 0.2),
    "eyeWideLeft": (0.0, 1.5), "eyeWideRight": (0.0, 1.5),
    "jawOpen": (0.2, 1.5), "browInnerUp": (-0.4, 0.8),
    "browOuterUpLeft": (0.2, 1.0), "browOuterUpRight": (0.2, 1.0),
    "mouthStretchLeft": (-0.2, 0.6), "mouthStretchRight": (-0.2, 0.6),
    "eyeBlinkLeft": (0.0, -0.8), "eyeBlinkRight": (0.0, -0.8),
    "eyeLookDownLeft": (-0.3, -1.0), "eyeLookDownRight": (-0.3, -1.0),
}


def _smooth_trace(rng, t: np.ndarray, num_components: int = 6) -> np.ndarray:
  periods = rng.uniform(15.0, 120.0, num_components)
  amps = rng.uniform(0.3, 1.0, num_components)
  phases = rng.uniform(0, 2 * np.pi, num_components)
  x = (amps[:, None] * np.sin(2 * np.pi * t[None] / periods[:, None] + phases[:, None])).sum(0)
  return np.tanh(x / np.sqrt((amps ** 2).sum() / 2) + rng.normal(0, 0.3))


def _ar1(rng, n: int, dims: int, rho: float, scale: float) -> np.ndarray:
  """Temporally correlated noise ``[n, dims]`` with stationary std ``scale``."""
  e = rng.normal(0, scale * np.sqrt(1 - rho ** 2), (n, dims))
  out = np.empty_like(e)
  out[0] = rng.normal(0, scale, dims)
  for i in range(1, n):
    out[i] = rho * out[i - 1] + e[i]
  return out


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
  if width <= 1:
    return x
  kernel = np.ones(width) / width
  return np.convolve(np.pad(x, (width // 2, width - 1 - width // 2), mode="edge"), kernel, "valid")


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
  return np.concatenate([np.full(lag, x[0]), x[: len(x) - lag]]) if lag > 0 else x


def _mfccs(rng: np.random.Generator, va: np.ndarray, fps: float) -> np.ndarray:
  """``[n, 15]`` MFCCs with speech/pause structure, their level and tilt following ``va``."""
  n = va.shape[0]
  speech = _moving_average((rng.random(n) < 0.65).astype(float), int(fps * 1.5)) > 0.5
  timbre = rng.normal(0, 5, 15)
  mfcc_load = np.zeros((15, 2))
  mfcc_load[0] = (15.0, 60.0)
  mfcc_load[1] = (25.0, 5.0)
  mfcc_load[2:6] = rng.normal(0, 8, (4, 2))
  mean = np.array([-250.0, 110.0] + [0.0] * 13) + timbre
  mean[2:] += rng.normal(0, 10, 13)
  mfcc = mean + va @ mfcc_load.T + _ar1(rng, n, 15, 0.5, 1.0) * np.r_[40.0, 20.0, [12.0] * 13]
  mfcc[~speech, 0] = -450 + rng.normal(0, 15, (~speech).sum())
  mfcc[~speech, 1:] *= 0.3
  return mfcc


def _ratings(rng: np.random.Generator, data_config, traces, fps: float) -> list[np.ndarray]:
  """Each trace as its raters annotate it (lag, bias, smoothed noise): their mean, in [-1, 1]."""
  raters = []
  for trace in traces:
    n = trace.shape[0]
    ratings = []
    for _ in range(int(data_config.num_raters)):
      lag = int(rng.uniform(0.5, 2.5) * fps)
      noisy = _lagged(trace, lag) + rng.normal(0, 0.05) + _moving_average(
          rng.normal(0, float(data_config.rater_noise), n), int(fps))
      ratings.append(noisy)
    raters.append(np.clip(np.mean(ratings, 0), -1, 1))
  return raters


def make_subject(data_config, subject: int) -> Recording:
  """Generates subject ``subject``'s recording."""
  rng = np.random.default_rng([int(data_config.seed), subject])
  fps = float(data_config.frame_rate)
  n = int(round(float(data_config.minutes) * 60 * fps))
  t = np.arange(n) / fps
  valence = _smooth_trace(rng, t)
  arousal = _smooth_trace(rng, t)
  va = np.stack([valence, arousal], 1)                                  # [n, 2]

  # Blendshapes: low tonic activity plus transient actions whose rate follows the affect.
  num_bs = len(BLENDSHAPE_NAMES)
  loadings = rng.normal(0, 0.15, (num_bs, 2))
  for i, name in enumerate(BLENDSHAPE_NAMES):
    if name in CUE_LOADINGS:
      loadings[i] = CUE_LOADINGS[name]
  base = rng.normal(-2.5, 0.5, num_bs) + rng.normal(0, float(data_config.subject_offset), num_bs)
  noise = _ar1(rng, n, num_bs, 0.8, 0.3 * float(data_config.noise))
  tonic = base + float(data_config.tonic_loading) * (va @ loadings.T) + noise
  blend = float(data_config.tonic_scale) / (1 + np.exp(-tonic))
  drive = va @ loadings.T                                               # [n, 52]
  rate = float(data_config.action_rate) * np.exp(1.2 * drive) / fps     # actions per frame
  # Left/right partners share their actions (bilateral co-activation).
  partner = {name: name.replace("Left", "").replace("Right", "") for name in BLENDSHAPE_NAMES}
  groups = sorted(set(partner.values()))
  for g in groups:
    cols = [i for i, name in enumerate(BLENDSHAPE_NAMES) if partner[name] == g]
    onsets = np.flatnonzero(rng.random(n) < rate[:, cols].mean(1))
    for onset in onsets:
      length = int(rng.uniform(0.5, 2.5) * fps) + 1
      bump = np.sin(np.linspace(0, np.pi, length)) ** 2
      stop = min(n, onset + length)
      for i in cols:
        blend[onset:stop, i] += rng.uniform(0.3, 0.9) * bump[: stop - onset]
  blend = np.clip(blend * (1 + noise * 0.1), 0.0, 1.0)

  # Head pose: random walks, pitch and motion energy follow arousal.
  walk = np.cumsum(rng.normal(0, 0.05, (n, 6)), 0)
  walk -= walk.mean(0)
  motion = 1 + 0.8 * (arousal[:, None] + 1)
  head = np.concatenate([
      4.0 * arousal[:, None] + motion * walk[:, :1] * 4 + rng.normal(0, 1.0, (n, 1)),
      motion * walk[:, 1:3] * 6 + rng.normal(0, 1.5, (n, 2)),
      walk[:, 3:6] * [1.0, 1.0, 2.0] + [0.0, 0.0, -45.0] + rng.normal(0, 0.3, (n, 3)),
  ], 1)
  face = np.concatenate([blend, head], 1)

  # Face dropouts in bursts.
  drop = np.zeros(n, bool)
  n_bursts = rng.poisson(float(data_config.face_dropout) * n / 10)
  for start in rng.integers(0, n, n_bursts):
    drop[start:start + rng.integers(3, 20)] = True
  face[drop] = np.nan

  mfcc = _mfccs(rng, va, fps)
  raters = _ratings(rng, data_config, (valence, arousal), fps)
  feats = np.concatenate([face, mfcc], 1)
  scale = float(data_config.get("change_scale", 1.0))
  if scale != 1.0:  # Within-recording variation shrunk around the recording's mean per feature.
    mean = np.nanmean(feats, 0)
    feats = mean + scale * (feats - mean)
  feats = feats.astype(np.float32)
  return Recording(
      recording_id=f"synthetic_{subject:03d}", subject_id=f"S{subject:03d}",
      times=t, features=feats, feature_names=FACE_FEATURE_NAMES + MFCC_NAMES,
      modalities=("face",) * len(FACE_FEATURE_NAMES) + ("audio",) * len(MFCC_NAMES),
      valence=raters[0].astype(np.float32), arousal=raters[1].astype(np.float32))


def load_recordings(data_config) -> list[Recording]:
  return [make_subject(data_config, s) for s in range(int(data_config.num_subjects))]


def fingerprint(data_config) -> dict:
  fields = data_config.to_dict()
  if float(fields.get("change_scale", 1.0)) == 1.0:   # the generator before the knob: same key
    fields.pop("change_scale", None)
  return {"generator": "synthetic/v1", **fields}


# Models trained here demonstrate the method; a bundle says so on every prediction.
DEMONSTRATION = ("this model was trained on the synthetic demonstration dataset: its decisions "
                 "on real recordings carry no meaning; train on your own data (docs/data.md)")


def time_base_hz(data_config) -> float:
  """The generator's frame rate (``data.frame_rate``)."""
  return float(data_config.frame_rate)


def validate(data_config) -> list[str]:
  """Problems of the generator's fields (see :mod:`lasca_jax.data.checks`)."""
  return checks.field_problems(data_config, "data", (
      ("seed", checks.int_at_least(0)), ("num_subjects", checks.int_at_least(2)),
      ("minutes", checks.number_in(0, math.inf, lo_open=True)),
      ("frame_rate", checks.number_in(0, math.inf, lo_open=True)),
      ("num_raters", checks.int_at_least(1)), ("rater_noise", checks.number_in(0, math.inf)),
      ("noise", checks.number_in(0, math.inf)), ("subject_offset", checks.number_in(0, math.inf)),
      ("face_dropout", checks.number_in(0, 1)), ("action_rate", checks.number_in(0, math.inf)),
      ("tonic_scale", checks.number_in(0, 1)), ("tonic_loading", checks.number_in(0, math.inf)),
      ("change_scale", checks.number_in(0, 1, lo_open=True))))


SIMULATED_ENCODERS = (("SimFace", "visual", ("face",)), ("SimAudio", "audio", ("audio",)),
                      ("SimAV", "multimodal", ("face", "audio")))


def write_simulated_encoders(data_config, out_dir: str, dim: int = 64) -> list[str]:
  """Writes stand-ins for frozen baseline encoders (Tables 5-6) for the synthetic recordings.

  Each simulated encoder is a fixed random two-layer network (``dim`` units, tanh) applied to a
  modality's per-frame features, standardised with statistics of a separate "pretraining"
  subject that is not in the dataset, plus noise; frames without a face are left out, as a real
  face encoder would. Weights and noise are drawn from ``data_config.seed`` (recorded in every
  run's config.json). Files follow :mod:`lasca_jax.encoders.baseline`' per-frame layout.

  Returns:
    ``sweep.baselines`` entries ``"Name:modality:dir"``.
  """
  recordings = load_recordings(data_config)
  reference = make_subject(data_config, 10_000 + int(data_config.num_subjects))
  entries, seed = [], int(data_config.seed)
  for e, (name, modality, streams) in enumerate(SIMULATED_ENCODERS):
    cols = np.flatnonzero(np.isin(reference.modalities, streams))
    ref = reference.features[:, cols]
    mean, std = np.nanmean(ref, 0), np.nanstd(ref, 0) + 1e-6
    rng = np.random.default_rng([seed, e])
    w1 = rng.normal(0, 1 / np.sqrt(cols.size), (cols.size, dim))
    w2 = rng.normal(0, 1 / np.sqrt(dim), (dim, dim))
    folder = os.path.join(out_dir, name)
    for r, rec in enumerate(recordings):
      x = (rec.features[:, cols] - mean) / std
      keep = np.isfinite(x).all(1)
      h = np.tanh(np.tanh(x[keep] @ w1) @ w2)
      noise = np.random.default_rng([seed, e, r]).normal(0, 0.3, h.shape)
      files_lib.save_npz_atomic(os.path.join(folder, f"{rec.recording_id}.npz"), {
          "embeddings": (h + noise).astype(np.float32), "times": rec.times[keep]})
    entries.append(f"{name}:{modality}:{folder}")
  return entries
