"""Small media and feature-file writers shared by test_media.py and test_datasets.py."""

from __future__ import annotations

import fractions
import os
import pathlib
from typing import Optional

import numpy as np
import pytest

from lasca_jax.data import types as data
from lasca_jax.data.extract import store


def shared_dir() -> pathlib.Path:
  """``$LASCA_JAX_SHARED`` or ``../shared`` beside the checkout."""
  return pathlib.Path(os.environ.get("LASCA_JAX_SHARED") or
                      pathlib.Path(__file__).resolve().parents[2] / "shared")


def shared_file(relative: str) -> pathlib.Path:
  """A file of the shared folder, or a pytest skip saying where it was looked for."""
  path = shared_dir() / relative
  if not path.is_file():
    pytest.skip(f"shared file {path} is absent (set LASCA_JAX_SHARED to the folder holding "
                "models/face_landmarker.task and media/)")
  return path


def face_model() -> str:
  return str(shared_file("models/face_landmarker.task"))


def write_video(path, frames, fps=25, audio_seconds: Optional[float] = None,
                sample_rate: int = 16000) -> str:
  """Writes ``frames`` (``uint8 [N, H, W, 3]`` or an int N of grey frames) with PyAV.

  ``.mp4`` uses H.264 + AAC, ``.avi`` MPEG-4 + PCM; ``audio_seconds=None`` writes no audio track.
  """
  import av  # pylint: disable=g-import-not-at-top
  path = str(path)
  if isinstance(frames, int):
    frames = np.stack([np.full((48, 64, 3), (i * 37) % 255, np.uint8) for i in range(frames)])
  avi = path.endswith(".avi")
  with av.open(path, "w") as container:
    video = container.add_stream("mpeg4" if avi else "libx264",
                                 rate=fractions.Fraction(fps).limit_denominator(10000))
    video.height, video.width = frames.shape[1:3]
    video.pix_fmt = "yuv420p"
    audio = None
    if audio_seconds is not None:
      audio = container.add_stream("pcm_s16le" if avi else "aac", rate=sample_rate)
      audio.layout = "mono"
    for img in frames:
      for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img),
                                                            format="rgb24")):
        container.mux(packet)
    for packet in video.encode():
      container.mux(packet)
    if audio is not None:
      wave = 0.1 * np.sin(2 * np.pi * 220 * np.arange(int(audio_seconds * sample_rate)) /
                          sample_rate)
      step = audio.frame_size or 1024
      for pos in range(0, wave.size, step):
        chunk = wave[pos:pos + step]
        if audio.format.name == "fltp":
          frame = av.AudioFrame.from_ndarray(chunk.astype(np.float32)[None], format="fltp",
                                             layout="mono")
        else:
          frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16)[None],
                                             format="s16", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, pos
        for packet in audio.encode(frame):
          container.mux(packet)
      for packet in audio.encode():
        container.mux(packet)
  return path


def write_wav(path, seconds: float, sample_rate: int = 16000) -> str:
  from scipy.io import wavfile  # pylint: disable=g-import-not-at-top
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  wavfile.write(str(path), sample_rate, (3000 * np.sin(2 * np.pi * 330 * t)).astype(np.int16))
  return str(path)


def write_fake_features(path, num_frames: int, fps: float, stride: int = 1,
                        audio_seconds: Optional[float] = None, no_face=(),
                        hop: float = 0.01) -> dict:
  """A feature file as extraction would write it, with known values.

  Face value of frame ``i`` in every column: ``i`` (NaN for frames in ``no_face``); MFCC value of
  frame ``k``: ``k * hop`` (its time). Returns the arrays.
  """
  index = np.unique(np.r_[np.arange(0, num_frames, stride), num_frames - 1])  # As extraction.
  face = np.repeat(index[:, None].astype(np.float32), len(data.FACE_FEATURE_NAMES), axis=1)
  face[np.isin(index, list(no_face))] = np.nan
  m = int(round(audio_seconds / hop)) if audio_seconds else 0
  audio_times = np.arange(m) * hop
  arrays = {"frame_index": index, "frame_times": index / fps, "face": face,
            "face_valid": ~np.isnan(face).any(axis=1), "audio_times": audio_times,
            "mfcc": np.repeat(audio_times[:, None], data.NUM_MFCC, axis=1).astype(np.float32)}
  meta = {"version": store.FORMAT_VERSION, "fps": fps, "num_frames": num_frames,
          "has_audio": bool(m), "warnings": [], "inputs": {}, "recording_id": "",
          "settings": {"frame_stride": stride, "mfcc_hop_seconds": hop}}
  store.save_features(str(path), arrays, meta)
  return arrays
