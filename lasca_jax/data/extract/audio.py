"""Audio decoding with PyAV (bundled FFmpeg, no system ffmpeg) and 15 MFCCs with librosa (Sec. 4.2).

The audio track of a video container, or a separate ``.wav``, is decoded, down-mixed to mono and
resampled to ``sample_rate`` by PyAV. MFCCs use a 25 ms window and a 10 ms hop by default; frame
``k`` is centred at ``offset + k * hop`` seconds (librosa's ``center=True``), where ``offset`` is the
audio stream's start relative to the first video frame when both come from one container.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from lasca_jax.data import types as data


@dataclasses.dataclass
class Waveform:
  """Mono audio: ``samples`` ``float32 [S]`` at ``sample_rate``, first sample at ``start_time``."""

  samples: np.ndarray
  sample_rate: int
  start_time: float
  gaps: tuple = ()      # ((start, end) seconds, ...) of undecodable packets, filled with zeros


def decode_audio(path: str, sample_rate: Optional[int] = 16000) -> Optional[Waveform]:
  """Decodes the first audio stream of ``path`` to mono ``float32`` at ``sample_rate``.

  Args:
    path: any container PyAV reads (``.wav``, ``.mp4``, ``.avi``, ...).
    sample_rate: output rate in Hz; None keeps the stream's own rate.

  Returns:
    The waveform, or ``None`` when the file has no audio stream.
  """
  import av  # pylint: disable=g-import-not-at-top
  with av.open(path) as container:
    if not container.streams.audio:
      return None
    stream = container.streams.audio[0]
    if sample_rate is None:
      sample_rate = int(stream.codec_context.sample_rate or stream.rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks, start, total, gaps, broken = [], None, 0, [], False
    for packet in container.demux(stream):
      try:
        frames = packet.decode()
      except av.error.FFmpegError:   # a corrupt packet: skipped, its time kept (below)
        broken = True
        continue
      for frame in frames:
        if start is None and frame.time is not None:
          start = float(frame.time)
        if broken and frame.time is not None:   # after a skipped packet: keep the clock
          expected = start + total / sample_rate
          if float(frame.time) - expected > 1.0 / sample_rate:
            n = int(round((float(frame.time) - expected) * sample_rate))
            chunks.append(np.zeros(n, np.float32))
            gaps.append((expected, float(frame.time)))
            total += n
          broken = False
        for out in resampler.resample(frame):
          chunks.append(out.to_ndarray().reshape(-1))
          total += chunks[-1].size
    for out in resampler.resample(None):
      chunks.append(out.to_ndarray().reshape(-1))
  samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
  return Waveform(samples=samples, sample_rate=sample_rate, start_time=start or 0.0,
                  gaps=tuple(gaps))


def mfcc(samples: np.ndarray, sample_rate: int, hop_seconds: float = 0.01,
         window_seconds: float = 0.025, n_mfcc: int = data.NUM_MFCC) -> np.ndarray:
  """MFCCs of a mono waveform.

  Args:
    samples: ``float32 [S]``.
    sample_rate: Hz.
    hop_seconds: frame step.
    window_seconds: analysis window (FFT size is the next power of two).
    n_mfcc: coefficients per frame.

  Returns:
    ``float32 [M, n_mfcc]``, frame ``k`` centred at ``k * hop_seconds``; ``M = 0`` for no samples.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  if samples.size == 0:
    return np.zeros((0, n_mfcc), np.float32)
  hop = max(1, int(round(hop_seconds * sample_rate)))
  win = max(1, int(round(window_seconds * sample_rate)))
  n_fft = 1 << (win - 1).bit_length()
  coeffs = librosa.feature.mfcc(y=samples.astype(np.float32), sr=sample_rate, n_mfcc=n_mfcc,
                                n_fft=n_fft, win_length=win, hop_length=hop, center=True)
  return np.ascontiguousarray(coeffs.T, dtype=np.float32)  # [M, n_mfcc]


def mfcc_track(path: str, sample_rate: int = 16000, hop_seconds: float = 0.01,
               window_seconds: float = 0.025, origin: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray, bool]:
  """MFCC frames of the audio of ``path`` and their times relative to ``origin``.

  Args:
    path: audio or video file.
    sample_rate: decoding rate in Hz.
    hop_seconds: MFCC frame step.
    window_seconds: MFCC analysis window.
    origin: presentation time (seconds, same container clock) that becomes time 0, e.g. the
      first video frame's time when audio and video share a container; 0 for a separate file.

  Returns:
    ``(times float64 [M], mfcc float32 [M, 15], has_audio)``; ``M = 0`` without an audio stream.
  """
  wave = decode_audio(path, sample_rate)
  if wave is None:
    return np.zeros(0), np.zeros((0, data.NUM_MFCC), np.float32), False
  coeffs = mfcc(wave.samples, sample_rate, hop_seconds, window_seconds)
  step = max(1, int(round(hop_seconds * sample_rate))) / sample_rate
  times = wave.start_time - origin + np.arange(coeffs.shape[0]) * step
  for lo, hi in wave.gaps:   # frames touching an undecodable stretch carry no value
    clock = times + origin   # the container's clock
    coeffs[(clock + window_seconds > lo) & (clock < hi)] = np.nan
  return times, coeffs, True
