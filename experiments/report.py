r"""Tables 3-7 (Markdown, LaTeX, CSV) and figures from a sweep of run directories.

  python experiments/report.py --sweep_dir=runs/sewa_sweep --output_dir=reports/sewa \
      --dataset=sewa [--curves] [--nocues | --cue_pairs=50]

The LaScA row and the main lexicon are chosen from the runs unless given (``report.md`` says
which, and warns when a given one matches no run). The cue section explains one LaScA run per
target and takes minutes (``--cue_pairs`` decisions each, one encoded prompt per salient cue and
window); ``--nocues`` leaves it out.

Reads the run directories under ``--sweep_dir`` into one table (``lasca_jax.analysis.results.load``);
see ``lasca_jax/analysis/report.py`` for what is written. A table re-renders from its CSV with ``lasca_jax.analysis.render.read_csv``.
"""

import sys

from absl import flags

from lasca_jax.analysis import report
from lasca_jax.run import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_dir", None, "Directory tree holding the run directories.")
flags.DEFINE_string("output_dir", None, "Where tables/, figures/ and report.md go.")
flags.DEFINE_string("dataset", None, "Keep only runs of this config.data.name.")
flags.DEFINE_string("lasca_label", "", "Row reported as LaScA (ours) in Tables 5-6; '' -> "
                    "MPNet(F) when the runs have it, else their most frequent fused row.")
flags.DEFINE_string("lexicon", "", "Lexicon of the backbone and comparison tables; '' -> the "
                    "runs' most frequent lexicon (other than feature_name and shuffled ones).")
flags.DEFINE_list("lexicon_backbones", ["MPNet(F)", "DRoBERTa(F)", "MiniLM(F)"],
                  "Blocks of the lexicon table (Table 7).")
flags.DEFINE_enum("lexicon_modality", "multimodal", ["visual", "audio", "multimodal"],
                  "Modality of the lexicon table.")
flags.DEFINE_bool("figures", True, "Draw accuracy and pair-count figures.")
flags.DEFINE_bool("curves", False, "Draw one learning-curve figure per run.")
flags.DEFINE_bool("cues", True, "Explain one LaScA run per target (minutes: one encoded prompt per "
                  "salient cue and window of each explained decision).")
flags.DEFINE_integer("cue_pairs", 200, "Test decisions explained per target (seeded draw; 0 = "
                     "all).", lower_bound=0)
flags.mark_flags_as_required(["sweep_dir", "output_dir"])


def main(argv):
  del argv
  try:
    written = report.make_report(
        FLAGS.sweep_dir, FLAGS.output_dir, dataset=FLAGS.dataset,
        lasca_label=FLAGS.lasca_label or None, lexicon=FLAGS.lexicon or None,
        lexicon_backbones=FLAGS.lexicon_backbones, lexicon_modality=FLAGS.lexicon_modality,
        figures=FLAGS.figures, curves=FLAGS.curves, cues=FLAGS.cues, cue_pairs=FLAGS.cue_pairs,
        progress=True)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  print(f"{len(written['tables'])} table files, {len(written['figures'])} figures -> "
        f"{written['report'][0]}")


if __name__ == "__main__":
  cli.run(main)
