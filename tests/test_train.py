"""The vmapped trainer against a Python loop, scikit-learn, and hand-checked invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lasca_jax.model import mlp, reference, train
from lasca_jax.run import cache, pipeline, settings as settings_lib
from conftest import PAPER_CAPS, make_tiny_config, train_settings


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  config = make_tiny_config(tmp_path_factory.mktemp("cache"), **{
      "data.num_subjects": 12, "data.minutes": 5.0, "protocol.num_folds": 4,
      "train.max_epochs": 25})
  inputs = pipeline.prepare(config, cache.StageCache(config.cache_dir))
  return config, inputs


def test_vmapped_folds_equal_python_loop(prepared):
  config, inputs = prepared
  settings = settings_lib.train_settings(config)
  fold = inputs.folds
  out = train.train_folds(settings, 7, inputs.z, inputs.pairs, fold)
  single = jax.jit(train.make_train(settings, inputs.z.shape[-1]))
  keys = train.fold_keys(7, inputs.z.shape[0])
  for k in range(inputs.z.shape[0]):
    fold_k = jax.tree.map(lambda a: a[k], fold)
    ref = single(keys[k], jnp.asarray(inputs.z[k]), inputs.pairs, fold_k)
    assert float(out.test_accuracy[k]) == pytest.approx(float(ref.test_accuracy), abs=1e-6)
    assert int(out.best_epoch[k]) == int(ref.best_epoch)
    np.testing.assert_allclose(out.train_loss[k], ref.train_loss, rtol=1e-4, equal_nan=True)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[k], b, rtol=1e-4, atol=1e-5),
                 out.params, ref.params)


def test_mean_accuracy_agrees_with_sklearn(prepared):
  """Mean fold accuracy over 8 seeds x 4 folds within 2 points of MLPClassifier's.

  The 8 seeds also train in one call through the configurations axis (``train_configs``).
  """
  config, inputs = prepared
  settings = settings_lib.train_settings(config)
  seeds = list(range(8))
  stack = lambda a: np.stack([np.asarray(a)] * len(seeds))
  out = train.train_configs(settings, seeds, stack(inputs.z),
                            jax.tree.map(stack, inputs.pairs),
                            jax.tree.map(stack, inputs.folds))
  assert out.test_accuracy.shape == (8, inputs.z.shape[0])
  single = train.train_folds(settings, 3, inputs.z, inputs.pairs, inputs.folds)
  np.testing.assert_allclose(out.test_accuracy[3], single.test_accuracy, atol=1e-6)
  theirs = [reference.sklearn_fold(inputs.z[k], inputs.pairs, inputs.folds, k, seed, settings)
            for seed in seeds for k in range(inputs.z.shape[0])]
  ours, theirs = float(np.mean(out.test_accuracy)), float(np.mean(theirs))
  assert abs(ours - theirs) < 0.02, (ours, theirs)
  assert ours > 0.57      # and both learn something on the synthetic cues


def test_early_stopping_follows_sklearn_rule():
  """Validation accuracy curve -> stop epoch and kept epoch, checked against the rule by hand."""
  settings = train_settings(max_epochs=25, patience=3, tol=1e-3)
  rng = np.random.default_rng(0)
  d, w = 8, 400
  z = rng.normal(size=(w, d)).astype(np.float32)
  first = rng.integers(0, w, 300).astype(np.int32)
  second = rng.integers(0, w, 300).astype(np.int32)
  label = (rng.random(300) > 0.5).astype(np.int32)      # pure noise: early stop kicks in
  pairs = train.PairData(first, second, label)
  idx = np.arange(300, dtype=np.int32)
  fold = train.FoldData(np.concatenate([idx[:200], np.zeros(0, np.int32)]), np.int32(200),
                        idx[200:260], np.ones(60, bool), idx[260:], np.ones(40, bool))
  out = jax.jit(train.make_train(settings, d))(jax.random.key(0), z, pairs, fold)
  curve = np.asarray(out.val_curve)
  run = int(out.epochs_run)
  assert np.isnan(curve[run:]).all() and np.isfinite(curve[:run]).all()
  best, bad, stop_at, best_epoch = -np.inf, 0, None, 0
  for e, score in enumerate(curve[:run]):
    bad = bad + 1 if score < best + settings.tol else 0
    if score > best:
      best, best_epoch = score, e + 1
    if bad > settings.patience:
      stop_at = e + 1
      break
  assert stop_at == run or (stop_at is None and run == settings.max_epochs)
  assert int(out.best_epoch) == best_epoch
  assert float(out.val_accuracy) == pytest.approx(best)


def test_padding_never_changes_the_result():
  """Extra padding (all-padding batches, longer val/test/pair arrays) gives the same run.

  This is what lets a sweep stack configurations of different sizes into one call and still
  reproduce each configuration's standalone result.
  """
  settings = train_settings(max_epochs=6, batch_size=32)
  rng = np.random.default_rng(1)
  d, w = 6, 100
  z = rng.normal(size=(w, d)).astype(np.float32)
  pairs = train.PairData(rng.integers(0, w, 150).astype(np.int32),
                         rng.integers(0, w, 150).astype(np.int32),
                         (rng.random(150) > 0.5).astype(np.int32))
  idx = np.arange(150, dtype=np.int32)

  def fold(pad):
    zeros = np.zeros(pad, np.int32)
    return train.FoldData(np.concatenate([idx[:96], zeros]), np.int32(96),
                          np.concatenate([idx[96:120], zeros]),
                          np.concatenate([np.ones(24, bool), np.zeros(pad, bool)]),
                          np.concatenate([idx[120:], zeros]),
                          np.concatenate([np.ones(30, bool), np.zeros(pad, bool)]))

  fn = jax.jit(train.make_train(settings, d))
  a = fn(jax.random.key(3), z, pairs, fold(0))
  padded_pairs = jax.tree.map(lambda x: np.concatenate([x, np.zeros(50, x.dtype)]), pairs)
  b = fn(jax.random.key(3), z, padded_pairs, fold(64))
  assert float(a.test_accuracy) == float(b.test_accuracy)
  np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-5, equal_nan=True)
  np.testing.assert_allclose(a.test_prob, b.test_prob[:30], rtol=1e-5)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               a.params, b.params)


def test_hidden_sizes_and_param_count():
  settings = train_settings()
  assert settings.max_hidden == PAPER_CAPS
  assert settings.hidden_sizes(457) == (228, 114)
  assert settings.hidden_sizes(2000) == (250, 125)
  assert settings.hidden_sizes(15) == (7, 3)
  d = 73
  h1, h2 = settings.hidden_sizes(d)
  params = mlp.PreferenceMLP((h1, h2)).init(jax.random.key(0), jnp.zeros((1, d)))["params"]
  assert sum(x.size for x in jax.tree.leaves(params)) == settings.num_params(d)
  assert settings.num_params(d) == d * h1 + h1 + h1 * h2 + h2 + h2 + 1
  assert mlp.layer_sizes(params) == (d, h1, h2, 1)
