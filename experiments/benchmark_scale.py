"""Benchmark at scale: encoder throughput, training against scikit-learn, share of peak, devices.

  python experiments/benchmark_scale.py --config=configs/synthetic.py
  python experiments/benchmark_scale.py --config=configs/synthetic.py --sections=devices,training \
      --output=/tmp/benchmark_scale.json
  python experiments/benchmark_scale.py --config=configs/synthetic.py --sections=encoder \
      --encoder_prompts=4000 --token_budgets=0,4096,8192,16384 --profile=/tmp/encoder_profile.txt

Sections (``--sections``, in order):

* ``encoder``: the distinct prompts of the config (or of ``model.fusion="text"`` when the config
  has no text part) are computed with the cached stages, a fixed sample of ``--encoder_prompts``
  of them (by prompt hash) is encoded into fresh, temporary stores (nothing is served from a
  cache) by each engine of ``--encoder_engines`` (torch, jax), cold (model load and first
  encoding, JAX's compilation included) and compiled (again, by the loaded model), and the
  section reports, in one table, prompts/s, tokens/s, the encoder's matmul GFLOP/s (FLOPs per
  token from the backbone's own config, ``lasca_jax.encoders.text.encoder_flops``) and their share of
  the matmul peak measured in the same process (``lasca_jax.encoders.text.device_peak_gflops``: on a
  CPU the f32 peak, best of XLA and numpy's BLAS; on a GPU a torch matmul in the encoder's
  precision), the ratio of the engines' prompts/s and the largest difference of their
  embeddings. On a CPU it also times torch's own f32 matmul at the peak's square size and at the
  encoder's feed-forward shape. ``--profile=PATH`` writes, per engine, where one batch's time
  goes: torch.profiler's operator table of one batch, and for JAX the XLA operations of one
  compiled micro-batch traced with ``jax.profiler``, named by the JAX operation each came from
  (``lasca_jax.run.timing.jax_op_table``); with both engines ``PATH`` becomes
  ``<stem>.torch<ext>`` and ``<stem>.jax<ext>``.

* ``devices``: the local JAX devices and how a run's (configuration, fold) units are laid out on
  them (``config.train.devices``, ``config.train.lanes``; see ``lasca_jax.model.placement.plan``).
* ``step``: the trainer's minibatch step (``lasca_jax.model.train.make_learner``: pair gather,
  loss, gradient, Adam) and its matmuls alone, timed over ``--steps`` steps on fold 0's pairs in
  a fresh one-device process, then in two such processes at once: whether the cores add up for
  matmuls of this size.
* ``training``: lasca_jax's trainer on the configuration's folds, against scikit-learn's
  ``MLPClassifier`` fitting the same folds one after another (``lasca_jax.model.reference``):
  - *first run*: a fresh Python process with an empty persistent compilation cache times its
    first training call (tracing, compilation and the run; process start-up, imports and the
    cached data stages not included);
  - *repeated run*: another fresh process with the cache the first one filled (JAX's persistent
    compilation cache, as a second ``main.py`` run of the same shapes finds it);
  - *compiled*: the second call in each of these processes (the better of the two);
  - *scikit-learn*: one more fresh process fits the folds one after another;
  - the phases of a first and of a repeated run (two more fresh processes): tracing, lowering,
    compiling (or loading from the persistent cache) and executing, timed one by one;
  - the same three with ``config.train.fast_compile`` (a CPU option: XLA -O1, which changes the
    last bits of the results) unless the config already sets it or ``--fast_compile_rows=false``;
  - the matmul FLOPs of the epochs that really ran (``lasca_jax.model.train.run_flops``) over the
    compiled time, as a share of the f32 matmul peak measured right after it in the same process
    (``lasca_jax.encoders.peak``: best of XLA and numpy's BLAS).
  These processes run in ``--repeats`` rounds, one after another (first run, repeated run, the
  fast_compile pair, scikit-learn), each round with a new empty cache. A row reports its best
  time, and its ratio to scikit-learn as the median (and range) of the rounds' ratios: both sides
  of a ratio were timed within the same minute, so a shared machine's changing load (printed
  with the figures) moves them together instead of deciding the ratio.

* ``select``: ``train.select`` (a grid trained beside the folds in the same compiled call, chosen
  per fold on validation) against one configuration, in this process: the first call (tracing,
  compiling, running) and the compiled call of each, their ratios, and the units trained
  (``--select``, default a 5-point ``alpha`` grid).

Every fresh process is ``experiments/time_one.py`` (one measurement of
``lasca_jax/run/timing.py``, printed as one JSON line).
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging
from ml_collections import config_flags
import numpy as np

import jax

from lasca_jax.encoders import encoding, peak, text as text_lib
from lasca_jax.model import placement, train
from lasca_jax.run import settings as settings_lib, timing, validate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_SELECT = flags.DEFINE_string("select", "alpha=1,0.3,0.1,0.03,0.01",
                              "select section: the train.select grid timed.")
_SECTIONS = flags.DEFINE_list("sections", ["encoder", "devices", "step", "training"],
                              "Sections to run, in order.")
_PROMPTS = flags.DEFINE_integer("encoder_prompts", 2000, "Encoder section: distinct prompts to "
                                "encode (a fixed sample by prompt hash); 0 -> all of the config's.")
_BUDGETS = flags.DEFINE_list("token_budgets", [], "Encoder section: token budgets to compare "
                             "(default: the config's text.token_budget).")
_ENGINES = flags.DEFINE_list("encoder_engines", ["torch", "jax"], "Encoder section: engines "
                             "(config.text.engine) to compare on the same prompts, in order.")
_PROFILE = flags.DEFINE_string("profile", "", "Encoder section: write each engine's operator "
                               "table of one batch here (<stem>.<engine><ext> with two engines).")
_SKLEARN = flags.DEFINE_bool("sklearn", True, "Time scikit-learn on the same folds.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Training section: rounds of fresh processes "
                                "(first run, repeated run, scikit-learn); a row is the best of "
                                "its rounds, a ratio the median of the rounds' ratios.",
                                lower_bound=1)
_FAST_ROWS = flags.DEFINE_bool("fast_compile_rows", True, "Training section on a CPU: also time "
                               "config.train.fast_compile=True.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the figures as JSON here.")
_STEPS = flags.DEFINE_integer("steps", 400, "Step section: minibatch steps per timing.",
                              lower_bound=1)

def _load() -> str:
  return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


TIME_ONE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "time_one.py")


def _child_command(*args: str) -> list[str]:
  """``experiments/time_one.py`` (one measurement, a fresh process) with this run's ``--config``
  flags and ``args``."""
  return [sys.executable, TIME_ONE, *[a for a in sys.argv[1:] if a.startswith("--config")],
          *args]


def _fresh_process_call(compilation_cache: str | None, extra_args=()) -> dict:
  env = dict(os.environ)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  cache_args = [f"--compilation_cache={compilation_cache}"] if compilation_cache else []
  proc = subprocess.run(_child_command(*extra_args, *cache_args),
                        capture_output=True, text=True, env=env, check=False)
  if proc.returncode:
    raise RuntimeError(f"timing process failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def devices_section(config) -> dict:
  """Prints and returns the local devices and the training layout of this configuration."""
  devices = jax.local_devices()
  layout = settings_lib.layout(config)
  folds = int(config.protocol.num_folds)
  plan = placement.plan(folds, layout)
  kinds = sorted({d.device_kind for d in devices})
  print(f"devices: {len(devices)} local {devices[0].platform} device(s) ({', '.join(kinds)}), "
        f"process {jax.process_index()} of {jax.process_count()}")
  print(f"training layout: {plan.units} folds on {plan.devices} device(s), {plan.lanes} "
        f"vmapped per step ({plan.padded_units} units computed)")
  return {"local_devices": len(devices), "platform": devices[0].platform, "device_kinds": kinds,
          "process_count": jax.process_count(), "plan": plan._asdict()}


def _fresh_pair(extra_args=(), with_peak: bool = False) -> dict:
  """A first run and a repeated run (fresh processes, one new persistent cache); each also times
  a second, compiled call."""
  args = [*extra_args, *(["--peak"] if with_peak else [])]
  with tempfile.TemporaryDirectory(prefix="lasca_jax_xla_") as compilation_cache:
    first = _fresh_process_call(compilation_cache, args)
    repeated = _fresh_process_call(compilation_cache, args)
  faster = min((first, repeated), key=lambda run: run["compiled_seconds"])
  pair = {"first_run_s": first["seconds"], "repeated_run_s": repeated["seconds"],
          "compiled_s": faster["compiled_seconds"], "cache_files": first["cache_files"],
          "stored_programs": [first["stored_programs"], repeated["stored_programs"]],
          **{k: first[k] for k in ("test_accuracy", "mean_test_accuracy", "flops", "fold_epochs",
                                   "fold_epochs_synchronous")}}
  if with_peak:
    pair["peak"] = faster["peak"]   # measured in the process that timed compiled_s
  return pair


# The rows of the training table: (label, key), lasca_jax's own and the fast_compile ones.
_TRAINING_ROWS = (("first run (compilation, empty persistent cache)", "first_run_s"),
                  ("repeated run (persistent compilation cache)", "repeated_run_s"),
                  ("compiled", "compiled_s"),
                  ("train.fast_compile: first run", "fast_first_run_s"),
                  ("train.fast_compile: repeated run", "fast_repeated_run_s"),
                  ("train.fast_compile: compiled", "fast_compiled_s"))


def training_section(config, sklearn: bool = True, repeats: int = 3,
                     fast_compile_rows: bool = True) -> dict:
  """Times the trainer (first run, repeated run, compiled) against scikit-learn; share of peak.

  The timings come in ``repeats`` rounds of fresh processes, one row after another, so that each
  round's ratios to scikit-learn compare timings taken under the same load; a row reports its
  best time and the median (and range) of its rounds' ratios.
  """
  num_folds, _, d = timing.prepared(config)[0].z.shape
  settings = settings_lib.train_settings(config)
  result = {"config": config.name, "d": int(d), "folds": int(num_folds), "repeats": repeats,
            "load_before": _load()}
  fast_rows = (fast_compile_rows and jax.local_devices()[0].platform == "cpu"
               and not settings.fast_compile)
  rounds = []
  for r in range(repeats):
    logging.warning("training: round %d of %d (%s)", r + 1, repeats, _load())
    row = _fresh_pair(with_peak=True)
    if fast_rows:
      fast = _fresh_pair(["--config.train.fast_compile=True"])
      row.update({f"fast_{k}": v for k, v in fast.items()
                  if k.endswith("_s") or k.endswith("test_accuracy")})
    if sklearn:
      theirs = _fresh_process_call(None, ["--measure=sklearn"])
      row["sklearn_s"] = theirs["seconds"]
      result["sklearn_mean_test_accuracy"] = theirs["mean_test_accuracy"]
    rounds.append(row)
  result["rounds"] = rounds
  result["cache_files"] = rounds[-1]["cache_files"]
  for _, key in _TRAINING_ROWS + (("", "sklearn_s"),):
    if key in rounds[0]:
      result[key] = min(row[key] for row in rounds)
      if sklearn and key != "sklearn_s":
        ratios = [row["sklearn_s"] / row[key] for row in rounds]
        result[f"ratio_{key}"] = {"median": float(np.median(ratios)), "min": min(ratios),
                                  "max": max(ratios)}
  with tempfile.TemporaryDirectory(prefix="lasca_jax_xla_") as compilation_cache:
    result["phases_first"] = _fresh_process_call(compilation_cache, ["--measure=phases"])
    result["phases_repeated"] = _fresh_process_call(compilation_cache, ["--measure=phases"])

  ours = rounds[0]   # what the timed calls computed (every round the same): accuracy and work
  if fast_rows:
    result["fast_mean_test_accuracy"] = ours["fast_mean_test_accuracy"]
    result["fast_changed_folds"] = int(np.sum(np.asarray(ours["fast_test_accuracy"])
                                              != np.asarray(ours["test_accuracy"])))
  flops = ours["flops"]
  shares = [peak.share_of_peak(flops, row["compiled_s"], row["peak"]["gflops"]) for row in rounds]
  best = int(np.argmin([row["compiled_s"] for row in rounds]))
  result.update(
      peak=rounds[best]["peak"], flops=flops, fold_epochs=ours["fold_epochs"],
      fold_epochs_synchronous=ours["fold_epochs_synchronous"],
      gflops=flops / result["compiled_s"] / 1e9, share_of_peak=shares[best],
      share_of_peak_median=float(np.median(shares)),
      mean_test_accuracy=ours["mean_test_accuracy"])
  result["load_after"] = _load()
  _print_training(result)
  return result


def _print_training(r: dict) -> None:
  sk = r.get("sklearn_s")
  print(f"training: {r['config']}, d = {r['d']}, {r['folds']} folds, {r['repeats']} rounds of "
        f"fresh processes ({r['load_before']})")
  print(f"| {'lasca_jax call':<48} | {'best (s)':>8} | {'sklearn / lasca_jax, median (range)':>35} |")
  print(f"| {'-' * 48} | {'-' * 7}:| {'-' * 34}:|")
  for label, key in _TRAINING_ROWS:
    if key not in r:
      continue
    ratio = "-"
    if sk:
      q = r[f"ratio_{key}"]
      ratio = f"{q['median']:.2f}x ({q['min']:.2f}-{q['max']:.2f}x)"
    print(f"| {label:<48} | {r[key]:>8.2f} | {ratio:>35} |")
  if sk:
    print(f"| {'scikit-learn MLPClassifier, folds in turn':<48} | {sk:>8.2f} | {'1.00x':>35} |")
    print(f"mean test accuracy: lasca_jax {r['mean_test_accuracy']:.4f}, scikit-learn "
          f"{r['sklearn_mean_test_accuracy']:.4f}")
  else:
    print(f"mean test accuracy: lasca_jax {r['mean_test_accuracy']:.4f}")
  if "fast_mean_test_accuracy" in r:
    print(f"train.fast_compile: mean test accuracy {r['fast_mean_test_accuracy']:.4f}, "
          f"{r['fast_changed_folds']} of {r['folds']} fold accuracies differ")
  for label, key in (("first run", "phases_first"), ("repeated run", "phases_repeated")):
    ph = r[key]
    print(f"phases of a {label}: trace {ph['trace']:.2f} s, lower {ph['lower']:.2f} s, "
          f"{'compile' if key == 'phases_first' else 'load from the cache'} "
          f"{ph['compile']:.2f} s, execute {ph['execute']:.2f} s")
  p = r["peak"]
  print(f"work: {r['flops'] / 1e12:.3f} TFLOP (matmuls) in {r['fold_epochs']} fold-epochs "
        f"(a fold-synchronous loop would run {r['fold_epochs_synchronous']}); best compiled "
        f"{r['gflops']:.1f} GFLOP/s = {100 * r['share_of_peak']:.0f} % of the f32 matmul peak "
        f"{p['gflops']:.1f} GFLOP/s measured in the same process ({p['source']}; XLA "
        f"{p['xla_gflops']:.1f}, numpy {p['numpy_gflops']:.1f}); median over the rounds "
        f"{100 * r['share_of_peak_median']:.0f} %")
  print(f"({r['load_after']} at the end)")


def step_section(config) -> dict:
  """The trainer's minibatch step on one core alone, and two copies at once (one per core).

  A CPU question: on an accelerator the section is skipped (several processes would share, and
  preallocate, one device's memory).
  """
  platform = jax.local_devices()[0].platform
  if platform != "cpu":
    print(f"minibatch step: skipped on {platform} (the section compares CPU cores)")
    return {"skipped": platform}

  def children(n):
    args = _child_command("--measure=step", f"--steps={_STEPS.value}")
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
      if p.returncode:
        raise RuntimeError(f"step timing process failed:\n{err[-3000:]}")
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

  result = {"load_before": _load(), "alone": children(1)[0], "together": children(2)}
  a, t = result["alone"], result["together"]
  print(f"minibatch step: d = {a['d']}, batch {a['batch']}, {a['steps']} steps per timing "
        f"({result['load_before']})")
  print(f"| {'process':<32} | {'step ms':>7} | {'matmuls ms':>10} | {'matmul GFLOP/s':>14} |")
  print(f"| {'-' * 32} | {'-' * 7}:| {'-' * 10}:| {'-' * 14}:|")
  for label, r in [("one, alone", a)] + [(f"two at once: #{i + 1}", r) for i, r in enumerate(t)]:
    print(f"| {label:<32} | {r['step_ms']:>7.3f} | {r['matmul_ms']:>10.3f} | "
          f"{r['matmul_gflops']:>14.1f} |")
  both = sum(r["matmul_gflops"] for r in t)
  print(f"two cores together: {both:.1f} matmul GFLOP/s = {both / a['matmul_gflops']:.2f}x one "
        f"core alone ({_load()} at the end)")
  return result


def _encode_once(tcfg, engine: str, budget: int, prompts: list[str], tmp: str, model=None):
  """Encodes ``prompts`` into a fresh store with ``engine``; the store (closed) and its model.

  Without ``model`` the model is loaded first and the load counted in ``seconds`` beside the
  store's own clock (tokenising, encoding, committing), which for JAX includes compiling each
  shape the first time."""
  start = time.perf_counter()
  store = encoding.EmbeddingStore(
      os.path.join(tmp, f"{engine}-{budget}-{'warm' if model else 'cold'}"), tcfg.backbone,
      tcfg.model_path, tcfg.get("device", "auto"), int(tcfg.batch_size), budget,
      tcfg.get("precision", "auto"), tcfg.get("long_prompts", "truncate"), engine=engine)
  if model is not None:
    store._model = model   # pylint: disable=protected-access
  model = store.model
  load = time.perf_counter() - start
  emb = store.embed(prompts, progress=False)
  store.store.close()
  return store, model, load, emb


def _peak(device: str) -> tuple[float, str, float]:
  """The matmul peak measured now (``text_lib.device_peak_gflops`` keeps its first figure):
  ``(GFLOP/s, how, XLA's own GFLOP/s)``."""
  if device.startswith("cuda"):
    return (*text_lib.device_peak_gflops(device, "float32"), 0.0)
  p = peak.measure_peak(sizes=(512, 1024), repeats=3)
  return p.gflops, f"f32 matmul, {p.source}", p.xla_gflops


def _encoder_row(store, peak_gflops: float, seconds: float) -> dict:
  """Prompts/s, tokens/s, GFLOP/s and share of the peak of what ``store`` encoded, over
  ``seconds``."""
  s = store.stats
  out = {"seconds": round(seconds, 2), "prompts_per_s": round(s.prompts / seconds, 2),
         "tokens_per_s": round(s.tokens / seconds, 1),
         "padding_fraction": store.throughput().get("padding_fraction"),
         "device": store.device, "precision": store.precision}
  if s.flops:
    out["gflops"] = round(s.flops / seconds / 1e9, 2)
    out["share_of_peak"] = round(s.flops / seconds / 1e9 / peak_gflops, 4)
  return out


def _profile_path(path: str, engine: str, engines) -> str:
  """``--profile``'s file for ``engine``: the path itself for one engine, else ``<stem>.<engine><ext>``."""
  if len(engines) == 1:
    return path
  stem, ext = os.path.splitext(path)
  return f"{stem}.{engine}{ext}"


def encoder_section(config, num_prompts: int = 2000, token_budgets=(), profile_path: str = "",
                    verbose: bool = True, engines=("torch", "jax")) -> dict:
  """Encoder throughput of ``config.text`` on its own prompts, for each engine; returns and
  prints the figures.

  Per engine and token budget, in this process: *cold* (the model loaded and the prompts
  encoded into a fresh store: torch's first batches, JAX's compilation of each shape, with
  no persistent compilation cache unless ``JAX_COMPILATION_CACHE_DIR`` is set) and *compiled*
  (the same prompts encoded again into another fresh store by the loaded model). The cold row
  counts the load and the encoding; the compiled row the store's own clock (tokenising,
  encoding, committing). Shares are of the f32 matmul peak measured in the same process after
  each engine's runs (the highest of those measurements).

  Returns:
    ``{"prompts": n, "tokens_per_prompt": ..., "runs": [per engine and token budget:
    {"engine", "token_budget", "cold": {...}, "compiled": {...}}], "ratios": {...},
    "max_abs_difference": ..., "torch_matmul_gflops": {...}}``.
  """
  import torch  # pylint: disable=import-outside-toplevel
  tcfg = config.text
  prompts = timing.sample_prompts(timing.config_prompts(config), num_prompts)
  budgets = [int(b) for b in token_budgets] or [int(tcfg.get("token_budget", 0))]
  out = {"prompts": len(prompts), "backbone": tcfg.backbone, "runs": [],
         "torch_threads": torch.get_num_threads(), "jax_devices": len(jax.local_devices()),
         "load_before": _load()}
  embs, store = {}, None
  with tempfile.TemporaryDirectory() as tmp:
    for engine in engines:
      model = None
      for budget in budgets:
        cold_store, model, load, _ = _encode_once(tcfg, engine, budget, prompts, tmp, model)
        store, _, _, embs[engine] = _encode_once(tcfg, engine, budget, prompts, tmp, model)
        out["runs"].append({"engine": engine, "token_budget": budget, "load": _load(),
                            "cold_store": cold_store, "compiled_store": store,
                            "cold_seconds": cold_store.stats.seconds + load,
                            "load_seconds": round(load, 2),
                            "peak_now": _peak(store.device)})
        out["tokens_per_prompt"] = round(store.stats.tokens / max(store.stats.texts, 1), 1)
        if profile_path and budget == budgets[-1]:
          path = _profile_path(profile_path, engine, engines)
          if engine == "jax":
            out["jax_profile"] = timing.profile_jax_batch(model, prompts, path, tcfg.backbone)
          else:
            batches = encoding.token_batches(text_lib.token_counts(model, prompts), budget,
                                             int(tcfg.batch_size))
            batch = batches[len(batches) // 2]
            store._model = model   # pylint: disable=protected-access
            timing.profile_batch(store, [prompts[i] for i in batch], path)
          out.setdefault("profiles", {})[engine] = path
  # Shares of the highest peak measured in the run (one after each engine's runs): a peak
  # measured while the shared machine was busy would flatter the shares.
  best = max(out["runs"], key=lambda r: r["peak_now"][0])["peak_now"]
  out["peak_gflops"], out["peak"] = round(best[0], 1), best[1]
  out["peaks_measured"] = [round(r["peak_now"][0], 1) for r in out["runs"]]
  xla = max(r["peak_now"][2] for r in out["runs"])
  out["xla_peak_gflops"] = round(xla, 1)
  for r in out["runs"]:
    cold = _encoder_row(r.pop("cold_store"), best[0], r.pop("cold_seconds"))
    store = r.pop("compiled_store")
    r.update(cold=dict(cold, load_seconds=r.pop("load_seconds")),
             compiled=_encoder_row(store, best[0], store.stats.seconds))
    for when in ("cold", "compiled"):
      if xla and "gflops" in r[when]:
        r[when]["share_of_xla_peak"] = round(r[when]["gflops"] / xla, 4)
    del r["peak_now"]
  by = {(r["engine"], r["token_budget"]): r for r in out["runs"]}
  for budget in budgets:
    if ("torch", budget) in by and ("jax", budget) in by:
      out["ratios"] = out.get("ratios", {})
      out["ratios"][str(budget)] = {
          when: round(by["jax", budget][when]["prompts_per_s"] /
                      by["torch", budget][when]["prompts_per_s"], 3)
          for when in ("cold", "compiled")}
  if len(embs) == 2:
    out["max_abs_difference"] = float(np.abs(embs["torch"] - embs["jax"]).max())
  out["load_after"] = _load()
  device = out["runs"][-1]["cold"]["device"]
  shape = text_lib.transformer_shape(model)
  if shape is not None and device == "cpu":
    tokens = max(budgets[-1], 2048)
    out["torch_matmul_gflops"] = {
        "square_1024": round(timing.torch_matmul_gflops(1024, 1024, 1024), 1),
        f"ffn_{tokens}x{shape.hidden}x{shape.intermediate}": round(timing.torch_matmul_gflops(
            tokens, shape.hidden, shape.intermediate), 1)}
  if verbose:
    _print_encoder(out)
  return out


def _print_encoder(out: dict) -> None:
  print(f"encoder {out['backbone']}: {out['prompts']} prompts of {out['tokens_per_prompt']} "
        f"tokens on average; f32 matmul peak {out['peak_gflops']} GFLOP/s ({out['peak']}; "
        f"highest of {out['peaks_measured']}; XLA's own {out['xla_peak_gflops']}); "
        f"torch {out['torch_threads']} threads, JAX {out['jax_devices']} device(s); "
        f"{out['load_before']}")
  print(f"| {'engine':<6} | {'budget':>6} | {'run':<8} | {'s':>7} | {'prompts/s':>9} | "
        f"{'tokens/s':>9} | {'GFLOP/s':>7} | {'of peak':>7} | {'of XLA':>7} | {'padding':>7} |")
  print(f"| {'-' * 6} | {'-' * 5}:| {'-' * 8} | {'-' * 6}:| {'-' * 8}:| {'-' * 8}:| {'-' * 6}:|"
        f" {'-' * 6}:| {'-' * 6}:| {'-' * 6}:|")
  for r in out["runs"]:
    for when in ("compiled", "cold"):
      x = r[when]
      print(f"| {r['engine']:<6} | {r['token_budget']:>6} | {when:<8} | {x['seconds']:>7.2f} | "
            f"{x['prompts_per_s']:>9.1f} | {x['tokens_per_s']:>9.0f} | "
            f"{x.get('gflops', 0):>7.1f} | {100 * x.get('share_of_peak', 0):>6.1f}% | "
            f"{100 * x.get('share_of_xla_peak', 0):>6.1f}% | {x['padding_fraction']:>7.3f} |")
  for budget, ratio in out.get("ratios", {}).items():
    print(f"jax / torch prompts/s, token budget {budget}: compiled {ratio['compiled']:.2f}x, "
          f"cold {ratio['cold']:.2f}x")
  if "max_abs_difference" in out:
    print(f"largest difference between the engines' embeddings: "
          f"{out['max_abs_difference']:.2e}")
  if "torch_matmul_gflops" in out:
    print(f"torch f32 matmul on this CPU ({out['torch_threads']} threads): "
          f"{out['torch_matmul_gflops']} GFLOP/s")
  print(f"({out['load_after']} at the end)")


def select_section(config, grid: str) -> dict:
  """Times ``train.select=grid`` against one configuration (first and compiled calls)."""
  inputs, fold = timing.prepared(config)
  out = {"grid": grid, "folds": int(inputs.num_folds), "load_before": _load()}
  for name, spec in (("one", ""), ("grid", grid)):
    cfg = copy.deepcopy(config)
    with cfg.unlocked():
      cfg.train.select = spec
    settings = settings_lib.train_settings(cfg)
    call = lambda: train.train_folds(settings, int(cfg.seed), inputs.z, inputs.pairs, fold,
                                     settings_lib.layout(cfg))
    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    compiled, _ = timing.best_call(2, call)
    out[name] = {"first_s": round(first, 3), "compiled_s": round(compiled, 3),
                 "units": int(inputs.num_folds) * max(len(settings.grid()), 1),
                 "mean_test_accuracy": float(np.mean(result.test_accuracy))}
    print(f"select {name}: {out[name]}", flush=True)
  out["compiled_ratio"] = round(out["grid"]["compiled_s"] / out["one"]["compiled_s"], 2)
  out["first_ratio"] = round(out["grid"]["first_s"] / out["one"]["first_s"], 2)
  out["load_after"] = _load()
  print(f"select: {out['grid']['units'] // out['one']['units']} points, compiled "
        f"{out['compiled_ratio']}x one configuration, first call {out['first_ratio']}x "
        f"({out['load_before']} -> {out['load_after']})", flush=True)
  return out


SECTIONS = {"encoder": lambda config: encoder_section(config, _PROMPTS.value, _BUDGETS.value,
                                                     _PROFILE.value,
                                                     engines=_ENGINES.value),
            "devices": devices_section,
            "step": step_section,
            "training": lambda config: training_section(config, _SKLEARN.value,
                                                         _REPEATS.value, _FAST_ROWS.value),
            "select": lambda config: select_section(config, _SELECT.value)}


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    validate.check(config)
  except validate.ConfigError as e:
    sys.exit(f"error: {e}")
  placement.use_host_devices(int(config.train.get("host_devices", 0)))   # before JAX starts
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
