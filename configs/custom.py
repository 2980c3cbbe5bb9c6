"""Your own features and labels: one table per recording (lasca_jax/data/datasets/custom.py).

No extraction step: the tables hold the features (OpenFace, openSMILE/eGeMAPS, ...). Run:

  python experiments/main.py --config=configs/custom.py --config.data.root=/data/mine \
      --config.data.subject_map=subjects.csv --config.data.exclude_columns=frame,confidence \
      --config.data.lexicon=/data/mine/lexicon.json --workdir=runs/mine

The text stage uses that lexicon (config.text.lexicon="dataset"); features without a phrase use
the feature-name lexicon, and with no lexicon file the paper's LLM lexicon is used.
`--config=configs/custom.py:runlocal` runs 2 folds.
"""

import ml_collections

from configs import default
from lasca_jax.data.datasets import custom


def get_config(arg=None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.name = "custom"
  config.data.name = "custom"
  config.data.root = ""                # Folder of per-recording .csv/.npz tables (required).
  config.data.time_column = "time"     # Seconds, strictly increasing.
  config.data.valence_column = "valence"  # "" for data without valence labels (one target).
  config.data.arousal_column = "arousal"  # "" for data without arousal labels (one target).
  config.data.subject_column = "subject"  # One value per table; unused when subject_map is set.
  config.data.subject_map = ""         # CSV recording,subject (relative to root or absolute).
  config.data.feature_columns = ""     # Regex picking feature columns; "" -> every other numeric one.
  config.data.exclude_columns = ""     # Comma list of numeric columns that are not features.
  config.data.audio_columns = custom.DEFAULT_AUDIO_COLUMNS  # Regex: matching features are "audio",
                                                            # the others "face".
  config.data.lexicon = ""             # JSON/CSV feature -> phrase (relative to root or absolute).
  config.text.lexicon = "dataset"      # The data.lexicon file above ("llm" when it is empty).
  config.protocol.name = "kfold"
  config.protocol.num_folds = 15
  if arg and "runlocal" in str(arg).split(","):
    config.protocol.num_folds = 2
  return config
