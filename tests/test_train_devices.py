"""Training sharded over several (simulated) devices gives exactly the one-device results."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from lasca_jax.model import mlp, placement, train
from lasca_jax.run import settings as settings_lib
from conftest import PAPER_CAPS, train_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh process: XLA_FLAGS must be set before JAX starts.
_SCRIPT = r"""
import json, sys
import jax, numpy as np
from lasca_jax.model import placement, train
assert len(jax.local_devices()) == 4, jax.local_devices()
rng = np.random.default_rng(0)
num_folds, w, d, p = 7, 60, 6, 160
base = rng.normal(size=(w, d)).astype(np.float32)
scales = np.linspace(0.2, 3.0, num_folds)[:, None, None]   # folds differ, so they stop apart
z = (base + scales * rng.normal(size=(num_folds, w, d))).astype(np.float32)
first, second = rng.integers(0, w, p), rng.integers(0, w, p)
label = (base[second] - base[first]) @ rng.normal(size=d) > 0
pairs = train.PairData(first.astype(np.int32), second.astype(np.int32), label.astype(np.int32))
idx = np.arange(p, dtype=np.int32)
counts = np.array([96, 90, 70, 96, 64, 80, 96], np.int32)
fold = train.FoldData(np.tile(idx[:96], (num_folds, 1)), counts,
                      np.tile(idx[96:130], (num_folds, 1)), np.ones((num_folds, 34), bool),
                      np.tile(idx[130:], (num_folds, 1)), np.ones((num_folds, 30), bool))
settings = train.TrainSettings(max_epochs=12, learning_rate=1e-2, alpha=1.0, tol=1e-3, patience=3,
                               batch_size=32, max_hidden=(250, 125), hidden_dim=0)
results = {}
for devices in (1, 4):
  for lanes in (1, 2):
    layout = placement.Layout(devices=devices, lanes=lanes)
    out = train.train_folds(settings, 5, z, pairs, fold, layout=layout)
    plan = placement.plan(num_folds, layout)
    results[f"{devices}x{lanes}"] = {
        "plan": plan._asdict(),
        "arrays": {k: np.asarray(v).tolist() for k, v in out._asdict().items() if k != "params"},
        "params": [np.asarray(a).tolist() for a in jax.tree.leaves(out.params)]}
json.dump(results, sys.stdout)
"""


def test_four_devices_equal_one_device_with_padded_units():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads(proc.stdout)
  # 7 folds on 4 devices: padded to 8 units (2 per device); in lanes of 2 on one device: 8 too.
  assert results["4x1"]["plan"]["devices"] == 4 and results["4x1"]["plan"]["padded_units"] == 8
  assert results["4x2"]["plan"]["lanes"] == 2 and results["4x2"]["plan"]["padded_units"] == 8
  assert results["1x2"]["plan"]["padded_units"] == 8
  assert results["1x1"]["plan"]["padded_units"] == 7
  assert len(results["1x1"]["arrays"]["test_accuracy"]) == 7
  assert len(set(results["1x1"]["arrays"]["epochs_run"])) > 1   # folds stop at different epochs
  # One unit at a time (the CPU default): 4 devices give the 1-device results bit for bit.
  one, four = results["1x1"], results["4x1"]
  for key, value in one["arrays"].items():
    np.testing.assert_array_equal(np.array(four["arrays"][key]), np.array(value), err_msg=key)
  for a, b in zip(four["params"], one["params"]):
    np.testing.assert_array_equal(np.array(a), np.array(b))
  # Vmapped lanes (different XLA programs): the same decisions, floats within rounding.
  for name in ("1x2", "4x2"):
    other = results[name]["arrays"]
    for key in ("test_accuracy", "val_accuracy", "best_epoch", "epochs_run"):
      np.testing.assert_array_equal(np.array(other[key]), np.array(one["arrays"][key]),
                                    err_msg=f"{name}: {key}")
    for key in ("test_prob", "train_loss", "val_curve"):
      np.testing.assert_allclose(np.array(other[key]), np.array(one["arrays"][key]), rtol=1e-5,
                                 atol=1e-6, err_msg=f"{name}: {key}")


def test_plan_and_devices_errors():
  p = placement.plan(15, placement.Layout(devices=1, lanes=4))
  assert (p.units, p.devices, p.lanes, p.padded_units) == (15, 1, 4, 16)
  assert placement.plan(3, placement.Layout(devices=1, lanes=8)).lanes == 3
  with pytest.raises(ValueError, match="train.devices = 99"):
    placement.local_devices(99)
  with pytest.raises(ValueError, match="train.lanes"):
    placement.plan(3, placement.Layout(lanes=-1))


def test_shape_class_bounds_padding_and_is_idempotent():
  for n in range(1, 5000, 7):
    c = train.shape_class(n)
    assert n <= c <= max(8, n * 1.125) and train.shape_class(c) == c
    c = train.shape_class(n, 200)
    assert c % 200 == 0 and c >= n and train.shape_class(c, 200) == c
  assert [train.shape_class(n) for n in (8, 9, 17, 2401)] == [8, 9, 18, 2560]


def test_flops_per_pair_counts_the_matmuls():
  d, (h1, h2) = 457, mlp.hidden_sizes(457, PAPER_CAPS)
  forward, step = mlp.flops_per_pair(d, (h1, h2))
  assert forward == 2 * (d * h1 + h1 * h2 + h2)
  # backward: weight gradients of all layers + input gradients of layers 2 and 3.
  assert step == forward + 2 * (d * h1 + h1 * h2 + h2) + 2 * (h1 * h2 + h2)
  out = train.TrainOutput(None, None, None, None, None, np.array([2, 3]), None, None)
  fold = train.FoldData(None, np.array([100, 50]), None, np.ones((2, 10), bool), None,
                        np.array([[True] * 4 + [False] * 2] * 2))
  expected = (2 * (100 * step + 10 * forward) + 3 * (50 * step + 10 * forward)
              + 2 * 4 * forward)
  assert train.run_flops(out, fold, d, (h1, h2)) == expected


_CACHE_SCRIPT = r"""
import os, sys
import jax, numpy as np
from lasca_jax.model import placement, train
target, other = sys.argv[1], sys.argv[2]
assert placement.enable_compilation_cache("none") is None
assert not jax.config.jax_compilation_cache_dir
assert placement.enable_compilation_cache(target) == target
assert placement.enable_compilation_cache(other) == target      # set once per process: kept
rng = np.random.default_rng(0)
z = rng.normal(size=(2, 40, 5)).astype(np.float32)
pairs = train.PairData(rng.integers(0, 40, 90).astype(np.int32),
                       rng.integers(0, 40, 90).astype(np.int32),
                       (rng.random(90) > 0.5).astype(np.int32))
idx = np.arange(90, dtype=np.int32)
fold = train.FoldData(np.tile(idx[:64], (2, 1)), np.array([64, 50], np.int32),
                      np.tile(idx[64:80], (2, 1)), np.ones((2, 16), bool),
                      np.tile(idx[80:], (2, 1)), np.ones((2, 10), bool))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
settings = train.TrainSettings(max_epochs=3, learning_rate=1e-3, alpha=1.0, tol=1e-3, patience=3,
                               batch_size=16, max_hidden=(250, 125), hidden_dim=0)
train.train_folds(settings, 0, z, pairs, fold)
print(sum(len(files) for _, _, files in os.walk(target)), os.path.exists(other))
"""


def test_compilation_cache_is_set_once_and_stores_the_trainer(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, str(tmp_path / "xla"),
                         str(tmp_path / "other")], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  files, other_exists = proc.stdout.split()
  assert int(files) > 0 and other_exists == "False"


def test_runs_of_one_shape_class_share_one_compiled_program(no_program_store):
  settings = train_settings(max_epochs=2, batch_size=16)
  rng = np.random.default_rng(2)
  outs = []
  for w, p, n_val, n_test in ((57, 150, 24, 30), (60, 155, 23, 29)):   # classes 60, 160, 24, 30
    z = rng.normal(size=(2, w, 5)).astype(np.float32)
    pairs = train.PairData(rng.integers(0, w, p).astype(np.int32),
                           rng.integers(0, w, p).astype(np.int32),
                           (rng.random(p) > 0.5).astype(np.int32))
    idx = np.arange(p, dtype=np.int32)
    val, test = idx[96:96 + n_val], idx[96 + n_val:96 + n_val + n_test]
    fold = train.FoldData(np.tile(idx[:96], (2, 1)), np.array([96, 80], np.int32),
                          np.tile(val, (2, 1)), np.ones((2, n_val), bool),
                          np.tile(test, (2, 1)), np.ones((2, n_test), bool))
    outs.append(train.train_folds(settings, 0, z, pairs, fold, layout=placement.Layout(1, 1)))
  assert outs[1].test_prob.shape == (2, 29)    # the caller's own test columns come back
  program = train._program(settings, 5, 1, tuple(placement.local_devices(1)))  # pylint: disable=protected-access
  assert program._cache_size() == 1            # pylint: disable=protected-access


def test_layout_fields_are_validated_and_read(tmp_path):
  from conftest import make_tiny_config  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import validate  # pylint: disable=import-outside-toplevel
  config = make_tiny_config(tmp_path / "cache", **{"train.devices": -1, "train.lanes": 2})
  with pytest.raises(validate.ConfigError, match=r"train.devices=-1"):
    validate.check(config)
  config.train.devices = 1
  validate.check(config)
  assert settings_lib.layout(config) == placement.Layout(devices=1, lanes=2)


def test_host_device_flags_keep_an_explicit_count():
  assert placement.host_device_flags("", 3) == f"{placement.HOST_DEVICE_FLAG}=3"
  assert placement.host_device_flags("--xla_foo=1", 2) == f"--xla_foo=1 {placement.HOST_DEVICE_FLAG}=2"
  explicit = f"{placement.HOST_DEVICE_FLAG}=4"
  assert placement.host_device_flags(explicit, 2) == explicit
  with pytest.raises(ValueError, match="train.host_devices"):
    placement.use_host_devices(-1)


_HOST_SCRIPT = r"""
import sys, jax
from lasca_jax.model import placement, train
from lasca_jax.run import settings as settings_lib
asked = placement.use_host_devices(int(sys.argv[1]))
n = len(jax.local_devices())
placement.use_host_devices(5)            # JAX has started: changes nothing
print(asked, n, len(jax.local_devices()), placement.plan(2).devices, placement.plan(15).devices)
"""


@pytest.mark.parametrize("count", [0, 3])
def test_host_devices_split_the_cpu_before_jax_starts(count):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", _HOST_SCRIPT, str(count)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  asked, seen, later, two_units, fifteen_units = map(int, proc.stdout.split())
  expected = count or placement.usable_cores()
  assert asked == seen == later == expected
  assert two_units == min(2, expected) and fifteen_units == min(15, expected)


def _small_problem(seed: int = 3, units: int = 3, w: int = 40, d: int = 5, p: int = 120):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(units, w, d)).astype(np.float32)
  first, second = rng.integers(0, w, p), rng.integers(0, w, p)
  label = (z[0, second] - z[0, first]) @ rng.normal(size=d) > 0
  pairs = train.PairData(first.astype(np.int32), second.astype(np.int32), label.astype(np.int32))
  idx = np.arange(p, dtype=np.int32)
  fold = train.FoldData(np.tile(idx[:80], (units, 1)), np.array([80, 64, 48][:units], np.int32),
                        np.tile(idx[80:100], (units, 1)), np.ones((units, 20), bool),
                        np.tile(idx[100:], (units, 1)), np.ones((units, 20), bool))
  return z, pairs, fold


def test_padding_unit_runs_no_epoch():
  settings = train_settings(max_epochs=6, batch_size=16)
  z, pairs, fold = _small_problem(units=1)
  one = jax.tree.map(lambda a: a[0], fold)
  fn = jax.jit(train.make_train(settings, z.shape[-1]))
  key = train.fold_keys(0, 1)[0]
  idle = fn(key, z[0], pairs, one, False)
  assert int(idle.epochs_run) == 0 and np.all(np.isnan(idle.train_loss))
  busy = fn(key, z[0], pairs, one, True)
  assert int(busy.epochs_run) > 0 and np.isfinite(busy.train_loss[0])


def test_train_units_marks_only_the_padding_inactive(monkeypatch, no_program_store):
  """3 units in lanes of 2 are padded to 4; the program is told that only the 4th is a pad."""
  settings = train_settings(max_epochs=3, batch_size=16)
  z, pairs, fold = _small_problem()
  seen = {}
  program = train._program  # pylint: disable=protected-access

  def spy(*key):
    fn = program(*key)

    def call(seeds, fold_numbers, active, *rest):
      seen.update(seeds=np.asarray(seeds), folds=np.asarray(fold_numbers),
                  active=np.asarray(active))
      return fn(seeds, fold_numbers, active, *rest)
    return call
  monkeypatch.setattr(train, "_program", spy)
  out = train.train_folds(settings, 6, z, pairs, fold, layout=placement.Layout(1, 2))
  assert seen["active"].tolist() == [True, True, True, False]
  assert seen["seeds"].tolist() == [6] * 4 and seen["folds"].tolist() == [0, 1, 2, 0]
  assert out.test_accuracy.shape == (3,)


def test_cpu_compiler_options_leave_results_bit_identical(monkeypatch):
  """Also for vmapped lanes (a different program), with a padding unit among them."""
  settings = train_settings(max_epochs=8, batch_size=16)
  z, pairs, fold = _small_problem()
  layouts = (placement.Layout(1, 1), placement.Layout(1, 2))
  with_options = [train.train_folds(settings, 1, z, pairs, fold, layout=l) for l in layouts]
  assert placement.CPU_COMPILER_OPTIONS
  monkeypatch.setattr(placement, "CPU_COMPILER_OPTIONS", None)
  train.clear_compiled()
  plain = [train.train_folds(settings, 1, z, pairs, fold, layout=l) for l in layouts]
  train.clear_compiled()
  for ours, theirs in zip(with_options, plain):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
      np.testing.assert_array_equal(a, b)


def test_units_keys_follow_seed_and_fold_number():
  """A unit trains as fold ``f`` of a run with seed ``s``, wherever it sits in the call."""
  settings = train_settings(max_epochs=4, batch_size=16)
  z, pairs, fold = _small_problem()
  same = lambda a: np.stack([np.asarray(a)[0]] * 3)       # three units with identical data
  z, fold = same(z), jax.tree.map(same, fold)
  per_unit = train.PairData(*[np.broadcast_to(a, (3,) + a.shape) for a in pairs])
  out = train.train_units(settings, [4, 4, 9], [2, 0, 2], z, per_unit, fold, placement.Layout(1, 1))
  # Fold 2 of a 3-fold run with seed 4 (train_folds), on the same data: unit 0 bit for bit.
  run = train.train_folds(settings, 4, z, pairs, fold, layout=placement.Layout(1, 1))
  for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(run)):
    np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[2])
  # The fold number and the seed each change the key, hence the initial weights.
  w = np.asarray(out.params["SklearnDense_0"]["kernel"])
  assert not np.array_equal(w[0], w[1]) and not np.array_equal(w[0], w[2])
  # Seeds of 32 bits, as Python ints give them eagerly; beyond, a clear error.
  high = train.train_units(settings, [2**32 - 1], [1], z[:1], jax.tree.map(lambda a: a[:1],
                           per_unit), jax.tree.map(lambda a: a[:1], fold), placement.Layout(1, 1))
  eager = jax.jit(train.make_train(settings, z.shape[-1]))(
      jax.random.fold_in(jax.random.key(2**32 - 1), 1), z[1], pairs,
      jax.tree.map(lambda a: a[1], fold))
  np.testing.assert_array_equal(high.test_prob[0], np.asarray(eager.test_prob)[:20])
  with pytest.raises(ValueError, match="seed 4294967296 is outside"):
    train.train_units(settings, [2**32, 0, 0], [0, 1, 2], z, per_unit, fold)


def test_seed_must_fit_32_bits(tmp_path):
  from conftest import make_tiny_config  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import validate  # pylint: disable=import-outside-toplevel
  validate.check(make_tiny_config(tmp_path / "cache", seed=2**32 - 1))
  with pytest.raises(validate.ConfigError, match=r"seed=4294967296"):
    validate.check(make_tiny_config(tmp_path / "cache", seed=2**32))


def test_fast_compile_is_read_passed_to_xla_and_changes_rounding_only(tmp_path, monkeypatch,
                                                                    no_program_store):
  """``train.fast_compile`` (XLA -O1 on a CPU) is read from the config and handed to ``jit``; its
  results agree with the default program's to rounding, with the same decisions."""
  from conftest import make_tiny_config  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import validate  # pylint: disable=import-outside-toplevel
  config = make_tiny_config(tmp_path / "cache", **{"train.fast_compile": True})
  validate.check(config)
  assert settings_lib.train_settings(config).fast_compile
  settings = train_settings(max_epochs=8, batch_size=16)
  z, pairs, fold = _small_problem(d=32)
  train.clear_compiled()                  # so that both programs are built here
  jit, options = jax.jit, []

  def recording_jit(fn, **kwargs):
    options.append(kwargs.get("compiler_options"))
    return jit(fn, **kwargs)
  monkeypatch.setattr(jax, "jit", recording_jit)
  exact = train.train_folds(settings, 1, z, pairs, fold, layout=placement.Layout(1, 1))
  fast = train.train_folds(dataclasses.replace(settings, fast_compile=True), 1, z, pairs, fold,
                           layout=placement.Layout(1, 1))
  monkeypatch.undo()
  assert options == [placement.CPU_COMPILER_OPTIONS, placement.CPU_FAST_COMPILER_OPTIONS]
  assert placement.CPU_FAST_COMPILER_OPTIONS["xla_backend_optimization_level"] == 1
  for key in ("test_accuracy", "val_accuracy", "best_epoch", "epochs_run"):
    np.testing.assert_array_equal(getattr(fast, key), getattr(exact, key), err_msg=key)
  np.testing.assert_allclose(fast.test_prob, exact.test_prob, atol=1e-4)


def test_benchmark_scale_runs_and_times_the_pipelines_trainer(tmp_path):
  """experiments/benchmark_scale.py end to end on the tiny config (devices, step, training): it
  trains the configuration's real folds, so its accuracy is the pipeline's."""
  from conftest import make_tiny_config  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import cache, pipeline  # pylint: disable=import-outside-toplevel
  out = tmp_path / "scale.json"
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "benchmark_scale.py"),
         "--config=" + os.path.join(ROOT, "configs", "synthetic.py") + ":runlocal",
         f"--config.cache_dir={tmp_path / 'cache'}", "--config.model.fusion=features",
         "--sections=devices,step,training", "--steps=2", "--repeats=1",
         "--fast_compile_rows=false", f"--output={out}"]
  env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=ROOT)
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "two cores together:" in done.stdout and "first run (compilation" in done.stdout
  result = json.loads(out.read_text())
  step = result["step"]
  assert len(step["together"]) == 2 and step["alone"]["steps"] == 2
  assert step["alone"]["d"] == result["training"]["d"]
  config = make_tiny_config(tmp_path / "cache")
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  ours = train.train_folds(settings_lib.train_settings(config), int(config.seed), inputs.z,
                           inputs.pairs, inputs.folds)
  assert result["training"]["mean_test_accuracy"] == float(np.mean(ours.test_accuracy))
  training = result["training"]
  assert training["folds"] == inputs.z.shape[0]
  assert "fast_first_run_s" not in training
  # scikit-learn timed in its own process; each ratio is the round's sklearn time over the row's.
  (round_,) = training["rounds"]
  for key in ("first_run_s", "repeated_run_s", "compiled_s"):
    assert training[f"ratio_{key}"]["median"] == pytest.approx(round_["sklearn_s"] / round_[key])
  assert round_["stored_programs"][1]["loaded"] == 1     # the repeated run loaded the program
  from lasca_jax.model import reference  # pylint: disable=import-outside-toplevel
  settings = settings_lib.train_settings(config)
  theirs = [reference.sklearn_fold(inputs.z[k], inputs.pairs, inputs.folds, k, int(config.seed),
                                   settings) for k in range(inputs.z.shape[0])]
  assert training["sklearn_mean_test_accuracy"] == float(np.mean(theirs))
