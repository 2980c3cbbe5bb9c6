"""Benchmark at scale: training against scikit-learn, share of peak, and the devices used.

  python experiments/benchmark_scale.py --config=configs/synthetic.py
  python experiments/benchmark_scale.py --config=configs/synthetic.py --sections=devices,training \
      --output=/tmp/benchmark_scale.json

Sections (``--sections``, in order):

* ``devices``: the local JAX devices and how a run's (configuration, fold) units are laid out on
  them (``config.train.devices``, ``config.train.lanes``; see ``lasca_jax.train.plan``).
* ``training``: lasca_jax's trainer on the configuration's folds, against scikit-learn's
  ``MLPClassifier`` fitting the same folds one after another (``lasca_jax.reference``):
  - *first run*: a fresh Python process with an empty persistent compilation cache times its
    first training call (tracing, compilation and the run; process start-up, imports and the
    cached data stages not included);
  - *repeated run*: another fresh process with the cache the first one filled (JAX's persistent
    compilation cache, as a second ``main.py`` run of the same shapes finds it);
  - *compiled*: the best of two further calls in this process;
  - the matmul FLOPs of the epochs that really ran (``lasca_jax.train.run_flops``) over the
    compiled time, as a share of the f32 matmul peak measured in this process just before
    (``lasca_jax.peak``: best of XLA and numpy's BLAS).
  The load average is printed with the figures: timings on a shared machine vary with it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging
from ml_collections import config_flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=wrong-import-position

from lasca_jax import cache, peak, pipeline, reference, train, validate  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_SECTIONS = flags.DEFINE_list("sections", ["devices", "training"], "Sections to run, in order.")
_SKLEARN = flags.DEFINE_bool("sklearn", True, "Time scikit-learn on the same folds.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the figures as JSON here.")
_CHILD = flags.DEFINE_string("child_compilation_cache", None,
                             "Internal: time one training call with this persistent cache.")


def _load() -> str:
  return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _prepared(config):
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir or None))
  return inputs, pipeline.fold_data(inputs.folds)


def _train(config, inputs, fold) -> train.TrainOutput:
  return train.train_folds(train.TrainSettings.from_config(config.train), int(config.seed),
                           inputs.z, inputs.pairs, fold, tuple(config.model.max_hidden),
                           inputs.info.get("hidden_dim", 0), train.Layout.from_config(config.train))


def _child(config, compilation_cache: str) -> None:
  """Times one training call in this (fresh) process; prints one JSON line."""
  used = train.enable_compilation_cache(compilation_cache)
  inputs, fold = _prepared(config)
  start = time.perf_counter()
  out = _train(config, inputs, fold)
  seconds = time.perf_counter() - start
  files = sum(len(f) for _, _, f in os.walk(compilation_cache))
  print(json.dumps({"seconds": seconds, "compilation_cache": used, "cache_files": files,
                    "mean_test_accuracy": float(np.mean(out.test_accuracy))}))


def _fresh_process_call(compilation_cache: str) -> dict:
  config_args = [a for a in sys.argv[1:] if a.startswith("--config")]
  env = dict(os.environ)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), *config_args,
       f"--child_compilation_cache={compilation_cache}"],
      capture_output=True, text=True, env=env, check=False)
  if proc.returncode:
    raise RuntimeError(f"timing process failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def devices_section(config) -> dict:
  """Prints and returns the local devices and the training layout of this configuration."""
  devices = jax.local_devices()
  layout = train.Layout.from_config(config.train)
  folds = int(config.protocol.num_folds)
  plan = train.plan(folds, layout)
  kinds = sorted({d.device_kind for d in devices})
  print(f"devices: {len(devices)} local {devices[0].platform} device(s) ({', '.join(kinds)}), "
        f"process {jax.process_index()} of {jax.process_count()}")
  print(f"training layout: {plan.units} folds on {plan.devices} device(s), {plan.lanes} "
        f"vmapped per step ({plan.padded_units} units computed)")
  return {"local_devices": len(devices), "platform": devices[0].platform, "device_kinds": kinds,
          "process_count": jax.process_count(), "plan": plan._asdict()}


def training_section(config, sklearn: bool = True) -> dict:
  """Times the trainer (first run, repeated run, compiled) against scikit-learn; share of peak."""
  inputs, fold = _prepared(config)
  num_folds, _, d = inputs.z.shape
  settings = train.TrainSettings.from_config(config.train)
  result = {"config": config.name, "d": int(d), "folds": int(num_folds), "load_before": _load()}
  with tempfile.TemporaryDirectory(prefix="lasca_jax_xla_") as compilation_cache:
    first = _fresh_process_call(compilation_cache)
    repeated = _fresh_process_call(compilation_cache)
  result["first_run_s"] = first["seconds"]
  result["repeated_run_s"] = repeated["seconds"]
  result["cache_files"] = first["cache_files"]

  out = _train(config, inputs, fold)   # compiles in this process
  measured = peak.measure_peak()
  times = []
  for _ in range(2):
    start = time.perf_counter()
    out = _train(config, inputs, fold)
    times.append(time.perf_counter() - start)
  compiled = min(times)
  flops = train.run_flops(out, fold, d, tuple(config.model.max_hidden),
                          inputs.info.get("hidden_dim", 0))
  epochs = int(np.sum(out.epochs_run))
  result.update(
      compiled_s=compiled, peak=measured.as_dict(), flops=flops, fold_epochs=epochs,
      fold_epochs_synchronous=int(num_folds * np.max(out.epochs_run)),
      gflops=flops / compiled / 1e9, share_of_peak=peak.share_of_peak(flops, compiled,
                                                                      measured.gflops),
      mean_test_accuracy=float(np.mean(out.test_accuracy)))
  if sklearn:
    start = time.perf_counter()
    theirs = [reference.sklearn_fold(inputs.z[k], inputs.pairs, inputs.folds, k,
                                     int(config.seed), settings) for k in range(num_folds)]
    result["sklearn_s"] = time.perf_counter() - start
    result["sklearn_mean_test_accuracy"] = float(np.mean(theirs))
  result["load_after"] = _load()
  _print_training(result)
  return result


def _print_training(r: dict) -> None:
  sk = r.get("sklearn_s")
  print(f"training: {r['config']}, d = {r['d']}, {r['folds']} folds ({r['load_before']})")
  print(f"| {'lasca_jax call':<48} | {'seconds':>7} | {'sklearn / lasca_jax':>19} |")
  print(f"| {'-' * 48} | {'-' * 7}:| {'-' * 19}:|")
  for label, key in (("first run (compilation, empty persistent cache)", "first_run_s"),
                     ("repeated run (persistent compilation cache)", "repeated_run_s"),
                     ("compiled (best of 2)", "compiled_s")):
    ratio = f"{sk / r[key]:.2f}x" if sk else "-"
    print(f"| {label:<48} | {r[key]:>7.2f} | {ratio:>19} |")
  if sk:
    print(f"| {'scikit-learn MLPClassifier, folds in turn':<48} | {sk:>7.2f} | {'1.00x':>19} |")
    print(f"mean test accuracy: lasca_jax {r['mean_test_accuracy']:.4f}, scikit-learn "
          f"{r['sklearn_mean_test_accuracy']:.4f}")
  else:
    print(f"mean test accuracy: lasca_jax {r['mean_test_accuracy']:.4f}")
  p = r["peak"]
  print(f"work: {r['flops'] / 1e12:.3f} TFLOP (matmuls) in {r['fold_epochs']} fold-epochs "
        f"(a fold-synchronous loop would run {r['fold_epochs_synchronous']}); "
        f"{r['gflops']:.1f} GFLOP/s compiled = {100 * r['share_of_peak']:.0f} % of the f32 matmul "
        f"peak {p['gflops']:.1f} GFLOP/s ({p['source']}; XLA {p['xla_gflops']:.1f}, numpy "
        f"{p['numpy_gflops']:.1f})")
  print(f"({r['load_after']} at the end)")


SECTIONS = {"devices": devices_section,
            "training": lambda config: training_section(config, _SKLEARN.value)}


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    validate.check(config)
  except validate.ConfigError as e:
    sys.exit(f"error: {e}")
  if _CHILD.value:
    _child(config, _CHILD.value)
    return
  unknown = [s for s in _SECTIONS.value if s not in SECTIONS]
  if unknown:
    sys.exit(f"error: --sections: unknown {unknown}; choose from {sorted(SECTIONS)}")
  results = {}
  for name in _SECTIONS.value:
    results[name] = SECTIONS[name](config)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=validate.parse_flags)
