"""Cue attribution for every decision of a bundle's fold models (text and feature side).

A decision compares two windows, ``first`` (earlier) and ``second``; the MLP sees the difference
``z[second] - z[first] = [dx || ds]`` of their representations (features ``x``, prompt embedding
``s``; either part may be absent). Its logit ``f`` is positive for "increase". For each fold
model, each decision and each cue (feature) ``c``:

* **text, leave-one-cue-out** (exact): for a window in which ``c`` is salient, its phrase is
  removed from that window's prompt (the salience mask with ``c`` off, rendered by the same
  template), the prompt is re-encoded through the shared embedding store, and
  ``text_first[c] = f - f(first's prompt without c)``, ``text_second[c] = f - f(second's prompt
  without c)`` (0 where ``c`` is not salient in that window). One encoder pass per cue and window;
  prompts seen before are not encoded again. For the salience-mask control (``[x || m]``, no
  text) the same leave-one-cue-out runs on its 0/1 mask (source ``"mask"``), so its mask half is
  attributed as the text half of a fused model is.
* **feature, integrated gradients** on the feature part ``dx`` of the difference vector, from the
  baseline ``dx = 0`` (no feature change, the text part kept): ``feature[c] = dx_c * mean_a
  d f / d dx_c (a * dx, ds)``, the mean over ``steps`` midpoints ``a`` of ``[0, 1]``. The
  attributions add up to ``f(dx, ds) - f(0, ds)`` (completeness, up to the quadrature error,
  returned as ``completeness_gap``). Integrated gradients rather than gradient x input because the
  MLP is ReLU-piecewise-linear: a single gradient at ``dx`` ignores the kinks on the way from the
  baseline, and only the path integral has the completeness property.

The contribution of a cue to one decision (positive = pushes toward "increase") is
``text_first + text_second + feature``. Aggregated per cue (:func:`cue_table`) the sign is
oriented by time: a cue's presence in the later window (text) or rise (feature) that pushes
toward "increase" counts positive, so ``mean_contribution > 0`` reads "this cue goes with the
target rising".
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lasca_jax.inference import ensemble
from lasca_jax.model import bundle as bundle_lib, mlp


class Explanation(NamedTuple):
  """Attributions of ``N`` decisions under ``K`` fold models (``[K, N, F]`` unless noted)."""
  logit: np.ndarray             # [K, N]
  feature: np.ndarray           # integrated gradients on dx (0 without a feature part)
  text_first: np.ndarray        # leave-one-cue-out effect of the cue in the first window's prompt
  text_second: np.ndarray       # ... in the second window's prompt
  salient_first: np.ndarray     # bool
  salient_second: np.ndarray    # bool
  dx: np.ndarray                # normalised feature change x[second] - x[first]
  completeness_gap: np.ndarray  # [K, N] sum(feature) - (f(dx, ds) - f(0, ds))
  valid: np.ndarray             # bool [K, N] decisions each fold model explains

  @property
  def total(self) -> np.ndarray:
    """``[K, N, F]`` each cue's contribution to each decision (toward "increase")."""
    return self.feature + self.text_first + self.text_second

  @property
  def salient(self) -> np.ndarray:
    return self.salient_first | self.salient_second


@functools.lru_cache(maxsize=None)
def _ig_fn(hidden: tuple[int, ...], start: int, stop: int, steps: int):
  model = mlp.PreferenceMLP(hidden)

  def one(params, diff):                                   # diff [N, d]
    before, dx, after = diff[:, :start], diff[:, start:stop], diff[:, stop:]

    def f(dx_):
      return model.apply({"params": params}, jnp.concatenate([before, dx_, after], axis=-1))

    grad = jax.grad(lambda dx_: jnp.sum(f(dx_)))

    def body(i, acc):
      return acc + grad(dx * ((i + 0.5) / steps))

    mean_grad = jax.lax.fori_loop(0, steps, body, jnp.zeros_like(dx)) / steps
    attr = dx * mean_grad
    gap = attr.sum(-1) - (f(dx) - f(jnp.zeros_like(dx)))
    return attr, gap

  return jax.jit(jax.vmap(one))


def integrated_gradients(predictor, diff: np.ndarray, steps: int = 32,
                         chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
  """``(attributions [K, N, F], completeness gap [K, N])`` on the feature part of ``diff``."""
  part = predictor.slices()["features"]
  fn = _ig_fn(tuple(predictor.meta["hidden"]), part.start, part.stop, int(steps))
  attrs, gaps = [], []
  for start in range(0, diff.shape[1], chunk):
    part = diff[:, start:start + chunk]
    pad = chunk - part.shape[1] if diff.shape[1] > chunk else 0
    a, g = fn(predictor.params, jnp.asarray(np.pad(part, ((0, 0), (0, pad), (0, 0)))))
    n = part.shape[1]
    attrs.append(np.asarray(a)[:, :n])
    gaps.append(np.asarray(g)[:, :n])
  return np.concatenate(attrs, 1), np.concatenate(gaps, 1)


def _side_values(rep, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``[K, N, F]`` the values salience (and phrase order) used, of each decision's windows."""
  values = rep.values if rep.values is not None else rep.x
  values = np.broadcast_to(values, rep.x.shape)
  k_idx = np.arange(rep.x.shape[0])[:, None]
  return values[k_idx, first], values[k_idx, second]


def _logits_by_fold(predictor, fold: np.ndarray, diff: np.ndarray) -> np.ndarray:
  """Logits of rows ``diff [M, d]``, row ``m`` decided by fold model ``fold[m]`` (one call of
  every fold model on its own rows, padded to a few compiled sizes)."""
  if not diff.shape[0]:
    return np.zeros(0, np.float32)
  rank = np.zeros(fold.size, np.int64)              # each row's place among its fold's rows
  for k in np.unique(fold):
    rows = np.flatnonzero(fold == k)
    rank[rows] = np.arange(rows.size)
  size = max(256, 1 << int(np.ceil(np.log2(rank.max() + 1))))
  stacked = np.zeros((predictor.num_folds, size, diff.shape[1]), np.float32)
  stacked[fold, rank] = diff
  return predictor.logits(stacked)[fold, rank].astype(np.float32)


def _removal_logits(predictor, diff: np.ndarray,
                    items: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray | None]],
                    values: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
  """Logits after removing cues: items ``(fold, decision, first mask, second mask, zero dx)``;
  ``values`` (:func:`_side_values`) order the phrases as training did."""
  if not items:
    return np.zeros(0, np.float32)
  fold = np.array([it[0] for it in items])
  dec = np.array([it[1] for it in items])
  new = diff[fold, dec].copy()                                        # [M, d]
  part = predictor.slices()
  v1, v2 = values
  if predictor.uses_text:
    # Every mask rendered in one call, each distinct one once, as training rendered them.
    masks = np.stack([it[2] for it in items] + [it[3] for it in items])
    side = np.stack([v1[it[0], it[1]] for it in items] + [v2[it[0], it[1]] for it in items])
    distinct, index = predictor.recipe.prompts(masks, side)
    table = predictor.embed(list(distinct))
    new[:, part["text"]] = table[index[len(items):]] - table[index[:len(items)]]
  if "mask" in part:                               # the salience-mask control: [x || m]
    m1 = np.stack([it[2] for it in items]).astype(np.float32)
    m2 = np.stack([it[3] for it in items]).astype(np.float32)
    new[:, part["mask"]] = m2 - m1
  if predictor.uses_features:
    for m, it in enumerate(items):
      if it[4] is not None:
        new[m, part["features"]][it[4]] = 0.0
  return _logits_by_fold(predictor, fold, new)


def _per_fold(predictor, first, second, valid):
  shape = (predictor.num_folds, np.shape(first)[-1])
  valid = np.ones(shape, bool) if valid is None else np.broadcast_to(valid, shape)
  return np.broadcast_to(first, shape), np.broadcast_to(second, shape), valid


def explain(predictor, rep, first: np.ndarray, second: np.ndarray,
            valid: np.ndarray | None = None, steps: int = 32) -> Explanation:
  """Attributions of the decisions ``first -> second`` (window indices into ``rep``).

  Args:
    predictor: a :class:`lasca_jax.inference.ensemble.BundlePredictor`.
    rep: its :class:`lasca_jax.method.representation.Represented` windows.
    first, second: ``int [N]`` window indices of each decision (every fold model decides every
      decision, as for a new recording), or ``[K, N]`` per fold model (a run's test pairs).
    valid: ``bool [K, N]`` decisions each fold model explains (default all); the others get
      zero attributions, no salient cues and ``dx = 0``.
    steps: integrated-gradient quadrature points.
  """
  k_idx = np.arange(predictor.num_folds)[:, None]
  first, second, valid = _per_fold(predictor, first, second, valid)
  diff = rep.z[k_idx, second] - rep.z[k_idx, first]                  # [K, N, d]
  logit = predictor.logits(diff)
  m1 = rep.mask[k_idx, first] & valid[..., None]                      # [K, N, F]
  m2 = rep.mask[k_idx, second] & valid[..., None]
  dx = np.where(valid[..., None], rep.x[k_idx, second] - rep.x[k_idx, first], 0.0)
  if predictor.uses_features:
    feature, gap = integrated_gradients(predictor, diff, steps)
    feature = np.where(valid[..., None], feature, 0.0)
    gap = np.where(valid, gap, 0.0)
  else:
    feature, gap = np.zeros(m1.shape, np.float32), np.zeros(logit.shape, np.float32)
  text1, text2 = np.zeros(m1.shape, np.float32), np.zeros(m1.shape, np.float32)
  if predictor.salience_part:   # the prompt's phrases, or the mask control's 0/1 entries
    items, where = [], []
    for k, n, c in zip(*np.nonzero(m1)):
      mask = m1[k, n].copy()
      mask[c] = False
      items.append((k, n, mask, m2[k, n], None))
      where.append((0, k, n, c))
    for k, n, c in zip(*np.nonzero(m2)):
      mask = m2[k, n].copy()
      mask[c] = False
      items.append((k, n, m1[k, n], mask, None))
      where.append((1, k, n, c))
    removed = _removal_logits(predictor, diff, items, _side_values(rep, first, second))
    for (side, k, n, c), value in zip(where, removed):
      (text1 if side == 0 else text2)[k, n, c] = logit[k, n] - value
  return Explanation(logit, feature.astype(np.float32), text1, text2, m1, m2,
                     dx.astype(np.float32), gap, valid)


def top_cues(expl: Explanation, names: Sequence[str], count: int = 3) -> list[list[tuple]]:
  """Per decision, the ``count`` cues with the largest fold-mean |contribution|:
  ``[(name, contribution), ...]`` (cues contributing exactly 0 are left out)."""
  mean = expl.total.sum(0) / np.maximum(expl.valid.sum(0), 1)[:, None]   # [N, F]
  out = []
  for row in mean:
    order = np.argsort(-np.abs(row), kind="stable")[:count]
    out.append([(names[c], float(row[c])) for c in order if row[c] != 0])
  return out


def cue_table(expl: Explanation, names: Sequence[str], phrases: Sequence[str | None] | None,
              modalities: Sequence[str], salience_part: str | None, uses_features: bool):
  """Per cue and source, the aggregate over decisions (a ``pandas.DataFrame``).

  Columns: ``cue, phrase, modality, source, times_salient, mean_contribution, std_over_folds,
  mean_abs_contribution, folds``; ``source`` is ``salience_part`` (``"text"``, or ``"mask"`` for
  the salience-mask control; leave-one-cue-out) or ``"feature"`` (integrated gradients). ``times_salient``: decisions (all folds) in which the cue is
  salient in either window. ``mean_contribution``: per fold, the mean time-oriented contribution
  (text: ``text_second`` over decisions where the cue is salient in the later window and
  ``-text_first`` where it is salient in the earlier one; feature: ``feature * sign(dx)`` over
  decisions where the cue changed), then the mean over the folds where the cue occurred;
  ``std_over_folds`` the spread of those fold means; ``mean_abs_contribution`` the mean
  |contribution| per decision (the cue's weight in the decisions, zeros included).
  """
  import pandas as pd  # pylint: disable=import-outside-toplevel
  rows = []
  salient_count = expl.salient.sum((0, 1))
  sources = ([salience_part] if salience_part else []) + (["feature"] if uses_features else [])
  for source in sources:
    if source != "feature":
      values = np.concatenate([expl.text_second, -expl.text_first], axis=1)    # [K, 2N, F]
      present = np.concatenate([expl.salient_second, expl.salient_first], axis=1)
      magnitude = np.abs(expl.text_first + expl.text_second)
    else:
      values = expl.feature * np.sign(expl.dx)
      present = expl.dx != 0
      magnitude = np.abs(expl.feature)
    counts = present.sum(1)                                                    # [K, F]
    fold_mean = np.where(counts > 0, np.where(present, values, 0).sum(1) /
                         np.maximum(counts, 1), np.nan)                        # [K, F]
    for c, name in enumerate(names):
      fm = fold_mean[:, c][np.isfinite(fold_mean[:, c])]
      rows.append({
          "cue": name, "phrase": (phrases[c] if phrases else None) or "",
          "modality": modalities[c], "source": source,
          "times_salient": int(salient_count[c]),
          "mean_contribution": float(fm.mean()) if fm.size else 0.0,
          "std_over_folds": float(fm.std()) if fm.size else 0.0,
          "mean_abs_contribution": float(magnitude[..., c].sum() / max(expl.valid.sum(), 1)),
          "folds": int(fm.size)})
  table = pd.DataFrame(rows)
  return table.sort_values(["source", "mean_abs_contribution"], ascending=[False, False],
                           kind="stable").reset_index(drop=True)


class DeletionCurve(NamedTuple):
  """Mean |logit change| and decision flip rate after removing ``k`` cues (``[len(ks)]``)."""
  ks: np.ndarray
  top_change: np.ndarray
  random_change: np.ndarray
  top_flip: np.ndarray
  random_flip: np.ndarray
  decisions: int           # (fold, decision) cases with at least max(ks) salient cues
  draws: int
  seed: int


def deletion_curve(predictor, rep, first: np.ndarray, second: np.ndarray, expl: Explanation,
                   ks: Sequence[int] = (1, 2, 3, 4, 5), draws: int = 5, seed: int = 0
                   ) -> DeletionCurve:
  """Removes the top-``k`` attributed salient cues of each decision, and ``k`` random salient
  cues (``draws`` seeded draws), and measures how much the decision changes.

  Removing a cue takes its phrase out of both windows' prompts (re-encoded) and sets its
  feature change ``dx`` to 0. Cues are ranked by |contribution| (:attr:`Explanation.total`)
  among the cues salient in either window. Only decisions with at least ``max(ks)`` salient
  cues enter, so that both removals always remove exactly ``k`` cues.
  """
  rng = np.random.default_rng(seed)
  k_idx = np.arange(predictor.num_folds)[:, None]
  first, second, _ = _per_fold(predictor, first, second, expl.valid)
  diff = rep.z[k_idx, second] - rep.z[k_idx, first]
  salient = expl.salient
  total = expl.total
  kmax = max(ks)
  cases = [(k, n) for k, n in zip(*np.nonzero(salient.sum(-1) >= kmax))]
  items, tags = [], []
  for k, n in cases:
    cues = np.flatnonzero(salient[k, n])
    ranked = cues[np.argsort(-np.abs(total[k, n, cues]), kind="stable")]
    for j, size in enumerate(ks):
      sets = [("top", ranked[:size])] + [("random", rng.choice(cues, size, replace=False))
                                          for _ in range(draws)]
      for kind, removed in sets:
        off = np.zeros(salient.shape[-1], bool)
        off[removed] = True
        items.append((k, n, expl.salient_first[k, n] & ~off, expl.salient_second[k, n] & ~off,
                      off))
        tags.append((j, kind, k, n))
  logits = _removal_logits(predictor, diff, items, _side_values(rep, first, second))
  top_c, rand_c = np.zeros(len(ks)), np.zeros(len(ks))
  top_f, rand_f = np.zeros(len(ks)), np.zeros(len(ks))
  for (j, kind, k, n), value in zip(tags, logits):
    change = abs(float(expl.logit[k, n]) - float(value))
    flip = float((expl.logit[k, n] > 0) != (value > 0))
    if kind == "top":
      top_c[j] += change
      top_f[j] += flip
    else:
      rand_c[j] += change / draws
      rand_f[j] += flip / draws
  n_cases = max(len(cases), 1)
  return DeletionCurve(np.asarray(ks), top_c / n_cases, rand_c / n_cases, top_f / n_cases,
                       rand_f / n_cases, len(cases), draws, seed)


class RunExplanation(NamedTuple):
  """:func:`explain_run`'s outcome."""
  cues: object                 # pandas.DataFrame (:func:`cue_table`)
  deletion: DeletionCurve
  explanation: Explanation
  summary: dict


def explain_run(predictor, max_pairs: int = 400, seed: int = 0, steps: int = 32,
                draws: int = 5) -> RunExplanation:
  """Explains a run's test decisions (each by its own fold model) from its bundle.

  Args:
    predictor: the run's :class:`lasca_jax.inference.ensemble.BundlePredictor`.
    max_pairs: at most this many (fold, test pair) decisions, drawn with ``seed`` (0 = all).
    seed: seed of that draw and of the deletion curve's random cues.
    steps: integrated-gradient quadrature points.
    draws: random cue sets per decision and ``k`` in the deletion curve.
  """
  t = predictor.test_windows()
  valid = t["mask"].copy()
  total = int(valid.sum())
  if max_pairs and total > max_pairs:
    rng = np.random.default_rng(seed)
    keep = rng.choice(total, max_pairs, replace=False)
    flat = np.zeros(total, bool)
    flat[keep] = True
    valid[valid] = flat
  start = time.perf_counter()
  rep = predictor.represent(t["features"], t.get("baseline"), ranges=bundle_lib.test_ranges(t))
  expl = explain(predictor, rep, t["first"], t["second"], valid, steps)
  seconds_explain = time.perf_counter() - start
  cues = cue_table(expl, predictor.feature_names, predictor.phrases, predictor.modalities,
                   predictor.salience_part, predictor.uses_features)
  start = time.perf_counter()
  curve = deletion_curve(predictor, rep, t["first"], t["second"], expl, draws=draws, seed=seed)
  summary = {
      "target": predictor.meta["target"], "model_label": predictor.meta["model_label"],
      "fusion": predictor.fusion, "test_decisions": total, "explained": int(valid.sum()),
      "seed": seed, "ig_steps": steps,
      "max_completeness_gap": float(np.abs(expl.completeness_gap).max()),
      "seconds_explain": round(seconds_explain, 3),
      "seconds_per_decision": round(seconds_explain / max(int(valid.sum()), 1), 5),
      "seconds_deletion_curve": round(time.perf_counter() - start, 3),
      "deletion": {"k": curve.ks.tolist(), "top_change": curve.top_change.tolist(),
                   "random_change": curve.random_change.tolist(),
                   "top_flip": curve.top_flip.tolist(), "random_flip": curve.random_flip.tolist(),
                   "decisions": curve.decisions, "draws": curve.draws},
  }
  return RunExplanation(cues, curve, expl, summary)


SOURCE_MEANING = {
    "text": "phrase present in the later window (leave-one-cue-out)",
    "mask": "cue salient in the later window (leave-one-cue-out on the mask)",
    "feature": "feature value rising (integrated gradients)",
}
READING = ("Each panel asks a different question, so they may disagree: a cue's phrase can go "
           "with a rise while its value rising goes with a fall. Faded bars: the spread over "
           "folds crosses 0 (the sign is not consistent across folds).")


def consistent(cues) -> np.ndarray:
  """``bool [rows]``: cues whose mean contribution keeps its sign within one spread over folds
  (``|mean| > std_over_folds``)."""
  return (np.abs(cues["mean_contribution"]) > cues["std_over_folds"]).to_numpy()


def cue_figure(cues, path: str, title: str, count: int = 20) -> None:
  """Ranked horizontal bars of ``mean_contribution`` (error bars: spread over folds), the
  ``count`` cues of largest weight per source, the sources side by side; each panel says what its
  contribution measures (:data:`SOURCE_MEANING`), and the figure how to read panels that disagree
  (:data:`READING`); bars whose spread crosses 0 are faded."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  sources = [s for s in SOURCE_MEANING if (cues["source"] == s).any()]
  fig, axes = plt.subplots(1, len(sources), figsize=(5.2 * len(sources), 0.26 * count + 1.9),
                           squeeze=False)
  for ax, source in zip(axes[0], sources):
    part = cues[cues["source"] == source].sort_values("mean_abs_contribution", ascending=False)
    part = part.head(count).sort_values("mean_contribution")
    colors = np.where(part["mean_contribution"] >= 0, "tab:green", "tab:red")
    bars = ax.barh(part["cue"], part["mean_contribution"], xerr=part["std_over_folds"],
                   color=colors, ecolor="0.4")
    for bar, steady in zip(bars, consistent(part)):
      bar.set_alpha(1.0 if steady else 0.3)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("mean contribution (logit; + = toward an increase)")
    ax.set_title(f"{source}: {SOURCE_MEANING[source]}", fontsize=8)
  fig.suptitle(title, fontsize=10)
  fig.text(0.5, 0.005, READING, ha="center", va="bottom", fontsize=6.5, wrap=True)
  fig.tight_layout(rect=(0, 0.05, 1, 1))
  fig.savefig(path, dpi=130)
  plt.close(fig)


def deletion_figure(curve: DeletionCurve, path: str, title: str) -> None:
  """Mean |logit change| and flip rate after removing the top-k vs k random salient cues."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0))
  for ax, (top, rand, label) in zip(axes, ((curve.top_change, curve.random_change,
                                            "mean |logit change|"),
                                           (curve.top_flip, curve.random_flip,
                                            "decisions flipped"))):
    ax.plot(curve.ks, top, "o-", label="top-k attributed")
    ax.plot(curve.ks, rand, "s--", label=f"k random salient ({curve.draws} draws)")
    ax.set_xlabel("cues removed (k)")
    ax.set_ylabel(label)
    ax.set_xticks(curve.ks)
  axes[0].legend(fontsize=7)
  fig.suptitle(f"{title} ({curve.decisions} decisions)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def write_run_explanation(result: RunExplanation, output: str) -> dict[str, str]:
  """Writes ``cues.csv``, ``cues_<target>.png``, ``deletion.csv``, ``deletion.png`` and
  ``explain.json`` to ``output``; returns their paths."""
  import pandas as pd  # pylint: disable=import-outside-toplevel
  os.makedirs(output, exist_ok=True)
  s = result.summary
  paths = {"cues": os.path.join(output, "cues.csv"),
           "figure": os.path.join(output, f"cues_{s['target']}.png"),
           "deletion": os.path.join(output, "deletion.csv"),
           "deletion_figure": os.path.join(output, "deletion.png"),
           "summary": os.path.join(output, "explain.json")}
  result.cues.to_csv(paths["cues"], index=False)
  c = result.deletion
  pd.DataFrame({"k": c.ks, "top_change": c.top_change, "random_change": c.random_change,
                "top_flip": c.top_flip, "random_flip": c.random_flip}).to_csv(
                    paths["deletion"], index=False)
  cue_figure(result.cues, paths["figure"], f"{s['model_label']}: cues of {s['target']} "
             f"({s['explained']} test decisions)")
  deletion_figure(c, paths["deletion_figure"], f"{s['model_label']} ({s['target']})")
  with open(paths["summary"], "w") as f:
    json.dump(s, f, indent=1)
  return paths


def explain_run_dir(run_dir: str, output: str | None = None, max_pairs: int = 400,
                    seed: int = 0, steps: int = 32, draws: int = 5,
                    text_model_path: str | None = None, cache_dir: str | None = None
                    ) -> RunExplanation:
  """``experiments/explain.py``: explains a run from its bundle and writes the outputs to
  ``output`` (default ``<run_dir>/explain``)."""
  predictor = ensemble.load_bundle(run_dir, cache_dir, text_model_path)
  result = explain_run(predictor, max_pairs, seed, steps, draws)
  write_run_explanation(result, output or os.path.join(run_dir, "explain"))
  return result
