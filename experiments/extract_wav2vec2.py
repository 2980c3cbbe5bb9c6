r"""Frozen Wav2Vec2 frame embeddings for the audio baseline of Tables 5-6.

Run (weights must already be on disk, e.g. a folder saved from facebook/wav2vec2-base):

  python experiments/extract_wav2vec2.py --model_path=/models/wav2vec2-base \
      --audio=/data/affwild2/videos --output_dir=/data/affwild2/embeddings/wav2vec2

Writes ``<output_dir>/<stem>.npz`` (``embeddings [T, 768]``, ``times [T]`` seconds, 20 ms apart)
per audio or video file, atomically, skipping files whose output exists. Read them back with
``lasca_jax.encoders.baseline``. See ``lasca_jax/encoders/wav2vec2.py`` for decoding, chunking and time stamps.
"""


from absl import app
from absl import flags
from absl import logging

from lasca_jax.encoders import wav2vec2

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Local Wav2Vec2 folder (config.json + weights).")
flags.DEFINE_list("audio", None, "Audio/video files and/or directories (searched recursively).")
flags.DEFINE_string("output_dir", None, "Folder for the per-recording .npz files.")
flags.DEFINE_float("chunk_seconds", 20.0, "Chunk length fed to the model; <= 0 for whole files.")
flags.DEFINE_integer("layer", -1, "-1: last hidden state; k: hidden_states[k].")
flags.DEFINE_string("device", "cpu", "Torch device.")
flags.DEFINE_bool("overwrite", False, "Recompute outputs that already exist.")
flags.mark_flags_as_required(["model_path", "audio", "output_dir"])


def main(argv):
  del argv
  status = wav2vec2.extract_files(FLAGS.model_path, FLAGS.audio, FLAGS.output_dir,
                                  chunk_seconds=FLAGS.chunk_seconds, layer=FLAGS.layer,
                                  device=FLAGS.device, overwrite=FLAGS.overwrite)
  written = sum(v == "written" for v in status.values())
  logging.info("%d written, %d skipped, output in %s", written, len(status) - written,
               FLAGS.output_dir)
  print(f"{written} written, {len(status) - written} skipped -> {FLAGS.output_dir}")


if __name__ == "__main__":
  app.run(main)
