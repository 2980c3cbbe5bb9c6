"""Config fields shared by the datasets whose features are extracted from raw video and audio."""

import ml_collections


def add(data: ml_collections.ConfigDict) -> None:
  """Fields shared by every dataset whose features come from raw video and audio."""
  data.root = ""                   # Dataset folder (required).
  data.features_dir = ""           # Per-recording feature .npz files; "" -> <root>/lasca_features.
  data.skip_missing = False        # Recordings without a feature file: False -> error naming the
                                   # extraction command; True -> skipped with a warning.
  data.face_model = ""             # MediaPipe face_landmarker.task; "" -> $LASCA_JAX_FACE_MODEL or
                                   # ~/.cache/lasca_jax/models/face_landmarker.task.
  data.frame_stride = 1            # Run the face landmarker on every n-th frame (speed); rows in
                                   # between take the nearest processed frame.
  data.num_faces = 0               # Faces MediaPipe looks for; 0 -> 1 (2 for _left/_right videos).
  data.sample_rate = 16000         # Audio is decoded to mono at this rate (Hz) before MFCCs.
  data.mfcc_hop_seconds = 0.01     # MFCC frame step; frames are mean-pooled onto the labels.
  data.mfcc_window_seconds = 0.025 # MFCC analysis window.
  data.mfcc_top_db = 80.0          # Log-mel floor this many dB below the recording's loudest
                                   # value (librosa's default, the paper's MFCCs); 0: no such
                                   # floor, so each frame depends on its own sound only and
                                   # live tracking (experiments/live.py) equals offline exactly.
  # Pre-extracted per-frame features (AVEC style): one <recording>.csv per recording, a time
  # column (seconds) plus feature columns, ';' or ',' separated. A modality whose folder is set
  # comes from these files instead of extraction (no media needed); see docs/data.md.
  data.face_csv_dir = ""           # Folder (relative to root or absolute) of face feature CSVs.
  data.audio_csv_dir = ""          # Folder of audio feature CSVs (e.g. AVEC eGeMAPS LLDs).
  data.csv_time_column = "auto"    # "auto": frameTime, timestamp or time (any case).
  data.csv_exclude_columns = "frame,face_id,confidence,success"  # Numeric non-feature columns.
  data.lexicon = ""                # JSON/CSV feature -> phrase for those columns; used with
                                   # --config.text.lexicon=dataset.
  data.fps = 0.0                   # Aff-Wild2 without extracted video features: the video frame
                                   # rate (annotation row i is at i / fps); 0 -> from extraction.
