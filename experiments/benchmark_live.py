"""Live tracking latency on the shared clips played at real-time pace (docs/live.md).

  HF_HUB_OFFLINE=1 python experiments/benchmark_live.py --repeats=4

Trains (once, kept in ``--run``) the runlocal synthetic config with the offline default backbone
(all-MiniLM-L6-v2) and ``--window`` second windows, unless ``--run`` already holds a run. Then
plays every clip in ``--clips`` through :class:`lasca_jax.inference.live.LiveTracker` at
real-time pace:

1. *cold*: with an empty embedding store (every prompt of the clip, and each leave-one-cue-out
   prompt of the explanations, is encoded when its window closes);
2. *warm*: ``--repeats`` times more with the store the cold pass filled (the case of a model
   applied to a person whose prompts were seen before).

It prints and writes (``--output``, JSON) the per-decision latency from window closed to decision
out, per stage (pool, represent = normalisation + salience + prompt + embedding, mlp, cues), as
min / p50 / p95 / max, the frames dropped and the face pass's effective rate, and the machine's
load average before and after.
"""

import glob
import json
import os
import shutil
import tempfile
import time

from absl import app, flags

from lasca_jax.inference import ensemble, live

_RUN = flags.DEFINE_string("run", "runs/live_benchmark", "Run to apply (trained if absent).")
_CLIPS = flags.DEFINE_string("clips", "../shared/media/*.mp4", "Glob of the clips to play.")
_WINDOW = flags.DEFINE_float("window", 1.5, "Window length of the run it trains.")
_REPEATS = flags.DEFINE_integer("repeats", 4, "Warm passes over the clips.", lower_bound=1)
_FACE_MODEL = flags.DEFINE_string("face_model", "", "face_landmarker.task ('' -> the default).")
_OUTPUT = flags.DEFINE_string("output", "", "JSON file for the figures ('' -> none).")


def _train(run_dir: str, window: float) -> None:
  from configs import synthetic  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import pipeline  # pylint: disable=import-outside-toplevel
  config = synthetic.get_config("runlocal")
  config.features.window_seconds = window
  config.data.mfcc_top_db = 0.0    # causal MFCCs: live equals offline
  pipeline.run(config, run_dir)


def _play(run_dir: str, clip: str, cache_dir: str | None, face_model: str) -> dict:
  predictor = ensemble.load_bundle(run_dir, cache_dir)
  tracker = live.LiveTracker(predictor, live.parse_source(clip, realtime=True), face_model)
  decisions = list(tracker.decisions())
  return {"summary": tracker.summary(),
          "latency": [d.latency_ms for d in decisions if d.decided],
          "encoded": [d.encoded for d in decisions if d.decided]}


def _table(rows: list[dict]) -> dict:
  out = {}
  for stage in ("pool", "represent", "mlp", "cues", "total"):
    out[stage] = live.percentiles([r[stage] for r in rows])
    if out[stage]:
      out[stage]["min"] = round(min(r[stage] for r in rows), 2)
  return out


def main(argv):
  del argv
  if not os.path.exists(os.path.join(_RUN.value, "bundle", "bundle.json")):
    print(f"training {_RUN.value} (runlocal synthetic, all-MiniLM-L6-v2, {_WINDOW.value:g} s "
          "windows)", flush=True)
    _train(_RUN.value, _WINDOW.value)
  clips = sorted(glob.glob(_CLIPS.value))
  if not clips:
    raise SystemExit(f"error: no clip matches --clips={_CLIPS.value}")
  load_before = os.getloadavg()
  passes = {}
  cold_dir = tempfile.mkdtemp(prefix="lasca_live_cold_")
  try:
    runs = [("cold", clip, cold_dir) for clip in clips]
    runs += [("warm", clip, cold_dir) for _ in range(_REPEATS.value) for clip in clips]
    for kind, clip, cache in runs:
      t0 = time.perf_counter()
      result = _play(_RUN.value, clip, cache, _FACE_MODEL.value)
      s = result["summary"]
      print(f"{kind} {os.path.basename(clip)}: {s['decided']} decisions, "
            f"{s['frames_dropped']} of {s['frames_read']} frames dropped, face pass "
            f"{s['effective_fps']} frames/s, {time.perf_counter() - t0:.1f} s", flush=True)
      passes.setdefault(kind, []).append(result)
  finally:
    shutil.rmtree(cold_dir, ignore_errors=True)
  figures = {"run": os.path.abspath(_RUN.value), "clips": clips, "repeats": _REPEATS.value,
             "load_average_before": [round(v, 2) for v in load_before],
             "load_average_after": [round(v, 2) for v in os.getloadavg()]}
  for kind, results in passes.items():
    rows = [row for r in results for row in r["latency"]]
    figures[kind] = {
        "decisions": len(rows), "latency_ms": _table(rows),
        "prompts_encoded_per_decision": (sum(sum(r["encoded"]) for r in results) /
                                         max(len(rows), 1)),
        "frames_read": sum(r["summary"]["frames_read"] for r in results),
        "frames_dropped": sum(r["summary"]["frames_dropped"] for r in results),
        "effective_fps": [r["summary"]["effective_fps"] for r in results],
        "max_lag_s": max(r["summary"]["max_lag_s"] for r in results)}
  for kind in passes:
    f = figures[kind]
    total = f["latency_ms"]["total"]
    print(f"{kind}: {f['decisions']} decisions, window closed -> decision out "
          f"p50 {total.get('p50')} ms, p95 {total.get('p95')} ms, max {total.get('max')} ms; "
          f"{f['frames_dropped']} of {f['frames_read']} frames dropped")
    for stage in ("pool", "represent", "mlp", "cues"):
      print(f"  {stage:9s} {f['latency_ms'][stage]}")
  print(f"load average before {figures['load_average_before']}, after "
        f"{figures['load_average_after']}")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w", encoding="utf-8") as fh:
      json.dump(figures, fh, indent=1)


if __name__ == "__main__":
  app.run(main)
