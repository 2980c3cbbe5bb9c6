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

import json
import os
import sys
import time

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lasca_jax import apply, bundle  # pylint: disable=wrong-import-position

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
_TOP = flags.DEFINE_integer("top_cues", 3, "Cues listed per decision.")
_IG_STEPS = flags.DEFINE_integer("ig_steps", 32, "Integrated-gradient quadrature points.")


def predict(run_dir: str, input_path: str, output: str, face_model: str = "",
            text_model_path: str | None = None, cache_dir: str | None = None,
            time_column: str = "time", explain: bool = True, top: int = 3,
            ig_steps: int = 32) -> apply.Prediction:
  """Library entry point (tests call this); writes the three outputs."""
  predictor = bundle.load_bundle(run_dir, cache_dir, text_model_path)
  t0 = time.perf_counter()
  frames = apply.read_input(input_path, predictor, face_model, time_column)
  seconds_input = time.perf_counter() - t0
  pred = apply.predict_recording(predictor, frames, explain, top, ig_steps)
  seconds_total = time.perf_counter() - t0
  os.makedirs(output, exist_ok=True)
  pred.table.to_csv(os.path.join(output, "predictions.csv"), index=False)
  apply.trajectory_figure(pred, os.path.join(output, "trajectory.png"))
  pred.summary.update(
      run=os.path.abspath(run_dir), input=os.path.abspath(input_path),
      seconds_input=round(seconds_input, 3), seconds_total=round(seconds_total, 3),
      frames_per_second=(round(frames.frames / seconds_total, 2) if frames.frames else None))
  tmp = os.path.join(output, ".summary.json.tmp")
  with open(tmp, "w") as f:
    json.dump(pred.summary, f, indent=1)
  os.replace(tmp, os.path.join(output, "summary.json"))
  return pred


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


if __name__ == "__main__":
  flags.mark_flags_as_required(["run", "input", "output"])
  logging.set_verbosity(logging.INFO)
  app.run(main)
