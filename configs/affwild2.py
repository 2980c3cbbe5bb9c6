"""Aff-Wild2 (ABAW valence-arousal track): LaScA with 15 random subject-independent splits.

Extract the per-frame features once (resumable; one .npz per annotation file in
<root>/lasca_features), then run:

  python experiments/extract.py --config=configs/affwild2.py \
      --config.data.root=/data/Aff-Wild2 \
      --config.data.face_model=/models/face_landmarker.task --num_workers=8
  python experiments/main.py --config=configs/affwild2.py \
      --config.data.root=/data/Aff-Wild2 --workdir=runs/affwild2

On a cluster, give each array task its share of the videos:
  python experiments/extract.py --config=configs/affwild2.py --config.data.root=/data/Aff-Wild2 \
      --shard_index=$SLURM_ARRAY_TASK_ID --num_shards=$SLURM_ARRAY_TASK_COUNT

`--config=configs/affwild2.py:runlocal` processes every 5th frame and runs 2 splits.
"""

import ml_collections

from configs import default
from configs import media_fields


def get_config(arg=None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.name = "affwild2"
  config.data.name = "affwild2"
  media_fields.add(config.data)
  config.data.annotations_dir = ""  # Folder searched for `valence,arousal` .txt files; relative to
                                    # root; "" -> all of root.
  config.data.video_dirs = "batch1,batch2,new_vids"  # Comma-separated video folders under root
                                                     # (all of root when none exists).
  config.data.subject_map = ""      # CSV video,subject (relative to root or absolute); "" -> the
                                    # annotation stem is the subject (datasets/affwild2.py).
  config.protocol.name = "random_splits"  # 15 seeds of subject-independent splits (Sec. 5.1).
  config.protocol.num_folds = 15
  if arg and "runlocal" in str(arg).split(","):
    config.data.frame_stride = 5
    config.protocol.num_folds = 2
  return config
