"""SEWA DB: LaScA with 15-fold subject-independent cross-validation (Sec. 5.1).

Labels in the AVEC 2019 CES or AVEC 2017 format, or raw SEWA DB per-rater CSVs, with
<recording>.avi/.mp4 and <recording>.wav anywhere under the root (lasca_jax/data/datasets/sewa.py).
Extract the per-frame features once (resumable), then run:

  python experiments/extract.py --config=configs/sewa.py --config.data.root=/data/SEWA \
      --config.data.face_model=/models/face_landmarker.task --num_workers=4
  python experiments/main.py --config=configs/sewa.py --config.data.root=/data/SEWA \
      --workdir=runs/sewa

`--config=configs/sewa.py:runlocal` processes every 5th frame and runs 2 folds.
"""

import ml_collections

from configs import default
from configs import media_fields


def get_config(arg=None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.name = "sewa"
  config.data.name = "sewa"
  media_fields.add(config.data)
  config.data.labels_dir = ""          # Folder searched for label files, relative to root; "" -> root.
  config.data.label_format = "auto"    # "auto", "avec2019", "avec2017" or "raters".
  config.data.label_rate = 0.0         # Labels per second, for raters files timed in frames or
                                       # without a time column (raters_time_column="none").
  config.data.raters_time_column = "auto"  # "auto" (header with time/frame, else column 0) or
                                           # "none".
  config.data.subject_id = "recording"  # "recording" (Train_DE_01) or "strip_partition" (DE_01).
  config.protocol.name = "kfold"        # 15-fold subject-level cross-validation.
  config.protocol.num_folds = 15
  if arg and "runlocal" in str(arg).split(","):
    config.data.frame_stride = 5
    config.protocol.num_folds = 2
  return config
