"""Extraction over a whole dataset: one job per recording, resumable, sharded, in worker processes.

A dataset module lists its :class:`MediaJob` s (``media_jobs(data_config)``); :func:`run_jobs`
keeps this shard's share (``jobs[shard_index::num_shards]`` in recording-id order, so an array
job of ``num_shards`` tasks covers every recording exactly once), skips jobs whose output is
already current (:func:`lasca_jax.data.extract.store.is_current`), and runs the rest, each in a
``try`` so that one bad file is reported and never stops the others. With ``num_workers > 1``
jobs run in spawned worker processes; a worker that dies (e.g. a crash inside a native decoder)
is replaced and its job retried once, then reported as failed.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Optional, Sequence

import numpy as np

from lasca_jax.data import files as files_lib, types as data
from lasca_jax.data.extract import audio as audio_lib, store, video as video_lib


@dataclasses.dataclass(frozen=True)
class MediaJob:
  """What to extract for one recording.

  Attributes:
    recording_id: the recording's id (as in :class:`lasca_jax.data.types.Recording`).
    video: the video file, or ``None`` when the recording has none (face features all NaN).
    audio: a separate audio file, or ``None`` to use the video's audio track.
    output: the feature ``.npz`` to write.
    side: which face to keep: ``"any"``, ``"left"`` or ``"right"`` (two-person videos).
  """

  recording_id: str
  video: Optional[str]
  audio: Optional[str]
  output: str
  side: str = "any"


@dataclasses.dataclass(frozen=True)
class Settings:
  """Extraction settings (from ``config.data``; see :func:`settings_from_config`)."""

  face_model: str = ""
  frame_stride: int = 1
  num_faces: int = 0
  sample_rate: int = 16000
  mfcc_hop_seconds: float = 0.01
  mfcc_window_seconds: float = 0.025
  mfcc_top_db: float = audio_lib.TOP_DB   # 0: no recording-relative log-mel floor (causal)


@dataclasses.dataclass
class JobResult:
  """Outcome of one job: ``status`` is ``"done"``, ``"skipped"`` (already current) or ``"failed"``."""

  recording_id: str
  status: str
  reason: str = ""
  frames: int = 0
  seconds: float = 0.0


def settings_from_config(data_config) -> Settings:
  """Reads the extraction fields of a dataset config (missing fields keep their defaults)."""
  fields = {f.name for f in dataclasses.fields(Settings)}
  return Settings(**{k: data_config[k] for k in fields if k in data_config})


def job_settings(job: MediaJob, settings: Settings) -> dict:
  """What an output depends on besides its input files (the model by size, not by path)."""
  out = dataclasses.asdict(settings)
  model = video_lib.resolve_model_path(out.pop("face_model")) if job.video else None
  out["face_model"] = store.file_stamp(model)
  out["side"] = job.side
  # Recorded only when changed, so that feature files written before the field existed stay
  # current.
  if out["mfcc_top_db"] == audio_lib.TOP_DB:
    del out["mfcc_top_db"]
  # Rotated (phone) videos are analysed upright; recorded only when non-zero, so that the
  # feature files of other videos stay current and only rotated ones are extracted again.
  rotation = video_lib.display_rotation(job.video) if job.video else 0
  if rotation:
    out["display_rotation"] = rotation
  return out


def job_inputs(job: MediaJob) -> dict:
  """The input files of a job, stamped by name and size."""
  for path in (job.video, job.audio):
    if path and not os.path.isfile(path):
      raise FileNotFoundError(f"media file {path} does not exist")
  if not job.video and not job.audio:
    raise FileNotFoundError(f"no video or audio file found for {job.recording_id}")
  return {"video": store.file_stamp(job.video), "audio": store.file_stamp(job.audio)}


def _import_libraries() -> None:
  """Imports the decoding and face libraries (seconds on a worker's first job, not timed)."""
  import av  # pylint: disable=g-import-not-at-top,unused-import
  import librosa  # pylint: disable=g-import-not-at-top,unused-import
  import mediapipe  # pylint: disable=g-import-not-at-top,unused-import


def extract(job: MediaJob, settings: Settings) -> tuple[dict, dict]:
  """Computes the feature arrays and metadata of one job (see :mod:`lasca_jax.data.extract.store`)."""
  import av  # pylint: disable=g-import-not-at-top
  import librosa  # pylint: disable=g-import-not-at-top
  import mediapipe  # pylint: disable=g-import-not-at-top
  meta = {"version": store.FORMAT_VERSION, "recording_id": job.recording_id,
          "inputs": job_inputs(job), "settings": job_settings(job, settings),
          "libraries": {"mediapipe": mediapipe.__version__, "av": av.__version__,
                        "librosa": librosa.__version__},
          "warnings": []}
  n_face = len(data.FACE_FEATURE_NAMES)
  arrays = {"frame_index": np.zeros(0, np.int64), "frame_times": np.zeros(0),
            "face": np.zeros((0, n_face), np.float32), "face_valid": np.zeros(0, bool)}
  origin = 0.0
  meta["fps"], meta["num_frames"] = None, 0
  if job.video:
    try:
      track = video_lib.extract_face(job.video, settings.face_model, settings.frame_stride,
                                     job.side, settings.num_faces)
    except FileNotFoundError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"{job.video}: cannot decode video ({type(e).__name__}: {e})") from e
    arrays.update(frame_index=track.frame_index, frame_times=track.times, face=track.values,
                  face_valid=track.valid)
    meta["fps"], meta["num_frames"] = track.fps, track.num_frames
    origin = track.start_time
    meta["warnings"].extend(track.warnings)
    if not track.valid.any():
      meta["warnings"].append("no face found in any processed frame")
  source = job.audio or job.video
  try:
    times, coeffs, has_audio = audio_lib.mfcc_track(
        source, settings.sample_rate, settings.mfcc_hop_seconds, settings.mfcc_window_seconds,
        origin=0.0 if job.audio else origin, top_db=settings.mfcc_top_db)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{source}: cannot decode audio ({type(e).__name__}: {e})") from e
  if job.audio and not has_audio:
    raise ValueError(f"{job.audio}: no audio stream")
  if not has_audio:
    meta["warnings"].append(f"{os.path.basename(source)} has no audio track: MFCCs are NaN")
  elif np.isnan(coeffs).all(1).any():
    lost = float(np.isnan(coeffs).all(1).sum() * settings.mfcc_hop_seconds)
    meta["warnings"].append(f"{os.path.basename(source)}: {lost:.2f} s of audio could not be "
                            "decoded (corrupt packets): MFCCs are NaN there")
  arrays.update(audio_times=times, mfcc=coeffs)
  meta["has_audio"] = has_audio
  return arrays, meta


def run_job(job: MediaJob, settings: Settings, overwrite: bool = False) -> JobResult:
  """Extracts one job unless its output is current; never raises (failures are returned).

  ``seconds`` is the job's own time: the libraries are imported before the clock starts, so
  the frames-per-second figure does not count a worker's start-up.
  """
  try:
    _import_libraries()
  except Exception as e:  # pylint: disable=broad-except
    return JobResult(job.recording_id, "failed", f"{type(e).__name__}: {e}")
  start = time.perf_counter()
  try:
    if not overwrite and store.is_current(job.output, job_inputs(job),
                                          job_settings(job, settings)):
      return JobResult(job.recording_id, "skipped")
    store.remove_stale_temporaries(job.output)  # Left by a killed run of this same job.
    arrays, meta = extract(job, settings)
    store.save_features(job.output, arrays, meta)
    return JobResult(job.recording_id, "done", "; ".join(meta["warnings"]),
                     frames=int(meta["num_frames"]), seconds=time.perf_counter() - start)
  except Exception as e:  # pylint: disable=broad-except
    return JobResult(job.recording_id, "failed", f"{type(e).__name__}: {e}",
                     seconds=time.perf_counter() - start)


def select_shard(jobs: Sequence[MediaJob], shard_index: int = 0,
                 num_shards: int = 1) -> list[MediaJob]:
  """This shard's jobs: every ``num_shards``-th job in recording-id order."""
  if num_shards < 1 or not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index must be in [0, num_shards), got {shard_index} of {num_shards}")
  ids = [j.recording_id for j in jobs]
  if len(set(ids)) != len(ids):
    raise ValueError("two media jobs share a recording id")
  outputs = [j.output for j in jobs]
  if len(set(outputs)) != len(outputs):
    raise ValueError("two media jobs write the same output file")
  return sorted(jobs, key=lambda j: j.recording_id)[shard_index::num_shards]


def _progress(total: int, enabled: bool):
  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  return tqdm.tqdm(total=total, disable=not enabled, unit="rec", desc="extract")


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _exit_with_parent(parent_pid: int) -> None:
  """Worker initializer: end this process when ``parent_pid`` dies, however it dies.

  On Linux the kernel sends SIGTERM at the parent's death (``prctl(PR_SET_PDEATHSIG)``); a
  daemon thread that polls the parent id covers other systems and the race before the prctl.
  """
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
  except (OSError, AttributeError):
    pass

  def watch():
    while True:
      if os.getppid() != parent_pid:
        os._exit(1)  # pylint: disable=protected-access
      time.sleep(0.5)

  if os.getppid() != parent_pid:
    os._exit(1)  # pylint: disable=protected-access
  threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def make_pool(num_workers: int) -> concurrent.futures.ProcessPoolExecutor:
  """Spawned worker processes that end with this process (SIGKILL and SIGTERM included)."""
  return concurrent.futures.ProcessPoolExecutor(
      num_workers, mp_context=multiprocessing.get_context("spawn"),
      initializer=_exit_with_parent, initargs=(os.getpid(),))


def _run_pool(jobs: list[MediaJob], settings: Settings, overwrite: bool, num_workers: int,
              bar) -> list[JobResult]:
  """Runs ``jobs`` in worker processes; a job in flight when a worker died is retried once."""
  results, pending, crashes = [], list(jobs), {}
  while pending:
    retry = []
    with make_pool(num_workers) as pool:
      futures = {pool.submit(run_job, j, settings, overwrite): j for j in pending}
      try:
        for future in concurrent.futures.as_completed(futures):
          job = futures[future]
          try:
            results.append(future.result())
          except BrokenProcessPool:
            crashes[job.recording_id] = crashes.get(job.recording_id, 0) + 1
            if crashes[job.recording_id] >= 2:
              results.append(JobResult(job.recording_id, "failed", "the worker process died"))
            else:
              retry.append(job)
              continue
          bar.update(1)
      except KeyboardInterrupt:   # say why the stop takes a moment; queued jobs never start
        running = sum(1 for f in futures if f.running())
        sys.stderr.write(f"\ninterrupted: stopping {running} running extraction(s); the feature "
                         "files already written are kept\n")
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pending = retry
  return results


def run_jobs(jobs: Sequence[MediaJob], settings: Settings, num_workers: int = 1,
             shard_index: int = 0, num_shards: int = 1, overwrite: bool = False,
             progress: bool = True) -> list[JobResult]:
  """Extracts this shard's jobs; returns one :class:`JobResult` per job, in id order.

  Args:
    jobs: every job of the dataset.
    settings: extraction settings.
    num_workers: worker processes; ``<= 1`` runs in this process.
    shard_index: which shard this call runs.
    num_shards: how many shards split the jobs.
    overwrite: recompute even current outputs.
    progress: show a progress bar.
  """
  mine = select_shard(jobs, shard_index, num_shards)
  if mine and any(j.video for j in mine):
    video_lib.check_model(settings.face_model)  # Fail once, early, naming the model file.
  with _progress(len(mine), progress) as bar:
    if num_workers <= 1:
      results = []
      for job in mine:
        results.append(run_job(job, settings, overwrite))
        bar.update(1)
    else:
      results = _run_pool(mine, settings, overwrite, min(num_workers, max(1, len(mine))), bar)
  for r in results:
    if r.status == "failed":
      logging.error("extraction failed for %s: %s", r.recording_id, r.reason)
  return sorted(results, key=lambda r: r.recording_id)


def summarise(results: Sequence[JobResult]) -> dict[str, Any]:
  """Counts per status, frames per second per worker, and the failures ``(recording, reason)``."""
  done = [r for r in results if r.status == "done"]
  seconds = sum(r.seconds for r in done)
  return {
      "total": len(results),
      "done": len(done),
      "skipped": sum(r.status == "skipped" for r in results),
      "failed": sum(r.status == "failed" for r in results),
      "frames": sum(r.frames for r in done),
      "frames_per_second_per_worker": sum(r.frames for r in done) / seconds if seconds else None,
      "failures": [(r.recording_id, r.reason) for r in results if r.status == "failed"],
      "warnings": [(r.recording_id, r.reason) for r in done if r.reason],
  }


def write_report(path: str, results: Sequence[JobResult]) -> None:
  """Writes :func:`summarise` plus every result as JSON (atomically)."""
  report = dict(summarise(results), results=[dataclasses.asdict(r) for r in results])
  files_lib.write_json_atomic(path, report, indent=1)
