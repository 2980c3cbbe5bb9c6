"""Live tracking (lasca_jax.inference.live, experiments/live.py) as a user sees it.

* The pieces that run as frames arrive equal the offline ones: the streaming MFCCs equal the
  whole-waveform MFCCs, and the window assembler's windows equal ``apply.window_input``'s for
  random streams (frame strides, gaps, rates, window lengths, partial last windows).
* On both shared clips, played as fast as possible, every live decision equals
  ``experiments/predict.py``'s to 1e-5, undecided pairs carry the same reason, for every
  ``model.fusion`` (features, fused, text, and the mask and random-text controls) and
  ``text.long_prompts`` setting; with the paper's MFCC floor (data.mfcc_top_db=80) live says it
  substitutes the running maximum and equals offline after the recording's loudest moment.
* ``experiments/live.py`` on a clip at real-time pace: the dashboard, opened in Debian's
  Chromium with every non-local request blocked, receives and shows every decision (checked in
  the DOM, screenshot kept in tests/artifacts/); an LSL inlet receives every decided pair;
  predictions.csv and summary.json agree; SIGINT and SIGTERM end it with a complete log and
  their exit status; bad set-ups fail in one line before anything starts.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from lasca_jax.data.extract import audio as audio_lib, load as load_lib
from lasca_jax.inference import apply, ensemble, live, live_run
from lasca_jax.inference import dashboard as dashboard_lib
from lasca_jax.run import pipeline
from conftest import ROOT, make_tiny_config
import media_fixtures

CLIPS = ("media/retalking_1.mp4", "media/retalking_4.mp4")
WINDOW = 1.5
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


# ------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize("top_db", [0.0, 80.0])
def test_streaming_mfccs_equal_the_whole_waveform_mfccs(top_db):
  wave = audio_lib.decode_audio(str(media_fixtures.shared_file(CLIPS[1])), 16000)
  ref = audio_lib.mfcc(wave.samples, 16000, top_db=top_db)
  stream = audio_lib.MfccStream(16000, top_db=top_db)
  rng = np.random.default_rng(0)
  out, pos = [], 0
  while pos < wave.samples.size:                       # packets of random sizes
    n = int(rng.integers(1, 3000))
    out.append(stream.push(wave.samples[pos:pos + n]))
    pos += n
  out.append(stream.finish())
  got = np.concatenate(out)
  assert got.shape == ref.shape
  mel = audio_lib.mfcc(wave.samples, 16000, top_db=0)   # where is the clip loudest?
  if top_db == 0:
    np.testing.assert_allclose(got, ref, atol=2e-4)    # |MFCC| up to ~600
  else:
    # The running maximum reaches the recording's maximum at its loudest frame; from there on
    # the floor is the offline one (retalking_4 is quiet for its first ~1.3 s).
    assert stream.floor_rises > 0
    loudest = _loudest_frame(wave.samples)
    np.testing.assert_allclose(got[loudest:], ref[loudest:], atol=2e-4)
    assert np.abs(got[:loudest] - ref[:loudest]).max() > 1e-2   # the substitute is real
  del mel


def _loudest_frame(samples: np.ndarray) -> int:
  import librosa  # pylint: disable=import-outside-toplevel
  hop, win, n_fft = audio_lib.frame_sizes(16000, 0.01, 0.025)
  mel = librosa.feature.melspectrogram(y=samples, sr=16000, n_fft=n_fft, win_length=win,
                                       hop_length=hop)
  return int(np.argmax(librosa.power_to_db(mel, top_db=None).max(axis=0)))


class _Stub:
  """What ``apply.window_input`` reads of a predictor (all 73 columns)."""
  feature_names = list(load_lib.FEATURE_NAMES)
  modalities = list(load_lib.MODALITIES)

  def __init__(self, window, hz):
    self.meta = {"window_seconds": window, "time_base_hz": hz}


@pytest.mark.parametrize("fps,stride,window,hz,audio_offset", [
    (30.0, 1, 3.0, 10.0, 0.0), (22.13, 2, 1.5, 10.0, 0.021), (25.0, 3, 1.0, 30.0, -0.05),
    (12.5, 1, 2.0, 5.0, 0.3)])
def test_window_assembler_equals_the_offline_windows(fps, stride, window, hz, audio_offset):
  rng = np.random.default_rng(int(fps * 10 + stride))
  n = int(fps * 9.4)
  frame_times = np.arange(n) / fps
  processed = np.unique(np.r_[np.arange(0, n, stride), n - 1])      # offline's stride rule
  face = rng.random((processed.size, 58)).astype(np.float32)
  face[rng.random(processed.size) < 0.2] = np.nan                    # frames without a face
  m = int(9.4 / 0.01) + 1
  audio_times = audio_offset + np.arange(m) * 0.01
  mfcc = rng.normal(size=(m, 15)).astype(np.float32) * 50
  mfcc[300:340] = np.nan                                             # an undecodable stretch
  features = {"frame_index": processed, "frame_times": frame_times[processed], "face": face,
              "face_valid": ~np.isnan(face).any(1), "audio_times": audio_times, "mfcc": mfcc,
              "meta": {"settings": {"frame_stride": stride, "mfcc_hop_seconds": 0.01},
                       "fps": fps, "has_audio": True}}
  stub = _Stub(window, hz)
  times = apply.time_base(features["frame_times"], audio_times, hz)
  values = load_lib.on_time_base(features, times, frame_clock="pts")
  offline = apply.window_input(apply.FrameInput(times, values, "feature file"), stub)

  asm = live.WindowAssembler(window, hz, stride / fps, 0.01, ("face", "audio"))
  got, fi, ai = [], 0, 0
  for t in np.union1d(features["frame_times"], audio_times):          # arrival in time order
    while fi < processed.size and features["frame_times"][fi] <= t:
      asm.add_face(features["frame_times"][fi], face[fi])
      fi += 1
    if ai < m and audio_times[ai] <= t:
      asm.add_audio(audio_times[ai:ai + 1], mfcc[ai:ai + 1])
      ai += 1
    while asm.closable():
      got.append(asm.window(asm.next_window)[0])
      asm.next_window += 1
  assert len(got) < len(offline.start)           # most windows closed before the end
  total = asm.end_steps()
  assert total == times.size
  while asm.steps(asm.next_window, total).size:
    got.append(asm.window(asm.next_window, total)[0])
    asm.next_window += 1
  assert len(got) == len(offline.start)
  for j, win in enumerate(got):
    np.testing.assert_allclose(win.features[0], offline.features[j], rtol=1e-6, atol=1e-6,
                               err_msg=f"window {j}")
    np.testing.assert_allclose(win.coverage[0], offline.coverage[j], atol=1e-9)
    assert win.full[0] == offline.full[j] and win.start[0] == offline.start[j]


# ------------------------------------------------------------------------------ live = offline


SETTINGS = {   # name: (config overrides, backbone fixture)
    "features": ({"model.fusion": "features", "features.partial_windows": True}, None),
    "fused": ({"model.fusion": "fused"}, "tiny_backbone"),
    "fused-chunk": ({"model.fusion": "fused", "text.long_prompts": "chunk"}, "short_backbone"),
    "text": ({"model.fusion": "text"}, "short_backbone"),
    "text-chunk": ({"model.fusion": "text", "text.long_prompts": "chunk"}, "short_backbone"),
    "mask": ({"model.fusion": "mask"}, None),
    "random_text": ({"model.fusion": "random_text", "text.random_norm": 1.0}, "tiny_backbone"),
    "fused-dataset-salience": ({"model.fusion": "fused", "text.salience_stats": "dataset"},
                               "tiny_backbone"),
}


def _train(root, name, overrides, backbone, top_db=0.0):
  config = make_tiny_config(root / "cache", **{"features.window_seconds": WINDOW, **overrides})
  if backbone:
    config.text.backbone = backbone
  config.data.mfcc_top_db = top_db        # causal MFCCs: live equals offline exactly
  run_dir = str(root / name)
  pipeline.run(config, run_dir)
  return run_dir


@pytest.fixture(scope="module")
def frames_of(tmp_path_factory):
  """Each clip's per-frame features as predict.py reads them (extracted once: they depend on
  the extraction settings only, the same for every run here)."""
  face = media_fixtures.face_model()
  cache = {}

  def get(run_dir, clip):
    predictor = ensemble.load_bundle(run_dir)
    key = (clip, predictor.meta["config"]["data"].get("mfcc_top_db"))
    if key not in cache:
      cache[key] = apply.read_input(str(media_fixtures.shared_file(clip)), predictor, face)
    return cache[key]
  return get


def _live(run_dir, clip, **kwargs):
  predictor = ensemble.load_bundle(run_dir)
  tracker = live.LiveTracker(predictor, live.parse_source(str(media_fixtures.shared_file(clip))),
                             media_fixtures.face_model(), **kwargs)
  return tracker, list(tracker.decisions())


def _assert_rows_equal(decisions, table, skip_before: float = -1.0):
  assert len(decisions) == len(table)
  compared = 0
  for d, (_, row) in zip(decisions, table.iterrows()):
    got = d.row
    assert got["start_s"] == row["start_s"] and got["next_start_s"] == row["next_start_s"]
    if got["start_s"] < skip_before:
      continue
    assert got["status"] == row["status"]
    assert got["prompt"] == row["prompt"] and got["next_prompt"] == row["next_prompt"]
    if row["status"] == "ok":
      compared += 1
      assert abs(got["p_increase"] - row["p_increase"]) <= 1e-5
      assert abs(got["p_increase_std"] - row["p_increase_std"]) <= 1e-5
      if abs(row["p_increase"] - 0.5) > 1e-5:
        assert got["direction"] == row["direction"]
      names = [c.rsplit(" ", 1)[0] for c in str(row["top_cues"]).split("; ") if c]
      values = [float(c.rsplit(" ", 1)[1]) for c in str(row["top_cues"]).split("; ") if c]
      assert [n for n, _ in d.cues] == names
      np.testing.assert_allclose([v for _, v in d.cues], values, atol=1.5e-3)
  return compared


@pytest.mark.parametrize("name", list(SETTINGS))
def test_live_decisions_equal_predict_on_the_shared_clips(name, tmp_path, request, frames_of):
  overrides, backbone = SETTINGS[name]
  run_dir = _train(tmp_path, name, overrides,
                   request.getfixturevalue(backbone) if backbone else None)
  predictor = ensemble.load_bundle(run_dir)
  decided = 0
  for clip in CLIPS:
    offline = apply.predict_recording(predictor, frames_of(run_dir, clip))
    tracker, decisions = _live(run_dir, clip)
    assert tracker.stats.end == "ended" and tracker.stats.dropped_frames == 0
    assert not tracker.substitutes
    decided += _assert_rows_equal(decisions, offline.table)
    np.testing.assert_allclose(
        np.array([d.fold_p for d in decisions if d.decided]).T, offline.fold_prob, atol=1e-5)
    summary = tracker.summary()
    assert summary["pairs"] == len(offline.table) == offline.summary["pairs"]
    assert summary["decided"] == offline.summary["decided"]
  assert decided >= 4, "too few decided pairs to compare"


def test_the_papers_mfcc_floor_is_substituted_and_said(tmp_path, frames_of):
  run_dir = _train(tmp_path, "paper-mfcc", {"model.fusion": "features"}, None, top_db=80.0)
  predictor = ensemble.load_bundle(run_dir)
  clip = CLIPS[1]
  wave = audio_lib.decode_audio(str(media_fixtures.shared_file(clip)), 16000)
  loudest_s = _loudest_frame(wave.samples) * 0.01
  offline = apply.predict_recording(predictor, frames_of(run_dir, clip))
  tracker, decisions = _live(run_dir, clip)
  assert len(tracker.substitutes) == 1 and "loudest sound heard so far" in tracker.substitutes[0]
  assert tracker.summary()["substitutes"] == tracker.substitutes
  assert any("MFCC floor rose" in w for w in tracker.summary()["warnings"])
  # Windows that start after the loudest moment see the offline floor: equal decisions.
  assert _assert_rows_equal(decisions, offline.table,
                            skip_before=np.ceil(loudest_s / WINDOW) * WINDOW) >= 1


# ------------------------------------------------------------------------------ as a user


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory, tiny_backbone):
  return _train(tmp_path_factory.mktemp("live_cli"), "fused", {"model.fusion": "fused"},
                tiny_backbone)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(args, **kwargs):
  env = dict(os.environ, LASCA_JAX_FACE_MODEL=media_fixtures.face_model(),
             PYTHONUNBUFFERED="1")
  return subprocess.Popen([sys.executable, os.path.join(ROOT, "experiments", "live.py"), *args],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kwargs)


def _read_until(proc, prefix: str, timeout: float = 240.0) -> list[str]:
  lines, t0 = [], time.monotonic()
  for line in proc.stdout:
    lines.append(line.rstrip("\n"))
    if line.startswith(prefix) or time.monotonic() - t0 > timeout:
      return lines
  raise AssertionError("live.py ended early:\n" + "\n".join(lines[-20:]))


def _chromium() -> str:
  path = shutil.which("chromium") or shutil.which("chromium-browser")
  if not path:
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
  pytest.importorskip("playwright.sync_api")
  return path


def test_dashboard_and_lsl_receive_every_decision_at_real_time_pace(fused_run, tmp_path):
  chromium = _chromium()
  pylsl = pytest.importorskip("pylsl")
  from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel
  port, out, name = _free_port(), tmp_path / "out", f"lasca_jax_test_{os.getpid()}"
  clip = str(media_fixtures.shared_file(CLIPS[0]))
  # --max_lag=60: every frame processed, so the decisions do not depend on how fast the face
  # pass runs beside Chromium on a busy machine (dropping has its own test).
  proc = _start([f"--run={fused_run}", f"--source={clip}", "--realtime", f"--serve={port}",
                 "--lsl", f"--lsl_name={name}", f"--output={out}", "--max_lag=60"])
  try:
    head = _read_until(proc, "dashboard:")
    assert head[-1] == f"dashboard: http://127.0.0.1:{port}/"
    streams = pylsl.resolve_byprop("name", name, 1, 10.0)
    assert streams, "the LSL outlet is not visible"
    inlet = pylsl.StreamInlet(streams[0], recover=False)
    inlet.open_stream(10.0)
    samples, stamps, done = [], [], threading.Event()

    def pull():   # while the outlet lives (after it closes the inlet reports the loss)
      while not done.is_set():
        try:
          sample, stamp = inlet.pull_sample(timeout=0.2)
        except pylsl.util.LostError:
          return
        if sample is not None:
          samples.append(sample)
          stamps.append(stamp)
    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    outside = []
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=chromium, args=[
          "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
      page = browser.new_page(viewport={"width": 1280, "height": 800})

      def only_local(route):
        url = route.request.url
        if url.startswith(f"http://127.0.0.1:{port}/"):
          route.continue_()
        else:
          outside.append(url)
          route.abort()
      page.route("**/*", only_local)
      page.goto(f"http://127.0.0.1:{port}/")
      page.wait_for_function("document.getElementById('status').textContent.startsWith('ended')",
                             timeout=120_000)
      page.wait_for_function("document.getElementById('frame').naturalWidth > 0", timeout=10_000)
      os.makedirs(ARTIFACTS, exist_ok=True)
      page.screenshot(path=os.path.join(ARTIFACTS, "live_dashboard.png"))
      dom = page.evaluate("""() => ({
        decided: document.getElementById('decision-count').textContent,
        pairs: document.getElementById('pair-count').textContent,
        points: document.getElementById('chart').dataset.points,
        direction: document.getElementById('direction').textContent,
        cues: [...document.querySelectorAll('#cues .cue .name')].map(e => e.textContent),
        model: document.getElementById('model').textContent})""")
      browser.close()
    tail = proc.stdout.read().splitlines()
    assert proc.wait(60) == 0, "\n".join(head + tail)
    done.set()
    puller.join(10)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert not outside, f"the page asked for {outside}"
  table = pd.read_csv(out / "predictions.csv")
  summary = json.loads((out / "summary.json").read_text())
  ok = table[table["status"] == "ok"]
  assert summary["end"] == "ended" and summary["pairs"] == len(table) >= 2
  assert summary["decided"] == len(ok) >= 1
  assert summary["latency_ms"] and summary["frames_read"] == 135
  assert tail[-1].startswith(f"stream ended after 6.1 s: {len(ok)} of {len(table)} window pairs")
  # The page shows every decision, the last one's cues, and the model.
  assert int(dom["decided"]) == len(ok) and int(dom["points"]) == len(ok)
  assert int(dom["pairs"]) == len(table)
  last = ok.iloc[-1]
  assert dom["direction"].startswith(last["direction"])
  assert dom["cues"] == [c.rsplit(" ", 1)[0] for c in last["top_cues"].split("; ")]
  assert "sentence_transformer(F)" in dom["model"]
  # LSL: one sample per decided pair, on the LSL clock, equal to the log.
  assert len(samples) == len(ok)
  np.testing.assert_allclose([s[0] for s in samples], ok["p_increase"], atol=1e-12)
  assert [s[2] for s in samples] == [1.0 if d == "increase" else -1.0 for d in ok["direction"]]
  assert all(abs(t - pylsl.local_clock()) < 120 for t in stamps)
  lines = (out / "decisions.jsonl").read_text().splitlines()
  assert len(lines) == len(table) and "latency_ms" in json.loads(lines[0])


@pytest.mark.parametrize("sig,status,word", [(signal.SIGINT, 130, "SIGINT"),
                                             (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_ends_the_run_with_a_complete_log(fused_run, tmp_path, sig, status, word):
  out = tmp_path / "out"
  clip = str(media_fixtures.shared_file(CLIPS[1]))
  proc = _start([f"--run={fused_run}", f"--source={clip}", "--realtime", f"--output={out}"])
  try:
    lines = _read_until(proc, "   ")           # the first decision
    proc.send_signal(sig)
    lines += proc.stdout.read().splitlines()
    assert proc.wait(60) == status, "\n".join(lines)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert lines[-1].startswith(f"stopped by {word} after ")
  summary = json.loads((out / "summary.json").read_text())
  table = pd.read_csv(out / "predictions.csv")
  assert summary["end"] == ("interrupted" if sig == signal.SIGINT else "terminated")
  assert 1 <= len(table) == summary["pairs"] < 4       # stopped before the clip's end
  assert len((out / "decisions.jsonl").read_text().splitlines()) == len(table)


def test_bad_setups_fail_in_one_line_before_anything_starts(fused_run, tmp_path):
  clip = str(media_fixtures.shared_file(CLIPS[0]))
  face = media_fixtures.face_model()
  with pytest.raises(ValueError, match="bundle"):
    live_run.run_live(str(tmp_path), clip)                     # not a run
  with pytest.raises(live.LiveError, match="no such file"):
    live.parse_source(str(tmp_path / "missing.mp4"))
  with pytest.raises(live.LiveError, match="unknown scheme 'ftp'"):
    live.parse_source("ftp://host/x")
  with pytest.raises(live.LiveError, match="is a folder"):
    live.parse_source(str(tmp_path))
  text = tmp_path / "notes.txt"
  text.write_text("not a video\n")
  with pytest.raises(live.LiveError, match="not a video or sound file that PyAV can read"):
    live.probe(live.parse_source(str(text)))
  if sys.platform.startswith("linux") and not os.path.exists("/dev/video97"):
    with pytest.raises(live.LiveError, match="no camera /dev/video97"):
      live.probe(live.parse_source("97"))
  for bad, why in (("abc", "give HOST:PORT"), ("99999", "1-65535")):
    with pytest.raises(dashboard_lib.DashboardError, match=why):
      dashboard_lib.parse_address(bad)
  predictor = ensemble.load_bundle(fused_run)
  silent = media_fixtures.write_video(str(tmp_path / "silent.mp4"), 30, fps=25)
  with pytest.raises(live.LiveError, match="has no audio track, but the multimodal model"):
    live.LiveTracker(predictor, live.parse_source(silent), face)
  with pytest.raises(live.LiveError, match="is a camera, which gives no sound.*--audio=mic"):
    live.LiveTracker(predictor, live.parse_source("0"), face)
  with pytest.raises(live.LiveError, match="--audio=none, but"):
    live.LiveTracker(predictor, live.parse_source(clip, audio="none"), face)
  recording = ensemble.load_bundle(fused_run)
  recording.recipe = dataclasses.replace(recording.recipe, salience_stats="recording")
  with pytest.raises(live.LiveError, match="cannot be causal"):
    live.LiveTracker(recording, live.parse_source(clip), face)
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    with pytest.raises(dashboard_lib.DashboardError, match=f"127.0.0.1:{port} is in use"):
      live_run.run_live(fused_run, clip, serve=str(port))
  # Through the script: one line, exit 1, nothing written.
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "live.py"),
                         f"--run={fused_run}", f"--source={silent}", f"--output={tmp_path / 'o'}"],
                        capture_output=True, text=True, cwd=ROOT, timeout=300,
                        env=dict(os.environ, LASCA_JAX_FACE_MODEL=face))
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("error: --source=")
  assert not (tmp_path / "o" / "predictions.csv").exists()


def test_a_stalled_source_ends_with_its_status(fused_run, tmp_path):
  """A stream that stops sending (a FIFO kept open without data) ends as stalled, exit 3,
  with the decisions made until then."""
  clip = str(media_fixtures.shared_file(CLIPS[1]))
  ts = _as_mpegts(clip, str(tmp_path / "clip.ts"))
  fifo = str(tmp_path / "stream.ts")
  os.mkfifo(fifo)
  out = tmp_path / "out"
  proc = _start([f"--run={fused_run}", f"--source={fifo}", "--realtime", "--stall_seconds=2",
                 f"--output={out}"])
  data = pathlib.Path(ts).read_bytes()
  try:
    with open(fifo, "wb") as pipe:                     # 80 % of the stream, then silence
      pipe.write(data[:int(len(data) * 0.8)])
      pipe.flush()
      lines = _read_until(proc, "source stalled", timeout=200)
      assert proc.wait(60) == 3, "\n".join(lines)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert "no frame or sound for 2 s" in lines[-1]
  summary = json.loads((out / "summary.json").read_text())
  assert summary["end"] == "stalled" and summary["pairs"] >= 1


def _as_mpegts(clip: str, path: str) -> str:
  """The clip remuxed into MPEG-TS, a format that can be streamed and cut anywhere."""
  import av  # pylint: disable=import-outside-toplevel
  with av.open(clip) as src, av.open(path, "w", format="mpegts") as dst:
    pairs = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0],
                                                                 src.streams.audio[0])}
    for packet in src.demux(src.streams.video[0], src.streams.audio[0]):
      if packet.dts is None:
        continue
      packet.stream = pairs[packet.stream.index]
      dst.mux(packet)
  return path


class _Server:
  """A local HTTP server of one file; ``cut`` < 1 sends that share of it and drops the
  connection (a stream that breaks)."""

  def __init__(self, path: str, cut: float = 1.0, hang: bool = False):
    import http.server  # pylint: disable=import-outside-toplevel
    payload = pathlib.Path(path).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_GET(self):  # pylint: disable=invalid-name
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[:int(len(payload) * cut)])
        self.wfile.flush()
        if hang:                      # the connection stays open, silent
          time.sleep(30)
        self.connection.shutdown(socket.SHUT_RDWR)

      def log_message(self, *args):
        del args

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/clip.ts"
    threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

  def close(self):
    self.httpd.shutdown()


def test_a_network_stream_is_decided_as_the_file_and_a_dropped_one_says_it_broke(fused_run,
                                                                                 tmp_path):
  clip = str(media_fixtures.shared_file(CLIPS[1]))
  ts = _as_mpegts(clip, str(tmp_path / "clip.ts"))
  face = media_fixtures.face_model()
  predictor = ensemble.load_bundle(fused_run)
  whole = live.LiveTracker(predictor, live.parse_source(ts), face)
  reference = list(whole.decisions())
  server = _Server(ts)
  try:
    source = live.parse_source(server.url)
    assert source.kind == "stream" and source.paced
    # Equality with the file needs every frame, however slow the machine's face pass is:
    # dropping has its own test.
    tracker = live.LiveTracker(predictor, source, face, max_lag=60.0)
    decisions = list(tracker.decisions())
  finally:
    server.close()
  assert tracker.stats.end == "ended" and tracker.stats.dropped_frames == 0
  assert [d.row["status"] for d in decisions] == [d.row["status"] for d in reference]
  np.testing.assert_allclose([d.row["p_increase"] for d in decisions if d.decided],
                             [d.row["p_increase"] for d in reference if d.decided], atol=1e-6)
  # The connection drops after 60 % of the stream: the windows closed until then are decided,
  # and the run says how it ended.
  broken = _Server(ts, cut=0.6)
  try:
    tracker = live.LiveTracker(predictor, live.parse_source(broken.url), face)
    decisions = list(tracker.decisions())
  finally:
    broken.close()
  summary = tracker.summary()
  assert summary["end"] == "broken" and "Input/output error" in summary["end_detail"]
  assert 1 <= len(decisions) < len(reference)
  assert summary["stream_seconds"] < 5.5
  # It stays open but silent: stalled, after --stall_seconds (PyAV's own timeout is longer).
  silent = _Server(ts, cut=0.6, hang=True)
  try:
    tracker = live.LiveTracker(predictor, live.parse_source(silent.url), face, stall_seconds=2)
    t0 = time.monotonic()
    decisions = list(tracker.decisions())
  finally:
    silent.close()
  assert tracker.stats.end == "stalled" and time.monotonic() - t0 < 25
  assert 1 <= len(decisions) < len(reference)


class _SlowFacePass:
  """A face pass that takes ``seconds`` per frame, whatever the machine's speed."""

  def __init__(self, inner, seconds: float):
    self.inner, self.seconds = inner, seconds

  def __call__(self, *args):
    time.sleep(self.seconds)
    return self.inner(*args)

  def close(self):
    self.inner.close()


def test_a_face_pass_that_cannot_keep_up_drops_frames_and_says_so(fused_run):
  """A face pass slower than the frame rate (0.2 s a frame at 30 fps) with 0.1 s of lag
  allowed: the frames that wait longer are dropped and counted, the others processed; the
  windows they thin out are reported, not decided on too few frames. (The slowness is made,
  not hoped for: how many frames a real face pass drops depends on the machine's load.)"""
  clip = str(media_fixtures.shared_file(CLIPS[0]))
  tracker = live.LiveTracker(ensemble.load_bundle(fused_run),
                             live.parse_source(clip, realtime=True), media_fixtures.face_model(),
                             max_lag=0.1)
  tracker.tracker = _SlowFacePass(tracker.tracker, 0.2)
  decisions = list(tracker.decisions())
  s = tracker.summary()
  assert s["end"] == "ended" and s["frames_read"] == 135
  assert 0 < s["frames_dropped"] < 135
  assert s["frames_processed"] + s["frames_dropped"] == s["frames_read"]
  assert s["effective_fps"] < s["source_fps"]
  assert len(decisions) == s["pairs"]
  for d in decisions:
    if not d.decided and "face in" in d.row["status"]:
      assert "(< 50%)" in d.row["status"]
