"""Tests for lasca_jax.analysis.plots: each figure shows the numbers derived from its inputs."""

import matplotlib.image
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from lasca_jax.analysis import plots


def _bars(ax):
  return [p for p in ax.patches if isinstance(p, Rectangle)]


def _png_ok(path):
  img = matplotlib.image.imread(path)
  assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
  assert np.ptp(img[..., :3]) > 0  # not a blank canvas


def test_accuracy_plot_marks_best_and_on_par(tmp_path):
  base = np.linspace(0.6, 0.67, 15)
  acc = {"Features": base, "MPNet": base + 0.05 + np.array([0.03, -0.03] * 7 + [-0.01]),
         "MPNet(F)": base + 0.05}
  p = plots.plot_accuracies(acc, tmp_path / "acc.png")
  _png_ok(p.path)
  assert p.data["labels"] == ["Features", "MPNet", "MPNet(F)"]
  assert p.data["best"] == [False, False, True]
  assert p.data["on_par"] == [False, True, False]
  ax = p.figure.axes[0]
  bars = _bars(ax)
  np.testing.assert_allclose([b.get_height() for b in bars], [np.mean(v) for v in acc.values()])
  colors = [b.get_facecolor() for b in bars]
  assert colors[2] == pytest.approx(matplotlib.colors.to_rgba(plots.BEST_COLOR))
  assert colors[1] == pytest.approx(matplotlib.colors.to_rgba(plots.ON_PAR_COLOR))
  assert [t.get_text() for t in ax.texts] == ["="]
  np.testing.assert_allclose(p.data["stds"][0], np.std(base, ddof=1))


def test_prompt_histogram_counts_sorted(tmp_path):
  prompts = ["a | x"] * 5 + ["b | x"] * 2 + ["c | y"] * 9 + ["d"]
  p = plots.plot_prompt_histogram(prompts, tmp_path / "fig2.png", label_top=2)
  _png_ok(p.path)
  assert p.data["prompts"].tolist() == ["c | y", "a | x", "b | x", "d"]
  assert p.data["counts"].tolist() == [9, 5, 2, 1]
  heights = [b.get_height() for b in _bars(p.figure.axes[0])]
  assert heights == [9, 5, 2, 1]
  # Index arrays work the same way.
  idx = plots.plot_prompt_histogram(np.array([2, 2, 0, 1, 2, 0]))
  assert idx.data["prompts"].tolist() == [2, 0, 1] and idx.data["counts"].tolist() == [3, 2, 1]
  assert idx.path == ""


def test_learning_curves_one_line_per_fold(tmp_path):
  loss = np.array([[0.7, 0.6, 0.55, np.nan], [0.7, 0.65, 0.6, 0.58]])
  val = np.array([[0.5, 0.6, 0.58, np.nan], [0.5, 0.55, 0.6, 0.61]])
  p = plots.plot_learning_curves(loss, val, tmp_path / "curves.png", best_epoch=[2, 4])
  _png_ok(p.path)
  ax_loss, ax_acc = p.figure.axes
  assert len(ax_loss.lines) == 2
  np.testing.assert_array_equal(ax_loss.lines[0].get_ydata(), loss[0])
  # Validation: a line per fold plus a best-epoch marker per fold.
  markers = [l for l in ax_acc.lines if l.get_marker() == "o"]
  assert [float(m.get_ydata()[0]) for m in markers] == [0.6, 0.61]
  assert p.data["epochs_run"].tolist() == [3, 4]
  with pytest.raises(ValueError, match="folds, max_epochs"):
    plots.plot_learning_curves(loss, val[:, :2])


def test_pair_counts_means(tmp_path):
  counts = {"arousal 3s 10%": {"train": [100, 120], "val": [10, 12], "test": [30, 40]},
            "arousal 5s 20%": {"train": [50, 50], "val": [5, 5], "test": [10, 20]}}
  p = plots.plot_pair_counts(counts, tmp_path / "pairs.png")
  _png_ok(p.path)
  assert p.data["splits"] == ["train", "val", "test"]
  np.testing.assert_allclose(p.data["means"], [[110, 11, 35], [50, 5, 15]])
  heights = sorted(b.get_height() for b in _bars(p.figure.axes[0]))
  assert heights == sorted([110, 11, 35, 50, 5, 15])
