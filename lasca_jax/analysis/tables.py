"""Result tables in the layout of the paper's Tables 3-7, from a sweep of run directories.

Nothing here reads files: :func:`lasca_jax.analysis.results.load` reads a sweep into a table and
:func:`lasca_jax.analysis.results.records` turns it into one :class:`RunRecord` per run
(``records(load(sweep_dir))``). The table builders group records into *blocks* (a modality, or a
backbone in Table 7) and *rows* (a model), with one column per ``(target, window, margin)``:

  =========  =====  ====================================  ====================================
  Modality   Model  Arousal 3s 10%, 20%; 5s 10%, 20%      Valence 3s 10%, 20%; 5s 10%, 20%
  =========  =====  ====================================  ====================================

Each cell is the mean test accuracy over folds, two decimals. Per column *within a block* (as the
paper does), the best mean is **bold** and models statistically on par with it (two-sided
Wilcoxon signed-rank over folds, ``p >= 0.05``, see :mod:`lasca_jax.analysis.stats`) are underlined.

Builders:
  * :func:`backbone_table` - Tables 3-4: Features, each text backbone alone, each backbone (F).
  * :func:`comparison_table` - Tables 5-6: baseline encoders vs LaScA (one backbone, fused).
  * :func:`lexicon_table` - Table 7: feature-name vs LLM lexicon per fused backbone.

Outputs are :mod:`lasca_jax.analysis.render`'s: Markdown, LaTeX and a CSV that restores the exact
table.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from lasca_jax.analysis import stats
from lasca_jax.method import representation
from lasca_jax.run import labels

# (target, window_seconds, margin)
Column = tuple[str, float, float]
COLUMNS: tuple[Column, ...] = tuple(
    (t, w, m) for t in ("arousal", "valence") for w in (3.0, 5.0) for m in (0.1, 0.2))


def make_column(target: str, window_seconds: float, margin: float) -> Column:
  """A column key, rounded so that 0.1 from JSON and 0.1 + 1e-12 from a grid compare equal."""
  return (str(target), round(float(window_seconds), 6), round(float(margin), 6))


# Table 2 baselines per modality, in the paper's row order.
BASELINES = {
    "visual": ("VGGFace2", "SwinFace", "MAE-Face"),
    "audio": ("Wav2Vec2", "MAE-Audio"),
    "multimodal": ("HiCMAE", "MMA-DFER"),
}
BASELINE_LABELS = tuple(b for v in BASELINES.values() for b in v)
LASCA_ROW = "LaScA (ours)"
MISSING = "--"


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """What the tables and plots need from one run (built by
  :func:`lasca_jax.analysis.results.records`).

  Attributes:
    path: the run directory.
    dataset: ``config.data.name``.
    modality: ``"visual"``, ``"audio"`` or ``"multimodal"``.
    model_label: the row label (``config.json``'s ``model_label``, else derived).
    fusion: ``config.model.fusion`` (``"features"``, ``"text"``, ``"fused"``).
    backbone: ``config.text.backbone``.
    lexicon: ``config.text.lexicon``.
    target: ``"arousal"`` or ``"valence"``.
    window_seconds: window length.
    margin: pair margin tau.
    accuracies: ``[folds]`` test accuracy.
    best_epoch: ``[folds]``.
    num_pairs: ``{"train"|"val"|"test": [folds]}`` pair counts.
    control: ``"mask"``, ``"random_text"`` or ``"capacity"`` for a control run
      (:mod:`lasca_jax.method.controls`), else ``""``.
  """

  path: str
  dataset: str
  modality: str
  model_label: str
  fusion: str
  backbone: str
  lexicon: str
  target: str
  window_seconds: float
  margin: float
  accuracies: np.ndarray
  best_epoch: np.ndarray | None = None
  num_pairs: Mapping[str, np.ndarray] | None = None
  control: str = ""
  degenerate: int = 0          # folds whose head learned nothing (lasca_jax.model.degenerate)
  learner: str = ""            # learner settings other than the paper's (labels.learner_label)

  @property
  def column(self) -> Column:
    return make_column(self.target, self.window_seconds, self.margin)


@dataclasses.dataclass(frozen=True)
class Cell:
  """One table entry: statistics over folds and the marks.

  Attributes:
    mean: mean accuracy over non-NaN folds; NaN for a missing cell.
    std: sample std (ddof=1) over folds.
    n_folds: non-NaN folds.
    p_value: Wilcoxon p-value against the block's best in this column (NaN for the best).
    is_best: bold.
    on_par: on par with the best (underlined when not best).
    folds: the fold accuracies.
  """

  mean: float
  std: float
  n_folds: int
  p_value: float
  is_best: bool
  on_par: bool
  folds: tuple[float, ...] = ()
  degenerate: int = 0          # folds whose head learned nothing (lasca_jax.model.degenerate)


@dataclasses.dataclass(frozen=True)
class Table:
  """A rendered-ready table.

  Attributes:
    title: caption.
    block_header: header of the block column (``"Modality"``; ``"Multimodal"`` in Table 7).
    row_header: header of the row column (``"Model"``; ``"LaScA"`` in Table 7).
    blocks: ``(block label, [row labels])`` in display order.
    columns: the ``(target, window, margin)`` columns in display order.
    cells: ``(block, row, column) -> Cell``; absent keys render as ``--``.
    mark_on_par: underline on-par cells (Table 7 only bolds).
  """

  title: str
  block_header: str
  row_header: str
  blocks: tuple[tuple[str, tuple[str, ...]], ...]
  columns: tuple[Column, ...]
  cells: Mapping[tuple[str, str, Column], Cell]
  mark_on_par: bool = True


# ----------------------------------------------------------------------------- labels


def control_kind(config: Mapping) -> str:
  """``"mask"``, ``"random_text"``, ``"capacity"``, ``"logistic"`` (the logistic head),
  ``"tuned"`` (features with ``train.select``) or ``""`` for a run's ``config.json``."""
  model = config.get("model", {})
  if model.get("head", "mlp") == LOGISTIC:
    return LOGISTIC
  if representation.is_control(model.get("fusion", "")):
    return model["fusion"]
  if model.get("fusion", "") == "features" and (config.get("train", {}) or {}).get("select"):
    return TUNED
  if model.get("hidden_from", "") or int(model.get("hidden_from_dim", 0) or 0) > 0:
    return CAPACITY
  return ""


# ----------------------------------------------------------------------------- building tables


def _same_folds(a: np.ndarray, b: np.ndarray) -> bool:
  return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def build_table(records: Iterable[RunRecord], *,
                block_of: Callable[[RunRecord], str | Sequence[str] | None],
                row_of: Callable[[RunRecord], str | None], title: str,
                block_header: str = "Modality", row_header: str = "Model",
                block_order: Sequence[str] | None = None, row_order: Sequence[str] | None = None,
                columns: Sequence[Column] | None = COLUMNS, mark_on_par: bool = True,
                alpha: float = stats.ALPHA, zero_method: str = stats.ZERO_METHOD) -> Table:
  """Groups records into blocks x rows x columns and marks best / on-par per block column.

  Args:
    records: runs; a run for which ``block_of`` or ``row_of`` returns None is left out, as is one
      whose column is not in ``columns``.
    block_of: record -> block label, or a tuple of labels when the record belongs to several
      blocks (a control shared by every backbone).
    row_of: record -> row label.
    title: caption.
    block_header: header of the block column.
    row_header: header of the row column.
    block_order: block display order (others follow in order of first appearance).
    row_order: row display order within each block (others follow in order of appearance).
    columns: ``(target, window, margin)`` columns; None: every column the records have
      (arousal before valence, then by window and margin).
    mark_on_par: underline on-par cells.
    alpha: significance level.
    zero_method: Wilcoxon zero handling (:mod:`lasca_jax.analysis.stats`).

  Returns:
    The :class:`Table`.

  Raises:
    ValueError: when two runs with different fold accuracies land in one cell (naming both).
  """
  records = list(records)
  if columns is None:
    targets = {"arousal": 0, "valence": 1}
    columns = sorted({r.column for r in records},
                     key=lambda c: (targets.get(c[0], 2), c[0], c[1], c[2]))
  columns = tuple(make_column(*c) for c in columns)
  grouped, block_seen, rows_seen = _group(records, block_of, row_of, set(columns))

  def ordered(seen, order):
    """``seen`` in ``order`` first (a row with a learner suffix, "Features [standardized]",
    right after its plain row), then the others as they appeared."""
    order = list(order or [])

    def key(x):
      base = x.split(" [")[0]
      if base in order:
        return (order.index(base), x != base, seen.index(x))
      return (len(order), False, seen.index(x))
    return sorted(seen, key=key)

  blocks = tuple((b, tuple(ordered(rows_seen[b], row_order)))
                 for b in ordered(block_seen, block_order))
  cells = {}
  for block, rows in blocks:
    for col in columns:
      acc = {row: grouped[(block, row, col)].accuracies for row in rows
             if (block, row, col) in grouped}
      try:
        compared = stats.compare_to_best(acc, alpha=alpha, zero_method=zero_method)
      except ValueError as e:
        paths = ", ".join(f"{row}: {grouped[(block, row, col)].path}" for row in acc)
        raise ValueError(f"{block} {column_label(col)}: {e} ({paths})") from e
      for row, c in compared.items():
        cells[(block, row, col)] = Cell(c.mean, c.std, c.n_folds, c.p_value, c.is_best,
                                        c.on_par, tuple(float(x) for x in acc[row]),
                                        grouped[(block, row, col)].degenerate)
  return Table(title, block_header, row_header, blocks, columns, cells, mark_on_par)


def _group(records: list[RunRecord], block_of, row_of, col_set: set
           ) -> tuple[dict, list[str], dict[str, list[str]]]:
  """``(record of each (block, row, column), blocks in order of appearance, their rows)``.

  Raises:
    ValueError: when two runs with different fold accuracies land in one cell (naming both).
  """
  grouped: dict[tuple[str, str, Column], RunRecord] = {}
  block_seen: list[str] = []
  rows_seen: dict[str, list[str]] = {}
  placed = []
  for r in records:
    blocks_of_r = block_of(r)
    if isinstance(blocks_of_r, (tuple, list)):
      placed += [(b, r) for b in blocks_of_r]
    else:
      placed.append((blocks_of_r, r))
  for block, r in placed:
    row = row_of(r)
    if block is None or row is None or r.column not in col_set:
      continue
    if r.learner:   # a learner setting other than the paper's is its own, labelled row
      row = f"{row} [{r.learner}]"
    key = (block, row, r.column)
    if key in grouped:
      if _same_folds(grouped[key].accuracies, r.accuracies):
        continue  # e.g. a features-only run repeated under two lexicons
      raise ValueError(f"two runs for {key}: {grouped[key].path} and {r.path}")
    grouped[key] = r
    if block not in rows_seen:
      block_seen.append(block)
      rows_seen[block] = []
    if row not in rows_seen[block]:
      rows_seen[block].append(row)
  return grouped, block_seen, rows_seen


def _modality_block(r: RunRecord) -> str:
  return labels.MODALITY_NAMES.get(r.modality, r.modality)


def backbone_table(records: Iterable[RunRecord], *, title: str = "", lexicon: str = "llm",
                   **kwargs) -> Table:
  """Tables 3-4: per modality, Features, each text backbone alone, then each backbone (F).

  Baseline-encoder runs (``model_label`` in :data:`BASELINE_LABELS`) are left out, and so are
  text / fused runs of another lexicon. Extra keyword arguments go to :func:`build_table`.
  """
  kind_rank = {"features": 0, "text": 1, "fused": 2}
  row = representation.row
  keep = [r for r in records if r.model_label not in BASELINE_LABELS and not r.control
          and row(r.fusion) in kind_rank and (row(r.fusion) == "features" or
                                              r.lexicon == lexicon)]
  ranked = sorted(keep, key=lambda r: (kind_rank[row(r.fusion)], labels.backbone_rank(r.backbone),
                                       r.model_label))
  row_order = list(dict.fromkeys(r.model_label for r in ranked))
  return build_table(
      keep, block_of=_modality_block, row_of=lambda r: r.model_label,
      title=title or "Accuracy across modalities, windows, margins and text backbones.",
      block_order=list(labels.MODALITY_NAMES.values()), row_order=row_order, **kwargs)


def comparison_table(records: Iterable[RunRecord], *, lasca_label: str = "MPNet(F)",
                     lexicon: str = "llm", baselines: Mapping[str, Sequence[str]] = BASELINES,
                     title: str = "", **kwargs) -> Table:
  """Tables 5-6: per modality, the baseline encoders of that modality and LaScA (ours).

  LaScA is the run labelled ``lasca_label`` (``MPNet(F)`` in the paper) with ``lexicon``.
  """
  records = list(records)
  by_modality = {m: tuple(v) for m, v in baselines.items()}
  all_baselines = [b for v in by_modality.values() for b in v]
  # Any run of a precomputed encoder (model.fusion == "baseline") is a baseline row too.
  others = sorted({r.model_label for r in records
                   if representation.row(r.fusion) == "baseline"
                   and r.model_label not in all_baselines})

  def row_of(r):
    if r.control:
      return None
    baseline = representation.row(r.fusion) == "baseline"
    if r.model_label == lasca_label and r.lexicon == lexicon and not baseline:
      return LASCA_ROW
    if r.model_label in by_modality.get(r.modality, ()) or baseline:
      return r.model_label
    return None

  return build_table(
      records, block_of=_modality_block, row_of=row_of,
      title=title or "Comparison with baseline encoders.",
      block_order=list(labels.MODALITY_NAMES.values()),
      row_order=all_baselines + others + [LASCA_ROW],
      **kwargs)


def lexicon_table(records: Iterable[RunRecord], *,
                  backbones: Sequence[str] = ("MPNet(F)", "DRoBERTa(F)", "MiniLM(F)"),
                  modality: str = "multimodal", lexicons: Mapping[str, str] = labels.LEXICON_NAMES,
                  title: str = "", mark_on_par: bool = False, **kwargs) -> Table:
  """Table 7: per fused backbone (block), one row per lexicon (Feature vs LLM (ours)).

  The paper only bolds the better lexicon per configuration, hence ``mark_on_par=False``.
  """
  backbones = list(backbones)
  return build_table(
      records,
      block_of=lambda r: r.model_label if (r.model_label in backbones
                                           and r.modality == modality) else None,
      row_of=lambda r: lexicons.get(r.lexicon),
      title=title or "Feature-name vs LLM lexicon.",
      block_header=labels.MODALITY_NAMES.get(modality, modality), row_header="LaScA",
      block_order=backbones, row_order=list(lexicons.values()), mark_on_par=mark_on_par,
      **kwargs)


CAPACITY = "capacity"   # the control kind of capacity-matched features (model.hidden_from)
CAPACITY_ROW, FEATURES_ROW = "Matched capacity", "Features"
LOGISTIC, TUNED = "logistic", "tuned"   # baselines: the logistic head; features, train.select
LOGISTIC_ROW, TUNED_ROW = labels.LOGISTIC_LABEL, "Features, tuned"
BASELINE_ROWS = (FEATURES_ROW, TUNED_ROW, LOGISTIC_ROW, CAPACITY_ROW)   # rows without language


def _control_fusion(r: RunRecord) -> representation.Fusion | None:
  """The registered control fusion of a control run (None: not one, capacity matching or a
  baseline head)."""
  if not r.control or r.control in (CAPACITY, LOGISTIC, TUNED):
    return None
  return representation.FUSIONS.get(r.fusion)


def _per_backbone_control(r: RunRecord) -> bool:
  """A control with a backbone of its own (capacity matching, random text), not shared."""
  spec = _control_fusion(r)
  return r.control == CAPACITY or (spec is not None and spec.uses_backbone)


def controls_table(records: Iterable[RunRecord], *, modality: str = "multimodal",
                   lexicon: str = "llm", backbones: Sequence[str] | None = None,
                   title: str = "", **kwargs) -> Table:
  """The controls (:mod:`lasca_jax.method.controls`) against LaScA (F), one block per fused
  backbone.

  Rows: LaScA (ours) (the backbone fused, ``lexicon``), each registered control fusion (those
  without a backbone, the salience mask, are shared by all blocks), capacity matching, and the
  features alone. Marks as in Tables 3-4: bold = best mean in the block column, underlined = not
  significantly worse than it (two-sided Wilcoxon over folds).

  Args:
    records: runs.
    modality: the modality whose runs are compared.
    lexicon: lexicon of the LaScA row.
    backbones: short names of the fused backbones (blocks), e.g. ``("MiniLM-L6",)``; None: every
      backbone with a random-text or capacity-matched control (with only shared controls, the
      mask or the baselines without language: every fused backbone with ``lexicon``).
    title: caption.
  """
  records = [r for r in records if r.modality == modality]
  if backbones is None:
    backbones = sorted({labels.backbone_label(r.backbone) for r in records
                        if _per_backbone_control(r)}, key=labels.backbone_rank)
    if not backbones and any(r.control for r in records):   # only shared controls: every
      backbones = sorted({labels.backbone_label(r.backbone) for r in records   # fused backbone
                          if not r.control and representation.row(r.fusion) == "fused" and
                          r.lexicon == lexicon}, key=labels.backbone_rank)
  backbones = list(backbones)
  features = lambda r: representation.row(r.fusion) == "features" and not r.control

  def block_of(r):
    short = labels.backbone_label(r.backbone)
    if r.control in (LOGISTIC, TUNED) and representation.row(r.fusion) == "features":
      return tuple(b + labels.FUSED_SUFFIX for b in backbones)
    if features(r) or (_control_fusion(r) is not None and not _per_backbone_control(r)):
      return tuple(b + labels.FUSED_SUFFIX for b in backbones)
    if _per_backbone_control(r) and short in backbones:
      return short + labels.FUSED_SUFFIX
    if (not r.control and representation.row(r.fusion) == "fused" and r.lexicon == lexicon
        and short in backbones
        and r.model_label == short + labels.FUSED_SUFFIX):
      return short + labels.FUSED_SUFFIX
    return None

  def row_of(r):
    if features(r):
      return FEATURES_ROW
    if r.control == CAPACITY:
      return CAPACITY_ROW
    if r.control in (LOGISTIC, TUNED):
      return LOGISTIC_ROW if r.control == LOGISTIC else TUNED_ROW
    spec = _control_fusion(r)
    return (spec.control_row or spec.name) if spec is not None else LASCA_ROW

  control_rows = [f.control_row or f.name for f in representation.FUSIONS.values() if f.control]
  return build_table(
      records, block_of=block_of, row_of=row_of,
      title=title or "LaScA (F) against controls: salience mask, random text, matched capacity.",
      block_header=labels.MODALITY_NAMES.get(modality, modality), row_header="Representation",
      block_order=[b + labels.FUSED_SUFFIX for b in backbones],
      row_order=[LASCA_ROW, *control_rows, CAPACITY_ROW, TUNED_ROW, LOGISTIC_ROW, FEATURES_ROW],
      **kwargs)


def column_label(col: Column) -> str:
  """``("arousal", 3.0, 0.1)`` -> ``"Arousal 3s 10%"``."""
  t, w, m = col
  return f"{t.capitalize()} {w:g}s {m * 100:g}%"
