r"""Sec. 5.5 (computational efficiency): model sizes and per-window inference latency.

  python experiments/efficiency.py --config=configs/synthetic.py:runlocal --torch_threads=1
  python experiments/efficiency.py --config=configs/sewa.py --config.data.root=/data/SEWA \
      --backbones=all-mpnet-base-v2,all-MiniLM-L12-v2 --output=reports/efficiency.json

For every modality (visual, audio, multimodal) x representation (features, text, fused) and
backbone it trains the configuration as ``experiments/main.py`` does (all folds; fold
``--fold``'s best weights are used), then times ``stream.WindowPredictor`` on this machine:
one window and its predecessor, from raw mean-pooled features to the decision P(increase)
(normalise -> salience -> prompt -> embedding -> fusion -> difference -> MLP). Latency columns:

* no encoder: the features-only representation (the whole path has no text step);
* warm: prompts looked up in the backbone's embedding store (every prompt already encoded);
* cold: both windows' prompts encoded by the frozen encoder, one prompt per call;
* cold, stream: the predecessor's representation kept from the previous step, so only the new
  window's prompt is encoded (a live stream).

Each latency is the median and 90th percentile over ``--num_windows`` timed windows (all pairs of
consecutive usable windows, normalised with the fold's training statistics, cycled), measured
with ``time.perf_counter`` around a call that ends in ``jax.block_until_ready``; ``--warmup``
calls before them (JIT compilation, first allocations) are not timed. Model loading and
training are outside every timing. Backbones whose weights are not on this machine are listed
as such rather than failing the run. With ``--workdir``, every measured configuration is also
written as a run directory (``<workdir>/<modality>/<fusion>[/<backbone>]``, exactly as
``experiments/main.py`` writes one).

On a CPU shared with other jobs, torch's default of one intra-op thread per core makes single
prompt encodes stall (seconds instead of tens of ms); ``--torch_threads=1`` keeps them stable.
The printed header gives the thread count and the load average the figures were taken under.
"""

import json
import os
import platform
import sys
import time

from absl import app, flags, logging
import jax
from ml_collections import config_flags
import numpy as np


# pylint: disable=wrong-import-position
from lasca_jax.encoders import text as text_lib
from lasca_jax.inference import stream
from lasca_jax.method import representation
from lasca_jax.model import efficiency
from lasca_jax.run import cache as cache_lib, labels, settings as settings_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_NUM_WINDOWS = flags.DEFINE_integer("num_windows", 200, "Timed windows per latency figure.")
_WARMUP = flags.DEFINE_integer("warmup", 10, "Untimed calls before each latency figure.")
_BACKBONES = flags.DEFINE_list("backbones", ["all-MiniLM-L6-v2"],
                               "Sentence-transformer backbones (names of lasca_jax.encoders.text or "
                               "paths).")
_MODALITIES = flags.DEFINE_list("modalities", ["visual", "audio", "multimodal"],
                                "Modalities to measure.")
_FUSIONS = flags.DEFINE_list("fusions", ["features", "text", "fused"],
                             "Representations to measure.")
_FOLD = flags.DEFINE_integer("fold", 0, "Fold whose trained weights are timed.")
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON file for the rows and machine.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Optional folder: every measured configuration "
                               "is written there as a run directory (config.json, log.jsonl, "
                               "results.npz, bundle/), as experiments/main.py writes it.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0,
                                      "Intra-op threads of the text encoder (0: torch's default, "
                                      "one per core); 1 avoids spin-wait stalls on a busy CPU.")

UNAVAILABLE = "weights not available locally"


def load_backbones(config, names):
  """``name -> (encoder or None, frozen parameter count or reason)``."""
  loaded = {}
  for name in names:
    model_path = config.text.model_path if name == config.text.backbone else ""
    try:
      model = text_lib.load_model(name, model_path, config.text.device)
      loaded[name] = (model, efficiency.frozen_encoder_param_count(model))
    except (RuntimeError, FileNotFoundError, OSError) as e:
      logging.warning("backbone %s: %s", name, e)
      loaded[name] = (None, UNAVAILABLE)
    except ValueError as e:   # an unknown name
      loaded[name] = (None, str(e).split(";")[0])
  return loaded


def summary(ms):
  return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}


def measure(config, encoder, num_windows, warmup, fold, workdir=None):
  """Trains one configuration (written to ``workdir`` when given) and times its predictor;
  returns a row dict."""
  t0 = time.perf_counter()
  tp = stream.trained_predictor(config, cache_lib.StageCache(config.cache_dir or None), fold,
                                    encoder, workdir)
  train_s = time.perf_counter() - t0
  p, raw, steps = tp.predictor, tp.raw, tp.steps
  d = p.input_dim
  counted = int(sum(x.size for x in jax.tree.leaves(p.params)))
  if counted != settings_lib.train_settings(config).num_params(d):
    raise AssertionError(f"parameter count mismatch: {counted} vs formula")
  row = {"modality": config.features.modality, "fusion": config.model.fusion,
         "label": labels.model_label(config), "input_dim": d, "trainable_params": counted,
         "timed_windows": num_windows, "distinct_window_pairs": int(len(steps)),
         "warmup_calls": warmup, "prepare_and_train_s": round(train_s, 2)}

  def pair(mode):
    return lambda s: p.decide(raw[s[0]], raw[s[1]], mode)

  if not representation.get(config.model.fusion).needs_prompts:
    row["no_encoder"] = summary(stream.latency_ms(pair("warm"), steps, num_windows,
                                                      warmup=warmup))
    row["load_average_1min"] = os.getloadavg()[0]
    return row
  before = p.cache_hits, p.encoder_calls
  row["warm"] = summary(stream.latency_ms(pair("warm"), steps, num_windows, warmup=warmup))
  if p.encoder_calls != before[1]:
    raise AssertionError("warm path called the encoder: a prompt was missing from the store")
  row["cold"] = summary(stream.latency_ms(pair("cold"), steps, num_windows, warmup=warmup))
  z_prev = [p.represent(raw[a], "warm") for a, _ in steps]   # kept from the previous step
  row["cold_stream"] = summary(stream.latency_ms(
      lambda i: p.decide_next(z_prev[i], raw[steps[i][1]], "cold"), np.arange(len(steps)),
      num_windows, warmup=warmup))
  row["encoder_calls"] = p.encoder_calls - before[1]
  row["load_average_1min"] = os.getloadavg()[0]
  return row


def fmt_ms(stats):
  return f"{stats['median_ms']:.2f} / {stats['p90_ms']:.2f}" if stats else "-"


def fmt_params(n):
  return f"{n:,}" if isinstance(n, int) else n


def table(rows):
  head = ["Modality", "Representation", "d", "Trainable params", "Frozen encoder params",
          "No encoder (ms)", "Warm cache (ms)", "Cold (ms)", "Cold, stream (ms)",
          "Paper (ms/sample)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    if "unavailable" in r:
      cells = [r["modality"], r["label"], "-", "-", r["unavailable"], "-", "-", "-", "-",
               "80-140"]
    else:
      text = r["fusion"] != "features"
      cells = [r["modality"], r["label"], str(r["input_dim"]), fmt_params(r["trainable_params"]),
               fmt_params(r["frozen_params"]) if text else "-",
               fmt_ms(r.get("no_encoder")), fmt_ms(r.get("warm")), fmt_ms(r.get("cold")),
               fmt_ms(r.get("cold_stream")), "80-140" if text else "-"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def machine():
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  import torch  # pylint: disable=import-outside-toplevel
  return {"cpu": cpu, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
          "torch_threads": torch.get_num_threads(), "jax_backend": jax.default_backend(),
          "jax": jax.__version__, "torch": torch.__version__, "python": platform.python_version()}


def main(argv):
  del argv
  base = _CONFIG.value
  num_windows, warmup, fold = _NUM_WINDOWS.value, _WARMUP.value, _FOLD.value
  if _TORCH_THREADS.value > 0:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(_TORCH_THREADS.value)
  load_start = os.getloadavg()[0]
  backbones = load_backbones(base, _BACKBONES.value)
  rows = []
  for modality in _MODALITIES.value:
    for fusion in _FUSIONS.value:
      text = representation.get(fusion, "--fusions").uses_backbone
      for name in (backbones if text else [base.text.backbone]):
        config = base.copy_and_resolve_references()
        config.features.modality, config.model.fusion = modality, fusion
        workdir = (os.path.join(_WORKDIR.value, modality, fusion) if _WORKDIR.value else None)
        if not text:
          rows.append(measure(config, None, num_windows, warmup, fold, workdir))
          continue
        config.text.backbone = name
        if name != base.text.backbone:
          config.text.model_path = ""
        encoder, frozen = backbones[name]
        if encoder is None:
          rows.append({"modality": modality, "fusion": fusion, "backbone": name,
                       "label": labels.model_label(config), "unavailable": frozen})
          continue
        row = measure(config, encoder, num_windows, warmup, fold,
                      workdir and os.path.join(workdir, os.path.basename(name.rstrip("/"))))
        row.update(backbone=name, frozen_params=frozen)
        rows.append(row)
        logging.info("%s", row)
  env = machine()
  print(f"Sec. 5.5 efficiency, {base.name} (fold {fold}), on {env['cpu']} "
        f"({env['cpu_count']} cores; encoder torch threads {env['torch_threads']}; JAX "
        f"{env['jax_backend']}; 1-min load average {load_start:.2f} at start, "
        f"{env['load_average'][0]:.2f} at end).")
  print(f"Latency per window, features to decision, median / p90 over {num_windows} windows "
        f"after {warmup} untimed warm-up calls; training and model loading not timed.")
  print("No encoder: features-only path. Warm: prompt embeddings looked up in the embedding "
        "store. Cold: the window's and its predecessor's prompts encoded (batch of 1 each). "
        "Cold, stream: the predecessor's representation reused, one prompt encoded.")
  print("Paper (Sec. 5.5): 80-140 ms per sample end to end (11th Gen Core i5, RTX 3060 laptop "
        "GPU, depending on encoder); trainable 129 to 230k, frozen encoders 22M to 110M.\n")
  print(table(rows))
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      json.dump({"config": base.name, "fold": fold, "load_average_start": load_start,
                 "num_windows": num_windows, "warmup": warmup,
                 "paper_ms_per_sample": list(efficiency.PAPER_LATENCY_MS),
                 "machine": env, "command": " ".join(sys.argv), "rows": rows}, f, indent=2)
    print(f"\n-> {_OUTPUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
