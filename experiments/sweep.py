"""Runs a grid of configurations (the paper's Tables 3-7) and writes its tables and figures.

  python experiments/sweep.py --config=configs/synthetic.py:sweep --workdir=runs/synthetic_sweep
  python experiments/sweep.py --config=configs/sewa.py --config.data.root=/data/SEWA \
      --workdir=runs/sewa_sweep --config.sweep.baselines="('VGGFace2:visual:/emb/vggface2',)"

The grid is ``config.sweep`` (configs/default.py). Each configuration is a run directory under
``<workdir>/runs``; finished ones are skipped, so re-running the command resumes a sweep. The
report (``<workdir>/report``: tables as Markdown, LaTeX and CSV, figures as PNG, report.md) is
rebuilt at the end from the run directories alone.
"""

import copy
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lasca_jax.analysis import report
from lasca_jax.data.datasets import synthetic
from lasca_jax.model import placement
from lasca_jax.run import labels, sweep, validate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (default runs/<name>).")
_REPORT = flags.DEFINE_bool("report", True, "Write tables and figures after training.")
_RETRY_FAILED = flags.DEFINE_bool("retry_failed", False, "Run again the configurations an "
                                  "earlier call recorded as failed (failed.json).")
MAX_EXIT_STATUS = 100  # Exit statuses above it would read as signals; the report has the count.


def with_simulated_baselines(config, workdir: str):
  """The grid a sweep runs: a copy of ``config`` (the caller's is left as it is) whose
  ``sweep.baselines`` include the synthetic stand-in encoders, written to
  ``<workdir>/simulated_encoders``, when ``sweep.simulated_baselines`` is set. Idempotent."""
  config = copy.deepcopy(config)
  if config.sweep.simulated_baselines:
    if config.data.name != "synthetic":
      raise ValueError("sweep.simulated_baselines needs the synthetic dataset")
    entries = synthetic.write_simulated_encoders(config.data,
                                                 os.path.join(workdir, "simulated_encoders"))
    with config.unlocked():
      config.sweep.baselines = tuple(config.sweep.baselines) + tuple(
          e for e in entries if e not in config.sweep.baselines)
  return config


def run(config, workdir: str, make_report: bool = True, retry_failed: bool = False) -> dict:
  """Library entry point (tests and notebooks call this).

  Failed configurations do not stop the others: each is recorded with its reason in its run
  directory (``failed.json``), listed in ``summary["failures"]`` and in the report, and skipped
  by later calls unless ``retry_failed``.
  """
  validate.check(config, sweep=True)
  config = with_simulated_baselines(config, workdir)
  summary = sweep.run_sweep(config, os.path.join(workdir, "runs"), retry_failed=retry_failed)
  print(f"sweep {config.name}: {summary['configurations']} configurations, "
        f"{summary['trained']} trained, {summary['skipped']} already done, "
        f"{summary['failed']} failed, {summary['groups']} compiled calls, "
        f"{summary['train_seconds']} s training on {summary['devices']} {summary['platform']} "
        f"device(s)")
  for rel, reason in summary["failures"].items():
    print(f"  FAILED {rel}: {reason}")
  if summary["failures"]:
    print("  (recorded in each run's failed.json; a rerun skips them unless --retry_failed)")
  if make_report:
    fused = [labels.fused_label(b) for b in config.sweep.backbones]
    written = report.make_report(
        os.path.join(workdir, "runs"), os.path.join(workdir, "report"),
        dataset=config.data.name, lasca_label=config.sweep.lasca_label or fused[0],
        lexicon=config.text.lexicon, lexicon_backbones=fused,
        lexicon_modality=(config.sweep.ablation_modalities or ("multimodal",))[0],
        figures=True, curves=True)
    summary["report"] = written
    print(f"report: {os.path.join(workdir, 'report', 'report.md')}")
  return summary


def main(argv):
  """Exit status: 0, or the number of failed configurations (at most 100); 1 for a bad config."""
  del argv
  config = _CONFIG.value
  try:
    placement.use_host_devices(int(config.train.get("host_devices", 0)))   # before JAX starts
    summary = run(config, _WORKDIR.value or os.path.join("runs", config.name.replace("/", "_")),
                  _REPORT.value, _RETRY_FAILED.value)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  sys.exit(min(summary["failed"], MAX_EXIT_STATUS))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=validate.parse_flags)
