"""The run-directory writer, declared stages with typed results, and what prepare returns."""

import dataclasses
import inspect
import json
import os

import numpy as np
import pytest

from lasca_jax.data import files as files_lib
from lasca_jax.data.records import ArrayRecord
from lasca_jax.inference import ensemble, stream
from lasca_jax.method import lexicon, pairs as pairs_lib, windows as windows_lib
from lasca_jax.run import cache as cache_lib, labels, pipeline, rundir, stages
from conftest import make_tiny_config


@dataclasses.dataclass(frozen=True, eq=False)
class _Sum(ArrayRecord):
  total: np.ndarray


def _toy_stage(calls):
  def compute(values, scale, rule, upstream):
    calls.append(upstream)
    return _Sum(np.asarray(values).sum() * scale + len(rule))
  return stages.Stage("toy", 1, compute, _Sum)


def test_a_stage_key_tracks_every_compute_argument_and_only_them(tmp_path):
  calls = []
  toy = _toy_stage(calls)
  cache = cache_lib.StageCache(str(tmp_path))
  base = dict(values=np.arange(4.0), scale=2.0, rule="otsu", upstream=stages.Keyed("k1", "a"))
  first = toy(cache, **base)
  assert isinstance(first.value, _Sum) and float(first.value.total) == 16.0
  again = toy(cache, **base)
  assert again.key == first.key and cache.hits == {"toy": 1} and len(calls) == 1
  # The key is the hash of exactly what compute receives (a Keyed input by its key).
  assert first.key == cache_lib.hash_key("toy", {**base, "upstream": "k1"}, 1)
  changed = {"values": np.array([0.0, 1.0, 2.0, 4.0]), "scale": 3.0, "rule": "topk",
             "upstream": stages.Keyed("k2", "a")}
  keys = {first.key}
  for name, value in changed.items():
    keys.add(toy.key(**{**base, name: value}))
  assert len(keys) == 1 + len(changed)
  # A Keyed input is identified by its key, not its value; the version is part of the key.
  assert toy.key(**{**base, "upstream": stages.Keyed("k1", "other")}) == first.key
  assert dataclasses.replace(toy, version=2).key(**base) != first.key
  # An input compute does not take, or a missing one, is an error even where an entry exists.
  with pytest.raises(TypeError):
    toy(cache, **base, margin=0.1)
  with pytest.raises(TypeError):
    toy(cache, **{k: v for k, v in base.items() if k != "scale"})


def test_a_stage_entry_of_another_layout_is_recomputed(tmp_path):
  calls = []
  toy = _toy_stage(calls)
  cache = cache_lib.StageCache(str(tmp_path))
  args = dict(values=np.ones(3), scale=1.0, rule="", upstream=stages.Keyed("k", None))
  key = toy.key(**args)
  files_lib.save_npz_atomic(cache.path("toy", key), {"other": np.zeros(1)})
  out = toy(cache, **args)
  assert float(out.value.total) == 3.0 and cache.misses == {"toy": 1} and len(calls) == 1
  assert set(files_lib.load_npz(cache.path("toy", key))) == {"total"}


def test_pipeline_stages_take_exactly_the_arguments_they_are_keyed_by():
  declared = [v for v in vars(stages).values() if isinstance(v, stages.Stage)]
  assert {s.name for s in declared} == {"frames", "windows", "normalise", "pairs", "salience",
                                        "salience_values", "prompts", "baseline"}
  for s in declared:
    params = inspect.signature(s.compute).parameters.values()
    # Only named arguments (no *args/**kwargs): whatever is hashed is passed, and vice versa.
    assert all(p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params), s


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_backbone):
  root = tmp_path_factory.mktemp("stages")
  config = make_tiny_config(root / "cache", **{"model.fusion": "fused",
                                               "text.backbone": tiny_backbone})
  cache = cache_lib.StageCache(config.cache_dir)
  return config, cache, pipeline.prepare(config, cache)


def test_stage_results_round_trip_exactly_through_npz(prepared, tmp_path):
  config, cache, inputs = prepared
  frames = stages.frames(cache, data=stages.data_input(config.data)).value
  win = inputs.windows
  pairs = pairs_lib.make_pairs(win, inputs.usable, "arousal", 0.1)
  records = [frames, win, pairs, stages.Normalised(np.ones((2, 3, 4), np.float32),
                                                   np.zeros((2, 4)), np.ones((2, 4))),
             stages.PromptTable(np.array(["a", "b c"]), np.array([[0, 1]], np.int32))]
  for record in records:
    path = tmp_path / f"{type(record).__name__}.npz"
    np.savez(path, **record.to_npz())
    back = type(record).from_npz(files_lib.load_npz(str(path)))
    for field in dataclasses.fields(record):
      a, b = getattr(record, field.name), getattr(back, field.name)
      assert np.asarray(a).dtype == b.dtype and np.asarray(a).shape == b.shape, field.name
      np.testing.assert_array_equal(a, b)
  with pytest.raises(KeyError, match="Pairs: arrays lack \\['recording'\\]"):
    pairs_lib.Pairs.from_npz({k: v for k, v in pairs.to_npz().items() if k != "recording"})
  with pytest.raises(KeyError, match="unexpected \\['extra'\\]"):
    pairs_lib.Pairs.from_npz({**pairs.to_npz(), "extra": np.zeros(1)})


def test_changing_any_normalise_input_changes_its_key(prepared):
  _, cache, inputs = prepared
  win = stages.Keyed(inputs.keys.windows, inputs.windows)
  base = dict(windows=win, modality="multimodal", clip=True, usable=inputs.usable,
              train_subjects=inputs.splits.train, subjects=inputs.splits.subjects)
  assert stages.normalise.key(**base) == inputs.keys.normalise
  usable = inputs.usable.copy()
  usable[np.flatnonzero(usable)[0]] = False
  train = inputs.splits.train.copy()
  train[0] = ~train[0]
  changed = {"windows": stages.Keyed("other", inputs.windows), "modality": "visual",
             "clip": False, "usable": usable, "train_subjects": train,
             "subjects": inputs.splits.subjects[::-1].copy()}
  for name, value in changed.items():
    assert stages.normalise.key(**{**base, name: value}) != inputs.keys.normalise, name


def test_prepare_returns_what_bundles_and_predictors_need(prepared):
  config, _, inputs = prepared
  raw = inputs.raw
  f = raw.shape[1]
  assert f == len(inputs.feature_names) == len(inputs.modalities) == len(inputs.phrases) == 73
  assert inputs.phrases == lexicon.build_lexicon(
      pipeline.lexicon_kind(config), inputs.feature_names, inputs.modalities, int(config.text.lexicon_seed),
      config.text.uncovered)
  for k in range(inputs.num_folds):
    lo, span = windows_lib.minmax_stats(raw, inputs.train_windows(k))
    np.testing.assert_array_equal(inputs.lo[k], lo)
    np.testing.assert_array_equal(inputs.span[k], span)
    # The feature part of z is exactly the fold's statistics applied to the raw windows.
    np.testing.assert_array_equal(inputs.z[k, :, :f], windows_lib.minmax_apply(
        raw, lo, span, bool(config.features.clip)))
  # The text part is the prompt table's embedding of each window's prompt.
  np.testing.assert_array_equal(inputs.z[..., f:], inputs.prompt_embeddings[inputs.prompt_index])
  np.testing.assert_array_equal(inputs.window_subject,
                                np.searchsorted(inputs.splits.subjects, inputs.windows.subject))
  assert inputs.model_label == labels.model_label(config) and inputs.input_dim == f + 32


def test_the_consecutive_window_rule_is_shared_by_pairs_and_the_latency_path(prepared):
  _, _, inputs = prepared
  steps = windows_lib.consecutive_steps(inputs.windows, inputs.usable)
  pairs = pairs_lib.make_pairs(inputs.windows, inputs.usable, "arousal", 0.0, 1e-3)
  forward = {(a, b) for a, b in zip(pairs.first.tolist(), pairs.second.tolist()) if b == a + 1}
  assert forward and forward <= set(map(tuple, steps.tolist()))
  w = inputs.windows
  for a, b in steps:
    assert w.recording[a] == w.recording[b] and w.position[b] == w.position[a] + 1
    assert inputs.usable[a] and inputs.usable[b]


STALE = ("results.npz", "failed.json", "log.jsonl", os.path.join("bundle", "bundle.json"))


def _plant_stale(folder):
  for name in STALE + ("notes.txt",):
    os.makedirs(os.path.dirname(os.path.join(folder, name)) or folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
      f.write("old")


def test_starting_a_run_clears_stale_outputs_and_writes_the_config(tmp_path):
  config = make_tiny_config(tmp_path / "cache")
  folder = str(tmp_path / "run")
  _plant_stale(folder)
  out = rundir.RunDir.start(folder, config, {"model_label": "Features"}, cache_dir="c")
  for name in STALE[:2] + STALE[3:]:
    assert not os.path.exists(os.path.join(folder, name)), name
  assert open(os.path.join(folder, "notes.txt")).read() == "old"        # not ours: kept
  saved = json.load(open(os.path.join(folder, "config.json")))
  assert saved["model_label"] == "Features" and saved["pairs"] == config.pairs.to_dict()
  events = [json.loads(l) for l in open(os.path.join(folder, "log.jsonl"))]
  assert [e["event"] for e in events] == ["start"]
  assert events[0]["cache_dir"] == "c" and events[0]["workdir"] == folder
  assert not out.holds(config)                       # no results yet


def test_run_dir_writes_are_atomic(tmp_path, monkeypatch):
  out = rundir.RunDir(str(tmp_path))
  out.write_results({"a": np.arange(3)})

  def killed(f, **arrays):
    f.write(b"half a file")
    raise KeyboardInterrupt
  monkeypatch.setattr(np, "savez", killed)
  with pytest.raises(KeyboardInterrupt):
    out.write_results({"a": np.arange(5)})
  monkeypatch.undo()
  np.testing.assert_array_equal(np.load(tmp_path / "results.npz")["a"], np.arange(3))
  assert sorted(os.listdir(tmp_path)) == ["results.npz"]            # no temporary file left


def test_a_run_dir_without_a_path_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = make_tiny_config(tmp_path / "cache")   # (a path only: nothing creates it here)
  out = rundir.RunDir.start(None, config, {"model_label": "x"})
  out.write_results({"a": np.zeros(1)})
  out.write_json("summary.json", {})
  out.fail(config, "prepare", ValueError("bad"))
  assert os.listdir(tmp_path) == []


def test_failures_are_recorded_for_exactly_their_config(tmp_path):
  config = make_tiny_config(tmp_path / "cache")
  out = rundir.RunDir.start(str(tmp_path / "run"), config)
  record = out.fail(config, "prepare", ValueError("no preference pairs"))
  assert record["stage"] == "prepare" and record["error"] == "ValueError"
  assert rundir.RunDir(out.path).recorded_failure(config) == record
  config.pairs.margin = 0.5
  assert rundir.RunDir(out.path).recorded_failure(config) is None
  assert json.loads(open(out.file("log.jsonl")).readlines()[-1])["event"] == "failed"
  # A new start of the same directory forgets the failure.
  rundir.RunDir.start(out.path, config)
  assert not os.path.exists(out.file("failed.json"))


def test_the_efficiency_run_is_a_main_run(tmp_path):
  """trained_predictor goes through the same lifecycle: same results, same bundle statistics."""
  config = make_tiny_config(tmp_path / "cache")
  results = pipeline.run(config, str(tmp_path / "main"))
  tp = stream.trained_predictor(config, fold=1, workdir=str(tmp_path / "eff"))
  saved = np.load(tmp_path / "eff" / "results.npz")
  assert set(saved.files) == {k for k in results if not k.startswith("_")}
  for key in saved.files:
    np.testing.assert_array_equal(saved[key], results[key])
  predictor = ensemble.load_bundle(str(tmp_path / "eff"))
  np.testing.assert_array_equal(predictor.lo[1], tp.predictor.stats.lo)
  np.testing.assert_array_equal(predictor.span[1], tp.predictor.stats.span)
  assert json.load(open(tmp_path / "eff" / "config.json")) == json.load(
      open(tmp_path / "main" / "config.json"))


def test_a_prediction_folder_is_started_afresh(tmp_path):
  folder = tmp_path / "pred"
  folder.mkdir()
  for name in rundir.PREDICT_OUTPUTS + ("input.csv",):
    (folder / name).write_text("old")
  out = rundir.RunDir.start(str(folder), outputs=rundir.PREDICT_OUTPUTS)
  assert sorted(os.listdir(folder)) == ["input.csv"]          # no config.json, no log.jsonl
  out.write_json("summary.json", {"decided": 3}, indent=1)
  assert json.load(open(folder / "summary.json")) == {"decided": 3}


def test_a_run_written_before_a_new_default_field_is_still_recognised(tmp_path):
  """A sweep resumed after an upgrade keeps its finished runs: a field missing from an older
  config.json counts as its default; a changed or non-default value does not match."""
  from conftest import make_tiny_config  # pylint: disable=import-outside-toplevel
  config = make_tiny_config(tmp_path / "cache")
  out = rundir.RunDir.start(str(tmp_path / "run"), config)
  out.write_results({"a": np.arange(3)})
  os.makedirs(os.path.dirname(out.file(rundir.BUNDLE_FILE)), exist_ok=True)
  open(out.file(rundir.BUNDLE_FILE), "w").write("{}")
  assert out.holds(config)
  saved = json.load(open(out.file("config.json")))
  del saved["train"]["fast_compile"]                   # as written before the field existed
  json.dump(saved, open(out.file("config.json"), "w"))
  assert out.holds(config)
  config.train.fast_compile = True                     # not the default: a different run
  assert not out.holds(config)
  config.train.fast_compile = False
  config.train.max_epochs += 1                          # any changed field: a different run
  assert not out.holds(config)
  config.train.max_epochs -= 1
  saved["train"]["removed_field"] = 1                   # a field this release no longer has
  json.dump(saved, open(out.file("config.json"), "w"))
  assert not out.holds(config)
  json.dump([1, 2], open(out.file("config.json"), "w"))  # not a config at all
  assert not out.holds(config)
