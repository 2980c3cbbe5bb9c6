"""The analysis notebook runs top to bottom (IPython.display stubbed): on hand-made runs and on
the synthetic sweep of ``experiments/sweep.py``."""

import json
import pathlib
import sys
import types

from test_tables import BASE, NOISE, write_run  # pylint: disable=g-import-not-at-top

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def run_notebook(sweep, monkeypatch):
  """Executes every code cell in order; returns (namespace, displayed objects)."""
  shown = []
  display_mod = types.ModuleType("IPython.display")
  display_mod.display = shown.append
  display_mod.Markdown = lambda s: ("md", s)
  display_mod.Image = lambda p: ("img", p)
  ipython = types.ModuleType("IPython")
  ipython.version_info = (8, 30)  # matplotlib looks at it
  monkeypatch.setitem(sys.modules, "IPython", ipython)
  monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
  monkeypatch.setenv("LASCA_SWEEP", str(sweep))
  nb = json.loads(NOTEBOOK.read_text())
  namespace = {}
  for cell in nb["cells"]:
    if cell["cell_type"] == "code":
      code = compile("".join(cell["source"]), str(NOTEBOOK), "exec")
      exec(code, namespace)  # pylint: disable=exec-used
  return namespace, shown


def test_notebook_runs(tmp_path, monkeypatch):
  sweep = tmp_path / "sweep"
  write_run(sweep, "f", modality="visual", fusion="features", acc=BASE)
  write_run(sweep, "x", modality="visual", fusion="fused", acc=BASE + 0.05 + NOISE)
  namespace, shown = run_notebook(sweep, monkeypatch)
  assert len(namespace["records"]) == 2
  md = [s for kind, s in shown if kind == "md"]
  assert any("**" in s and "| Visual | Features |" in s for s in md)
  images = [p for kind, p in shown if kind == "img"]
  assert len(images) == 3 and all(pathlib.Path(p).stat().st_size > 0 for p in images)


def test_notebook_runs_on_the_synthetic_sweep(swept, monkeypatch):
  root, config, summary = swept
  namespace, shown = run_notebook(root / "out" / "runs", monkeypatch)
  assert len(namespace["records"]) == summary["configurations"]
  md = "\n".join(s for kind, s in shown if kind == "md")
  # Tables 3-4, 5-6 (simulated baselines vs LaScA) and 7 (lexicons) are all shown.
  assert "| Multimodal | Features |" in md and "LaScA (ours)" in md and "SimAV" in md
  assert "Shuffled" in md and "LLM (ours)" in md
  assert "Salience mask" in md and "Random text" in md and "Matched capacity" in md
  images = [p for kind, p in shown if kind == "img"]
  assert all(pathlib.Path(p).stat().st_size > 0 for p in images) and len(images) >= 3
