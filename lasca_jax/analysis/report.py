"""Every table and figure of a sweep in one call (used by ``experiments/report.py``).

``make_report(sweep_dir, out_dir)`` reads all runs under ``sweep_dir`` and writes:

  * ``tables/backbones.{md,tex,csv}`` - Tables 3-4 layout (when Features / text / fused runs
    exist),
  * ``tables/comparison.{md,tex,csv}`` - Tables 5-6 (when baseline-encoder runs exist),
  * ``tables/lexicon.{md,tex,csv}`` - Table 7 (when runs with the feature-name lexicon exist),
  * ``tables/controls[_<modality>].{md,tex,csv}`` - LaScA (F) against the mask, random-text and
    capacity-matched controls (when control runs exist; :mod:`lasca_jax.method.controls`),
  * ``figures/accuracy/<table>/<block>_<target>_<w>s_<m>.png`` - accuracy per model per column,
    std error bars, best / on-par marks,
  * ``figures/pairs_<modality>.png`` - pair counts per (target, window, margin),
  * ``figures/prompts_<modality>_<w>s.png`` - Figure 2, unique-prompt histogram (fold 0 of the
    first run with prompts per modality and window),
  * ``figures/curves/<run path>.png`` - learning curves per run (``curves=True``),
  * ``tables/cues_<target>.csv`` and ``figures/cues_<target>.png`` - cue attributions
    (:mod:`lasca_jax.inference.attribution`) of one LaScA run per target, with its deletion curve
    (``cues=True``; runs written before model bundles are skipped),
  * ``report.md`` - all Markdown tables and links to the figures.

Everything is derived from the sweep's table (:func:`lasca_jax.analysis.results.load`: one row per
run x fold) and the records and learning curves built from it; the accuracy figures use the fold
accuracies kept in each table cell, so they can also be redrawn from a table CSV alone.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pathlib
import sys
import time
from typing import Sequence

import numpy as np
import pandas as pd

from lasca_jax.analysis import plots, render, results, stats, tables
from lasca_jax.data import files as files_lib
from lasca_jax.inference import attribution, ensemble
from lasca_jax.method import representation
from lasca_jax.model import bundle
from lasca_jax.run import labels


def column_slug(col: tables.Column) -> str:
  """``("arousal", 3.0, 0.1)`` -> ``"arousal_3s_10"``."""
  t, w, m = col
  return f"{t}_{w:g}s_{m * 100:g}"


def accuracy_figures(table: tables.Table, out_dir: str | os.PathLike) -> list[str]:
  """One accuracy bar chart per (block, column) of a table; returns the PNG paths."""
  paths = []
  for block, rows in table.blocks:
    for col in table.columns:
      folds = {row: table.cells[(block, row, col)].folds for row in rows
               if (block, row, col) in table.cells and table.cells[(block, row, col)].folds}
      if not folds:
        continue
      path = pathlib.Path(out_dir) / f"{files_lib.safe_name(block)}_{column_slug(col)}.png"
      plots.plot_accuracies(folds, path, title=f"{block}: {tables.column_label(col)}")
      paths.append(str(path))
  return paths


def pair_count_figures(records: Sequence[tables.RunRecord], out_dir: str | os.PathLike
                       ) -> list[str]:
  """Per modality, pair counts of each (target, window, margin) (the first run found of each)."""
  paths = []
  for modality in labels.MODALITY_NAMES:
    counts = {}
    for col in tables.COLUMNS:
      for r in records:
        if r.modality == modality and r.column == col and r.num_pairs:
          counts[f"{col[0]} {col[1]:g}s {col[2] * 100:g}%"] = dict(r.num_pairs)
          break
    if counts:
      path = pathlib.Path(out_dir) / f"pairs_{modality}.png"
      plots.plot_pair_counts(counts, path,
                             title=f"Preference pairs, {labels.MODALITY_NAMES[modality]}")
      paths.append(str(path))
  return paths


def run_prompts(run_dir: str | os.PathLike, fold: int = 0) -> np.ndarray | None:
  """The prompt of every usable window of one fold of a run (None for a features-only run).

  Uses ``prompts [U]``, ``prompt_index [folds, W]`` and ``usable_windows [W]`` of
  ``results.npz`` (salience thresholds are fit per fold, so prompts differ per fold).
  """
  res = results.read_arrays(run_dir, ("prompts", "prompt_index", "usable_windows"))
  if "prompts" not in res or "prompt_index" not in res:
    return None
  prompts, index = res["prompts"], res["prompt_index"][fold]
  usable = res["usable_windows"] if "usable_windows" in res else np.ones(index.shape, bool)
  return prompts[index[usable]]


def prompt_figures(records: Sequence[tables.RunRecord], out_dir: str | os.PathLike) -> list[str]:
  """Figure 2 per (modality, window): unique-prompt histogram of the first run with prompts."""
  paths, done = [], set()
  for r in records:
    key = (r.modality, r.window_seconds)
    if key in done:
      continue
    prompts = run_prompts(r.path)
    if prompts is None:
      continue
    done.add(key)
    path = pathlib.Path(out_dir) / f"prompts_{r.modality}_{r.window_seconds:g}s.png"
    plots.plot_prompt_histogram(
        prompts, path, title=f"Unique prompts, {labels.MODALITY_NAMES.get(r.modality, r.modality)}"
        f" {r.window_seconds:g}s windows (fold 0)")
    paths.append(str(path))
  return paths


def learning_curve_figures(records: Sequence[tables.RunRecord], curves: pd.DataFrame,
                           sweep_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[str]:
  """One learning-curve figure per run, named after the run's path inside the sweep.

  Args:
    records: the runs (:func:`lasca_jax.analysis.results.records`).
    curves: their learning curves (:func:`lasca_jax.analysis.results.curves`); runs without
      curves get no figure.
    sweep_dir: the sweep (figure names are run paths relative to it).
    out_dir: where the PNGs go.
  """
  paths = []
  by_path = dict(tuple(curves.groupby("path", sort=False)))
  for r in records:
    if r.path not in by_path:
      continue
    loss, val = (by_path[r.path].pivot(index="fold", columns="epoch", values=v).to_numpy()
                 for v in ("train_loss", "val_accuracy"))
    rel = os.path.relpath(r.path, sweep_dir)
    path = pathlib.Path(out_dir) / f"{files_lib.safe_name(rel.replace(os.sep, '__')) or 'run'}.png"
    plots.plot_learning_curves(loss, val, path, best_epoch=r.best_epoch,
                               title=f"{r.model_label} {r.modality} "
                               f"{tables.column_label(r.column)}")
    paths.append(str(path))
  return paths


def cue_run(records: Sequence[tables.RunRecord], target: str, lasca_label: str,
            lexicon: str = "llm") -> tables.RunRecord | None:
  """The run whose cues the report shows for ``target``: a fused run with a model bundle and
  the given lexicon, preferring the LaScA row, multimodal input, then the shortest window and
  smallest margin."""
  found = [r for r in records
           if r.target == target and representation.row(r.fusion) == "fused" and
           r.lexicon == lexicon and
           os.path.exists(os.path.join(bundle.bundle_dir(r.path), bundle.JSON_FILE))]
  found.sort(key=lambda r: (r.model_label != lasca_label, r.modality != "multimodal",
                            r.window_seconds, r.margin, r.path))
  return found[0] if found else None


def run_cues(run_dir: str, max_pairs: int = 200, seed: int = 0):
  """``(cues table, explain summary)`` of a run: ``<run>/explain`` when it is newer than the
  bundle, else computed (``experiments/explain.py``'s defaults) and written there."""
  folder = os.path.join(run_dir, "explain")
  summary_path = os.path.join(folder, "explain.json")
  bundle_json = os.path.join(bundle.bundle_dir(run_dir), bundle.JSON_FILE)
  if (os.path.exists(summary_path) and
      os.path.getmtime(summary_path) >= os.path.getmtime(bundle_json)):
    with open(summary_path) as f:
      return pd.read_csv(os.path.join(folder, "cues.csv")), json.load(f)
  result = attribution.explain_run(ensemble.load_bundle(run_dir), max_pairs, seed)
  attribution.write_run_explanation(result, folder)
  return result.cues, result.summary


def cue_section(records: Sequence[tables.RunRecord], sweep_dir, out_dir, lasca_label: str,
                lexicon: str = "llm", max_pairs: int = 200, top: int = 8, progress: bool = False
                ) -> tuple[list[str], list[str], list[str]]:
  """Cue attributions per target: ``(markdown lines, table paths, figure paths)``; with
  ``progress``, each run explained is announced on stderr (and large encodings show a bar)."""
  md, table_paths, figure_paths = [], [], []
  for target in sorted({r.target for r in records}):
    r = cue_run(records, target, lasca_label, lexicon)
    if r is None:
      continue
    if progress:
      print(f"cues of {target}: explaining {max_pairs or 'all'} test decisions of "
            f"{os.path.relpath(r.path, sweep_dir)} (one encoded prompt per salient cue and "
            "window; --cue_pairs sets how many, --nocues skips this)", file=sys.stderr,
            flush=True)
    t0 = time.perf_counter()
    cues, summary = run_cues(r.path, max_pairs)
    if progress:
      print(f"cues of {target}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
            flush=True)
    csv_path = pathlib.Path(out_dir) / "tables" / f"cues_{target}.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    cues.to_csv(csv_path, index=False)
    fig_path = pathlib.Path(out_dir) / "figures" / f"cues_{target}.png"
    fig_path.parent.mkdir(parents=True, exist_ok=True)
    attribution.cue_figure(cues, str(fig_path), f"{r.model_label} {r.modality} "
                           f"{tables.column_label(r.column)}: cues of {target}")
    table_paths.append(str(csv_path))
    figure_paths.append(str(fig_path))
    d = summary["deletion"]
    md += [f"### {target}: {r.model_label}, {r.modality}, {tables.column_label(r.column)}", "",
           f"Run `{os.path.relpath(r.path, sweep_dir)}`, {summary['explained']} test decisions "
           "explained. Positive = the cue's presence in the later window (text) or its rise "
           "(feature) pushes toward an increase. " + attribution.READING.replace(
               "Faded bars", "In the figure, faded bars"), "",
           "| source | cue | phrase | mean contribution | std over folds | times salient |",
           "| --- | --- | --- | --- | --- | --- |"]
    for source in attribution.SOURCE_MEANING:
      part = cues[cues["source"] == source].sort_values("mean_abs_contribution",
                                                        ascending=False).head(top)
      md += [f"| {source} | {c.cue} | {c.phrase if isinstance(c.phrase, str) else ''} | "
             f"{c.mean_contribution:+.3f} | {c.std_over_folds:.3f} | {c.times_salient} |"
             for c in part.itertuples()]
    md += ["", "Deletion curve (mean |logit change| when removing k cues, k = "
           f"{d['k'][0]}..{d['k'][-1]}): top-k attributed "
           f"{', '.join(f'{v:.3f}' for v in d['top_change'])}; k random salient "
           f"{', '.join(f'{v:.3f}' for v in d['random_change'])}.", ""]
  if md:
    md = ["## Cue attributions", ""] + md
  return md, table_paths, figure_paths


def lexicon_label(lexicon: str) -> str:
  """Row label of a lexicon in Table 7 (a user's own lexicon: ``Own (<file name>)``)."""
  if lexicon in labels.LEXICON_NAMES:
    return labels.LEXICON_NAMES[lexicon]
  if lexicon.startswith("shuffled:"):
    return "Shuffled"
  if lexicon == "dataset":
    return "Own (dataset)"
  return f"Own ({os.path.basename(lexicon)})"


def runs_markdown(records: Sequence[tables.RunRecord], sweep_dir: str | os.PathLike) -> str:
  """Every run as one line (so that no run is missing from the report, whatever its table)."""
  lines = ["| Run | Modality | Model | Lexicon | Column | Mean | Std | Folds |",
           "| --- | --- | --- | --- | --- | ---: | ---: | ---: |"]
  for r in sorted(records, key=lambda r: r.path):
    mean, std, n = stats.fold_mean_std(r.accuracies)
    lexicon = lexicon_label(r.lexicon) if representation.FUSIONS.get(
        r.fusion, representation.FUSIONS["features"]).encoded else "-"
    lines.append(f"| {os.path.relpath(r.path, sweep_dir)} | {r.modality} | {r.model_label} | "
                 f"{lexicon} | {tables.column_label(r.column)} | {mean:.4f} | {std:.4f} | {n} |")
  return "\n".join(lines) + "\n"


# Text settings a report states for its runs: (config field, words, the paper's value).
SETTINGS = (("text.salience", "salience rule", "otsu"),
            ("text.salience_stats", "salience statistics", "fold"),
            ("text.phrase_order", "phrase order", "feature"),
            ("text.long_prompts", "long prompts", "truncate"))
# Learner settings (remedies for a head that learns nothing; the paper's values first).
LEARNER_SETTINGS = (("train.standardize", "standardized pair differences", False),
                    ("train.min_epochs", "minimum epochs", 0),
                    ("train.monitor", "early stopping on", "accuracy"),
                    ("train.select", "selected per fold from", ""))
PREFERRED_LASCA = "MPNet(F)"   # the paper's LaScA row, when the sweep has it


def _uses_prompts(record: tables.RunRecord) -> bool:
  fusion = representation.FUSIONS.get(record.fusion)
  return bool(fusion and fusion.needs_prompts)


def main_lexicon(records: Sequence[tables.RunRecord]) -> str:
  """The lexicon of a sweep's backbone and comparison tables: the most frequent one of its runs
  with prompts other than the feature-name and shuffled lexicons (``"llm"`` when none)."""
  counts = collections.Counter(
      r.lexicon for r in records if _uses_prompts(r) and r.lexicon != "feature_name" and
      not r.lexicon.startswith("shuffled:"))
  return min(counts, key=lambda k: (-counts[k], k != "llm", k)) if counts else "llm"


def fused_labels(records: Sequence[tables.RunRecord], lexicon: str) -> collections.Counter:
  """Run counts of the fused (LaScA) rows with ``lexicon`` (controls left out)."""
  return collections.Counter(r.model_label for r in records
                             if representation.row(r.fusion) == "fused" and not r.control and
                             r.lexicon == lexicon)


def main_lasca_label(records: Sequence[tables.RunRecord], lexicon: str) -> str:
  """The LaScA row of a sweep: :data:`PREFERRED_LASCA` when it has it, else its most frequent
  fused row with ``lexicon`` (the preferred label when there is none)."""
  counts = fused_labels(records, lexicon)
  if not counts or PREFERRED_LASCA in counts:
    return PREFERRED_LASCA
  return min(counts, key=lambda k: (-counts[k], k))


def choice_lines(records, lasca_label: str, lexicon: str, chosen: dict[str, bool]) -> list[str]:
  """What the report compares, how it was chosen, and a warning when a given row matches no
  run (the LaScA rows would silently be missing)."""
  labels_here = fused_labels(records, lexicon)
  how = {True: "chosen from the runs", False: "as asked"}
  md = [f"LaScA row: **{lasca_label}** ({how[chosen['lasca_label']]}); lexicon of the backbone "
        f"and comparison tables: **{lexicon_label(lexicon)}** ({how[chosen['lexicon']]}).", ""]
  any_fused = any(representation.row(r.fusion) == "fused" and not r.control for r in records)
  if any_fused and lasca_label not in labels_here:
    others = ", ".join(sorted(labels_here)) or "none"
    md += [f"**Warning:** no fused run is labelled {lasca_label} with the {lexicon_label(lexicon)}"
           f" lexicon (fused rows with it: {others}), so the tables have no LaScA row; pass "
           "`--lasca_label` / `--lexicon` of your runs, or leave them out to choose from the "
           "runs.", ""]
  return md


def _described(shown: pd.DataFrame, settings) -> str:
  parts = []
  for name, words, paper in settings:
    values = results.field(shown, name, paper).fillna(paper)
    counts = collections.Counter(str(v) if str(v) != "" else "none" for v in values)
    text = ", ".join(f"{v} ({n} runs)" if len(counts) > 1 else f"{v}"
                     for v, n in sorted(counts.items()))
    paper_text = str(paper) if str(paper) != "" else "none"
    marks = "" if set(counts) == {paper_text} else f" (the paper: {paper_text})"
    parts.append(f"{words}: {text}{marks}")
  return "; ".join(parts)


def settings_lines(frame: pd.DataFrame, records: Sequence[tables.RunRecord]) -> list[str]:
  """The text settings of the reported runs with prompts (:data:`SETTINGS`) and the learner
  settings of all (:data:`LEARNER_SETTINGS`), each with the runs per value, so a per-recording,
  chunked or standardized sweep is not read as the paper's."""
  runs = frame[frame["path"].isin({r.path for r in records})].drop_duplicates("path")
  shown = runs[runs["path"].isin({r.path for r in records if _uses_prompts(r)})]
  md = []
  if not shown.empty:
    md += [f"Text settings of the {len(shown)} runs with prompts: {_described(shown, SETTINGS)}.",
           ""]
  if not runs.empty:
    md += [f"Learner settings of the {len(runs)} runs: {_described(runs, LEARNER_SETTINGS)}.",
           ""]
  return md


def make_report(sweep_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                dataset: str | None = None, lasca_label: str | None = None,
                lexicon: str | None = None,
                lexicon_backbones: Sequence[str] = ("MPNet(F)", "DRoBERTa(F)", "MiniLM(F)"),
                lexicon_modality: str = "multimodal", figures: bool = True,
                curves: bool = False, cues: bool = True,
                cue_pairs: int = 200, progress: bool = False) -> dict[str, list[str]]:
  """Writes all tables (and figures) of a sweep; returns ``{kind: [paths]}``.

  The tables have one column per (target, window, margin) the runs hold. ``report.md`` also
  lists every run (``All runs``) and every configuration recorded as failed with its reason.

  Args:
    sweep_dir: directory tree of run directories.
    out_dir: where ``tables/``, ``figures/`` and ``report.md`` go.
    dataset: keep only runs with this ``config.data.name`` (None: all; mixing datasets in one
      table raises on duplicate cells).
    lasca_label: the LaScA row of the comparison table (None: :func:`main_lasca_label`).
    lexicon: lexicon of the backbone and comparison tables (the sweep's ``text.lexicon``: a
      user's own lexicon, ``"dataset"`` or a file, is the main one of its sweep; None:
      :func:`main_lexicon`). ``report.md`` states both and warns when no run has that row.
    lexicon_backbones: blocks of the lexicon table.
    lexicon_modality: modality of the lexicon table (multimodal in the paper).
    figures: draw accuracy and pair-count figures.
    curves: draw a learning-curve figure per run.
    cues: explain one LaScA run per target (:func:`cue_section`).
    cue_pairs: test decisions explained per such run (0 = all).
    progress: say on stderr what the cue section is explaining (it can take minutes).

  Raises:
    ValueError: when the sweep holds no run and no recorded failure.
  """
  frame = results.load(sweep_dir)
  records = results.records(frame, dataset)
  failures = results.failures(frame, dataset)
  if not records and not failures:
    raise ValueError(f"{sweep_dir}: no run directories (config.json + results.npz)"
                     + (f" for dataset {dataset!r}" if dataset else ""))
  out_dir = pathlib.Path(out_dir)
  suffix = f" ({dataset})" if dataset else ""
  chosen = {"lexicon": not lexicon, "lasca_label": not lasca_label}
  lexicon = lexicon or main_lexicon(records)
  lasca_label = lasca_label or main_lasca_label(records, lexicon)
  built = _tables(records, suffix, lasca_label, lexicon, lexicon_backbones, lexicon_modality)
  written: dict[str, list[str]] = {"tables": [], "figures": []}
  md = [f"# Results{suffix}", "", f"{len(records)} runs under `{sweep_dir}`.", ""]
  choice = choice_lines(records, lasca_label, lexicon, chosen)
  if any(line.startswith("**Warning") for line in choice):
    logging.warning("%s", next(l for l in choice if l.startswith("**Warning")).replace("**", ""))
  md += choice + settings_lines(frame, records)
  for name, table in built.items():
    paths = render.write_table(table, out_dir / "tables", name)
    written["tables"] += [str(p) for p in paths.values()]
    md += [render.to_markdown(table), ""]
    if name.startswith("controls"):
      md += beats_baselines(table)
    if figures:
      figs = accuracy_figures(table, out_dir / "figures" / "accuracy" / name)
      written["figures"] += figs
  if figures:
    written["figures"] += pair_count_figures(records, out_dir / "figures")
    written["figures"] += prompt_figures(records, out_dir / "figures")
  if curves:
    shown = frame[frame["path"].isin({r.path for r in records})]
    written["figures"] += learning_curve_figures(records, results.curves(shown), sweep_dir,
                                                 out_dir / "figures" / "curves")
  md += _notes(built, records, failures, sweep_dir)
  if cues:
    cue_md, cue_tables, cue_figs = cue_section(records, sweep_dir, out_dir, lasca_label,
                                               lexicon, cue_pairs, progress=progress)
    md += cue_md
    written["tables"] += cue_tables
    written["figures"] += cue_figs
  if written["figures"]:
    md += ["## Figures", ""]
    md += [f"- [{os.path.relpath(p, out_dir)}]({os.path.relpath(p, out_dir)})"
           for p in written["figures"]]
  report = out_dir / "report.md"
  report.write_text("\n".join(md) + "\n")
  written["report"] = [str(report)]
  return written


def beats_baselines(table: tables.Table, alpha: float = stats.ALPHA) -> list[str]:
  """One sentence per block of a controls table: in how many columns LaScA's mean beats the best
  row without language (features, tuned features, logistic regression, matched capacity) with a
  two-sided Wilcoxon p < ``alpha`` over folds, and the figures of each column."""
  md = []
  for block, rows in table.blocks:
    baselines = [r for r in rows if r.split(" [")[0] in tables.BASELINE_ROWS]
    lasca = [r for r in rows if r.split(" [")[0] == tables.LASCA_ROW]
    if not lasca or not baselines:
      continue
    parts, wins, compared = [], 0, 0
    for col in table.columns:
      ours = table.cells.get((block, lasca[0], col))
      theirs = [(r, table.cells[(block, r, col)]) for r in baselines
                if (block, r, col) in table.cells]
      if ours is None or not theirs:
        continue
      best_row, best = max(theirs, key=lambda rc: rc[1].mean)
      test = stats.wilcoxon_paired(ours.folds, best.folds)
      won = ours.mean > best.mean and np.isfinite(test.p_value) and test.p_value < alpha
      wins += int(won)
      compared += 1
      parts.append(f"{tables.column_label(col)}: {ours.mean:.4f} vs {best_row} {best.mean:.4f}, "
                   f"p = {test.p_value:.3g}")
    if compared:
      md += [f"{block}: LaScA beats the best row without language at p < {alpha:g} in {wins} of "
             f"{compared} columns ({'; '.join(parts)}).", ""]
  return md


def _tables(records, suffix: str, lasca_label: str, lexicon: str,
            lexicon_backbones: Sequence[str], lexicon_modality: str) -> dict:
  """The report's tables that have cells: backbones, comparison, lexicon, controls."""
  lexicons = dict(labels.LEXICON_NAMES)
  for lex in [lexicon] + [r.lexicon for r in records if r.lexicon.startswith("shuffled:")]:
    lexicons.setdefault(lex, lexicon_label(lex))
  built = {
      "backbones": tables.backbone_table(
          records, lexicon=lexicon, columns=None,
          title="Accuracy across modalities, windows, margins and backbones" + suffix),
      "comparison": tables.comparison_table(
          records, lasca_label=lasca_label, lexicon=lexicon, columns=None,
          title=f"Baseline encoders vs LaScA ({lasca_label})" + suffix),
      "lexicon": tables.lexicon_table(
          records, backbones=lexicon_backbones, modality=lexicon_modality, lexicons=lexicons,
          columns=None, title=("Feature-name vs LLM lexicon" if lexicon == "llm" else
                               f"Feature-name vs {lexicons[lexicon]} lexicon") + suffix),
  }
  for modality in sorted({r.modality for r in records if r.control},
                         key=lambda m: (m != lexicon_modality, m)):
    name = "controls" if modality == lexicon_modality else f"controls_{modality}"
    built[name] = tables.controls_table(
        records, modality=modality, lexicon=lexicon, columns=None,
        title=f"LaScA (F) against its controls, {modality}" + suffix)
  if not any(r.lexicon == "feature_name" for r in records):
    built.pop("lexicon")
  if not any(r.model_label in tables.BASELINE_LABELS or
             representation.row(r.fusion) == "baseline"
             for r in records):
    built.pop("comparison")
  return {k: t for k, t in built.items() if t.blocks}


def _notes(built: dict, records, failures, sweep_dir) -> list[str]:
  """The report's notes on few folds, the list of runs and the failed configurations."""
  md = []
  few = sorted({c.n_folds for t in built.values() for c in t.cells.values()
                if 0 < c.n_folds < stats.MIN_PAIRS_FOR_SIGNIFICANCE})
  if few:
    md += [f"Note: some cells have only {', '.join(map(str, few))} folds; with fewer than "
           f"{stats.MIN_PAIRS_FOR_SIGNIFICANCE} paired folds the two-sided Wilcoxon test cannot "
           "reach p < 0.05, so every model there is on par with the best by construction.", ""]
  flagged = [r for r in records if r.degenerate]
  if flagged:
    md += [f"Note: {len(flagged)} of {len(records)} runs have folds whose head learned nothing "
           f"(cells marked {render.DEGENERATE_MARK}): " + ", ".join(
               f"`{os.path.relpath(r.path, sweep_dir)}` ({r.degenerate} of {len(r.accuracies)})"
               for r in flagged[:20]) + (" ..." if len(flagged) > 20 else "") +
           ". Their accuracy mixes chance-level folds; see docs/method.md for the remedies "
           "(`train.standardize`, `train.min_epochs`, `train.monitor`).", ""]
  if records:
    md += ["## All runs", "", runs_markdown(records, sweep_dir)]
  if failures:
    md += ["## Failed configurations", "",
           f"{len(failures)} configurations failed; each run directory holds failed.json (a "
           "rerun of the sweep skips them unless --retry_failed).", "",
           "| Run | Reason |", "| --- | --- |"]
    md += [f"| {rel} | {reason.replace('|', '/')} |" for rel, reason in failures]
    md += [""]
  return md


def sweep_report(config, workdir: str, cues: bool = True,
                 cue_pairs: int = 200) -> dict[str, list[str]]:
  """The report of a sweep run by :func:`lasca_jax.run.sweep.run` (its ``summary["config"]``)
  under ``<workdir>/report``: :func:`make_report` with the grid's LaScA row, lexicon and
  backbones, figures and learning curves."""
  fused = [labels.fused_label(b) for b in config.sweep.backbones]
  written = make_report(
      os.path.join(workdir, "runs"), os.path.join(workdir, "report"),
      dataset=config.data.name, lasca_label=config.sweep.lasca_label or fused[0],
      lexicon=config.text.lexicon, lexicon_backbones=fused,
      lexicon_modality=(config.sweep.ablation_modalities or ("multimodal",))[0],
      figures=True, curves=True, cues=cues, cue_pairs=cue_pairs, progress=True)
  print(f"report: {os.path.join(workdir, 'report', 'report.md')}")
  return written
