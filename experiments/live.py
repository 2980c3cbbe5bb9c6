"""Live affect-change tracking: a camera, stream or file in, one decision per closed window out.

  python experiments/live.py --run=runs/synthetic --source=0 --audio=mic --serve=127.0.0.1:8765
  python experiments/live.py --run=runs/synthetic --source=../shared/media/retalking_1.mp4 \
      --realtime --output=live/retalking_1 --serve=8765 --lsl
  python experiments/live.py --run=runs/synthetic --source=rtsp://camera.local/stream --lsl

``--source`` is a camera index (``0``, ``/dev/video0``), a stream URL that PyAV opens
(rtsp, http, udp, ...) or a video/sound file (``--realtime`` plays it at its own pace, otherwise
as fast as possible). Each consecutive window pair is decided as soon as the later window closes,
with the run's fold models, as ``experiments/predict.py`` decides it, and explained by its top
cues. Outputs: the console (one line per decision), ``--output`` (``predictions.csv`` with
predict.py's columns, ``decisions.jsonl``, ``live.json``, ``summary.json``), ``--serve`` (a local
dashboard) and ``--lsl`` (Lab Streaming Layer outlets). Exit status: 0 the source ended, 130
SIGINT, 143 SIGTERM, 3 the source stalled, 4 it broke, 1 it could not start. See docs/live.md.
"""

import sys

from absl import flags, logging

from lasca_jax.inference import live_run
from lasca_jax.run import cli

_RUN = flags.DEFINE_string("run", None, "Run directory (with bundle/) of a trained model.")
_SOURCE = flags.DEFINE_string("source", None, "Camera index (0), /dev/videoN, stream URL or file.")
_REALTIME = flags.DEFINE_bool("realtime", False, "Play a file at its own pace (cameras and "
                              "streams always are).")
_AUDIO = flags.DEFINE_string("audio", "source", "Sound for audio models: source (the source's "
                             "track), mic or mic:DEVICE (a microphone), none.")
_OUTPUT = flags.DEFINE_string("output", None, "Folder for predictions.csv, decisions.jsonl, "
                              "live.json and summary.json.")
_SERVE = flags.DEFINE_string("serve", None, "Dashboard address, HOST:PORT or PORT (host "
                             "127.0.0.1 unless named).")
_LSL = flags.DEFINE_bool("lsl", False, "Send decisions to Lab Streaming Layer outlets.")
_LSL_NAME = flags.DEFINE_string("lsl_name", "lasca_jax", "LSL stream name.")
_FACE_MODEL = flags.DEFINE_string("face_model", "", "MediaPipe face_landmarker.task; '' -> "
                                  "$LASCA_JAX_FACE_MODEL or ~/.cache/lasca_jax/models.")
_TEXT_MODEL_PATH = flags.DEFINE_string("text_model_path", None, "Local folder of the run's text "
                                       "backbone (when the bundle's is not available here).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Embedding store location (default: the "
                                 "run's cache_dir, else $LASCA_JAX_CACHE).")
_EXPLAIN = flags.DEFINE_bool("explain", True, "Attribute every decision to its cues.")
_TOP = flags.DEFINE_integer("top_cues", 3, "Cues listed per decision.", lower_bound=0)
_IG_STEPS = flags.DEFINE_integer("ig_steps", 32, "Integrated-gradient quadrature points.",
                                 lower_bound=1)
_MAX_LAG = flags.DEFINE_float("max_lag", 0.5, "Seconds the face pass may fall behind the wall "
                              "clock before frames are dropped.", lower_bound=0.0)
_STALL = flags.DEFINE_float("stall_seconds", 10.0, "Seconds without a frame or sound after which "
                            "the source counts as stalled.", lower_bound=0.1)


def main(argv):
  del argv
  try:
    summary, status = live_run.run_live(
        _RUN.value, _SOURCE.value, _OUTPUT.value, _SERVE.value, _LSL.value, _REALTIME.value,
        _AUDIO.value, _FACE_MODEL.value, _TEXT_MODEL_PATH.value, _CACHE_DIR.value,
        _EXPLAIN.value, _TOP.value, _IG_STEPS.value, _MAX_LAG.value, _STALL.value,
        _LSL_NAME.value, echo=lambda line: print(line, flush=True))
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  for warning in summary["warnings"]:
    print(f"warning: {warning}", flush=True)
  print(live_run.end_line(summary, _OUTPUT.value), flush=True)
  sys.exit(status)


if __name__ == "__main__":
  flags.mark_flags_as_required(["run", "source"])
  logging.set_verbosity(logging.WARNING)
  cli.run(main, resume="--output keeps every pair decided before it (none when the source had "
                      "not started)")
