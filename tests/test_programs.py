"""Stored training programs (lasca_jax/model/programs.py): a repeated run loads the exported
program instead of tracing it, and computes the same results bit for bit."""

import hashlib
import os
import shutil
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from lasca_jax.model import placement, programs, train
from conftest import train_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process (XLA_FLAGS and the persistent cache are set before JAX starts): 5 units on 2
# host devices (one padding unit), through train_units; prints the store's counts and a digest
# of every output.
_SCRIPT = r"""
import hashlib, sys
from lasca_jax.model import placement, programs, train
placement.use_host_devices(2)
import jax, numpy as np
if sys.argv[1] != "none":
  placement.enable_compilation_cache(sys.argv[1])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
assert len(jax.local_devices()) == 2, jax.local_devices()
rng = np.random.default_rng(0)
units, w, d, p = 5, 50, 6, 150
z = rng.normal(size=(units, w, d)).astype(np.float32)
first, second = rng.integers(0, w, p), rng.integers(0, w, p)
label = (z[0, second] - z[0, first]) @ rng.normal(size=d) > 0
pairs = train.PairData(*[np.broadcast_to(a.astype(np.int32), (units, p))
                         for a in (first, second, label)])
idx = np.arange(p, dtype=np.int32)
tile = lambda a: np.tile(a, (units, 1))
fold = train.FoldData(tile(idx[:96]), np.array([96, 90, 80, 70, 60], np.int32), tile(idx[96:120]),
                      np.ones((units, 24), bool), tile(idx[120:]), np.ones((units, 30), bool))
settings = train.TrainSettings(max_epochs=6, learning_rate=1e-3, alpha=1.0, tol=1e-3, patience=2,
                               batch_size=16, max_hidden=(250, 125), hidden_dim=0)
out = train.train_units(settings, [3] * units, np.arange(units), z, pairs, fold,
                        placement.Layout(0, int(sys.argv[2])))
digest = hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in jax.tree.leaves(out)))
print(*[programs.counts[k] for k in ("loaded", "exported", "reexported", "unstored")],
      digest.hexdigest())
"""


def _run(cache: str, lanes: int = 1) -> tuple[list[int], str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, cache, str(lanes)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  *counts, digest = proc.stdout.split()
  return [int(c) for c in counts], digest, proc.stderr


def test_a_repeated_run_loads_the_stored_program_and_computes_the_same_bits(tmp_path):
  cache = str(tmp_path / "xla")
  counts, plain, _ = _run("none")
  assert counts == [0, 0, 0, 0]                    # no persistent cache: no store
  counts, first, _ = _run(cache)
  assert counts == [0, 1, 0, 0] and first == plain  # exported, run through the export, stored
  stored = [f for f in os.listdir(os.path.join(cache, programs.FOLDER))
            if f.endswith(programs.SUFFIX)]
  assert len(stored) == 1
  counts, again, _ = _run(cache)
  assert counts == [1, 0, 0, 0] and again == plain  # loaded: nothing traced, same bits

  # A damaged file (one byte in the middle: it might still deserialise) is caught by its
  # checksum, reported by name, exported again (same results), and readable after.
  path = os.path.join(cache, programs.FOLDER, stored[0])
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x10]))
  counts, repaired, stderr = _run(cache)
  assert counts == [0, 1, 1, 0] and repaired == plain
  assert f"stored training program {path} is unreadable (ValueError: its checksum" in stderr
  counts, after, _ = _run(cache)
  assert counts == [1, 0, 0, 0] and after == plain


def test_vmapped_lanes_are_stored_and_loaded_too(tmp_path):
  """Lanes of 2 units per device (an accelerator's layout): another program, the same rule."""
  cache = str(tmp_path / "xla")
  counts, plain, _ = _run("none", lanes=2)
  assert counts == [0, 0, 0, 0]
  assert _run(cache, lanes=2)[:2] == ([0, 1, 0, 0], plain)
  assert _run(cache, lanes=2)[:2] == ([1, 0, 0, 0], plain)


def _args(units=2, w=30, d=4):
  return (np.zeros(units, np.uint32), np.zeros((units, w, d), np.float32),
          train.PairData(*[np.zeros((units, 8), np.int32)] * 3))


def test_the_key_covers_what_shapes_the_program():
  devices = tuple(jax.local_devices()[:1])
  base = programs.key("a", devices, _args(), {"o": True})
  assert base == programs.key("a", devices, _args(), {"o": True})
  assert len({base, programs.key("b", devices, _args(), {"o": True}),
              programs.key("a", devices, _args(w=31), {"o": True}),
              programs.key("a", devices, _args(), {"o": False}),
              programs.key("a", devices, _args(), None)}) == 5
  # Dtypes and the arguments' structure count too.
  seeds, z, pairs = _args()
  assert programs.key("a", devices, (seeds.astype(np.int32), z, pairs), {"o": True}) != base
  assert programs.key("a", devices, (seeds, z, tuple(pairs)), {"o": True}) != base
  # The devices, and JAX's configuration (here a context override).
  other = types.SimpleNamespace(platform=devices[0].platform, device_kind=devices[0].device_kind,
                                id=devices[0].id + 1)
  assert programs.key("a", (other,), _args(), {"o": True}) != base
  assert programs.key("a", devices + (other,), _args(), {"o": True}) != base
  with jax.default_matmul_precision("float32"):
    assert programs.key("a", devices, _args(), {"o": True}) != base


def test_the_sources_digest_follows_every_source_file(tmp_path, monkeypatch):
  copy = tmp_path / "lasca_jax"
  shutil.copytree(os.path.join(ROOT, "lasca_jax"), copy,
                  ignore=shutil.ignore_patterns("__pycache__"))
  monkeypatch.setattr(programs, "_package_root", lambda: str(copy))
  before = programs._sources_digest()   # pylint: disable=protected-access
  assert before == programs._sources_digest()   # pylint: disable=protected-access
  with open(copy / "model" / "train.py", "a", encoding="utf-8") as f:
    f.write("\n# an edit\n")
  assert programs._sources_digest() != before   # pylint: disable=protected-access
  monkeypatch.setattr(programs, "_package_root", lambda: str(tmp_path / "nothing"))
  assert programs._sources_digest() is None   # pylint: disable=protected-access


def test_sources_edited_after_import_turn_the_store_off(tmp_path, monkeypatch, caplog):
  """A program traced from the code as imported is never stored under the edited code's key."""
  monkeypatch.setattr(programs, "directory", lambda: str(tmp_path / "store"))
  monkeypatch.setattr(programs, "_LOADED", {})
  monkeypatch.setattr(programs, "_IMPORTED_SOURCES", "the sources as they were at import")
  out = programs.call(jax.jit(lambda a: a + 1.0), (np.zeros(3, np.float32),), "edited",
                      tuple(jax.local_devices()[:1]))
  np.testing.assert_array_equal(out, [1.0, 1.0, 1.0])
  assert "sources changed after this process imported them" in caplog.text
  assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("units", [1, 3])
def test_in_process_calls_agree_with_the_jitted_program(tmp_path, monkeypatch, units):
  """Through the store (one device, this process) the results are the jitted program's."""
  monkeypatch.setattr(programs, "directory", lambda: str(tmp_path / "store"))
  monkeypatch.setattr(programs, "_LOADED", {})
  settings = train_settings(max_epochs=4, batch_size=16)
  rng = np.random.default_rng(units)
  w, d, p = 30, 5, 100
  z = rng.normal(size=(units, w, d)).astype(np.float32)
  pairs = train.PairData(*[np.broadcast_to(rng.integers(0, 2 if k == 2 else w, p)
                                           .astype(np.int32), (units, p)) for k in range(3)])
  idx = np.arange(p, dtype=np.int32)
  fold = train.FoldData(np.tile(idx[:64], (units, 1)), np.full(units, 64, np.int32),
                        np.tile(idx[64:80], (units, 1)), np.ones((units, 16), bool),
                        np.tile(idx[80:], (units, 1)), np.ones((units, 20), bool))
  layout = placement.Layout(1, 1)
  stored = train.train_units(settings, [1] * units, np.arange(units), z, pairs, fold, layout)
  assert os.listdir(tmp_path / "store")
  monkeypatch.setattr(programs, "directory", lambda: None)
  plain = train.train_units(settings, [1] * units, np.arange(units), z, pairs, fold, layout)
  digest = lambda out: hashlib.sha256(b"".join(np.asarray(a).tobytes()
                                               for a in jax.tree.leaves(out))).hexdigest()
  assert digest(stored) == digest(plain)


def test_since_names_what_the_calls_did(monkeypatch):
  monkeypatch.setattr(programs, "counts", {"loaded": 2, "exported": 1, "reexported": 0,
                                           "unstored": 0})
  monkeypatch.setattr(programs, "directory", lambda: "/store")
  before = dict(programs.counts)
  assert programs.since(before) == "in memory"
  programs.counts["unstored"] += 1
  assert programs.since(before) == "not stored"
  programs.counts["loaded"] += 1
  assert programs.since(before) == "loaded"
  programs.counts["exported"] += 1
  assert programs.since(before) == "exported"
  monkeypatch.setattr(programs, "directory", lambda: None)
  assert programs.since(dict(programs.counts)) == "off"


def test_a_program_that_cannot_be_exported_stored_or_run_still_runs(tmp_path, monkeypatch,
                                                                   caplog):
  monkeypatch.setattr(programs, "directory", lambda: str(tmp_path / "store"))
  monkeypatch.setattr(programs, "_LOADED", {})
  monkeypatch.setattr(programs, "counts", dict.fromkeys(programs.counts, 0))
  program = jax.jit(lambda a: a * 2.0)
  args = (np.arange(4, dtype=np.float32),)
  devices = tuple(jax.local_devices()[:1])

  # Stored once, then the stored file fails to run: reported, deleted, the program runs.
  np.testing.assert_array_equal(programs.call(program, args, "double", devices), [0, 2, 4, 6])
  (path,) = list((tmp_path / "store").iterdir())
  monkeypatch.setattr(programs, "_LOADED", {})

  def broken(*_):
    def run(*_):
      raise RuntimeError("bad program")
    return run
  with monkeypatch.context() as m:
    m.setattr(programs, "_wrap", broken)
    np.testing.assert_array_equal(programs.call(program, args, "double", devices), [0, 2, 4, 6])
  assert f"the stored training program {path} failed to run (RuntimeError" in caplog.text
  assert not path.exists()

  def no_disk(*_):
    raise OSError("No space left on device")
  monkeypatch.setattr(programs.files_lib, "write_bytes_atomic", no_disk)
  np.testing.assert_array_equal(programs.call(program, args, "twice", devices), [0, 2, 4, 6])
  assert "cannot store the training program" in caplog.text
  assert not list((tmp_path / "store").iterdir())

  def refuse(*_, **__):
    raise ValueError("not exportable")
  monkeypatch.setattr(programs.export, "export", refuse)
  np.testing.assert_array_equal(programs.call(program, args, "triple", devices), [0, 2, 4, 6])
  assert "cannot be exported (ValueError: not exportable)" in caplog.text
  assert programs.counts == {"loaded": 0, "exported": 1, "reexported": 0, "unstored": 3}
