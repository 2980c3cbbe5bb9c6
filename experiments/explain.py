"""Explains a trained run's test decisions cue by cue (text and feature side).

  python experiments/explain.py --run=runs/synthetic --output=runs/synthetic/explain

Writes ``<output>/cues.csv`` (``cue, phrase, modality, source, times_salient, mean_contribution,
std_over_folds, mean_abs_contribution, folds``), ``cues_<target>.png`` (ranked bars),
``deletion.csv`` / ``deletion.png`` (removing the top-k attributed cues vs k random salient
cues) and ``explain.json``. Uses only the run's bundle (and the shared embedding store).
"""

import os
import sys

from absl import flags, logging

from lasca_jax.inference import attribution
from lasca_jax.run import cli

_RUN = flags.DEFINE_string("run", None, "Run directory (with bundle/).")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder (default <run>/explain).")
_MAX_PAIRS = flags.DEFINE_integer("max_pairs", 400, "Test decisions explained (seeded draw; 0 = "
                                  "all). Text attribution encodes one prompt per salient cue.",
                                  lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the draw and of the random cues.", lower_bound=0)
_IG_STEPS = flags.DEFINE_integer("ig_steps", 32, "Integrated-gradient quadrature points.",
                                 lower_bound=1)
_DRAWS = flags.DEFINE_integer("draws", 5, "Random cue sets per decision in the deletion curve.",
                              lower_bound=1)
_TEXT_MODEL_PATH = flags.DEFINE_string("text_model_path", None, "Local folder of the text "
                                       "backbone (when the bundle's is not available here).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Embedding store location.")


# Library entry point (tests and the sweep report call it).
explain = attribution.explain_run_dir


def main(argv):
  del argv
  output = _OUTPUT.value or os.path.join(_RUN.value, "explain")
  try:
    result = explain(_RUN.value, output, _MAX_PAIRS.value, _SEED.value, _IG_STEPS.value,
                     _DRAWS.value, _TEXT_MODEL_PATH.value, _CACHE_DIR.value)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  d = result.summary["deletion"]
  print(f"{result.summary['explained']} decisions explained -> {output}/cues.csv; deletion "
        f"|logit change| top-k {[round(v, 3) for v in d['top_change']]} vs random "
        f"{[round(v, 3) for v in d['random_change']]}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["run"])
  logging.set_verbosity(logging.INFO)
  cli.run(main)
