"""Lab Streaming Layer outlets of live decisions (``experiments/live.py --lsl``).

Two streams, so recordings made with LabRecorder sync the decisions with EEG, physiology and
experiment software (PsychoPy, Unity) on LSL's clock:

* ``<name>`` (type ``AffectChange``, irregular rate, float64): one sample per decided window pair,
  stamped with ``pylsl.local_clock()`` when the decision is made, channels :data:`CHANNELS`.
  The stream's description holds the model (run, label, target, fusion, windows) and what live
  mode computes differently from offline (``substitutes``).
* ``<name> cues`` (type ``Markers``, string): the same decision's prompt and top cues as JSON,
  with the same timestamp.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

CHANNELS = (("p_increase", "probability"), ("p_increase_std", "probability"),
            ("direction", "+1 increase, -1 decrease"), ("start_s", "seconds"),
            ("end_s", "seconds"), ("next_start_s", "seconds"), ("next_end_s", "seconds"),
            ("latency_ms", "milliseconds"))


def quiet_liblsl() -> None:
  """liblsl logs its start-up at INFO to stderr; unless ``$LSLAPICFG`` names a configuration of
  the user's, it gets one that logs errors only (before pylsl loads liblsl)."""
  if os.environ.get("LSLAPICFG"):
    return
  path = os.path.join(tempfile.gettempdir(), "lasca_jax_lsl_api.cfg")
  if not os.path.exists(path):
    with open(path + f".{os.getpid()}", "w", encoding="utf-8") as f:
      f.write("[log]\nlevel = -2\n")
    os.replace(path + f".{os.getpid()}", path)
  os.environ["LSLAPICFG"] = path


class LslOutlet:
  """The two outlets (module docstring); ``name`` is the stream name, ``source_id`` makes a
  restarted run's stream recognisable to recorders."""

  def __init__(self, name: str, source_id: str, info: dict):
    quiet_liblsl()
    try:
      import pylsl  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ValueError(f"--lsl needs pylsl ({e}): pip install pylsl") from None
    self._pylsl = pylsl
    stream = pylsl.StreamInfo(name, "AffectChange", len(CHANNELS), pylsl.IRREGULAR_RATE,
                              pylsl.cf_double64, source_id)
    channels = stream.desc().append_child("channels")
    for label, unit in CHANNELS:
      ch = channels.append_child("channel")
      ch.append_child_value("label", label)
      ch.append_child_value("unit", unit)
    model = stream.desc().append_child("lasca_jax")
    for key, value in info.items():
      model.append_child_value(key, value if isinstance(value, str) else json.dumps(value))
    self.numbers = pylsl.StreamOutlet(stream)
    markers = pylsl.StreamInfo(f"{name} cues", "Markers", 1, pylsl.IRREGULAR_RATE,
                               pylsl.cf_string, f"{source_id}-cues")
    self.markers = pylsl.StreamOutlet(markers)
    self.sent = 0

  def push(self, decision: Any) -> None:
    """One sample for a decided pair (undecided pairs send nothing)."""
    if not decision.decided:
      return
    row = decision.row
    stamp = self._pylsl.local_clock()
    self.numbers.push_sample(
        [row["p_increase"], row["p_increase_std"], 1.0 if row["direction"] == "increase" else -1.0,
         row["start_s"], row["end_s"], row["next_start_s"], row["next_end_s"],
         decision.latency_ms.get("total", 0.0)], stamp)
    self.markers.push_sample([json.dumps({
        "next_start_s": row["next_start_s"], "prompt": row["next_prompt"],
        "cues": [[n, round(v, 6)] for n, v in decision.cues]})], stamp)
    self.sent += 1

  def close(self) -> None:
    """Closes both outlets (inlets see the stream end)."""
    self.numbers, self.markers = None, None
