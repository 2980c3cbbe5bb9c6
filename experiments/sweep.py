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

from absl import flags, logging
from ml_collections import config_flags

from lasca_jax.analysis import report
from lasca_jax.model import placement
from lasca_jax.run import cli, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (default runs/<name>).")
_REPORT = flags.DEFINE_bool("report", True, "Write tables and figures after training.")
_RETRY_FAILED = flags.DEFINE_bool("retry_failed", False, "Run again the configurations an "
                                  "earlier call recorded as failed (failed.json).")
_CUES = flags.DEFINE_bool("cues", True, "The report explains one LaScA run per target (minutes: "
                          "one encoded prompt per salient cue and window).")
_CUE_PAIRS = flags.DEFINE_integer("cue_pairs", 200, "Test decisions the report explains per "
                                  "target (0 = all).", lower_bound=0)
MAX_EXIT_STATUS = 100  # Exit statuses above it would read as signals; the report has the count.


def run(config, workdir: str, make_report: bool = True, retry_failed: bool = False,
        cues: bool = True, cue_pairs: int = 200) -> dict:
  """The sweep (:func:`lasca_jax.run.sweep.run`), then its report
  (:func:`lasca_jax.analysis.report.sweep_report`)."""
  summary = sweep.run(config, workdir, retry_failed)
  if make_report:
    summary["report"] = report.sweep_report(summary["config"], workdir, cues=cues,
                                            cue_pairs=cue_pairs)
  return summary


def main(argv):
  """Exit status: 0, or the number of failed configurations (at most 100); 1 for a bad config."""
  del argv
  config = _CONFIG.value
  try:
    placement.use_host_devices(int(config.train.get("host_devices", 0)))   # before JAX starts
    summary = run(config, _WORKDIR.value or os.path.join("runs", config.name.replace("/", "_")),
                  _REPORT.value, _RETRY_FAILED.value, _CUES.value, _CUE_PAIRS.value)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  sys.exit(min(summary["failed"], MAX_EXIT_STATUS))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
