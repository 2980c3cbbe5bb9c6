"""Speed of applying a trained bundle to a new recording (docs/performance.md, "Prediction speed").

  python experiments/main.py --config=configs/synthetic.py:runlocal --workdir=runs/synthetic_runlocal
  python experiments/benchmark_predict.py --run=runs/synthetic_runlocal \
      --input=../shared/media/retalking_1.mp4 --face_model=../shared/models/face_landmarker.task

Measures, on this machine:
  * ``predict.py`` end to end (bundle loaded, features extracted from the video, windows,
    prompts, embeddings, decisions of every fold model; explanations off): frames per second;
  * one decision (one window given its encoded predecessor) in ms, with the prompt embedding
    warm (in the shared store) and cold (encoded by the loaded encoder, batch of 1), for one fold
    model (the streaming ``WindowPredictor``) and for the ensemble of all fold models;
  * explaining one decision with every fold model (leave-one-cue-out + integrated gradients): the
    removal prompts cold (a fresh store holding only the two windows' prompts) and warm.
Prints a JSON object (also written to ``--out`` when given), with the load average.
"""

import json
import os
import tempfile
import time

from absl import app, flags
import numpy as np

from lasca_jax.encoders import embedder as embedder_lib, encoding
from lasca_jax.inference import apply, attribution, ensemble, stream

_RUN = flags.DEFINE_string("run", None, "Trained run directory.")
_INPUT = flags.DEFINE_string("input", None, "A video (or per-frame table).")
_FACE_MODEL = flags.DEFINE_string("face_model", "", "MediaPipe face_landmarker.task.")
_REPEATS = flags.DEFINE_integer("repeats", 30, "Timed decisions per setting.")
_OUT = flags.DEFINE_string("out", "", "Optional JSON output path.")


def _median(values):
  values = sorted(values)
  return float(values[len(values) // 2])


def main(argv):
  del argv
  out = {"load_before": os.getloadavg()}
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    pred = apply.run_predict(_RUN.value, _INPUT.value, os.path.join(tmp, "p"),
                               _FACE_MODEL.value, explain=False)
    wall = time.perf_counter() - t0
  s = pred.summary
  out["predict"] = {"frames": s["frames_decoded"], "seconds_with_bundle_load": round(wall, 3),
                    "seconds_input": s["seconds_input"], "seconds_total": s["seconds_total"],
                    "frames_per_second": s["frames_per_second"],
                    "extraction_frames_per_second": (round(s["frames_decoded"] /
                                                           s["seconds_input"], 2)
                                                     if s["frames_decoded"] else None),
                    "decisions": s["decided"], "fold_models": s["fold_models"]}

  predictor = ensemble.load_bundle(_RUN.value)
  frames = apply.read_input(_INPUT.value, predictor, _FACE_MODEL.value)
  win = apply.window_input(frames, predictor)
  raw = win.features
  streaming = predictor.window_predictor(0)
  steps = [(raw[i], raw[i + 1]) for i in range(raw.shape[0] - 1)]
  z_prev = {i: streaming.represent(a) for i, (a, _) in enumerate(steps)}
  items = list(range(len(steps)))
  decision = {}
  for mode in ("warm", "cold"):
    ms = stream.latency_ms(lambda i, m=mode: streaming.decide_next(z_prev[i], steps[i][1], m),
                               items, _REPEATS.value, warmup=3)
    decision[f"one_fold_{mode}_ms"] = round(float(sorted(ms)[len(ms) // 2]), 3)

  def all_folds(i):
    rep = predictor.represent(raw[i:i + 2])
    return predictor.probabilities(rep.z[:, :1], rep.z[:, 1:])

  ms = stream.latency_ms(all_folds, items, _REPEATS.value, warmup=3)
  decision["all_folds_warm_ms"] = round(float(sorted(ms)[len(ms) // 2]), 3)
  out["decision"] = decision

  if predictor.uses_text or predictor.uses_features:
    rep = predictor.represent(raw[:2])
    first, second = [0], [1]
    explain = {}
    d = rep.z.shape[-1]                                             # compile outside the clock
    predictor.logits(np.zeros((predictor.num_folds, 256, d), np.float32))
    if predictor.uses_features:
      attribution.integrated_gradients(predictor, np.zeros((predictor.num_folds, 1, d),
                                                           np.float32))
    if predictor.spec.encoded:
      with tempfile.TemporaryDirectory() as tmp:
        model = predictor.store.model
        fresh = encoding.EmbeddingStore(tmp, predictor.meta["backbone"], predictor.model_path)
        fresh._model = model                                      # pylint: disable=protected-access
        fresh.embed(rep.prompts.tolist(), progress=False)
        shared = predictor._embedder                              # pylint: disable=protected-access
        predictor._embedder = embedder_lib.Embedder(fresh)        # pylint: disable=protected-access
        t0 = time.perf_counter()
        expl = attribution.explain(predictor, rep, first, second)
        explain["cold_s"] = round(time.perf_counter() - t0, 3)
        explain["prompts_encoded"] = fresh.encoded_count - len(rep.prompts)
        t0 = time.perf_counter()
        attribution.explain(predictor, rep, first, second)
        explain["warm_s"] = round(time.perf_counter() - t0, 3)
        predictor._embedder = shared                               # pylint: disable=protected-access
    else:
      attribution.explain(predictor, rep, first, second)          # compile
      t0 = time.perf_counter()
      expl = attribution.explain(predictor, rep, first, second)
      explain["warm_s"] = round(time.perf_counter() - t0, 3)
    explain["salient_cues"] = int(expl.salient.sum())
    out["explain_one_decision"] = explain
  out["load_after"] = os.getloadavg()
  text = json.dumps(out, indent=1)
  print(text)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(text)


if __name__ == "__main__":
  flags.mark_flags_as_required(["run", "input"])
  app.run(main)
