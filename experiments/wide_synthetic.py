"""Writes a wide (about 90 acoustic columns) variant of the synthetic data as custom tables.

  python experiments/wide_synthetic.py --out=/tmp/wide90 --num_subjects=12 --minutes=2
  python experiments/main.py --config=configs/custom.py --config.data.root=/tmp/wide90 \
      --config.features.modality=audio --config.protocol.num_folds=4

A stand-in for a speech corpus described by openSMILE eGeMAPS functionals (88 per window): the
columns carry eGeMAPS-style names (descriptor x functional, all matching the custom loader's
audio pattern, none in the paper's lexicon, so each reads as its split name) and the values of the
synthetic generator's 73 face and MFCC features (:mod:`lasca_jax.data.datasets.synthetic`), the
columns after the 73rd repeating earlier ones with added noise (seeded). Labels, subjects and
times are the generator's. Used for the long-prompt figures of docs/performance.md ("Long prompts").
"""

import os

import numpy as np
from absl import app, flags

from configs import synthetic as synthetic_config
from lasca_jax.data.datasets import synthetic

_OUT = flags.DEFINE_string("out", None, "Folder for the tables.")
_COLUMNS = flags.DEFINE_integer("columns", 90, "Feature columns.")
_SUBJECTS = flags.DEFINE_integer("num_subjects", 12, "Subjects (one recording each).")
_MINUTES = flags.DEFINE_float("minutes", 2.0, "Minutes per recording.")
_SEED = flags.DEFINE_integer("seed", 0, "Generator and noise seed.")

DESCRIPTORS = ("F0semitoneFrom27.5Hz_sma3nz", "loudness_sma3", "spectralFlux_sma3",
               "mfcc1_sma3", "mfcc2_sma3", "mfcc3_sma3", "mfcc4_sma3", "jitterLocal_sma3nz",
               "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz", "logRelF0-H1-H2_sma3nz",
               "logRelF0-H1-A3_sma3nz", "F1frequency_sma3nz", "F1bandwidth_sma3nz",
               "F2frequency_sma3nz", "F3frequency_sma3nz", "alphaRatioV_sma3nz",
               "hammarbergIndexV_sma3nz", "slopeV0-500_sma3nz", "slopeV500-1500_sma3nz")
FUNCTIONALS = ("amean", "stddevNorm", "percentile20.0", "percentile50.0", "percentile80.0")


def column_names(n: int) -> list[str]:
  names = [f"{d}_{f}" for d in DESCRIPTORS for f in FUNCTIONALS]
  if n > len(names):
    raise ValueError(f"at most {len(names)} columns")
  return names[:n]


def main(argv):
  del argv
  config = synthetic_config.get_config()
  config.data.num_subjects = _SUBJECTS.value
  config.data.minutes = _MINUTES.value
  config.data.seed = _SEED.value
  rng = np.random.default_rng(_SEED.value)
  names = column_names(_COLUMNS.value)
  os.makedirs(_OUT.value, exist_ok=True)
  for rec in synthetic.load_recordings(config.data):
    src = rec.features                                                   # [T, 73]
    cols = [src[:, j % src.shape[1]] + (0.0 if j < src.shape[1] else
                                        0.1 * np.nanstd(src[:, j % src.shape[1]]) *
                                        rng.standard_normal(src.shape[0]))
            for j in range(len(names))]
    np.savez(os.path.join(_OUT.value, f"{rec.recording_id}.npz"),
             features=np.stack(cols, 1).astype(np.float32), feature_names=np.array(names),
             time=rec.times, valence=rec.valence, arousal=rec.arousal,
             subject=np.full(rec.times.size, rec.subject_id))
  print(f"wrote {config.data.num_subjects} tables of {len(names)} columns to {_OUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["out"])
  app.run(main)
