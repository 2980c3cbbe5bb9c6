"""Figures from run results (matplotlib, Agg backend, PNG).

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state, so nothing leaks
across calls), writes it to ``path`` when one is given, and returns a :class:`Plot` holding the
figure and the numbers it shows, so that a caller or a test can check what was drawn.

  * :func:`plot_accuracies` - mean accuracy per model, error bars = std over folds, best and
    on-par (Wilcoxon vs best, :mod:`lasca_jax.analysis.stats`) marked.
  * :func:`plot_prompt_histogram` - Figure 2: how often each unique prompt occurs, sorted.
  * :func:`plot_learning_curves` - train loss and validation accuracy per fold.
  * :func:`plot_pair_counts` - train / validation / test pairs per configuration.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402

from lasca_jax.analysis import stats  # noqa: E402

BEST_COLOR = "tab:red"
ON_PAR_COLOR = "tab:orange"
OTHER_COLOR = "tab:gray"


@dataclasses.dataclass
class Plot:
  """A drawn figure and the data it shows.

  Attributes:
    figure: the matplotlib figure (``figure.axes`` to inspect).
    data: the plotted numbers, by name.
    path: where the PNG was written ("" when not written).
  """

  figure: Figure
  data: dict[str, Any]
  path: str = ""


def _new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
  fig = Figure(figsize=(width, height), dpi=100)
  FigureCanvasAgg(fig)
  axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
  return fig, axes


def _save(fig: Figure, path: str | os.PathLike | None) -> str:
  if not path:
    return ""
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, format="png")
  return path


def plot_accuracies(fold_accuracies: Mapping[str, Sequence[float]],
                    path: str | os.PathLike | None = None, *, title: str = "",
                    alpha: float = stats.ALPHA, chance: float | None = 0.5) -> Plot:
  """Bar chart of mean accuracy per model with std-over-folds error bars.

  The best model's bar is red, models on par with it (``p >= alpha``) orange with a ``=`` above
  the bar, the rest grey.

  Args:
    fold_accuracies: model label -> ``[folds]`` test accuracies (same folds for all models).
    path: PNG to write, or None.
    title: axes title (e.g. ``"Visual, arousal 5s 20%"``).
    alpha: significance level of the on-par test.
    chance: draw a dashed line at this accuracy (None for none).

  Returns:
    :class:`Plot` with ``data``: ``labels``, ``means``, ``stds``, ``p_values``, ``best`` and
    ``on_par`` (boolean lists in label order).
  """
  comp = stats.compare_to_best(fold_accuracies, alpha=alpha)
  labels = list(comp)
  means = np.array([comp[k].mean for k in labels])
  stds = np.nan_to_num(np.array([comp[k].std for k in labels]))
  best = [comp[k].is_best for k in labels]
  on_par = [comp[k].on_par and not comp[k].is_best for k in labels]
  colors = [BEST_COLOR if b else ON_PAR_COLOR if p else OTHER_COLOR for b, p in zip(best, on_par)]
  fig, (ax,) = _new_figure(max(4.0, 0.7 * len(labels) + 1.5), 3.5)
  x = np.arange(len(labels))
  ax.bar(x, means, yerr=stds, color=colors, capsize=3)
  for i in np.flatnonzero(on_par):
    ax.text(x[i], means[i] + stds[i] + 0.005, "=", ha="center", va="bottom")
  if chance is not None:
    ax.axhline(chance, color="k", linestyle="--", linewidth=0.8)
  ax.set_xticks(x)
  ax.set_xticklabels(labels, rotation=45, ha="right")
  ax.set_ylabel("accuracy (mean ± std over folds)")
  ok = np.isfinite(means)
  if ok.any():
    low = (means - stds)[ok].min()
    top = (means + stds)[ok].max()
    ax.set_ylim(max(0.0, min(low, chance or 1.0) - 0.05), min(1.05, top + 0.06))
  ax.set_title(title or f"best: red; on par (Wilcoxon p >= {alpha:g}): '='", pad=12)
  if title:
    ax.text(1.0, 1.0, f"red: best; '=': on par (p >= {alpha:g})", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=7)
  data = dict(labels=labels, means=means, stds=stds,
              p_values=np.array([comp[k].p_value for k in labels]), best=best, on_par=on_par)
  return Plot(fig, data, _save(fig, path))


def prompt_counts(prompts: Sequence) -> tuple[np.ndarray, np.ndarray]:
  """Unique prompts (or prompt indices) and their counts, most frequent first.

  Ties in count keep ``np.unique`` order (sorted prompt / index), so the result is deterministic.
  """
  uniq, counts = np.unique(np.asarray(prompts), return_counts=True)
  order = np.argsort(-counts, kind="stable")
  return uniq[order], counts[order]


def plot_prompt_histogram(prompts: Sequence, path: str | os.PathLike | None = None, *,
                          title: str = "Histogram of unique prompts", log_scale: bool = True,
                          label_top: int = 0) -> Plot:
  """Figure 2: the count of every unique prompt, sorted from most to least frequent.

  Args:
    prompts: one entry per window: prompt strings, or indices into a prompt table (the
      ``return_inverse`` of ``np.unique``).
    path: PNG to write, or None.
    title: axes title.
    log_scale: logarithmic count axis (the distribution is long-tailed).
    label_top: annotate this many most frequent prompts with their rank.

  Returns:
    :class:`Plot` with ``data``: ``prompts`` (unique, sorted by count) and ``counts``.
  """
  uniq, counts = prompt_counts(prompts)
  fig, (ax,) = _new_figure(7.0, 3.5)
  ranks = np.arange(1, counts.size + 1)
  ax.bar(ranks, counts, width=1.0, color="tab:blue")
  if log_scale and counts.size:
    ax.set_yscale("log")
  for r in ranks[:label_top]:
    ax.text(r, counts[r - 1], str(r), ha="center", va="bottom", fontsize=7)
  ax.set_xlabel(f"unique prompt (rank by frequency; {counts.size} unique, "
                f"{int(counts.sum())} windows)")
  ax.set_ylabel("count")
  ax.set_title(title)
  return Plot(fig, dict(prompts=uniq, counts=counts), _save(fig, path))


def plot_learning_curves(train_loss: np.ndarray, val_accuracy: np.ndarray,
                         path: str | os.PathLike | None = None, *,
                         best_epoch: Sequence[int] | None = None, title: str = "") -> Plot:
  """Training loss and validation accuracy per epoch, one line per fold.

  Args:
    train_loss: ``[folds, max_epochs]``, NaN after early stopping.
    val_accuracy: ``[folds, max_epochs]``, NaN after early stopping.
    path: PNG to write, or None.
    best_epoch: ``[folds]`` 1-based epoch whose parameters were kept (``results.npz``'s
      ``best_epoch``; 0 = none); marked with a dot.
    title: figure title.

  Returns:
    :class:`Plot` with ``data``: ``epochs_run`` ``[folds]`` (non-NaN epochs per fold), and the
    two arrays.
  """
  train_loss = np.asarray(train_loss, dtype=np.float64)
  val_accuracy = np.asarray(val_accuracy, dtype=np.float64)
  if train_loss.ndim != 2 or train_loss.shape != val_accuracy.shape:
    raise ValueError(f"train_loss {train_loss.shape} and val_accuracy {val_accuracy.shape} must "
                     "both be [folds, max_epochs]")
  fig, (ax_loss, ax_acc) = _new_figure(9.0, 3.5, ncols=2)
  epochs = np.arange(1, train_loss.shape[1] + 1)
  for f in range(train_loss.shape[0]):
    line, = ax_loss.plot(epochs, train_loss[f], linewidth=1, label=f"fold {f}")
    ax_acc.plot(epochs, val_accuracy[f], linewidth=1, color=line.get_color())
    if best_epoch is not None:
      b = int(best_epoch[f]) - 1
      if 0 <= b < epochs.size:
        ax_acc.plot(epochs[b], val_accuracy[f, b], "o", color=line.get_color(), markersize=4)
  ax_loss.set_xlabel("epoch")
  ax_loss.set_ylabel("training loss")
  ax_acc.set_xlabel("epoch")
  ax_acc.set_ylabel("validation accuracy")
  if title:
    fig.suptitle(title)
  data = dict(train_loss=train_loss, val_accuracy=val_accuracy,
              epochs_run=np.sum(~np.isnan(train_loss), axis=1))
  return Plot(fig, data, _save(fig, path))


def plot_pair_counts(counts: Mapping[str, Mapping[str, Sequence[int]]],
                     path: str | os.PathLike | None = None, *,
                     title: str = "Preference pairs per configuration") -> Plot:
  """Grouped bars of the mean number of train / validation / test pairs per configuration.

  Args:
    counts: configuration label (e.g. ``"arousal 3s 10%"``) -> ``{"train"|"val"|"test":
      [folds]}`` pair counts; error bars are the std over folds.
    path: PNG to write, or None.
    title: axes title.

  Returns:
    :class:`Plot` with ``data``: ``labels``, ``splits`` and ``means`` ``[configs, splits]``.
  """
  labels = list(counts)
  splits = [s for s in ("train", "val", "test") if any(s in counts[k] for k in labels)]
  means = np.array([[np.mean(counts[k][s]) if s in counts[k] else np.nan for s in splits]
                    for k in labels]).reshape(len(labels), len(splits))
  stds = np.array([[np.std(counts[k][s]) if s in counts[k] else 0.0 for s in splits]
                   for k in labels]).reshape(len(labels), len(splits))
  fig, (ax,) = _new_figure(max(5.0, 0.8 * len(labels) + 2.0), 3.5)
  x = np.arange(len(labels))
  width = 0.8 / max(1, len(splits))
  for j, s in enumerate(splits):
    ax.bar(x + (j - (len(splits) - 1) / 2) * width, means[:, j], width, yerr=stds[:, j],
           label=s, capsize=2)
  ax.set_xticks(x)
  ax.set_xticklabels(labels, rotation=45, ha="right")
  ax.set_ylabel("pairs (mean ± std over folds)")
  ax.legend()
  ax.set_title(title)
  return Plot(fig, dict(labels=labels, splits=splits, means=means), _save(fig, path))
