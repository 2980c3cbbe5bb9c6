"""Runs a grid of configurations (the paper's Tables 3-7) and writes its tables and figures.

  python experiments/sweep.py --config=configs/synthetic.py:sweep --workdir=runs/synthetic_sweep
  python experiments/sweep.py --config=configs/sewa.py --config.data.root=/data/SEWA \
      --workdir=runs/sewa_sweep --config.sweep.baselines="('VGGFace2:visual:/emb/vggface2',)"

The grid is ``config.sweep`` (configs/default.py). Each configuration is a run directory under
``<workdir>/runs``; finished ones are skipped, so re-running the command resumes a sweep. The
report (``<workdir>/report``: tables as Markdown, LaTeX and CSV, figures as PNG, report.md) is
rebuilt at the end from the run directories alone.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lasca_jax import encode, report, sweep  # pylint: disable=wrong-import-position
from lasca_jax.datasets import synthetic  # pylint: disable=wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (default runs/<name>).")
_REPORT = flags.DEFINE_bool("report", True, "Write tables and figures after training.")


def run(config, workdir: str, make_report: bool = True) -> dict:
  """Library entry point (tests and notebooks call this)."""
  if config.sweep.simulated_baselines:
    if config.data.name != "synthetic":
      raise ValueError("sweep.simulated_baselines needs the synthetic dataset")
    entries = synthetic.write_simulated_encoders(config.data,
                                                 os.path.join(workdir, "simulated_encoders"))
    with config.unlocked():
      config.sweep.baselines = tuple(config.sweep.baselines) + tuple(entries)
  summary = sweep.run_sweep(config, os.path.join(workdir, "runs"))
  print(f"sweep {config.name}: {summary['configurations']} configurations, "
        f"{summary['trained']} trained, {summary['skipped']} already done, "
        f"{summary['groups']} compiled calls, {summary['train_seconds']} s training on "
        f"{summary['devices']} {summary['platform']} device(s)")
  if make_report:
    labels = [encode.backbone_label(b) + "(F)" for b in config.sweep.backbones]
    written = report.make_report(
        os.path.join(workdir, "runs"), os.path.join(workdir, "report"),
        dataset=config.data.name, lasca_label=config.sweep.lasca_label or labels[0],
        lexicon="llm", lexicon_backbones=labels,
        lexicon_modality=(config.sweep.ablation_modalities or ("multimodal",))[0],
        figures=True, curves=True)
    summary["report"] = written
    print(f"report: {os.path.join(workdir, 'report', 'report.md')}")
  return summary


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    run(config, _WORKDIR.value or os.path.join("runs", config.name.replace("/", "_")),
        _REPORT.value)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  app.run(main)
