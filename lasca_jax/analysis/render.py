"""Tables rendered and stored: Markdown, LaTeX, and a CSV that restores the exact table.

:func:`to_markdown`, :func:`to_latex`, and :func:`write_csv` (every number, its std over folds,
p-value, marks and the fold accuracies); :func:`read_csv` restores the exact
:class:`lasca_jax.analysis.tables.Table`, so a table re-renders from its CSV alone;
:func:`write_table` writes all three.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
from typing import Callable, Sequence

from lasca_jax.analysis.tables import MISSING, Cell, Column, Table, column_label, make_column

DEGENERATE_MARK = "\u2020"   # dagger: some folds of the cell learned nothing
DEGENERATE_NOTE = (f"{DEGENERATE_MARK} some folds of this cell learned nothing (the model decides "
                   "every test pair one way, or kept its first epoch at chance): the mean mixes "
                   "chance-level folds (results column `degenerate`; docs/method.md).")


def format_cell(cell: Cell | None, mark_on_par: bool, bold: Callable[[str], str],
                underline: Callable[[str], str], dagger: str = DEGENERATE_MARK) -> str:
  """Two-decimal mean with the marks (and ``dagger`` when folds are degenerate); ``--`` for a
  missing cell."""
  if cell is None or not math.isfinite(cell.mean):
    return MISSING
  text = f"{cell.mean:.2f}"
  if cell.is_best:
    text = bold(text)
  elif mark_on_par and cell.on_par:
    text = underline(text)
  return text + (dagger if cell.degenerate else "")


def has_degenerate(table: Table) -> bool:
  return any(c.degenerate for c in table.cells.values())


def _body_rows(table: Table, bold, underline) -> list[list[str]]:
  out = []
  for block, rows in table.blocks:
    for i, row in enumerate(rows):
      vals = [format_cell(table.cells.get((block, row, c)), table.mark_on_par, bold, underline)
              for c in table.columns]
      out.append([block if i == 0 else "", row] + vals)
  return out


def to_markdown(table: Table) -> str:
  """GitHub/Jupyter Markdown: bold ``**x**``, underline ``<u>x</u>``."""
  header = [table.block_header, table.row_header] + [column_label(c) for c in table.columns]
  header = [h.replace("|", "\\|") for h in header]
  lines = [f"**{table.title}**", "", "| " + " | ".join(header) + " |",
           "|" + "|".join([" --- "] * 2 + [" ---: "] * len(table.columns)) + "|"]
  for cells in _body_rows(table, lambda s: f"**{s}**", lambda s: f"<u>{s}</u>"):
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
  if has_degenerate(table):
    lines += ["", DEGENERATE_NOTE]
  return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
                  "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}"}


def latex_escape(text: str) -> str:
  """Escapes LaTeX special characters in a label."""
  return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _spans(keys: Sequence) -> list[tuple[object, int]]:
  out = []
  for k in keys:
    if out and out[-1][0] == k:
      out[-1] = (k, out[-1][1] + 1)
    else:
      out.append((k, 1))
  return out


def to_latex(table: Table) -> str:
  """A booktabs ``table`` with a three-level column header (target / window / margin)."""
  cols = table.columns
  lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(table.title)}}}",
           r"\begin{tabular}{ll" + "c" * len(cols) + "}", r"\toprule"]
  for level in (1, 2):
    spans = _spans([c[:level] for c in cols])
    cells, rules, start = [], [], 3
    for key, n in spans:
      text = key[0].capitalize() if level == 1 else f"{key[1]:g}s"
      cells.append(rf"\multicolumn{{{n}}}{{c}}{{{text}}}")
      rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
      start += n
    lines.append(" & & " + " & ".join(cells) + r" \\")
    lines.append("".join(rules))
  lines.append(f"{latex_escape(table.block_header)} & {latex_escape(table.row_header)} & "
               + " & ".join(latex_escape(f"{c[2] * 100:g}%") for c in cols) + r" \\")
  lines.append(r"\midrule")
  for i, (block, rows) in enumerate(table.blocks):
    if i:
      lines.append(r"\midrule")
    for j, row in enumerate(rows):
      vals = [format_cell(table.cells.get((block, row, c)), table.mark_on_par,
                          lambda s: rf"\textbf{{{s}}}", lambda s: rf"\underline{{{s}}}",
                          r"$^\dagger$")
              for c in cols]
      lines.append(" & ".join([latex_escape(block) if j == 0 else "", latex_escape(row)] + vals)
                   + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}"]
  if has_degenerate(table):
    lines.append(r"\par\footnotesize " + latex_escape(DEGENERATE_NOTE).replace(
        DEGENERATE_MARK, r"$^\dagger$"))
  lines.append(r"\end{table}")
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CSV round trip

CSV_FIELDS = ("table", "block_header", "row_header", "mark_on_par", "block", "row", "target",
              "window_seconds", "margin", "mean", "std", "n_folds", "p_value", "is_best",
              "on_par", "fold_accuracies", "degenerate")


def write_csv(table: Table, path: str | os.PathLike) -> None:
  """One line per (block, row, column), missing cells included, floats at full precision."""
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    w.writeheader()
    for block, rows in table.blocks:
      for row in rows:
        for col in table.columns:
          c = table.cells.get((block, row, col))
          w.writerow({
              "table": table.title, "block_header": table.block_header,
              "row_header": table.row_header, "mark_on_par": int(table.mark_on_par),
              "block": block, "row": row, "target": col[0], "window_seconds": repr(col[1]),
              "margin": repr(col[2]),
              "mean": repr(c.mean) if c else "", "std": repr(c.std) if c else "",
              "n_folds": c.n_folds if c else "", "p_value": repr(c.p_value) if c else "",
              "is_best": int(c.is_best) if c else "", "on_par": int(c.on_par) if c else "",
              "fold_accuracies": ";".join(repr(x) for x in c.folds) if c else "",
              "degenerate": c.degenerate if c else "",
          })


def read_csv(path: str | os.PathLike) -> Table:
  """Restores the :class:`Table` that :func:`write_csv` wrote (marks as stored, not recomputed)."""
  with open(path, newline="") as f:
    lines = list(csv.DictReader(f))
  if not lines:
    raise ValueError(f"{path}: empty table CSV")
  first = lines[0]
  blocks: dict[str, list[str]] = {}
  columns: list[Column] = []
  cells = {}
  for x in lines:
    col = make_column(x["target"], x["window_seconds"], x["margin"])
    if col not in columns:
      columns.append(col)
    rows = blocks.setdefault(x["block"], [])
    if x["row"] not in rows:
      rows.append(x["row"])
    if x["mean"] == "":
      continue
    folds = tuple(float(v) for v in x["fold_accuracies"].split(";")) if x["fold_accuracies"] else ()
    cells[(x["block"], x["row"], col)] = Cell(
        float(x["mean"]), float(x["std"]), int(x["n_folds"]), float(x["p_value"]),
        bool(int(x["is_best"])), bool(int(x["on_par"])), folds,
        int(x.get("degenerate") or 0))   # older CSVs lack the column
  return Table(first["table"], first["block_header"], first["row_header"],
               tuple((b, tuple(r)) for b, r in blocks.items()), tuple(columns), cells,
               bool(int(first["mark_on_par"])))


def write_table(table: Table, out_dir: str | os.PathLike, stem: str) -> dict[str, pathlib.Path]:
  """Writes ``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` under ``out_dir``."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {k: out_dir / f"{stem}.{k}" for k in ("md", "tex", "csv")}
  paths["md"].write_text(to_markdown(table))
  paths["tex"].write_text(to_latex(table))
  write_csv(table, paths["csv"])
  return paths
