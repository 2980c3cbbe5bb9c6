"""Measurements in this process, for the benchmark scripts (``experiments/benchmark_scale.py``
runs each in a fresh process through ``experiments/time_one.py``).

Training: one call and a second, compiled one (:func:`time_training`), the phases of one call
(:func:`time_phases`), scikit-learn on the same folds (:func:`time_sklearn`), the minibatch step
and its matmuls (:func:`time_step`). Encoder: a config's prompts (:func:`config_prompts`), a fixed
sample of them, torch's matmul rate, a profile of one batch.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from lasca_jax.encoders import encoding, peak
from lasca_jax.method import representation
from lasca_jax.model import mlp, placement, programs, reference, train
from lasca_jax.run import cache, pipeline, settings as settings_lib


def prepared(config):
  """``(RunInputs, fold indices)`` of ``config``, from its stage cache."""
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir or None))
  return inputs, inputs.folds


def train_once(config, inputs, fold) -> train.TrainOutput:
  """All folds of ``config`` in one compiled call, as ``pipeline.run`` trains them."""
  return train.train_folds(settings_lib.train_settings(config), int(config.seed), inputs.z,
                           inputs.pairs, fold, settings_lib.layout(config))


def time_training(config, compilation_cache: str, with_peak: bool = False) -> dict:
  """Times one training call in this (fresh) process, then a second (compiled) one, and with
  ``with_peak`` the f32 matmul peak right after (in the process that timed the compiled call)."""
  used = placement.enable_compilation_cache(compilation_cache)
  inputs, fold = prepared(config)
  start = time.perf_counter()
  out = train_once(config, inputs, fold)
  seconds = time.perf_counter() - start
  start = time.perf_counter()
  train_once(config, inputs, fold)
  compiled = time.perf_counter() - start
  files = sum(len(f) for _, _, f in os.walk(compilation_cache))
  d = inputs.z.shape[-1]
  result = {"seconds": seconds, "compiled_seconds": compiled, "compilation_cache": used,
            "cache_files": files, "stored_programs": dict(programs.counts),
            "test_accuracy": np.asarray(out.test_accuracy).tolist(),
            "mean_test_accuracy": float(np.mean(out.test_accuracy)),
            # the matmul work of the epochs that really ran, and what a fold-synchronous loop runs
            "flops": train.run_flops(out, fold, d, settings_lib.train_settings(config)
                                     .hidden_sizes(d)),
            "fold_epochs": int(np.sum(out.epochs_run)),
            "fold_epochs_synchronous": int(len(out.epochs_run) * np.max(out.epochs_run))}
  if with_peak:
    result["peak"] = peak.measure_peak().as_dict()
  return result


def time_phases(config, compilation_cache: str) -> dict:
  """Times the phases of one training call (trace, lower, compile, execute) in this (fresh)
  process."""
  placement.enable_compilation_cache(compilation_cache)
  inputs, fold = prepared(config)
  seeds, fold_numbers, per_fold = train.fold_units(int(config.seed), inputs.z.shape[0],
                                                   inputs.pairs)
  fn, args = train.program_call(settings_lib.train_settings(config), seeds, fold_numbers,
                                inputs.z, per_fold, fold, settings_lib.layout(config))
  phases = (("trace", lambda _: fn.trace(*args)), ("lower", lambda traced: traced.lower()),
            ("compile", lambda lowered: lowered.compile()),
            ("execute", lambda compiled: jax.block_until_ready(compiled(*args))))
  times, value = {}, None
  for name, phase in phases:
    start = time.perf_counter()
    value = phase(value)
    times[name] = time.perf_counter() - start
  return times


def time_sklearn(config) -> dict:
  """Times scikit-learn fitting the configuration's folds one after another in this process."""
  inputs, fold = prepared(config)
  settings = settings_lib.train_settings(config)
  start = time.perf_counter()
  accuracies = [reference.sklearn_fold(inputs.z[k], inputs.pairs, fold, k, int(config.seed),
                                       settings) for k in range(inputs.z.shape[0])]
  return {"seconds": time.perf_counter() - start,
          "mean_test_accuracy": float(np.mean(accuracies))}


def best_call(repeats: int, call) -> tuple[float, object]:
  """``(best wall time of `repeats` calls, the last result)``."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = call()
    times.append(time.perf_counter() - start)
  return min(times), out


def best_seconds(fn, *args, repeats: int = 3) -> float:
  """Best time of a jitted ``fn(*args)`` after a first (compiling) call."""
  jax.block_until_ready(fn(*args))   # compiles
  return best_call(repeats, lambda: jax.block_until_ready(fn(*args)))[0]


def time_step(config, steps: int) -> dict:
  """Milliseconds per minibatch step of the trainer (``train.make_learner``: pair gather, loss,
  gradient, Adam) and of the step's matmuls alone, on fold 0's real pairs, in this process."""
  inputs, fold = prepared(config)
  settings = settings_lib.train_settings(config)
  d = int(inputs.z.shape[-1])
  bs = settings.batch_size
  model, tx, step = train.make_learner(settings, d)
  z = jnp.asarray(inputs.z[0])
  pairs = train.PairData(*[jnp.asarray(a) for a in inputs.pairs])
  batches = max(1, int(fold.train_count[0]) // bs)
  rows = jnp.asarray(np.asarray(fold.train_idx[0])[:batches * bs].reshape(batches, bs))
  params = model.init(jax.random.key(0), jnp.zeros((1, d)))["params"]
  mask = jnp.ones(bs, bool)

  def full(i, carry):
    x, y = train.pair_inputs(z, pairs, rows[i % batches])
    _, params, opt = step(*carry, x, y, mask)
    return params, opt

  x0, _ = train.pair_inputs(z, pairs, rows[0])
  kernels = tuple(params[f"SklearnDense_{i}"]["kernel"] for i in range(3))

  def matmuls(_, w):   # the step's forward and backward matmuls, nothing else
    w1, w2, w3 = w
    h1 = jnp.maximum(x0 @ w1, 0.0)
    h2 = jnp.maximum(h1 @ w2, 0.0)
    g = h2 @ w3
    d2 = (g @ w3.T) * (h2 > 0)
    d1 = (d2 @ w2.T) * (h1 > 0)
    return w1 - 1e-9 * (x0.T @ d1), w2 - 1e-9 * (h1.T @ d2), w3 - 1e-9 * (h2.T @ g)

  loop = lambda body: jax.jit(lambda c: jax.lax.fori_loop(0, steps, body, c))
  step_s = best_seconds(loop(full), (params, tx.init(params)))
  matmul_s = best_seconds(loop(matmuls), kernels)
  _, train_step = mlp.flops_per_pair(d, settings.hidden_sizes(d))
  return {"d": d, "batch": bs, "steps": steps, "step_ms": 1e3 * step_s / steps,
          "matmul_ms": 1e3 * matmul_s / steps,
          "matmul_gflops": bs * train_step * steps / matmul_s / 1e9}


def config_prompts(config) -> list[str]:
  """The distinct prompts (usable windows) of ``config``; a features-only config as text."""
  config = config.copy_and_resolve_references()
  if not representation.get(config.model.fusion).encoded:
    with config.unlocked():
      config.model.fusion = "text"
  sink: list[str] = []
  pipeline.prepare(config, cache.StageCache(config.cache_dir or None), prompt_sink=sink)
  return sorted(set(sink))


def sample_prompts(prompts: list[str], n: int) -> list[str]:
  """A fixed sample of ``n`` prompts: the smallest SHA-256 hashes (all when ``n`` is 0)."""
  if n <= 0 or n >= len(prompts):
    return list(prompts)
  return sorted(prompts, key=lambda p: hashlib.sha256(p.encode()).digest())[:n]


def torch_matmul_gflops(m: int, k: int, n: int, device: str = "cpu", repeats: int = 5) -> float:
  """Best f32 rate of torch's ``(m, k) @ (k, n)`` on ``device``."""
  import torch  # pylint: disable=import-outside-toplevel
  a = torch.randn(m, k, device=device)
  b = torch.randn(k, n, device=device)
  a @ b
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    if device.startswith("cuda"):
      torch.cuda.synchronize()
    best = min(best, time.perf_counter() - start)
  return 2.0 * m * k * n / best / 1e9


def jax_op_table(model, prompts: list[str], repeats: int = 10) -> tuple[dict, list[dict]]:
  """Where the JAX encoder ``model`` (a ``flax_encoder.JaxSentenceEncoder``) spends one
  micro-batch of ``prompts`` (the middle one of :meth:`micro_batches`): the call traced
  ``repeats`` times with ``jax.profiler``, each traced XLA operation named by the JAX operation
  it came from (``op_name`` of the compiled program's metadata, layers merged).

  Returns ``(summary, rows)``: ``summary`` has the shape, the compiled call's milliseconds and
  the share of the traced operations' time in matrix products (``dot_general``); ``rows``
  (largest first) ``{"op", "kind", "ms_per_call", "share"}``, times summed over the devices.
  """
  ids = model.tokenize(prompts)
  batches = model.micro_batches(ids)
  idx, rows, width = batches[len(batches) // 2]
  args = (model.params, *model.padded(ids, idx, rows, width))
  forward = model.forward.lower(*args).compile()   # the program traced is the one named
  jax.block_until_ready(forward(*args))
  names = {}   # XLA operation -> the JAX operation it came from
  for m in re.finditer(r'%([\w.\-]+) = .*?metadata=\{op_name="([^"]+)"', forward.as_text()):
    names[m.group(1)] = re.sub(r"layer_\d+/", "", m.group(2).split(")/", 1)[-1])
  start = time.perf_counter()
  for _ in range(repeats):
    out = forward(*args)
  jax.block_until_ready(out)
  call_ms = (time.perf_counter() - start) / repeats * 1e3
  totals: dict[tuple[str, str], float] = {}
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    for _ in range(repeats):
      out = forward(*args)
    jax.block_until_ready(out)
    jax.profiler.stop_trace()
    with gzip.open(sorted(glob.glob(os.path.join(tmp, "**", "*perfetto*"), recursive=True))[-1],
                   "rt") as f:
      trace = json.load(f)
  for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
    if e.get("ph") == "X" and e.get("name") in names:
      key = (names[e["name"]], re.sub(r"\.\d+$", "", e["name"]))
      totals[key] = totals.get(key, 0.0) + e.get("dur", 0) / 1e3 / repeats
  total = sum(totals.values()) or 1.0
  table = [{"op": op, "kind": kind, "ms_per_call": round(ms, 3), "share": round(ms / total, 4)}
           for (op, kind), ms in sorted(totals.items(), key=lambda kv: -kv[1])]
  summary = {"rows": rows, "width": width, "sequences": len(idx),
             "devices": len(model.devices), "repeats": repeats,
             "call_ms": round(call_ms, 2), "traced_ms": round(sum(totals.values()), 2),
             "dot_share": round(sum(r["share"] for r in table if "dot_general" in r["op"]), 4)}
  return summary, table


def profile_jax_batch(model, prompts: list[str], path: str, backbone: str = "") -> dict:
  """Writes :func:`jax_op_table` of ``prompts`` to ``path``; returns its summary."""
  summary, table = jax_op_table(model, prompts)
  with open(path, "w") as f:
    f.write(f"{len(prompts)} prompts, one micro-batch of {summary['rows']} x {summary['width']} "
            f"tokens ({summary['sequences']} sequences) on {summary['devices']} JAX device(s), "
            f"{backbone}: {summary['call_ms']} ms per compiled call; traced operations "
            f"{summary['traced_ms']} ms per call, summed over the devices, "
            f"{100 * summary['dot_share']:.1f} % of it in matrix products\n")
    f.write(f"{'ms/call':>9}  {'share':>6}  operation [XLA kind]\n")
    for r in table:
      f.write(f"{r['ms_per_call']:>9.3f}  {100 * r['share']:>5.1f}%  {r['op']} [{r['kind']}]\n")
  return summary


def profile_batch(store: encoding.EmbeddingStore, prompts: list[str], path: str) -> None:
  """torch.profiler's operator table (self CPU time) of encoding ``prompts`` once."""
  import torch  # pylint: disable=import-outside-toplevel
  from torch.profiler import ProfilerActivity, profile  # pylint: disable=import-outside-toplevel
  activities = [ProfilerActivity.CPU] + (
      [ProfilerActivity.CUDA] if store.device.startswith("cuda") else [])
  with torch.inference_mode(), profile(activities=activities) as prof:
    store.model.encode(prompts, batch_size=len(prompts), show_progress_bar=False)
  table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
  with open(path, "w") as f:
    f.write(f"{len(prompts)} prompts, one batch, {store.backbone} on {store.device}\n{table}\n")
