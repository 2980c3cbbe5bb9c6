"""``experiments/live.py``: a :class:`~lasca_jax.inference.live.LiveTracker` with its outputs.

:func:`run_live` checks everything that can fail before the source starts (the bundle, the
source and the streams the model needs, the face model, the dashboard's port, the output
folder's lock), then runs the tracker and hands each decision to

* ``--output``: ``predictions.csv`` (``predict.py``'s columns, one row per window pair, appended
  and flushed as it is decided), ``decisions.jsonl`` (each decision with every fold's
  probability, its cues and its per-stage latency), ``live.json`` (the model, the source and the
  live substitutes, at the start) and ``summary.json`` (latency percentiles, dropped frames, how
  the stream ended) at the end;
* ``--serve``: the dashboard (:mod:`lasca_jax.inference.dashboard`);
* ``--lsl``: the Lab Streaming Layer outlets (:mod:`lasca_jax.inference.lsl`).

SIGINT and SIGTERM stop the tracker after the window it is working on; the outputs are complete
up to the last decided window, the outlet and the server close, and the exit status says what
happened (:data:`lasca_jax.inference.live.EXIT_CODES`).
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import signal
import threading
from typing import Callable, Optional

from lasca_jax.data import files as files_lib
from lasca_jax.inference import apply, ensemble, live

OUTPUTS = ("predictions.csv", "decisions.jsonl", "live.json", "summary.json")


class LiveOutput:
  """The ``--output`` folder (module docstring); ``None`` writes nothing."""

  def __init__(self, folder: Optional[str], info: dict):
    self.folder = folder
    self._csv = self._jsonl = None
    if not folder:
      return
    os.makedirs(folder, exist_ok=True)
    for name in OUTPUTS:                        # a previous run's files are not mixed in
      path = os.path.join(folder, name)
      if os.path.exists(path):
        os.remove(path)
    files_lib.write_json_atomic(os.path.join(folder, "live.json"), info, indent=1)
    self._csv = open(os.path.join(folder, "predictions.csv"), "w", newline="",  # pylint: disable=consider-using-with
                     encoding="utf-8")
    self._writer = csv.writer(self._csv)
    self._writer.writerow(apply.TABLE_COLUMNS)
    self._csv.flush()
    self._jsonl = open(os.path.join(folder, "decisions.jsonl"), "w", encoding="utf-8")  # pylint: disable=consider-using-with

  def write(self, decision: live.Decision) -> None:
    if self._csv is None:
      return
    self._writer.writerow([_cell(decision.row[c]) for c in apply.TABLE_COLUMNS])
    self._csv.flush()
    self._jsonl.write(json.dumps(decision.to_json()) + "\n")
    self._jsonl.flush()

  def finish(self, summary: dict) -> None:
    if self._csv is None:
      return
    self._csv.close()
    self._jsonl.close()
    files_lib.write_json_atomic(os.path.join(self.folder, "summary.json"), summary, indent=1)


def _cell(value):
  if isinstance(value, float) and math.isnan(value):
    return ""
  return value


def describe(decision: live.Decision) -> str:
  """One line of the console log for a decision."""
  r = decision.row
  head = (f"{r['start_s']:6.1f}-{r['end_s']:.1f} s -> {r['next_start_s']:.1f}-"
          f"{r['next_end_s']:.1f} s")
  if not decision.decided:
    return f"{head}  {r['status']}"
  cue = f"  top cue {decision.cues[0][0]} {decision.cues[0][1]:+.3f}" if decision.cues else ""
  return (f"{head}  {r['direction']:8s} P={r['p_increase']:.3f}±{r['p_increase_std']:.3f}"
          f"{cue}  [{decision.latency_ms['total']:.0f} ms]")


def end_line(summary: dict, output: Optional[str]) -> str:
  """The one line that says how the run ended."""
  done = f"{summary['decided']} of {summary['pairs']} window pairs decided"
  where = f" -> {os.path.join(output, 'predictions.csv')}" if output else ""
  end, detail = summary["end"], summary["end_detail"]
  if end == "ended":
    return f"stream ended after {summary['stream_seconds']:.1f} s: {done}{where}"
  if end in ("interrupted", "terminated"):
    name = "SIGINT" if end == "interrupted" else "SIGTERM"
    return f"stopped by {name} after {summary['stream_seconds']:.1f} s: {done}{where}"
  if end == "stalled":
    return f"source stalled ({detail}): {done}{where}"
  return f"source broke after {summary['stream_seconds']:.1f} s ({detail}): {done}{where}"


def run_live(run_dir: str, source: str, output: Optional[str] = None,
             serve: Optional[str] = None, lsl: bool = False, realtime: bool = False,
             audio: str = "source", face_model: str = "", text_model_path: Optional[str] = None,
             cache_dir: Optional[str] = None, explain: bool = True, top: int = 3,
             ig_steps: int = 32, max_lag: float = 0.5, stall_seconds: float = 10.0,
             lsl_name: str = "lasca_jax", echo: Callable[[str], None] = print,
             on_ready: Optional[Callable[[dict], None]] = None) -> tuple[dict, int]:
  """Runs live tracking with its outputs (module docstring).

  Returns:
    ``(summary, exit status)``.

  Raises:
    ValueError (``BundleError``, ``LiveError``, ``DashboardError``) / FileNotFoundError: one
      line, before anything starts.
  """
  predictor = ensemble.load_bundle(run_dir, cache_dir, text_model_path)
  src = live.parse_source(source, realtime, audio)
  board = None
  if serve:
    from lasca_jax.inference import dashboard  # pylint: disable=import-outside-toplevel
    board = dashboard.Dashboard(serve, {})
  lock = tracker = outlet = None
  try:
    if output:
      lock = files_lib.hold_lock(output, "experiments/live.py")
    tracker = live.LiveTracker(predictor, src, face_model, explain, top, ig_steps, max_lag,
                               stall_seconds)
    summary = tracker.summary()
    info = {k: summary[k] for k in INFO_KEYS}
    info["started"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    if lsl:
      from lasca_jax.inference import lsl as lsl_lib  # pylint: disable=import-outside-toplevel
      outlet = lsl_lib.LslOutlet(lsl_name, f"lasca_jax:{os.path.abspath(run_dir)}", {
          k: info[k] for k in ("run", "model_label", "target", "fusion", "modality",
                               "window_seconds", "source", "substitutes")})
    writer = LiveOutput(output, info)
    if board is not None:
      board.info.update(info)
      board.start()
      echo(f"dashboard: {board.url}" + ("" if board.local_only else
                                         f" (listening on {board.host}: reachable from other "
                                         "machines)"))
    for line in tracker.substitutes:
      echo(f"note: live differs from offline: {line}")
    if on_ready is not None:
      on_ready({"dashboard": board.url if board else None, "info": info})
    summary = _loop(tracker, writer, outlet, board, echo)
  finally:
    if board is not None:
      board.close()
    if outlet is not None:
      outlet.close()
    if tracker is not None:
      tracker.close()
    if lock is not None:
      lock.close()
  return summary, live.EXIT_CODES.get(summary["end"], 1)


# What live.json and the dashboard's header say of a run (not its counters).
INFO_KEYS = ("run", "source", "source_kind", "paced", "target", "model_label", "fusion",
             "modality", "fold_models", "window_seconds", "source_fps", "substitutes")


def _loop(tracker, writer, outlet, board, echo) -> dict:
  previous = {}
  in_main = threading.current_thread() is threading.main_thread()

  def stop(signum, frame, reason):
    del frame
    if tracker.stop.is_set():     # a second signal: stop now, without the pending decisions
      signal.signal(signum, previous[signum])
      raise KeyboardInterrupt
    tracker.request_stop(reason)

  if in_main:
    for sig, reason in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")):
      if signal.getsignal(sig) is signal.SIG_IGN:   # e.g. a background job: stays ignored
        continue
      previous[sig] = signal.signal(sig, lambda n, f, r=reason: stop(n, f, r))
  if board is not None:
    tracker.frame_hook = board.set_frame
  try:
    for decision in tracker.decisions():
      writer.write(decision)
      if outlet is not None:
        outlet.push(decision)
      if board is not None:
        board.publish("decision", decision.to_json())
        s = tracker.stats
        board.publish("status", {"frames_dropped": s.dropped_frames,
                                 "effective_fps": s.effective_fps()})
      echo(describe(decision))
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
    summary = tracker.summary()
    writer.finish(summary)
    if outlet is not None:
      outlet.close()
    if board is not None:
      board.publish("end", summary)
  return summary
