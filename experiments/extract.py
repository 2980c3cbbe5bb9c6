"""Extracts per-frame face and audio features of a whole dataset (Sec. 4.2), resumably.

  python experiments/extract.py --config=configs/sewa.py --config.data.root=/data/SEWA \
      --config.data.face_model=/models/face_landmarker.task --num_workers=4
  python experiments/extract.py --config=configs/affwild2.py --config.data.root=/data/Aff-Wild2 \
      --shard_index=$SLURM_ARRAY_TASK_ID --num_shards=$SLURM_ARRAY_TASK_COUNT

Writes one compressed ``<recording>.npz`` per recording to ``config.data.features_dir`` (default
``<root>/lasca_features``), atomically; files already present and current are skipped, so a killed
run resumes where it stopped. One bad file never stops the others: failures are listed at the end
and in ``extract_report[_shard-i-of-n].json`` beside the features; the exit status is 1 when any
recording failed.
"""

import importlib
import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lasca_jax.data.extract import load, runner
from lasca_jax.run import cli, validate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Dataset config file.",
                                          lock_config=True)
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1, "Worker processes (0 or 1: in process).",
                                    lower_bound=0)
_SHARD_INDEX = flags.DEFINE_integer("shard_index", 0, "This task's shard, in [0, num_shards).",
                                    lower_bound=0)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 1, "Shards the recordings are split into.",
                                   lower_bound=1)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Recompute even current feature files.")


def report_path(data_config, shard_index: int, num_shards: int) -> str:
  suffix = f"_shard-{shard_index}-of-{num_shards}" if num_shards > 1 else ""
  return os.path.join(load.features_dir(data_config), f"extract_report{suffix}.json")


def main(argv):
  del argv
  config = _CONFIG.value
  dataset = importlib.import_module(f"lasca_jax.data.datasets.{config.data.name}")
  if not hasattr(dataset, "media_jobs"):
    raise app.UsageError(f"dataset {config.data.name!r} has no media to extract")
  try:
    validate.check(config)
    jobs = dataset.media_jobs(config.data)
    if not jobs:
      print(f"{config.data.name}: nothing to extract")
      return
    settings = runner.settings_from_config(config.data)
    results = runner.run_jobs(jobs, settings, num_workers=_NUM_WORKERS.value,
                              shard_index=_SHARD_INDEX.value, num_shards=_NUM_SHARDS.value,
                              overwrite=_OVERWRITE.value)
  except (FileNotFoundError, ValueError) as e:  # No dataset/labels/model, bad shard flags.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  path = report_path(config.data, _SHARD_INDEX.value, _NUM_SHARDS.value)
  runner.write_report(path, results)
  summary = runner.summarise(results)
  fps = summary["frames_per_second_per_worker"]
  print(f"{config.data.name} shard {_SHARD_INDEX.value}/{_NUM_SHARDS.value}: "
        f"{summary['done']} extracted, {summary['skipped']} already done, "
        f"{summary['failed']} failed of {summary['total']}; "
        f"{summary['frames']} frames" + (f", {fps:.1f} frames/s per worker" if fps else ""))
  for rec, reason in summary["warnings"]:
    print(f"  warning {rec}: {reason}")
  for rec, reason in summary["failures"]:
    print(f"  FAILED {rec}: {reason}")
  print(f"report: {path}")
  logging.info("summary: %s", json.dumps({k: v for k, v in summary.items()
                                          if k not in ("failures", "warnings")}))
  if summary["failed"]:
    sys.exit(1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
