"""Per-frame facial features with the MediaPipe Face Landmarker (Tasks API, video mode).

Each processed frame yields the 52 blendshape scores in MediaPipe's order
(:data:`lasca_jax.data.types.BLENDSHAPE_NAMES`) and six head-pose values read off the 4x4 facial
transformation matrix (:data:`lasca_jax.data.types.HEAD_POSE_NAMES`): 58 values in all (Sec. 4.2).
A frame in which no face (or not the wanted face) is found gets NaN in all 58 values and
``valid=False``; nothing is zero-filled.

Two-person videos (Aff-Wild2 ``_left`` / ``_right``) run the landmarker with ``num_faces=2`` and
keep the face whose landmarks' mean x is the smallest (``side="left"``) or largest
(``side="right"``) in image coordinates. A frame with a single detected face gives it to the side
whose last seen position is nearer (before both sides have been seen: left of the image centre ->
``left``); the other side's row is NaN for that frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from typing import Iterator, Optional

import numpy as np

from lasca_jax.data import types as data

MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/"
             "face_landmarker/float16/1/face_landmarker.task")
MODEL_ENV = "LASCA_JAX_FACE_MODEL"
DEFAULT_MODEL = "~/.cache/lasca_jax/models/face_landmarker.task"
SIDES = ("any", "left", "right")
os.environ.setdefault("GLOG_minloglevel", "2")  # Before MediaPipe loads: silence its graph logs.


@dataclasses.dataclass
class FaceTrack:
  """Facial features of the processed frames of one video.

  Attributes:
    frame_index: ``int64 [N]`` index of each processed frame among all decoded frames.
    times: ``float64 [N]`` seconds since the first decoded frame (from the stream's timestamps).
    values: ``float32 [N, 58]`` blendshapes + head pose, NaN where no face was kept.
    valid: ``bool [N]`` a face was kept in the frame.
    fps: the stream's average frame rate (frames per second) from the container header.
    num_frames: frames decoded (all of them, whatever the stride).
    start_time: presentation time in seconds of the first decoded frame (for audio sync).
    warnings: problems met while decoding (skipped packets, fewer frames than declared).
  """

  frame_index: np.ndarray
  times: np.ndarray
  values: np.ndarray
  valid: np.ndarray
  fps: float
  num_frames: int
  start_time: float
  warnings: list = dataclasses.field(default_factory=list)


def resolve_model_path(path: str = "") -> str:
  """The face landmarker bundle: ``path``, else ``$LASCA_JAX_FACE_MODEL``, else the default.

  Raises:
    FileNotFoundError: with the download address when the file does not exist.
  """
  path = path or os.environ.get(MODEL_ENV, "") or DEFAULT_MODEL
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"MediaPipe face landmarker model not found at {path}. Download it from MediaPipe's "
        f"model page ({MODEL_URL}) and pass its path with --config.data.face_model=PATH "
        f"(predict.py: --face_model=PATH), or set ${MODEL_ENV}, or save it as "
        f"{DEFAULT_MODEL}.")
  return path


def check_model(path: str = "") -> str:
  """Resolves the face model and loads it once; returns its path.

  Raises:
    FileNotFoundError: when the file does not exist (with the download address).
    ValueError: naming the file when MediaPipe cannot load it (truncated or corrupt download).
  """
  path = resolve_model_path(path)
  try:
    create_landmarker(path).close()
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"face model {path} cannot be loaded ({type(e).__name__}: "
                     f"{' '.join(str(e).split())[:200]}); the file is probably truncated or "
                     f"corrupt: download it again from {MODEL_URL}") from None
  return path


@contextlib.contextmanager
def _native_stderr_silenced():
  """Hides native writes to fd 2 (MediaPipe's start-up log lines ignore GLOG_minloglevel)."""
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def create_landmarker(model_path: str, num_faces: int = 1):
  """A MediaPipe ``FaceLandmarker`` in video mode with blendshapes and transformation matrices.

  Its start-up log lines are silenced; errors still arrive as Python exceptions.
  """
  from mediapipe.tasks.python import BaseOptions, vision  # pylint: disable=g-import-not-at-top
  options = vision.FaceLandmarkerOptions(
      base_options=BaseOptions(model_asset_path=resolve_model_path(model_path)),
      running_mode=vision.RunningMode.VIDEO,
      num_faces=num_faces,
      output_face_blendshapes=True,
      output_facial_transformation_matrixes=True)
  with _native_stderr_silenced():
    return vision.FaceLandmarker.create_from_options(options)


def stream_fps(stream) -> float:
  """Average frame rate of a PyAV video stream (falls back to the guessed/base rate)."""
  for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
    if rate is not None and float(rate) > 0:
      return float(rate)
  raise ValueError("the video stream declares no frame rate")


def iter_frames(path: str, problems: Optional[list] = None
                ) -> Iterator[tuple[int, float, object]]:
  """Decodes every frame of the first video stream of ``path``.

  A packet that fails to decode (a damaged stretch of the file) is skipped and noted in
  ``problems``, so one bad packet does not lose the rest of the video.

  Yields:
    ``(index, time, frame)``: frame index among decoded frames, presentation time in seconds
    (``index / fps`` when the container has no timestamps), and the PyAV frame (see
    :func:`to_rgb`).
  """
  import av  # pylint: disable=g-import-not-at-top
  problems = [] if problems is None else problems
  with av.open(path) as container:
    if not container.streams.video:
      raise ValueError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = stream_fps(stream)
    index = 0
    for packet in container.demux(stream):
      try:
        frames = packet.decode()
      except av.error.InvalidDataError as e:
        problems.append(f"undecodable packet after frame {index} ({e})")
        continue
      for frame in frames:
        time = frame.time if frame.time is not None else index / fps
        yield index, float(time), frame
        index += 1


def frame_rotation(frame) -> int:
  """Counter-clockwise degrees (0, 90, 180, 270) that display the frame upright.

  From the frame's display matrix (phones store portrait video sideways with such a matrix);
  a rotation that is not a multiple of 90 degrees is rounded to the nearest one.
  """
  try:
    angle = float(getattr(frame, "rotation", 0) or 0)
  except (TypeError, ValueError):
    return 0
  return int(round(angle / 90.0)) % 4 * 90


def to_rgb(frame, upright: bool = True) -> np.ndarray:
  """A C-contiguous ``uint8 [H, W, 3]`` copy of a PyAV frame, turned upright by default.

  MediaPipe silently finds no face in a non-contiguous array (PyAV pads rows), hence the copy.
  With ``upright``, the frame's display rotation (:func:`frame_rotation`) is applied, as a
  player does, so head roll and blendshapes are those of the upright face.
  """
  rgb = frame.to_ndarray(format="rgb24")
  rotation = frame_rotation(frame) if upright else 0
  if rotation:
    rgb = np.rot90(rgb, k=rotation // 90)
  return np.ascontiguousarray(rgb)


def display_rotation(path: str) -> int:
  """The display rotation of the first frame of ``path`` (0 when none or unreadable)."""
  try:
    for _, _, frame in iter_frames(path):
      return frame_rotation(frame)
  except Exception:  # pylint: disable=broad-except
    return 0
  return 0


def probe_video(path: str) -> dict:
  """Frame rate, declared frame count and whether ``path`` has an audio track."""
  import av  # pylint: disable=g-import-not-at-top
  with av.open(path) as container:
    if not container.streams.video:
      raise ValueError("no video stream")
    stream = container.streams.video[0]
    return {"fps": stream_fps(stream), "frames": int(stream.frames or 0),
            "has_audio": bool(container.streams.audio)}


def head_pose(matrix: np.ndarray) -> np.ndarray:
  """Pitch, yaw, roll (degrees) and tx, ty, tz (cm) of a 4x4 facial transformation matrix.

  The rotation is decomposed as ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (x right, y up, z towards
  the camera in MediaPipe's canonical face space).

  Args:
    matrix: ``[4, 4]`` rigid transform from the canonical face to camera space.

  Returns:
    ``float64 [6]`` in :data:`lasca_jax.data.types.HEAD_POSE_NAMES` order.
  """
  r = np.asarray(matrix, np.float64)[:3, :3]
  pitch = math.atan2(r[2, 1], r[2, 2])
  yaw = math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
  roll = math.atan2(r[1, 0], r[0, 0])
  angles = np.degrees([pitch, yaw, roll])
  return np.concatenate([angles, np.asarray(matrix, np.float64)[:3, 3]])


def pick_face(centres_x: list[float], side: str, last: dict) -> Optional[int]:
  """Index of the face kept for ``side`` among the detected faces, or ``None``.

  Args:
    centres_x: mean landmark x (0 = image left, 1 = right) of each detected face.
    side: ``"any"`` (first face, MediaPipe's most confident), ``"left"`` or ``"right"``.
    last: last seen x of each side, ``{"left": x, "right": x}``; updated in place.
  """
  if not centres_x:
    return None
  if side == "any":
    return 0
  order = np.argsort(centres_x)
  if len(centres_x) >= 2:
    last["left"], last["right"] = centres_x[order[0]], centres_x[order[-1]]
    return int(order[0] if side == "left" else order[-1])
  x = centres_x[0]
  if "left" in last and "right" in last:
    owner = "left" if abs(x - last["left"]) <= abs(x - last["right"]) else "right"
  else:
    owner = "left" if x < 0.5 else "right"
  last[owner] = x
  return 0 if owner == side else None


def _check_blendshape_names(categories) -> None:
  names = tuple(c.category_name for c in categories)
  if names != data.BLENDSHAPE_NAMES:
    raise ValueError(f"the face model emits blendshapes {names[:3]}... which differ from "
                     "lasca_jax.data.types.BLENDSHAPE_NAMES; use MediaPipe's face_landmarker.task")


class FaceTracker:
  """The face landmarker over a stream of frames, one row of 58 features per frame.

  Offline extraction (:func:`extract_face`) and the live path
  (:mod:`lasca_jax.inference.live`) both call it, so a frame gives the same row in both: video
  mode with strictly increasing integer millisecond timestamps, the face kept by
  :func:`pick_face`, NaN where no face is kept.
  """

  def __init__(self, model_path: str, side: str = "any", num_faces: int = 0,
               upright: bool = True):
    if side not in SIDES:
      raise ValueError(f"unknown face side {side!r}; expected one of {SIDES}")
    self.side, self.upright = side, upright
    self._landmarker = create_landmarker(model_path, num_faces or (1 if side == "any" else 2))
    self._last_ms, self._last_x, self._checked = -1, {}, False
    self.rotation = 0    # the first non-zero display rotation met

  def __call__(self, time: float, rgb: np.ndarray, rotation: int = 0) -> np.ndarray:
    """``float64 [58]`` of an upright ``uint8 [H, W, 3]`` frame at ``time`` seconds."""
    import mediapipe as mp  # pylint: disable=g-import-not-at-top
    ms = max(int(round(time * 1000)), self._last_ms + 1)
    self._last_ms = ms
    if rotation and not self.rotation:
      self.rotation = rotation
    result = self._landmarker.detect_for_video(
        mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), ms)
    centres = [float(np.mean([p.x for p in face])) for face in result.face_landmarks]
    k = pick_face(centres, self.side, self._last_x)
    row = np.full(len(data.FACE_FEATURE_NAMES), np.nan)
    if k is not None and k < len(result.face_blendshapes):
      if not self._checked:
        _check_blendshape_names(result.face_blendshapes[k])
        self._checked = True
      row[:len(data.BLENDSHAPE_NAMES)] = [c.score for c in result.face_blendshapes[k]]
      row[len(data.BLENDSHAPE_NAMES):] = head_pose(result.facial_transformation_matrixes[k])
    return row

  def close(self) -> None:
    self._landmarker.close()


def extract_face(video_path: str, model_path: str, stride: int = 1, side: str = "any",
                 num_faces: int = 0, upright: bool = True) -> FaceTrack:
  """Runs the face landmarker over every ``stride``-th frame of ``video_path``.

  Args:
    video_path: the video file.
    model_path: the ``face_landmarker.task`` bundle ("" -> :func:`resolve_model_path` default).
    stride: process every ``stride``-th frame, and the last one (others are decoded only).
    side: which face to keep, one of :data:`SIDES`.
    num_faces: faces MediaPipe looks for; 0 -> 1 for ``side="any"``, 2 otherwise.
    upright: honour the display rotation (phone videos); False analyses the stored pixels.

  Returns:
    A :class:`FaceTrack`.
  """
  if side not in SIDES:
    raise ValueError(f"unknown face side {side!r}; expected one of {SIDES}")
  if stride < 1:
    raise ValueError(f"frame stride must be >= 1, got {stride}")
  info = probe_video(video_path)
  tracker = FaceTracker(model_path, side, num_faces, upright)
  indices, times, rows = [], [], []

  def process(index: int, time: float, frame) -> None:
    indices.append(index)
    times.append(time)
    rows.append(tracker(time, to_rgb(frame, upright), frame_rotation(frame) if upright else 0))

  num_frames, start, held, problems = 0, None, None, []
  try:
    for index, time, frame in iter_frames(video_path, problems):
      num_frames = index + 1
      start = time if start is None else start
      if index % stride == 0:
        process(index, time - start, frame)
        held = None
      else:
        held = (index, time - start, frame)
    if held is not None:  # With a stride, the last frame is processed too: no uncovered tail.
      process(*held)
  finally:
    tracker.close()
  if not num_frames:
    raise ValueError("no decodable video frame")
  warnings = [f"{len(problems)} undecodable packets, first: {problems[0]}"] if problems else []
  if tracker.rotation:
    warnings.append(f"display rotation {tracker.rotation} degrees: frames turned upright")
  if info["frames"] and num_frames < info["frames"] - max(2, info["frames"] // 100):
    warnings.append(f"decoded {num_frames} of {info['frames']} declared frames (truncated?)")
  values = np.asarray(rows, np.float32).reshape(-1, len(data.FACE_FEATURE_NAMES))  # [N, 58]
  return FaceTrack(frame_index=np.asarray(indices, np.int64), times=np.asarray(times, np.float64),
                   values=values, valid=~np.isnan(values).any(axis=1), fps=info["fps"],
                   num_frames=num_frames, start_time=float(start), warnings=warnings)
