"""Your own labelled videos: a folder of videos + continuous annotation traces -> a trained model.

Layout (lasca_jax/data/datasets/videos.py has the formats): <root>/videos/<recording>.mp4 and
<root>/annotations/<recording>.csv (time,valence,arousal; seconds, any rate) or
<recording>_valence.csv / <recording>_arousal.csv (time,value), or CARMA, DARMA or PAGAN
exports; optionally <root>/subjects.csv (recording,subject). Extract once (resumable; one .npz
per recording in <root>/lasca_features), then train:

  python experiments/extract.py --config=configs/videos.py --config.data.root=/data/mine \
      --config.data.face_model=/models/face_landmarker.task
  python experiments/main.py --config=configs/videos.py --config.data.root=/data/mine \
      --config.data.subject_map=subjects.csv --workdir=runs/mine

Traces on another scale than [-1, 1] (e.g. 1..9) need --config.data.label_range=1,9 (the pair
margin is relative; CARMA and DARMA files declare their scale). The model bundle is in
runs/mine/bundle; apply it with experiments/predict.py --run=runs/mine --input=new.mp4.
`--config=configs/videos.py:runlocal` processes every 3rd frame and runs 2 folds.
"""

import ml_collections

from configs import default
from configs import media_fields


def get_config(arg=None) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.name = "videos"
  config.data.name = "videos"
  media_fields.add(config.data)
  config.data.videos_dir = "videos"            # One video per recording (relative to root or
                                               # absolute; searched recursively).
  config.data.annotations_dir = "annotations"  # Annotation .csv/.tsv files (same).
  config.data.annotation_format = "auto"       # "auto" (per file), "plain", "carma", "darma",
                                               # "pagan".
  config.data.label_rate = 10.0                # Label clock (Hz) traces are re-sampled onto.
  config.data.label_range = "auto"             # "auto": a tool's declared scale -> [-1, 1], other
                                               # values must lie in [-1, 1]; "lo,hi": map [lo, hi]
                                               # onto [-1, 1]; "none": values as they are.
  config.data.valence_column = "valence"       # Column (DARMA: axis label) of valence; "" for
                                               # data without valence labels.
  config.data.arousal_column = "arousal"       # Same for arousal.
  config.data.subject_map = ""                 # CSV recording,subject (relative to root or
                                               # absolute); "" -> subject = recording (a warning).
  config.protocol.name = "kfold"               # Subject-independent folds; needs at least
  config.protocol.num_folds = 5                # num_folds subjects (lower it for fewer).
  if arg and "runlocal" in str(arg).split(","):
    config.data.frame_stride = 3
    config.protocol.num_folds = 2
  return config
