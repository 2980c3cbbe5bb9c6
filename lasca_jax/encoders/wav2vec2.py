"""Frozen Wav2Vec2 frame embeddings for the audio baseline (Sec. 3.2, Table 2; Sec. 4.2).

Audio is decoded with PyAV (a ``.wav`` or the audio track of a video), down-mixed to mono,
resampled to 16 kHz with ``scipy.signal.resample_poly``, normalised to zero mean and unit variance
per model input (what ``Wav2Vec2FeatureExtractor`` does when ``do_normalize`` is set, the default
for wav2vec2-base), and passed through ``transformers.Wav2Vec2Model`` loaded from a local folder,
in ``eval()`` mode under ``torch.inference_mode()``.

Time base. The convolutional front end has a receptive field of ``R`` samples and a stride of
``S`` samples (400 and 320 for every released wav2vec2: 25 ms and 20 ms at 16 kHz). Output frame
``j`` of a chunk starting at sample ``s`` sees samples ``[s + j S, s + j S + R)`` and is stamped
at its centre, ``offset + (s + j S + R / 2) / 16000`` seconds. ``offset`` is the audio stream's
start relative to the video stream's start (container metadata) when the file also holds video,
else 0, so the times are on the video-frame clock the annotations use.

Long recordings are cut into chunks of ``chunk_seconds`` (a multiple of the stride) embedded
independently, since self-attention over a whole video does not fit in memory; each chunk is
normalised on its own, as the feature extractor would if called per chunk. A trailing piece
shorter than the receptive field yields no frame.

Output (one ``<stem>.npz`` per input, the format :mod:`lasca_jax.encoders.baseline` reads):
``embeddings float32 [T, D]``, ``times float64 [T]``, plus ``sample_rate``, ``frame_stride``
(seconds), ``offset``, ``layer``, ``chunk_seconds``, ``model_path``, ``source``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Sequence

import numpy as np

from lasca_jax.data import files as files_lib
from lasca_jax.data.extract import audio as audio_lib

SAMPLE_RATE = 16000
MEDIA_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".mp4", ".avi",
                    ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


def _stream_start(stream) -> float | None:
  if stream.start_time is None or stream.time_base is None:
    return None
  return float(stream.start_time * stream.time_base)


def decode_audio(path: str | os.PathLike) -> tuple[np.ndarray, int, float]:
  """Decodes the first audio stream of a file to mono float32 at its native rate.

  The samples come from :func:`lasca_jax.data.extract.audio.decode_audio`.

  Returns:
    ``samples [N]``, the sample rate, and the offset in seconds of the audio start relative to
    the video start (0 for an audio-only file or when the container does not say).

  Raises:
    ValueError: naming the file when it has no audio stream or no decodable samples.
  """
  import av  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  wave = audio_lib.decode_audio(path, sample_rate=None)
  if wave is None:
    raise ValueError(f"{path}: no audio stream")
  if wave.samples.size == 0:
    raise ValueError(f"{path}: the audio stream decoded to no samples")
  offset = 0.0
  with av.open(path) as container:
    if container.streams.video:
      a = _stream_start(container.streams.audio[0])
      v = _stream_start(container.streams.video[0])
      if a is not None and v is not None:
        offset = a - v
  return wave.samples, wave.sample_rate, offset


def resample(samples: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Polyphase resampling (``scipy.signal.resample_poly``) from ``rate`` to ``target_rate``."""
  import scipy.signal  # pylint: disable=g-import-not-at-top
  if rate == target_rate:
    return np.asarray(samples, np.float32)
  g = math.gcd(int(rate), int(target_rate))
  return scipy.signal.resample_poly(samples, target_rate // g, rate // g).astype(np.float32)


def load_audio(path: str | os.PathLike, target_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
  """Mono float32 samples at ``target_rate`` and the offset of the audio start (seconds)."""
  samples, rate, offset = decode_audio(path)
  return resample(samples, rate, target_rate), offset


def frame_geometry(config) -> tuple[int, int]:
  """Receptive field and stride, in samples, of a Wav2Vec2 convolutional front end."""
  field, stride = 1, 1
  for k, s in zip(config.conv_kernel, config.conv_stride):
    field += (k - 1) * stride
    stride *= s
  return field, stride


def normalise(x: np.ndarray) -> np.ndarray:
  """Zero mean, unit variance, as ``Wav2Vec2FeatureExtractor`` (``do_normalize=True``)."""
  return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


def load_model(model_path: str | os.PathLike, device: str = "cpu") -> tuple[Any, bool]:
  """A frozen ``Wav2Vec2Model`` from a local folder, and whether inputs are normalised.

  ``do_normalize`` is read from the folder's ``preprocessor_config.json`` when there is one
  (default True).
  """
  import transformers  # pylint: disable=g-import-not-at-top
  model_path = os.fspath(model_path)
  if not os.path.isdir(model_path):
    raise FileNotFoundError(f"{model_path}: Wav2Vec2 model folder not found (no downloads are "
                            "made; pass a folder saved with save_pretrained)")
  model = transformers.Wav2Vec2Model.from_pretrained(model_path, local_files_only=True)
  model.eval().requires_grad_(False).to(device)
  do_normalize = True
  pre = os.path.join(model_path, "preprocessor_config.json")
  if os.path.isfile(pre):
    with open(pre) as f:
      do_normalize = bool(json.load(f).get("do_normalize", True))
  return model, do_normalize


def embed_waveform(model, samples: np.ndarray, *, sample_rate: int = SAMPLE_RATE,
                   chunk_seconds: float = 20.0, layer: int = -1, do_normalize: bool = True,
                   offset: float = 0.0, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
  """Frame embeddings and their centre times for a 16 kHz waveform.

  Args:
    model: a ``Wav2Vec2Model`` in eval mode.
    samples: ``[N]`` mono samples at ``sample_rate``.
    sample_rate: must be what the model expects (16 kHz).
    chunk_seconds: chunk length (rounded down to a multiple of the stride); <= 0 for one chunk.
    layer: ``-1`` for ``last_hidden_state``, else an index into ``hidden_states`` (0 = the
      projected CNN features before the transformer).
    do_normalize: zero-mean unit-variance per chunk.
    offset: seconds added to every time (audio start on the annotation clock).
    device: torch device.

  Returns:
    ``embeddings float32 [T, D]`` and ``times float64 [T]``.
  """
  import torch  # pylint: disable=g-import-not-at-top
  field, stride = frame_geometry(model.config)
  n = int(samples.shape[0])
  if chunk_seconds and chunk_seconds > 0:
    chunk = max(stride, int(chunk_seconds * sample_rate) // stride * stride)
  else:
    chunk = max(n, 1)
  embs, times = [], []
  for start in range(0, n, chunk):
    piece = np.asarray(samples[start:start + chunk], np.float32)
    if piece.shape[0] < field:
      continue
    if do_normalize:
      piece = normalise(piece)
    with torch.inference_mode():
      x = torch.from_numpy(piece)[None].to(device)
      out = model(x, output_hidden_states=layer != -1)
      h = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
    h = h[0].float().cpu().numpy()
    embs.append(h)
    times.append(offset + (start + np.arange(h.shape[0]) * stride + field / 2) / sample_rate)
  dim = int(model.config.hidden_size)
  if not embs:
    return np.zeros((0, dim), np.float32), np.zeros(0, np.float64)
  return np.concatenate(embs).astype(np.float32), np.concatenate(times).astype(np.float64)


def list_media(inputs: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
  """Files named directly, plus media files (by extension) found recursively in directories.

  Raises:
    FileNotFoundError: for an input that does not exist.
    ValueError: when two inputs share a stem (their outputs would collide).
  """
  files = []
  for item in inputs:
    p = pathlib.Path(item)
    if p.is_dir():
      files += sorted(q for q in p.rglob("*") if q.suffix.lower() in MEDIA_EXTENSIONS)
    elif p.is_file():
      files.append(p)
    else:
      raise FileNotFoundError(f"{p}: no such file or directory")
  seen = {}
  for f in files:
    if f.stem in seen and seen[f.stem] != f:
      raise ValueError(f"{seen[f.stem]} and {f} would both write {f.stem}.npz")
    seen[f.stem] = f
  return list(dict.fromkeys(files))


def extract_files(model_path: str | os.PathLike, inputs: Sequence[str | os.PathLike],
                  output_dir: str | os.PathLike, *, chunk_seconds: float = 20.0, layer: int = -1,
                  device: str = "cpu", overwrite: bool = False) -> dict[str, str]:
  """Embeds every input file to ``<output_dir>/<stem>.npz``; existing outputs are skipped.

  Returns:
    ``{input path: "written" | "skipped"}``.
  """
  files = list_media(inputs)
  status = {}
  model, do_normalize = None, True
  for f in files:
    out = pathlib.Path(output_dir) / f"{f.stem}.npz"
    if out.exists() and not overwrite:
      status[str(f)] = "skipped"
      continue
    if model is None:
      model, do_normalize = load_model(model_path, device)
    samples, offset = load_audio(f)
    emb, times = embed_waveform(model, samples, chunk_seconds=chunk_seconds, layer=layer,
                                do_normalize=do_normalize, offset=offset, device=device)
    files_lib.save_npz_atomic(out, dict(
        embeddings=emb, times=times, sample_rate=np.int64(SAMPLE_RATE),
        frame_stride=np.float64(frame_geometry(model.config)[1] / SAMPLE_RATE),
        offset=np.float64(offset), layer=np.int64(layer), chunk_seconds=np.float64(chunk_seconds),
        model_path=str(model_path), source=str(f)))
    status[str(f)] = "written"
  return status
