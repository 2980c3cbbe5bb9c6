"""Applies a trained run's models to a new recording and explains every decision.

  python experiments/predict.py --run=runs/synthetic --input=../shared/media/retalking_1.mp4 \
      --output=predictions/retalking_1
  python experiments/predict.py --run=runs/synthetic --input=frames.csv --output=out

``--input`` is a video (features extracted as the dataset path does; the face model from
``--face_model`` or ``$LASCA_JAX_FACE_MODEL``), an extracted feature ``.npz`` of
``experiments/extract.py``, or a per-frame ``.csv``/``.npz`` table with a time column (seconds)
and the run's feature columns. Writes ``<output>/predictions.csv`` (one row per consecutive
window pair), ``<output>/trajectory.png`` and ``<output>/summary.json``.
"""

import os
import sys

from absl import flags, logging

from lasca_jax.inference import apply
from lasca_jax.run import cli

_RUN = flags.DEFINE_string("run", None, "Run directory (with bundle/) of a trained model.")
_INPUT = flags.DEFINE_string("input", None, "Video, extracted feature .npz, or per-frame table.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder.")
_FACE_MODEL = flags.DEFINE_string("face_model", "", "MediaPipe face_landmarker.task; '' -> "
                                  "$LASCA_JAX_FACE_MODEL or ~/.cache/lasca_jax/models.")
_TEXT_MODEL_PATH = flags.DEFINE_string("text_model_path", None, "Local folder of the run's text "
                                       "backbone (when the bundle's is not available here).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Embedding store location (default: the "
                                 "run's cache_dir, else $LASCA_JAX_CACHE).")
_TIME_COLUMN = flags.DEFINE_string("time_column", "time", "Time column of a per-frame table.")
_EXPLAIN = flags.DEFINE_bool("explain", True, "Attribute every decision to its cues.")
_TOP = flags.DEFINE_integer("top_cues", 3, "Cues listed per decision.", lower_bound=0)
_IG_STEPS = flags.DEFINE_integer("ig_steps", 32, "Integrated-gradient quadrature points.",
                                 lower_bound=1)


# Library entry point (tests and benchmarks call it): lasca_jax.inference.apply.run_predict.
predict = apply.run_predict


def main(argv):
  del argv
  try:
    pred = predict(_RUN.value, _INPUT.value, _OUTPUT.value, _FACE_MODEL.value,
                   _TEXT_MODEL_PATH.value, _CACHE_DIR.value, _TIME_COLUMN.value, _EXPLAIN.value,
                   _TOP.value, _IG_STEPS.value)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  s = pred.summary
  print(f"{s['decided']} of {s['pairs']} window pairs decided ({s['increase']} increase), "
        f"{s['windows'] - s['usable_windows']} windows unusable -> "
        f"{os.path.join(_OUTPUT.value, 'predictions.csv')}")
  for warning in s["warnings"]:
    print(f"warning: {warning}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["run", "input", "output"])
  logging.set_verbosity(logging.INFO)
  cli.run(main)
