"""Encoder throughput of the two engines (``text.engine``: torch, jax) on a config's prompts.

For each engine, in this process: cold (the model loaded and the prompts encoded into a fresh
store: for JAX this includes compiling each padded batch shape) and compiled (the same prompts
encoded again into another fresh store by the loaded model: every shape compiled). Prompts/s
count the encoding only (tokenising, encoding, committing: the store's own clock); the cold
figure with the load is printed beside it. Also the largest difference of the two engines'
embeddings, and the machine load (``os.getloadavg``) before and after each measurement.

  python experiments/benchmark_engines.py --config=configs/synthetic.py --prompts=2000
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from absl import app, flags
from ml_collections import config_flags
import numpy as np

from lasca_jax.encoders import embedder as embedder_lib
from lasca_jax.run import settings as settings_lib, timing

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_PROMPTS = flags.DEFINE_integer("prompts", 2000, "Distinct prompts of the config to encode (a "
                                "fixed sample; 0: all).")
_ENGINES = flags.DEFINE_list("engines", ["torch", "jax"], "Engines to measure, in this order.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the figures as JSON here.")


def _load() -> str:
  return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(settings: embedder_lib.EncoderSettings, prompts: list[str], tmp: str) -> dict:
  """Cold and compiled prompts/s of one engine; the compiled embeddings."""
  out = {"engine": settings.engine, "load_before": _load()}
  start = time.perf_counter()
  cold = settings.store(os.path.join(tmp, settings.engine, "cold"))
  model = cold.model
  out["load_seconds"] = round(time.perf_counter() - start, 2)
  cold.embed(prompts, progress=False)
  out["cold_prompts_per_s"] = round(len(prompts) / cold.stats.seconds, 1)
  out["cold_with_load_prompts_per_s"] = round(
      len(prompts) / (cold.stats.seconds + out["load_seconds"]), 1)
  cold.store.close()
  warm = settings.store(os.path.join(tmp, settings.engine, "compiled"))
  warm._model = model   # pylint: disable=protected-access
  emb = warm.embed(prompts, progress=False)
  out["compiled_prompts_per_s"] = round(len(prompts) / warm.stats.seconds, 1)
  out.update({k: v for k, v in warm.throughput().items()
              if k in ("tokens_per_s", "gflops", "padding_fraction", "device", "precision")})
  warm.store.close()
  out["load_after"] = _load()
  return out, emb


def main(argv):
  del argv
  config = _CONFIG.value
  with tempfile.TemporaryDirectory() as tmp:
    with config.unlocked():
      config.cache_dir = config.cache_dir or os.path.join(tmp, "stages")
    prompts = timing.sample_prompts(timing.config_prompts(config), _PROMPTS.value)
    print(f"{len(prompts)} prompts of {config.get('name', 'config')}, backbone "
          f"{config.text.backbone}, token budget {config.text.token_budget}, batch size "
          f"{config.text.batch_size}, {os.cpu_count()} CPUs, {_load()}")
    runs, embs = [], {}
    for engine in _ENGINES.value:
      settings = settings_lib.encoder(dict(config.text.to_dict(), engine=engine,
                                           precision="float32"))
      run, embs[engine] = measure(settings, prompts, tmp)
      runs.append(run)
      print(f"{engine:>5}: cold {run['cold_prompts_per_s']} prompts/s "
            f"({run['cold_with_load_prompts_per_s']} with the {run['load_seconds']} s load), "
            f"compiled {run['compiled_prompts_per_s']} prompts/s "
            f"({run.get('tokens_per_s')} tokens/s, {run.get('gflops')} GFLOP/s, padding "
            f"{run.get('padding_fraction')}); {run['load_before']} before, {run['load_after']} "
            "after")
  result = {"prompts": len(prompts), "runs": runs}
  if len(embs) == 2:
    a, b = embs.values()
    result["max_abs_difference"] = float(np.abs(a - b).max())
    print(f"largest difference between the engines' embeddings: "
          f"{result['max_abs_difference']:.2e}")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  app.run(main)
