"""Windows, normalisation, pairs and protocols: exact values and invariants."""

import types

import numpy as np
import pytest

from lasca_jax.data.types import Recording
from lasca_jax.method import pairs as pairs_lib, protocols, windows as windows_lib


def _recording(rid, subject, n, fps=10.0, seed=0, feats=None):
  rng = np.random.default_rng(seed)
  return Recording(
      recording_id=rid, subject_id=subject, times=np.arange(n) / fps,
      features=feats if feats is not None else rng.random((n, 3)).astype(np.float32),
      feature_names=("a", "b", "m"), modalities=("face", "face", "audio"),
      valence=rng.uniform(-1, 1, n).astype(np.float32),
      arousal=rng.uniform(-1, 1, n).astype(np.float32))


def test_windows_mean_pool_exactly_and_track_coverage():
  feats = np.arange(75 * 3, dtype=np.float32).reshape(75, 3)
  feats[12, 0] = np.nan                    # a missed face frame in window 0
  rec = _recording("r0", "s0", 75, feats=feats)
  win = windows_lib.make_windows(windows_lib.frames_to_arrays([rec]), 3.0)
  assert win.features.shape == (3, 3)                       # 0-3 s, 3-6 s, 6-7.5 s
  np.testing.assert_allclose(win.features[1], feats[30:60].mean(0))
  np.testing.assert_allclose(win.features[0, 0], np.delete(feats[:30, 0], 12).mean())
  np.testing.assert_allclose(win.arousal[1], rec.arousal[30:60].mean(), rtol=1e-6)
  np.testing.assert_allclose(win.coverage[:, 0], [29 / 30, 1.0, 0.5])
  usable = windows_lib.usable_windows(win, "visual", 0.6)
  np.testing.assert_array_equal(usable, [True, True, False])   # partial trailing window dropped
  np.testing.assert_array_equal(win.position, [0, 1, 2])


def test_normalisation_uses_training_windows_only_and_handles_constants():
  rng = np.random.default_rng(0)
  x = rng.random((20, 4)).astype(np.float32)
  x[:, 2] = 0.7                                                # constant feature
  train = np.arange(20) < 12
  out = windows_lib.minmax_normalise(x, train)
  assert np.isfinite(out).all()
  np.testing.assert_allclose(out[train].min(0)[[0, 1, 3]], 0.0, atol=1e-7)
  np.testing.assert_allclose(out[train].max(0)[[0, 1, 3]], 1.0, atol=1e-6)
  np.testing.assert_array_equal(out[:, 2], 0.0)
  # Changing test windows (even wildly) leaves every training window's value unchanged.
  x2 = x.copy()
  x2[~train] = 100 * rng.normal(size=x2[~train].shape)
  out2 = windows_lib.minmax_normalise(x2, train)
  np.testing.assert_array_equal(out2[train], out[train])
  assert out2.min() >= 0 and out2.max() <= 1                 # clipped


def _windows_with_labels(values, recording=None):
  n = len(values)
  rec = np.zeros(n, np.int32) if recording is None else np.asarray(recording, np.int32)
  pos = np.concatenate([np.arange((rec == r).sum()) for r in np.unique(rec)]).astype(np.int32)
  return types.SimpleNamespace(arousal=np.asarray(values, np.float32),
                               valence=np.zeros(n, np.float32), recording=rec, position=pos)


def test_pairs_obey_margin_and_are_antisymmetric():
  a = [0.5, 0.52, 0.7, 0.7, 0.0, 0.001, -0.5, -0.3]
  win = _windows_with_labels(a)
  p = pairs_lib.make_pairs(win, np.ones(len(a), bool), "arousal", margin=0.1, eps=1e-3)
  # Hand-computed: (0,1) 4% no; (1,2) yes up; (2,3) 0 no; (3,4) yes down; (4,5) |0.001|/1e-3 = 1
  # yes up; (5,6) yes down; (6,7) 40% yes up.
  kept = sorted(set(map(tuple, np.sort(np.stack([p.first, p.second], 1), 1).tolist())))
  assert kept == [(1, 2), (3, 4), (4, 5), (5, 6), (6, 7)]
  for f, s, y in zip(p.first, p.second, p.label):
    assert y == int(a[s] > a[f])
  # Both orders with complementary labels, next to each other, sharing a pair id.
  np.testing.assert_array_equal(p.first[0::2], p.second[1::2])
  np.testing.assert_array_equal(p.label[0::2], 1 - p.label[1::2])
  np.testing.assert_array_equal(p.pair_id[0::2], p.pair_id[1::2])
  assert p.label.mean() == 0.5


def test_pairs_never_cross_recordings_or_gaps():
  win = _windows_with_labels([0.1, 0.9, 0.1, 0.9, 0.1], recording=[0, 0, 1, 1, 1])
  usable = np.array([True, True, True, False, True])
  p = pairs_lib.make_pairs(win, usable, "arousal", 0.1)
  pairs = set(zip(p.first.tolist(), p.second.tolist()))
  assert pairs == {(0, 1), (1, 0)}        # (1,2) crosses recordings; (2,3), (3,4) touch unusable


@pytest.mark.parametrize("protocol", ["kfold", "random_splits"])
def test_no_subject_on_both_sides(protocol):
  subjects = np.array([f"s{i}" for i in range(31)])
  splits = protocols.subject_splits(np.repeat(subjects, 2), protocol, 15, seed=3)
  assert not (splits.train & splits.test).any()
  assert (splits.train | splits.test).all()
  if protocol == "kfold":
    np.testing.assert_array_equal(splits.test.sum(0), 1)      # each subject tested exactly once
  again = protocols.subject_splits(np.repeat(subjects, 2), protocol, 15, seed=3)
  np.testing.assert_array_equal(again.test, splits.test)     # seeded
  other = protocols.subject_splits(np.repeat(subjects, 2), protocol, 15, seed=4)
  assert not np.array_equal(other.test, splits.test)


def test_fold_indices_keep_subjects_and_pair_twins_apart():
  rng = np.random.default_rng(0)
  n_pairs = 400
  pair_subject = np.repeat(rng.integers(0, 10, n_pairs // 2), 2)
  p = types.SimpleNamespace(pair_id=np.repeat(np.arange(n_pairs // 2), 2),
                            label=np.tile([1, 0], n_pairs // 2))
  splits = protocols.subject_splits(np.arange(10).astype(str), "kfold", 5, seed=0)
  subjects = np.searchsorted(splits.subjects, pair_subject.astype(str))
  folds = protocols.fold_indices(p, subjects, splits, 0, 0.1, "pair", batch_size=64)
  assert folds.train_idx.shape[1] % 64 == 0
  for k in range(5):
    tr = folds.train_idx[k, : folds.train_count[k]]
    va = folds.val_idx[k, folds.val_mask[k]]
    te = folds.test_idx[k, folds.test_mask[k]]
    assert not set(subjects[te]) & set(subjects[np.concatenate([tr, va])])
    assert not set(p.pair_id[tr]) & set(p.pair_id[va])   # twins stay together
    assert len(set(tr) | set(va) | set(te)) == tr.size + va.size + te.size


def test_too_few_subjects_is_a_clear_error():
  with pytest.raises(ValueError, match="needs at least 15 subjects"):
    protocols.subject_splits(np.array(["a", "b"]), "kfold", 15, 0)
  with pytest.raises(ValueError, match="unknown protocol"):
    protocols.subject_splits(np.array(["a", "b"]), "loso", 2, 0)
