"""Live affect-change tracking: a camera or stream in, one decision per closed window out.

:class:`LiveTracker` applies a run's bundle (:mod:`lasca_jax.inference.ensemble`) to a source
while it plays and yields a :class:`Decision` for every consecutive pair of windows as soon as the
later window closes: the pair's row of ``experiments/predict.py``'s ``predictions.csv``
(P(increase), its spread over the fold models, direction, both prompts, the top cues, or why it
was not decided), each fold's probability and the time each stage took.

The path is the offline one, cut into pieces that run as frames arrive, each piece the function
the offline path calls:

* **frames**: PyAV decodes the source (a file, a camera, an rtsp/http stream); every video frame
  goes through :class:`lasca_jax.data.extract.video.FaceTracker` (MediaPipe in video mode,
  increasing timestamps) and the audio through :class:`lasca_jax.data.extract.audio.AudioDecoder`
  and :class:`~lasca_jax.data.extract.audio.MfccStream` (the offline MFCC framing, computed as
  samples arrive). Times count from the first video frame, as extraction counts them.
* **windows**: :class:`WindowAssembler` pools the frames onto the run's time base
  (:func:`lasca_jax.data.extract.align.pool_to_time_base`) and the time base into windows
  (:func:`lasca_jax.method.windows.make_windows`) for one window at a time, once no later frame
  can change it; clocks start at the first frame.
* **decisions**: the bundle's :meth:`~lasca_jax.inference.ensemble.BundlePredictor.represent`
  on the pair of windows, every fold model, then :func:`lasca_jax.inference.attribution.explain`
  and :func:`lasca_jax.inference.apply.pair_row`.

So on a file played as fast as possible every decided pair equals ``predict.py``'s decision
(``tests/test_live.py`` checks it to 1e-5). Two things cannot be causal:

* ``text.salience_stats="recording"`` needs the whole recording's min-max: refused in one line.
* MFCCs with ``data.mfcc_top_db`` > 0 (librosa's default 80, the paper's) floor the log-mel
  spectrum 80 dB below the whole recording's loudest value; live uses the loudest value heard so
  far (:attr:`LiveTracker.substitutes` says so, and every output repeats it). Windows before the
  recording's loudest moment can then differ from ``predict.py``'s; a run extracted with
  ``--config.data.mfcc_top_db=0`` has no such floor and is exact.

Keeping up: with a camera, a network stream or ``realtime=True``, a video frame that arrives
when the face pass is more than ``max_lag`` seconds behind the wall clock is dropped (counted in
:attr:`LiveStats.dropped_frames`; the pooling takes fewer frames, as with a frame stride), so
the lag cannot grow. Audio is never dropped.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import stat
import sys
import threading
import time
from typing import Any, Iterator, Optional

import numpy as np

from lasca_jax.data.extract import align, audio as audio_lib, load as load_lib, runner
from lasca_jax.data.extract import video as video_lib
from lasca_jax.data import types as data
from lasca_jax.inference import apply, attribution
from lasca_jax.method import windows as windows_lib

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
EXIT_CODES = {"ended": 0, "interrupted": 130, "terminated": 143, "stalled": 3, "broken": 4}


class LiveError(ValueError):
  """A live set-up that cannot start (one line: what and what to do)."""


# --------------------------------------------------------------------------------------------
# Sources


@dataclasses.dataclass(frozen=True)
class Source:
  """Where frames come from.

  Attributes:
    kind: ``"file"``, ``"camera"``, ``"stream"`` (a URL PyAV opens) or ``"pipe"`` (a named
      pipe another program writes a stream format such as MPEG-TS into).
    target: the path, device or URL handed to PyAV.
    realtime: play a file at its own pace (cameras and streams always are).
    audio: ``"source"`` (the source's audio track), ``"none"`` or ``"mic"`` / ``"mic:DEVICE"``.
    spec: the ``--source`` text it was parsed from.
  """
  kind: str
  target: str
  realtime: bool = False
  audio: str = "source"
  spec: str = ""

  @property
  def paced(self) -> bool:
    """Frames arrive at wall-clock pace (so they can be dropped when processing lags)."""
    return self.kind != "file" or self.realtime

  @property
  def format(self) -> Optional[str]:
    """PyAV's input format of a camera (v4l2 on Linux, avfoundation on macOS, dshow on Windows)."""
    if self.kind != "camera":
      return None
    return {"darwin": "avfoundation", "win32": "dshow"}.get(sys.platform, "v4l2")


def parse_source(spec: str, realtime: bool = False, audio: str = "source") -> Source:
  """``--source``: a camera (``0``, ``camera:0``, ``/dev/video0``), a URL (rtsp/http/...) or a
  media file.

  Raises:
    LiveError: an empty spec, a missing file, or an unknown ``audio`` choice.
  """
  spec = str(spec or "").strip()
  if not spec:
    raise LiveError("--source is empty: give a camera index (0), a video file or a stream URL")
  if not (audio in ("source", "none", "mic") or audio.startswith("mic:")):
    raise LiveError(f"--audio={audio!r}: use source, none, mic or mic:DEVICE")
  camera = re.fullmatch(r"(?:camera:)?(\d+)", spec)
  if camera:
    index = int(camera.group(1))
    target = {"darwin": str(index), "win32": f"video={index}"}.get(sys.platform,
                                                                   f"/dev/video{index}")
    return Source("camera", target, True, audio, spec)
  if spec.startswith("/dev/video"):
    return Source("camera", spec, True, audio, spec)
  scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
  if scheme in STREAM_SCHEMES:
    return Source("stream", spec, True, audio, spec)
  if scheme:
    raise LiveError(f"--source={spec}: unknown scheme {scheme!r}; use one of "
                    f"{', '.join(STREAM_SCHEMES)}, a camera index or a file")
  if os.path.exists(spec) and stat.S_ISFIFO(os.stat(spec).st_mode):
    return Source("pipe", spec, True, audio, spec)     # a named pipe another program feeds
  if os.path.isdir(spec):
    raise LiveError(f"--source={spec} is a folder: give one video or sound file, a camera index "
                    "or a stream URL")
  if not os.path.isfile(spec):
    raise LiveError(f"--source={spec}: no such file (give a video or sound file, a camera "
                    "index such as 0, or a stream URL such as rtsp://host/path)")
  return Source("file", spec, realtime, audio, spec)


def _open(target: str, fmt: Optional[str] = None, timeout: float = 10.0):
  import av  # pylint: disable=import-outside-toplevel
  options = {"rtsp_transport": "tcp"} if target.startswith("rtsp") else {}
  return av.open(target, format=fmt, options=options, timeout=(timeout, timeout))


def probe(source: Source) -> dict:
  """``{"video": bool, "audio": bool, "fps": float | None}`` of a source, opening it once.

  Raises:
    LiveError: the source cannot be opened (names it and PyAV's reason).
  """
  if source.kind == "camera" and source.format == "v4l2" and not os.path.exists(source.target):
    raise LiveError(f"--source={source.spec}: there is no camera {source.target} on this machine "
                    "(ls /dev/video* lists the cameras)")
  try:
    with _open(source.target, source.format) as container:
      video = container.streams.video
      fps = video_lib.stream_fps(video[0]) if video else None
      return {"video": bool(video), "audio": bool(container.streams.audio), "fps": fps}
  except Exception as e:  # pylint: disable=broad-except
    import av  # pylint: disable=import-outside-toplevel
    why = ("not a video or sound file that PyAV can read"
           if isinstance(e, av.error.InvalidDataError) else
           f"{type(e).__name__}: {' '.join(str(e).split())[:160]}")
    raise LiveError(f"--source={source.spec}: cannot open it ({why})") from None


MIC_FORMATS = ("pulse", "alsa")


def open_microphone(device: str):
  """A PyAV container of the microphone ``device`` (pulse, else alsa input).

  Raises:
    LiveError: neither opens, with both reasons; PyAV's pip wheels are built without pulse and
      with an alsa that cannot find its configuration, so a microphone needs a PyAV built on the
      system's FFmpeg (e.g. conda-forge's ``av``).
  """
  reasons = []
  for fmt in MIC_FORMATS:
    try:
      return _open(device or "default", fmt)
    except Exception as e:  # pylint: disable=broad-except
      reasons.append(f"{fmt}: {' '.join(str(e).split())[:120]}")
  raise LiveError(f"--audio=mic: no microphone {device or 'default'!r} ({'; '.join(reasons)}); "
                  "PyAV's pip wheels have no pulse input and an alsa input that misses its "
                  "configuration: install a PyAV built on the system's FFmpeg (conda-forge's av) "
                  "or give the sound in the source")


@dataclasses.dataclass
class Item:
  """What the reader hands the tracker: a video frame, audio samples, or the end."""
  kind: str                 # "video", "audio", "end"
  time: float = 0.0         # video: seconds since the first video frame
  rgb: Any = None
  rotation: int = 0
  samples: Any = None
  start: float = 0.0        # audio: stream time of the first sample, relative to the origin
  gaps: tuple = ()
  arrived: float = 0.0      # time.monotonic() when it was read
  reason: str = ""          # end: "ended" or "broken"; detail in ``detail``
  detail: str = ""


class Reader(threading.Thread):
  """Decodes a source on its own thread into a queue of :class:`Item` (a file played as fast as
  possible waits for the tracker; paced sources never wait)."""

  def __init__(self, source: Source, use_video: bool, use_audio: bool, sample_rate: int,
               items: "queue.Queue[Item]", stop: threading.Event, timeout: float = 20.0):
    super().__init__(daemon=True, name="lasca-live-reader")
    self.source, self.use_video, self.use_audio = source, use_video, use_audio
    self.sample_rate, self.items, self.stop, self.timeout = sample_rate, items, stop, timeout
    self.frames = 0
    self.fps: Optional[float] = None
    self.problems: list[str] = []
    self.declared_frames = 0

  def _put(self, item: Item) -> None:
    while not self.stop.is_set():
      try:
        self.items.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def run(self) -> None:
    try:
      self._read()
      self._put(Item("end", reason="ended", arrived=time.monotonic()))
    except Exception as e:  # pylint: disable=broad-except
      self._put(Item("end", reason="broken", detail=f"{type(e).__name__}: "
                     f"{' '.join(str(e).split())[:200]}", arrived=time.monotonic()))

  def _read(self) -> None:
    import av  # pylint: disable=import-outside-toplevel
    with _open(self.source.target, self.source.format, self.timeout) as container:
      streams = []
      video = container.streams.video[0] if self.use_video and container.streams.video else None
      sound = (container.streams.audio[0] if self.use_audio and self.source.audio == "source"
               and container.streams.audio else None)
      if self.use_video and video is None:
        raise ValueError("the source has no video, but the model uses facial features")
      if self.use_audio and self.source.audio == "source" and sound is None:
        raise ValueError("the source has no audio track, but the model uses audio features")
      if video is not None:
        video.thread_type = "AUTO"
        self.fps = video_lib.stream_fps(video)
        self.declared_frames = int(video.frames or 0)
        streams.append(video)
      if sound is not None:
        streams.append(sound)
      if not streams:
        return
      decoder = audio_lib.AudioDecoder(sound, self.sample_rate) if sound is not None else None
      origin = None if video is not None else 0.0     # audio-only: the audio file's own clock
      pending: list = []                                # audio decoded before the first frame
      wall0, index = None, 0
      for packet in container.demux(*streams):
        if self.stop.is_set():
          return
        if packet.stream is video:
          try:
            frames = packet.decode()
          except av.error.InvalidDataError as e:
            self.problems.append(f"undecodable packet after frame {index} ({e})")
            continue
          for frame in frames:
            t = frame.time if frame.time is not None else index / self.fps
            if origin is None:
              origin = float(t)
              for chunk in pending:
                self._put(_shifted(chunk, origin))
              pending = []
            rel = float(t) - origin
            if self.source.kind == "file" and self.source.realtime:
              wall0 = time.monotonic() - rel if wall0 is None else wall0
              delay = wall0 + rel - time.monotonic()
              if delay > 0:
                time.sleep(delay)
            self._put(Item("video", rel, video_lib.to_rgb(frame),
                           video_lib.frame_rotation(frame), arrived=time.monotonic()))
            index += 1
            self.frames = index
        elif decoder is not None and packet.stream is sound:
          before = decoder.total
          samples = decoder.decode(packet)
          if samples.size:
            start = (decoder.start or 0.0) + before / decoder.sample_rate
            if video is None and self.source.kind == "file" and self.source.realtime:
              wall0 = time.monotonic() - start if wall0 is None else wall0   # sound's own pace
              delay = wall0 + start - time.monotonic()
              if delay > 0:
                time.sleep(delay)
            item = Item("audio", samples=samples, start=start, gaps=tuple(decoder.gaps),
                        arrived=time.monotonic())
            if origin is None:
              pending.append(item)
            else:
              self._put(_shifted(item, origin))
      if decoder is not None:
        tail = decoder.flush()
        start = (decoder.start or 0.0) + (decoder.total - tail.size) / decoder.sample_rate
        for chunk in pending:
          self._put(_shifted(chunk, origin or 0.0))
        if tail.size:
          self._put(_shifted(Item("audio", samples=tail, start=start, gaps=tuple(decoder.gaps),
                                  arrived=time.monotonic()), origin or 0.0))


def _shifted(item: Item, origin: float) -> Item:
  """An audio item on the tracker's clock (seconds since the first video frame)."""
  return dataclasses.replace(item, start=item.start - origin,
                             gaps=tuple((lo - origin, hi - origin) for lo, hi in item.gaps))


class MicReader(threading.Thread):
  """Audio from a microphone (PyAV's pulse, else alsa input) on its own thread; samples are
  placed on the wall clock of the tracker (seconds since ``t0``)."""

  def __init__(self, device: str, sample_rate: int, items: "queue.Queue[Item]",
               stop: threading.Event, t0: float):
    super().__init__(daemon=True, name="lasca-live-mic")
    self.device, self.sample_rate, self.items, self.stop, self.t0 = (
        device or "default", sample_rate, items, stop, t0)

  def run(self) -> None:
    try:
      container = open_microphone(self.device)
      with container:
        stream = container.streams.audio[0]
        decoder = audio_lib.AudioDecoder(stream, self.sample_rate)
        start = None
        for packet in container.demux(stream):
          if self.stop.is_set():
            return
          samples = decoder.decode(packet)
          if samples.size:
            now = time.monotonic()
            if start is None:
              start = now - self.t0 - samples.size / self.sample_rate
            offset = start + (decoder.total - samples.size) / self.sample_rate
            self.items.put(Item("audio", samples=samples, start=offset, arrived=now))
    except Exception as e:  # pylint: disable=broad-except
      self.items.put(Item("end", reason="broken", detail=f"microphone: {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}", arrived=time.monotonic()))


# --------------------------------------------------------------------------------------------
# Windows


class WindowAssembler:
  """Per-frame face rows and MFCC frames -> the run's windows, one at a time, as
  ``apply.read_input`` + ``apply.window_input`` build them for the whole recording.

  Window ``j`` holds the time-base steps ``k`` (times ``k / hz``) with ``floor(k / hz / w) == j``.
  It is closed once every stream in use has a sample beyond the next step plus one source
  period: no later sample can then change the pooled value of any of its steps.
  """

  def __init__(self, window_seconds: float, hz: float, face_period: float, mfcc_hop: float,
               streams: tuple[str, ...]):
    self.w, self.hz = float(window_seconds), float(hz)
    self.face_period, self.mfcc_hop = float(face_period), float(mfcc_hop)
    self.streams = streams
    self.face_t: list[float] = []                  # samples not yet pruned
    self.face_v: list[np.ndarray] = []
    self.audio_t: list[np.ndarray] = []
    self.audio_v: list[np.ndarray] = []
    self.all_face_t: list[float] = []              # every sample's time (for the end)
    self.all_audio_t: list[np.ndarray] = []
    self.next_window = 0
    self.latest = {"face": -np.inf, "audio": -np.inf}   # the newest sample time per stream

  def note(self, stream: str, t: float) -> None:
    """The stream has reached time ``t`` (a dropped frame moves the clock too)."""
    self.latest[stream] = max(self.latest[stream], float(t))

  def add_face(self, t: float, row: Optional[np.ndarray]) -> None:
    """A processed frame's 58 values (a dropped frame is not added)."""
    self.face_t.append(float(t))
    self.face_v.append(np.asarray(row, np.float32))
    self.all_face_t.append(float(t))
    self.note("face", t)

  def add_audio(self, times: np.ndarray, coeffs: np.ndarray) -> None:
    if len(times):
      self.audio_t.append(np.asarray(times, np.float64))
      self.audio_v.append(np.asarray(coeffs, np.float32))
      self.all_audio_t.append(self.audio_t[-1])
      self.note("audio", times[-1])

  def _prune(self, before: float) -> None:
    """Forgets the samples no window from ``before`` on can use."""
    keep = next((i for i, t in enumerate(self.face_t) if t >= before), len(self.face_t))
    del self.face_t[:keep], self.face_v[:keep]
    if self.audio_t:
      t, v = np.concatenate(self.audio_t), np.concatenate(self.audio_v)
      self.audio_t, self.audio_v = [t[t >= before]], [v[t >= before]]

  @property
  def margin(self) -> float:
    """Seconds of samples kept around a window (at least one source period each side)."""
    return max(1.0, 2 * self.face_period, 2 * self.mfcc_hop)

  def steps(self, j: int, limit: Optional[int] = None) -> np.ndarray:
    """Time-base step indices of window ``j`` (``make_windows``' assignment)."""
    lo = max(int(np.floor(j * self.w * self.hz)) - 2, 0)
    hi = int(np.ceil((j + 1) * self.w * self.hz)) + 2
    k = np.arange(lo, hi)
    k = k[np.floor(k / self.hz / self.w + 1e-9).astype(np.int64) == j]
    return k if limit is None else k[k < limit]

  def closable(self) -> bool:
    """Whether window :attr:`next_window` can be closed now."""
    steps = self.steps(self.next_window)
    after = (steps[-1] + 1) / self.hz
    return all(self.latest[s] > after + (self.face_period if s == "face" else self.mfcc_hop)
               for s in self.streams)

  def end_steps(self) -> int:
    """The time base's length at the end of the stream (:func:`apply.time_base`)."""
    audio = np.concatenate(self.all_audio_t) if self.all_audio_t else np.zeros(0)
    return apply.time_base(self.all_face_t, audio, self.hz).size

  def window(self, j: int, total_steps: Optional[int] = None
             ) -> tuple[windows_lib.Windows, float]:
    """Window ``j`` as a one-window :class:`~lasca_jax.method.windows.Windows` (all 73 columns)
    and the last time-base step's time seen so far (the recording's end when ``total_steps``,
    the time base's final length, is given)."""
    steps = self.steps(j, total_steps)
    # One step beyond each side (where it exists) so that the edges between steps are the ones
    # the whole time base has.
    lo = steps[0] - 1 if steps[0] > 0 else steps[0]
    hi = steps[-1] + 1 if total_steps is None or steps[-1] + 1 < total_steps else steps[-1]
    grid = np.arange(lo, hi + 1) / self.hz
    inner = slice(steps[0] - lo, steps[0] - lo + steps.size)
    margin = self.margin
    ft = np.asarray(self.face_t, np.float64)
    fv = (np.stack(self.face_v) if self.face_v else
          np.zeros((0, len(data.FACE_FEATURE_NAMES)), np.float32))
    sel = (ft >= grid[0] - margin) & (ft <= grid[-1] + margin)
    face = align.pool_to_time_base(ft[sel], fv[sel], grid, self.face_period)[inner]
    at = np.concatenate(self.audio_t) if self.audio_t else np.zeros(0)
    av = (np.concatenate(self.audio_v) if self.audio_v else
          np.zeros((0, data.NUM_MFCC), np.float32))
    sel = (at >= grid[0] - margin) & (at <= grid[-1] + margin)
    mfcc = align.pool_to_time_base(at[sel], av[sel], grid, self.mfcc_hop)[inner]
    self._prune((steps[-1] + 1) / self.hz - 2 * margin)
    times = steps / self.hz
    values = np.concatenate([face, mfcc], axis=1)
    known = total_steps if total_steps is not None else steps[-1] + 1
    period = float(np.median(np.diff(np.arange(known) / self.hz))) if known > 1 else 1.0
    zeros = np.zeros(times.size, np.float32)
    frames = windows_lib.Frames(
        times=times, features=values, valence=zeros, arousal=zeros,
        recording=np.zeros(times.size, np.int32), recording_ids=np.array(["live"]),
        subject_ids=np.array(["live"]), feature_names=np.array(load_lib.FEATURE_NAMES),
        modalities=np.array(load_lib.MODALITIES))
    win = windows_lib.make_windows(frames, self.w, periods=np.array([period]))
    one = windows_lib.Windows(**{f.name: (getattr(win, f.name)[j:j + 1]
                                          if f.name not in ("recording_ids", "subject_ids",
                                                            "feature_names", "modalities")
                                          else getattr(win, f.name))
                                 for f in dataclasses.fields(win)})
    return one, float(times[-1])


# --------------------------------------------------------------------------------------------
# Decisions


@dataclasses.dataclass
class Decision:
  """One consecutive window pair, decided (or not) as soon as the later window closed.

  Attributes:
    row: its ``predictions.csv`` row (:data:`lasca_jax.inference.apply.TABLE_COLUMNS`).
    window: index of the later window.
    fold_p: each fold model's P(increase) (empty when not decided).
    cues: ``[(cue, contribution)]`` the top cues (toward "increase").
    latency_ms: per stage: ``pool`` (windowing), ``represent`` (normalisation, salience,
      prompt, embedding), ``mlp``, ``cues``, ``total`` (window closed -> decision out).
    encoded: prompts the encoder had to encode for this decision (0 with a warm store).
    closed_at: ``time.monotonic()`` when the later window closed.
  """
  row: dict
  window: int
  fold_p: list
  cues: list
  latency_ms: dict
  encoded: int = 0
  closed_at: float = 0.0

  @property
  def decided(self) -> bool:
    return self.row["status"] == "ok"

  def to_json(self) -> dict:
    row = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
           for k, v in self.row.items()}
    return {"row": row, "window": self.window, "fold_p": self.fold_p,
            "cues": [[n, v] for n, v in self.cues], "latency_ms": self.latency_ms,
            "encoded": self.encoded}


@dataclasses.dataclass
class LiveStats:
  """What a live run did (``summary.json``)."""
  frames: int = 0                # video frames read
  processed_frames: int = 0      # frames through the face pass
  dropped_frames: int = 0        # frames skipped to keep up
  audio_seconds: float = 0.0
  windows: int = 0
  decisions: int = 0             # decided pairs
  pairs: int = 0
  first_frame: Optional[float] = None
  last_time: float = 0.0         # stream time of the last item
  end: str = ""                  # "ended", "stalled", "broken", "interrupted", "terminated"
  detail: str = ""
  latency: dict = dataclasses.field(default_factory=dict)   # stage -> [ms]
  max_lag: float = 0.0
  warnings: list = dataclasses.field(default_factory=list)

  def effective_fps(self) -> Optional[float]:
    return (self.processed_frames / self.last_time) if self.last_time > 0 else None


def percentiles(values) -> dict:
  v = np.asarray(values, np.float64)
  if not v.size:
    return {}
  return {"count": int(v.size), "p50": round(float(np.percentile(v, 50)), 2),
          "p95": round(float(np.percentile(v, 95)), 2), "max": round(float(v.max()), 2),
          "mean": round(float(v.mean()), 2)}


class LiveTracker:
  """A bundle applied to a source as it plays (module docstring).

  Usage::

    tracker = LiveTracker(ensemble.load_bundle("runs/synthetic"), parse_source("0"))
    for decision in tracker.decisions():
      print(decision.row["p_increase"], decision.cues)

  Attributes:
    predictor: the run's :class:`~lasca_jax.inference.ensemble.BundlePredictor`.
    source: the :class:`Source`.
    stats: :class:`LiveStats`, updated as it runs.
    substitutes: what live mode computes differently from ``predict.py`` (module docstring).
  """

  def __init__(self, predictor, source: Source, face_model: str = "", explain: bool = True,
               top: int = 3, ig_steps: int = 32, max_lag: float = 0.5,
               stall_seconds: float = 10.0, warmup: bool = True):
    self.predictor, self.source = predictor, source
    self.explain, self.top, self.ig_steps = explain, top, ig_steps
    self.max_lag, self.stall_seconds = float(max_lag), float(stall_seconds)
    self.stats = LiveStats()
    self.stop = threading.Event()
    self.stop_reason = ""
    mods = set(predictor.modalities)
    self.use_face, self.use_audio = "face" in mods, "audio" in mods
    meta = predictor.meta
    if predictor.spec.needs_baseline:
      raise LiveError(f"{predictor.path}: a model.fusion='baseline' run needs a frozen "
                      "encoder's embeddings of each window, which live mode cannot compute: use "
                      "a features, text or fused run")
    if predictor.recipe.salience_stats == "recording":
      raise LiveError(
          f"{predictor.path}: this model's salience uses each recording's own min-max "
          "(text.salience_stats='recording'), which needs the whole recording: live mode cannot "
          "be causal with it; use experiments/predict.py on the recording, or train with "
          "--config.text.salience_stats=fold")
    settings = runner.settings_from_config(meta["config"].get("data", {}))
    self.settings = dataclasses.replace(settings, face_model=face_model or settings.face_model)
    self._check_streams()
    self.substitutes = []
    if self.use_audio and self.settings.mfcc_top_db:
      self.substitutes.append(
          f"MFCC log-mel floor: {self.settings.mfcc_top_db:g} dB below the loudest sound heard "
          "so far (offline: below the whole recording's loudest; windows before the "
          "recording's loudest moment can differ; data.mfcc_top_db=0 makes live exact)")
    self.window_seconds = float(meta["window_seconds"])
    self.hz = float(meta["time_base_hz"])
    self._columns = [list(load_lib.FEATURE_NAMES).index(n) for n in predictor.feature_names]
    self.tracker = (video_lib.FaceTracker(self.settings.face_model, "any",
                                          self.settings.num_faces)
                    if self.use_face else None)
    if warmup:
      self._warmup()

  def _check_streams(self) -> None:
    """One-line errors, before anything starts, for a source that lacks a stream the model
    uses."""
    label = f"{self.predictor.meta['modality']} model {self.predictor.path}"
    if self.use_face:
      video_lib.check_model(self.settings.face_model)
    if self.source.kind == "pipe":      # probing would consume it: the reader checks
      self.fps = None
    elif self.source.kind in ("file", "stream"):
      info = probe(self.source)
      if self.use_face and not info["video"]:
        raise LiveError(f"--source={self.source.spec} has no video, but the {label} uses "
                        "facial features")
      if self.use_audio and self.source.audio == "source" and not info["audio"]:
        raise LiveError(f"--source={self.source.spec} has no audio track, but the {label} uses "
                        "audio features: give a source with sound, or --audio=mic")
      self.fps = info["fps"]
    elif self.use_audio and self.source.audio == "source":
      raise LiveError(f"--source={self.source.spec} is a camera, which gives no sound, but the "
                      f"{label} uses audio features: add --audio=mic (or mic:DEVICE)")
    else:
      self.fps = probe(self.source)["fps"] if self.use_face else None    # the camera is there
    if self.use_audio and self.source.audio == "none":
      raise LiveError(f"--audio=none, but the {label} uses audio features")
    if self.use_audio and self.source.audio.startswith("mic"):
      open_microphone(self.source.audio.partition(":")[2]).close()

  def _warmup(self) -> None:
    """Compiles the decision path (and encodes the warm-up prompts) before the source starts."""
    if self.use_audio:    # librosa's first calls compile (numba): not during the stream
      warm = audio_lib.MfccStream(self.settings.sample_rate, self.settings.mfcc_hop_seconds,
                                  self.settings.mfcc_window_seconds,
                                  top_db=self.settings.mfcc_top_db)
      warm.push(np.zeros(self.settings.sample_rate // 2, np.float32))
      warm.finish()
    store = self.predictor.embedder.store if self.predictor.uses_text else None
    if store is not None:
      store.model.encode(["warm-up"])    # loads the encoder now, not at the first new prompt
    mid = self.predictor.lo[0] + self.predictor.span[0] / 2
    raw = np.stack([mid, mid + self.predictor.span[0] / 4]).astype(np.float32)
    self._decide(raw, ["", ""], [0.0, self.window_seconds], 1, time.monotonic(), {})

  def _decide(self, raw: np.ndarray, reasons: list[str], starts, window: int, closed: float,
              timing: dict) -> Decision:
    p = self.predictor
    t0 = time.monotonic()
    encoded = apply.encoded_count(p)
    rep = p.represent(raw)
    t1 = time.monotonic()
    prob, cues = None, []
    if reasons[0] == "" and reasons[1] == "":
      k = np.arange(p.num_folds)[:, None]
      prob = p.probabilities(rep.z[k, [0]], rep.z[k, [1]])[:, 0]    # [K]
    t2 = time.monotonic()
    if prob is not None and self.explain:
      expl = attribution.explain(p, rep, np.array([0]), np.array([1]), steps=self.ig_steps)
      cues = attribution.top_cues(expl, p.feature_names, self.top)[0]
    t3 = time.monotonic()
    row = apply.pair_row(p, starts, rep, 0, 1, prob, cues, reasons)
    encoded = apply.encoded_count(p) - encoded
    latency = dict(timing, represent=(t1 - t0) * 1e3, mlp=(t2 - t1) * 1e3, cues=(t3 - t2) * 1e3)
    latency["total"] = (time.monotonic() - closed) * 1e3
    return Decision(row, window, [] if prob is None else [float(v) for v in prob], cues,
                    {k: round(v, 3) for k, v in latency.items()}, encoded, closed)

  def _record(self, decision: Decision) -> None:
    s = self.stats
    s.pairs += 1
    s.decisions += int(decision.decided)
    key = "cold" if decision.encoded else "warm"
    for stage, ms in decision.latency_ms.items():
      s.latency.setdefault(f"{key}:{stage}", []).append(ms)

  def close(self) -> None:
    """Releases the face model (:meth:`decisions` does it when it ends; this is for a tracker
    that never ran)."""
    if self.tracker is not None:
      self.tracker.close()
      self.tracker = None

  def request_stop(self, reason: str) -> None:
    """Ends :meth:`decisions` after the windows already closed (``reason``: ``"interrupted"``,
    ``"terminated"``); thread-safe."""
    self.stop_reason = self.stop_reason or reason
    self.stop.set()

  def decisions(self) -> Iterator[Decision]:
    """Runs the source and yields a :class:`Decision` per consecutive window pair; returns when
    the source ends, stalls or breaks, or :meth:`request_stop` is called (:attr:`stats`
    ``.end`` says which)."""
    s = self.settings
    items: "queue.Queue[Item]" = queue.Queue(maxsize=0 if self.source.paced else 64)
    t0 = time.monotonic()
    # PyAV's own read timeout waits longer than the stall check, which then says "stalled".
    reader = Reader(self.source, self.use_face, self.use_audio and self.source.audio == "source",
                    s.sample_rate, items, self.stop, timeout=self.stall_seconds + 10.0)
    mic = self.use_audio and self.source.audio.startswith("mic")
    # The source's reader only when it has something to read (an audio model with a
    # microphone reads the microphone alone).
    readers = [reader] if (self.use_face or not mic) else []
    if mic:
      readers.append(MicReader(self.source.audio.partition(":")[2], s.sample_rate, items,
                               self.stop, t0))
    fps = self.fps or 30.0
    streams = tuple(x for x, used in (("face", self.use_face), ("audio", self.use_audio)) if used)
    asm = WindowAssembler(self.window_seconds, self.hz, s.frame_stride / fps, s.mfcc_hop_seconds,
                          streams)
    mfcc = audio_lib.MfccStream(s.sample_rate, s.mfcc_hop_seconds, s.mfcc_window_seconds,
                                top_db=s.mfcc_top_db) if self.use_audio else None
    audio_start: Optional[float] = None
    gaps: tuple = ()
    prev = None        # (raw [F], reason, start) of the previous window
    held = None        # the last frame skipped by the stride (processed at the end, as offline)
    wall0 = None       # monotonic time of the first frame of a paced source, minus its time
    jobs: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()
    decider = threading.Thread(target=self._decide_all, args=(jobs, done), daemon=True,
                               name="lasca-live-decide")
    decider.start()
    finished = False
    for r in readers:
      r.start()
    try:
      while True:
        while not done.empty():             # decisions made since the last item
          decision = done.get()
          if isinstance(decision, BaseException):
            raise decision
          if decision is not None:
            yield decision
        try:
          item = items.get(timeout=0.1)
        except queue.Empty:
          if self.stop.is_set():
            self.stats.end = self.stop_reason or "interrupted"
            break
          last = max(self.stats.first_frame or t0, self._last_arrival)
          if time.monotonic() - last > self.stall_seconds:
            self.stats.end, self.stats.detail = "stalled", (
                f"no frame or sound for {self.stall_seconds:g} s")
            break
          continue
        if self.stop.is_set():
          self.stats.end = self.stop_reason or "interrupted"
          break
        self._last_arrival = item.arrived
        if item.kind == "end":
          self.stats.end, self.stats.detail = item.reason, item.detail
          if item.reason == "broken":
            break
          if self.use_face and held is not None:
            asm.add_face(held[0], self.tracker(*held))
            self.stats.processed_frames += 1
          if mfcc is not None:
            self._add_audio(asm, mfcc.finish(), mfcc, audio_start, gaps)
          total = asm.end_steps()
          while asm.steps(asm.next_window, total).size:
            prev = self._close(asm, prev, total, jobs)
          break
        if item.kind == "video":
          if mic:    # a microphone has no clock of the camera's: both on the wall clock
            item.time = item.arrived - t0
          if not self.stats.frames and reader.fps:    # a camera or pipe tells it on opening
            asm.face_period = s.frame_stride / reader.fps
            self.fps = self.fps or reader.fps
          self.stats.frames += 1
          self.stats.first_frame = self.stats.first_frame or item.arrived
          self.stats.last_time = max(self.stats.last_time, item.time)
          if self.frame_hook is not None:
            self.frame_hook(item.rgb)
          if self.source.paced:
            wall0 = item.arrived - item.time if wall0 is None else wall0
            lag = time.monotonic() - (wall0 + item.time)
            self.stats.max_lag = max(self.stats.max_lag, lag)
            if lag > self.max_lag:
              self.stats.dropped_frames += 1
              asm.note("face", item.time)
              continue
          index = self.stats.frames - 1
          if index % s.frame_stride == 0:
            asm.add_face(item.time, self.tracker(item.time, item.rgb, item.rotation))
            self.stats.processed_frames += 1
            held = None
          else:
            held = (item.time, item.rgb, item.rotation)
        elif item.kind == "audio":
          if audio_start is None:
            audio_start = item.start
          gaps = item.gaps
          self.stats.audio_seconds += item.samples.size / s.sample_rate
          self.stats.last_time = max(self.stats.last_time, item.start +
                                     item.samples.size / s.sample_rate)
          self._add_audio(asm, mfcc.push(item.samples), mfcc, audio_start, gaps)
        while asm.closable():
          prev = self._close(asm, prev, None, jobs)
      # The pairs of windows closed so far are decided, whatever ended the stream.
      jobs.put(None)
      while True:
        decision = done.get()
        if isinstance(decision, BaseException):
          raise decision
        if decision is None:
          break
        yield decision
      finished = True
    finally:
      self.stop.set()
      if not finished:
        jobs.put(None)
      self.close()
      if reader.problems:
        self.stats.warnings.append(f"{len(reader.problems)} undecodable packets, first: "
                                   f"{reader.problems[0]}")
      if (self.stats.end == "ended" and reader.declared_frames and
          reader.frames < reader.declared_frames - max(2, reader.declared_frames // 100)):
        self.stats.warnings.append(f"decoded {reader.frames} of {reader.declared_frames} "
                                   "declared frames (truncated?)")
      if mfcc is not None and mfcc.floor_rises and self.settings.mfcc_top_db:
        self.stats.warnings.append(
            f"the MFCC floor rose {mfcc.floor_rises} times as louder sound arrived (live uses "
            "the loudest sound so far; see summary substitutes)")

  _last_arrival = 0.0
  frame_hook = None     # called with every frame read (a display's throttled copy)

  def _add_audio(self, asm, coeffs, mfcc, audio_start, gaps) -> None:
    if not len(coeffs) or audio_start is None:
      return
    first = mfcc.frames - len(coeffs)
    times = audio_lib.frame_times(audio_start, len(coeffs), self.settings.sample_rate,
                                  self.settings.mfcc_hop_seconds, first)
    coeffs = np.array(coeffs)
    audio_lib.blank_gaps(coeffs, times, gaps, self.settings.mfcc_window_seconds)
    asm.add_audio(times, coeffs)

  def _close(self, asm: WindowAssembler, prev, total: Optional[int], jobs: queue.Queue):
    """Closes window ``asm.next_window`` and hands the pair it ends to the decision thread;
    returns the window's ``(raw [F], reason, start)``."""
    closed = time.monotonic()
    j = asm.next_window
    win, last = asm.window(j, total)
    end = last if total is not None else np.inf
    raw = win.features[0, self._columns]
    win = dataclasses.replace(win, features=win.features[:, self._columns])
    reason = apply.window_reasons(win, end, self.predictor)[0]
    pooled = (time.monotonic() - closed) * 1e3
    asm.next_window += 1
    self.stats.windows += 1
    current = (raw, reason, float(win.start[0]))
    if prev is not None:
      jobs.put((np.stack([prev[0], raw]), [prev[1], reason], [prev[2], current[2]], j, closed,
                {"pool": pooled}))
    return current

  def _decide_all(self, jobs: queue.Queue, done: queue.Queue) -> None:
    """The decision thread: decides the pairs ``jobs`` hands it, in order, until None (so the
    face pass goes on while a prompt is encoded)."""
    while True:
      job = jobs.get()
      if job is None:
        done.put(None)
        return
      try:
        decision = self._decide(*job)
        self._record(decision)
        done.put(decision)
      except BaseException as e:  # pylint: disable=broad-except
        done.put(e)
        done.put(None)
        return

  def summary(self) -> dict:
    """``summary.json`` of the run so far."""
    s, p = self.stats, self.predictor
    latency = {k: percentiles(v) for k, v in sorted(s.latency.items())}
    return {
        "run": os.path.abspath(os.path.dirname(p.path)), "source": self.source.spec,
        "source_kind": self.source.kind, "paced": self.source.paced,
        "target": p.meta["target"], "model_label": p.meta["model_label"], "fusion": p.fusion,
        "modality": p.meta["modality"], "fold_models": p.num_folds,
        "window_seconds": self.window_seconds, "end": s.end, "end_detail": s.detail,
        "frames_read": s.frames, "frames_processed": s.processed_frames,
        "frames_dropped": s.dropped_frames,
        "effective_fps": (round(s.effective_fps(), 2) if s.effective_fps() else None),
        "source_fps": self.fps, "max_lag_s": round(s.max_lag, 3),
        "audio_seconds": round(s.audio_seconds, 3), "stream_seconds": round(s.last_time, 3),
        "windows": s.windows, "pairs": s.pairs, "decided": s.decisions,
        "latency_ms": latency, "substitutes": list(self.substitutes),
        "warnings": list(s.warnings),
    }
