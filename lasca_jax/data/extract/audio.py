"""Audio decoding with PyAV (bundled FFmpeg, no system ffmpeg) and 15 MFCCs with librosa (Sec. 4.2).

:class:`AudioDecoder` and :class:`MfccStream` do the same packet by packet, for the live path.

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

TOP_DB = 80.0   # librosa's default log-mel floor below the loudest value (the paper's MFCCs)


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
    decoder = AudioDecoder(stream, sample_rate)
    chunks = [decoder.decode(packet) for packet in container.demux(stream)]
    chunks.append(decoder.flush())
  samples = np.concatenate(chunks).astype(np.float32)
  return Waveform(samples=samples, sample_rate=decoder.sample_rate,
                  start_time=decoder.start or 0.0, gaps=tuple(decoder.gaps))


class AudioDecoder:
  """Packets of one PyAV audio stream -> mono ``float32`` samples at ``sample_rate``.

  :func:`decode_audio` (offline) and the live path (:mod:`lasca_jax.inference.live`) both use
  it, so a stream gives the same samples in both. A packet that fails to decode (a corrupt
  stretch) is skipped; the next decoded frame's timestamp tells how long the hole was, which is
  filled with zeros and recorded in :attr:`gaps` so that its MFCC frames become NaN.

  Attributes:
    sample_rate: output rate (the stream's own when None was asked).
    start: presentation time (seconds) of the first decoded frame, None before it.
    total: samples produced so far.
    gaps: ``[(start, end)]`` seconds (stream clock) of undecodable stretches.
  """

  def __init__(self, stream, sample_rate: Optional[int] = 16000):
    import av  # pylint: disable=g-import-not-at-top
    if sample_rate is None:
      sample_rate = int(stream.codec_context.sample_rate or stream.rate)
    self.sample_rate = int(sample_rate)
    self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
    self.start, self.total, self.gaps, self._broken = None, 0, [], False

  def decode(self, packet) -> np.ndarray:
    """The samples that ``packet`` completes (possibly none)."""
    import av  # pylint: disable=g-import-not-at-top
    try:
      frames = packet.decode()
    except av.error.FFmpegError:   # a corrupt packet: skipped, its time kept (below)
      self._broken = True
      return np.zeros(0, np.float32)
    chunks = []
    for frame in frames:
      if self.start is None and frame.time is not None:
        self.start = float(frame.time)
      if self._broken and frame.time is not None:   # after a skipped packet: keep the clock
        expected = self.start + self.total / self.sample_rate
        if float(frame.time) - expected > 1.0 / self.sample_rate:
          n = int(round((float(frame.time) - expected) * self.sample_rate))
          chunks.append(np.zeros(n, np.float32))
          self.gaps.append((expected, float(frame.time)))
          self.total += n
        self._broken = False
      for out in self._resampler.resample(frame):
        chunks.append(out.to_ndarray().reshape(-1))
        self.total += chunks[-1].size
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

  def flush(self) -> np.ndarray:
    """The samples the resampler still holds (at the end of the stream)."""
    chunks = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(None)]
    out = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    self.total += out.size
    return out


def frame_sizes(sample_rate: int, hop_seconds: float, window_seconds: float
                ) -> tuple[int, int, int]:
  """``(hop, win, n_fft)`` in samples: the FFT size is the next power of two of the window."""
  hop = max(1, int(round(hop_seconds * sample_rate)))
  win = max(1, int(round(window_seconds * sample_rate)))
  return hop, win, 1 << (win - 1).bit_length()


def mfcc(samples: np.ndarray, sample_rate: int, hop_seconds: float = 0.01,
         window_seconds: float = 0.025, n_mfcc: int = data.NUM_MFCC,
         top_db: float = TOP_DB) -> np.ndarray:
  """MFCCs of a mono waveform.

  Args:
    samples: ``float32 [S]``.
    sample_rate: Hz.
    hop_seconds: frame step.
    window_seconds: analysis window (FFT size is the next power of two).
    n_mfcc: coefficients per frame.
    top_db: the log-mel floor sits this many dB below the recording's loudest mel value
      (librosa's default, 80); 0 puts no recording-relative floor (only librosa's ``amin``), so
      that a frame's MFCCs depend on its own samples alone (causal, as the live path needs).

  Returns:
    ``float32 [M, n_mfcc]``, frame ``k`` centred at ``k * hop_seconds``; ``M = 0`` for no samples.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  if samples.size == 0:
    return np.zeros((0, n_mfcc), np.float32)
  hop, win, n_fft = frame_sizes(sample_rate, hop_seconds, window_seconds)
  mel = librosa.feature.melspectrogram(y=samples.astype(np.float32), sr=sample_rate, n_fft=n_fft,
                                       win_length=win, hop_length=hop, center=True)
  log_mel = librosa.power_to_db(mel, top_db=top_db or None)
  coeffs = librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc)
  return np.ascontiguousarray(coeffs.T, dtype=np.float32)  # [M, n_mfcc]


class MfccStream:
  """MFCCs computed as samples arrive, frame for frame those of :func:`mfcc` on the whole
  waveform (same framing: frame ``k`` centred on sample ``k * hop``, zero padding before the
  first sample and, at :meth:`finish`, after the last).

  A frame is computed once the ``n_fft // 2`` samples after its centre have arrived. With
  ``top_db`` > 0, :func:`mfcc`'s floor (``top_db`` below the whole recording's loudest mel
  value) cannot be known before the recording ends; the stream uses the loudest value heard so
  far (:attr:`floor_rises` counts the frames after which that floor rose), so frames before the
  recording's loudest moment can differ from the offline ones. ``top_db=0`` is exact.
  """

  def __init__(self, sample_rate: int, hop_seconds: float = 0.01, window_seconds: float = 0.025,
               n_mfcc: int = data.NUM_MFCC, top_db: float = TOP_DB):
    self.sample_rate, self.n_mfcc, self.top_db = sample_rate, n_mfcc, float(top_db or 0.0)
    self.hop, self.win, self.n_fft = frame_sizes(sample_rate, hop_seconds, window_seconds)
    self._buffer = np.zeros(self.n_fft // 2, np.float32)   # the leading zero padding
    self._offset = 0          # buffer index 0 is padded-signal sample ``_offset``
    self.frames = 0           # frames emitted so far
    self.samples = 0          # samples received
    self.loudest = -np.inf    # loudest log-mel value so far (dB)
    self.floor_rises = 0
    self._mel_basis = None

  def push(self, samples: np.ndarray) -> np.ndarray:
    """``float32 [m, n_mfcc]``: the frames that ``samples`` complete."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    self.samples += samples.size
    self._buffer = np.concatenate([self._buffer, samples])
    return self._frames(self._offset + self._buffer.size)

  def finish(self) -> np.ndarray:
    """The last frames (zero padding after the last sample), as :func:`mfcc` ends."""
    total = 1 + self.samples // self.hop if self.samples else 0
    self._buffer = np.concatenate([self._buffer, np.zeros(self.n_fft // 2, np.float32)])
    return self._frames(self._offset + self._buffer.size, total)

  def _frames(self, end: int, limit: int | None = None) -> np.ndarray:
    import librosa  # pylint: disable=g-import-not-at-top
    stop = (end - self.n_fft) // self.hop + 1 if end >= self.n_fft else 0   # frames computable
    if limit is not None:
      stop = min(stop, limit)
    if stop <= self.frames:
      return np.zeros((0, self.n_mfcc), np.float32)
    lo = self.frames * self.hop - self._offset
    segment = self._buffer[lo:lo + (stop - 1 - self.frames) * self.hop + self.n_fft]
    spec = librosa.stft(segment, n_fft=self.n_fft, hop_length=self.hop, win_length=self.win,
                        center=False)
    if self._mel_basis is None:    # melspectrogram's filter bank, made once
      self._mel_basis = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft)
    mel = np.einsum("...ft,mf->...mt", np.abs(spec) ** 2, self._mel_basis, optimize=True)
    log_mel = librosa.power_to_db(mel, top_db=None)
    if self.top_db:
      loudest = np.maximum.accumulate(np.maximum(log_mel.max(axis=0), self.loudest))
      self.floor_rises += int(np.sum(loudest[1:] > loudest[:-1]) +
                              (loudest[0] > self.loudest and np.isfinite(self.loudest)))
      self.loudest = float(loudest[-1])
      log_mel = np.maximum(log_mel, (loudest - self.top_db)[None])
    coeffs = librosa.feature.mfcc(S=log_mel, n_mfcc=self.n_mfcc)
    keep = stop * self.hop - self._offset    # drop samples no later frame needs
    self._buffer, self._offset = self._buffer[keep:], self._offset + keep
    self.frames = stop
    return np.ascontiguousarray(coeffs.T, dtype=np.float32)


def mfcc_track(path: str, sample_rate: int = 16000, hop_seconds: float = 0.01,
               window_seconds: float = 0.025, origin: float = 0.0, top_db: float = TOP_DB
               ) -> tuple[np.ndarray, np.ndarray, bool]:
  """MFCC frames of the audio of ``path`` and their times relative to ``origin``.

  Args:
    path: audio or video file.
    sample_rate: decoding rate in Hz.
    hop_seconds: MFCC frame step.
    window_seconds: MFCC analysis window.
    origin: presentation time (seconds, same container clock) that becomes time 0, e.g. the
      first video frame's time when audio and video share a container; 0 for a separate file.
    top_db: :func:`mfcc`'s floor.

  Returns:
    ``(times float64 [M], mfcc float32 [M, 15], has_audio)``; ``M = 0`` without an audio stream.
  """
  wave = decode_audio(path, sample_rate)
  if wave is None:
    return np.zeros(0), np.zeros((0, data.NUM_MFCC), np.float32), False
  coeffs = mfcc(wave.samples, sample_rate, hop_seconds, window_seconds, top_db=top_db)
  times = frame_times(wave.start_time - origin, coeffs.shape[0], sample_rate, hop_seconds)
  blank_gaps(coeffs, times + origin, wave.gaps, window_seconds)
  return times, coeffs, True


def frame_times(start: float, count: int, sample_rate: int, hop_seconds: float,
                first: int = 0) -> np.ndarray:
  """``float64 [count]`` times of MFCC frames ``first ...``: ``start + k * hop``."""
  step = frame_sizes(sample_rate, hop_seconds, hop_seconds)[0] / sample_rate
  return start + np.arange(first, first + count) * step


def blank_gaps(coeffs: np.ndarray, clock: np.ndarray, gaps, window_seconds: float) -> None:
  """NaN (in place) in the frames at ``clock`` (stream clock) touching an undecodable stretch."""
  for lo, hi in gaps:
    coeffs[(clock + window_seconds > lo) & (clock < hi)] = np.nan
