"""LaScA on the embedded synthetic dataset (no data of your own needed).

  python experiments/main.py --config=configs/synthetic.py
  python experiments/main.py --config=configs/synthetic.py:runlocal --workdir=/tmp/lasca_smoke
  python experiments/main.py --config=configs/synthetic.py --config.pairs.target=valence \
      --config.features.window_seconds=5 --config.pairs.margin=0.2
  python experiments/sweep.py --config=configs/synthetic.py:sweep --workdir=runs/synthetic_sweep

Sized like the paper's SEWA setting: 30 subjects of 4 minutes, 15-fold subject-level CV.
``runlocal`` shrinks it to 6 subjects of 1 minute, 3 folds and 5 epochs for a quick check.
``sweep`` sets the grid of ``experiments/sweep.py`` for this machine: the offline backbone, the
lexicon (feature-name, shuffled) and salience (top-k, threshold) ablations, the controls (salience
mask, random text, matched capacity; lasca_jax/method/controls.py), and one simulated
frozen encoder per modality standing in for the baselines of Tables 5-6. Arguments combine:
``configs/synthetic.py:runlocal,sweep``.
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.name = "synthetic"
  config.data.name = "synthetic"
  config.data.seed = 0               # Generator seed (subjects are drawn from [seed, subject]).
  config.data.num_subjects = 30      # One recording per subject.
  config.data.minutes = 4.0          # Length of every recording.
  config.data.frame_rate = 10.0      # Hz of the annotation time base (SEWA's label rate).
  config.data.num_raters = 3         # Raters averaged into the label.
  config.data.rater_noise = 0.15     # Std of each rater's (1 s smoothed) noise.
  config.data.noise = 1.0            # Std of the per-frame (AR(1)) blendshape logit noise.
  config.data.subject_offset = 0.5   # Std of subject-specific blendshape logit offsets.
  config.data.face_dropout = 0.02    # Rate of face-detection failure bursts.
  config.data.action_rate = 0.05     # Facial actions per second per blendshape at neutral affect.
  config.data.tonic_scale = 0.4      # Ceiling of the tonic (non-action) blendshape activity.
  config.data.tonic_loading = 0.6    # How strongly tonic activity follows the cue loadings.
  config.data.change_scale = 1.0     # Within-recording feature variation scaled around each
                                     # recording's mean (< 1: real-data-sized window changes
                                     # against between-subject differences; the learner issue).
  config.protocol.name = "kfold"
  config.protocol.num_folds = 15
  args = set(str(arg).split(",")) if arg else set()
  unknown = args - {"runlocal", "sweep"}
  if unknown:
    raise ValueError(f"unknown config arguments {sorted(unknown)}; use runlocal and/or sweep")
  if "runlocal" in args:
    config.name = "synthetic_runlocal"
    config.data.num_subjects = 6
    config.data.minutes = 1.0
    config.protocol.num_folds = 3
    config.train.max_epochs = 5
  if "sweep" in args:
    config.name += "_sweep"
    config.sweep.backbones = ("all-MiniLM-L6-v2",)
    config.sweep.ablation_lexicons = ("feature_name", "shuffled")
    config.sweep.ablation_saliences = ("topk", "threshold")
    config.sweep.simulated_baselines = True
    config.sweep.controls = ("mask", "random_text", "capacity")
  return config
