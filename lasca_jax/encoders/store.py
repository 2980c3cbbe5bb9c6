"""The prompt -> embedding store: an append-only SQLite database in WAL mode.

One file, ``<cache_dir>/embeddings/store.sqlite``, holds the embeddings of every backbone, keyed by
``(backbone key, prompt hash)`` (the key of :func:`lasca_jax.encoders.text.variant_key`: the backbone's
identity and precision; the hash the first 16 bytes of the prompt's SHA-256). Rows are only ever
inserted (``INSERT OR IGNORE``), never rewritten, and every batch of new embeddings is one
committed transaction, so a killed run loses at most the batch it was encoding. WAL mode lets
several processes on one host read and append at the same time (writers queue on SQLite's lock,
waiting up to ``timeout_s``): two runs with different configs on one cache keep everything.

Tables::

  embeddings(backbone, hash, prompt, tokens, vector)   -- tokens: untruncated length, -1 unknown
  backbones(key, name, dim, max_tokens, precision)     -- one row per backbone key
  imports(path, size, mtime, rows)                     -- legacy .npz stores already read

A damaged file (not a database, or failing SQLite's ``quick_check``) is moved aside to
``store.sqlite.damaged-<time>``, named in a warning, its readable rows are copied into a fresh
store, and the run goes on encoding what is missing. A store of a newer format (``user_version``
above :data:`SCHEMA_VERSION`) is refused with an error naming the file. WAL needs all processes on
one host: over a network filesystem shared by several hosts, give each host its own store and
merge them (:meth:`PromptStore.merge_from`, ``experiments/encode.py --merge``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from typing import Iterable, Sequence

import numpy as np

SCHEMA_VERSION = 1
FILE_NAME = "store.sqlite"
_IN_CHUNK = 500   # hashes per SELECT ... IN (...) query
_CHECKED: set[tuple] = set()   # stores this process has already checked (quick_check is O(size))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
  backbone TEXT NOT NULL, hash BLOB NOT NULL, prompt TEXT NOT NULL, tokens INTEGER NOT NULL,
  vector BLOB NOT NULL, PRIMARY KEY (backbone, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backbones (
  key TEXT PRIMARY KEY, name TEXT NOT NULL, dim INTEGER NOT NULL, max_tokens INTEGER NOT NULL,
  precision TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS imports (
  path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL, rows INTEGER NOT NULL);
"""


class StoreError(RuntimeError):
  """A store that cannot be used as it is (newer format, another backbone's dimension)."""


def prompt_hash(text: str) -> bytes:
  return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def _connect(path: str, timeout_s: float, wal: bool) -> sqlite3.Connection:
  # Not tied to its creating thread: live tracking warms the store up on one thread and decides
  # on another (one at a time; SQLite itself serialises access).
  conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
  conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
  if wal:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a committed batch survives a killed process
  return conn


def _identity(path: str) -> tuple:
  st = os.stat(path)
  return (path, st.st_ino, st.st_size, st.st_mtime_ns)


def _check(conn: sqlite3.Connection, path: str) -> None:
  """Raises ``sqlite3.DatabaseError`` for a damaged file, :class:`StoreError` for a newer one.

  The full ``quick_check`` runs once per process and file (a sweep opens the store per run).
  """
  version = conn.execute("PRAGMA user_version").fetchone()[0]
  if version > SCHEMA_VERSION:
    raise StoreError(f"embedding store {path} has format {version}, newer than this lasca_jax "
                     f"({SCHEMA_VERSION}); upgrade lasca_jax or point config.cache_dir elsewhere")
  if _identity(path) not in _CHECKED:
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
      raise sqlite3.DatabaseError(f"quick_check: {result}")
  conn.execute("BEGIN IMMEDIATE")
  try:
    for statement in _SCHEMA.split(";"):
      if statement.strip():
        conn.execute(statement)
    if version < SCHEMA_VERSION:
      conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")
  except BaseException:
    conn.execute("ROLLBACK")
    raise
  _CHECKED.add(_identity(path))


class PromptStore:
  """Append-only ``(backbone key, prompt) -> (embedding, token count)`` table in one SQLite file."""

  def __init__(self, path: str, timeout_s: float = 600.0, wal: bool = True):
    self.path = os.path.abspath(path)
    self.timeout_s, self.wal = timeout_s, wal
    self.damaged_copy: str | None = None     # where a damaged file was moved, if one was
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    self.conn = self._open()

  def _open(self) -> sqlite3.Connection:
    conn = None
    try:
      conn = _connect(self.path, self.timeout_s, self.wal)
      _check(conn, self.path)
      return conn
    except StoreError:
      if conn is not None:
        conn.close()
      raise
    except sqlite3.DatabaseError as e:
      if conn is not None:
        conn.close()
      if "locked" in str(e) or "busy" in str(e):
        raise
      moved = self._quarantine()
      conn = _connect(self.path, self.timeout_s, self.wal)
      _check(conn, self.path)
      self.conn = conn
      salvaged = self._salvage(moved)
      logging.warning("embedding store %s is damaged (%s): moved to %s, %d readable rows kept; "
                      "prompts it lacks are encoded again", self.path, e, moved, salvaged)
      return conn

  def _quarantine(self) -> str:
    moved = f"{self.path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for suffix in ("", "-wal", "-shm"):
      try:
        os.replace(self.path + suffix, moved + suffix)
      except FileNotFoundError:
        pass
    self.damaged_copy = moved
    return moved

  def _salvage(self, path: str) -> int:
    """Copies the rows still readable from a damaged store; returns how many."""
    rows, batch = 0, []
    try:
      src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
      try:
        for row in src.execute("SELECT backbone, hash, prompt, tokens, vector FROM embeddings"):
          batch.append(row)
          if len(batch) >= 1000:
            rows += self._insert_rows(batch)
            batch = []
        for row in src.execute("SELECT key, name, dim, max_tokens, precision FROM backbones"):
          self.conn.execute("INSERT OR IGNORE INTO backbones VALUES (?, ?, ?, ?, ?)", row)
      finally:
        src.close()
    except sqlite3.DatabaseError:
      pass
    return rows + (self._insert_rows(batch) if batch else 0)

  def _insert_rows(self, rows: Sequence[tuple]) -> int:
    self.conn.execute("BEGIN IMMEDIATE")
    try:
      before = self.conn.total_changes
      self.conn.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)
      added = self.conn.total_changes - before
      self.conn.execute("COMMIT")
    except BaseException:
      self.conn.execute("ROLLBACK")
      raise
    return added

  def close(self) -> None:
    self.conn.close()

  # Backbones.
  def backbone(self, key: str) -> dict | None:
    row = self.conn.execute("SELECT name, dim, max_tokens, precision FROM backbones WHERE key=?",
                            (key,)).fetchone()
    return None if row is None else dict(zip(("name", "dim", "max_tokens", "precision"), row))

  def register(self, key: str, name: str, dim: int, max_tokens: int, precision: str) -> None:
    """Records a backbone key's dimension; a key already recorded with another one is an error."""
    self.conn.execute("INSERT OR IGNORE INTO backbones VALUES (?, ?, ?, ?, ?)",
                      (key, name, int(dim), int(max_tokens), precision))
    known = self.backbone(key)
    if known["dim"] != int(dim):
      raise StoreError(
          f"embedding store {self.path} holds {known['dim']}-d embeddings of {known['name']!r} "
          f"under key {key}, but the loaded encoder gives {dim}-d ones (weights changed in "
          "place?); use another config.cache_dir or move that store away")

  # Rows.
  def add(self, key: str, texts: Sequence[str], vectors: np.ndarray,
          tokens: Sequence[int]) -> int:
    """Inserts one batch in one transaction; returns the number of new rows."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    return self._insert_rows([(key, prompt_hash(t), t, int(n), v.tobytes())
                              for t, v, n in zip(texts, vectors, tokens)])

  def lookup(self, key: str, texts: Iterable[str]) -> dict[str, tuple[np.ndarray, int]]:
    """``{text: (float32 [D], tokens)}`` for the ``texts`` the store holds under ``key``."""
    by_hash = {prompt_hash(t): t for t in texts}
    hashes = list(by_hash)
    out = {}
    for start in range(0, len(hashes), _IN_CHUNK):
      chunk = hashes[start:start + _IN_CHUNK]
      marks = ",".join("?" * len(chunk))
      for h, tokens, vector in self.conn.execute(
          f"SELECT hash, tokens, vector FROM embeddings WHERE backbone=? AND hash IN ({marks})",
          [key, *chunk]):
        out[by_hash[h]] = (np.frombuffer(vector, np.float32), int(tokens))
    return out

  def all_rows(self, key: str, with_tokens: bool = False) -> tuple:
    """Every ``(prompts, float32 [n, D])`` stored under ``key`` (and ``int [n]`` token counts
    with ``with_tokens``)."""
    texts, vectors, tokens = [], [], []
    for prompt, vector, count in self.conn.execute(
        "SELECT prompt, vector, tokens FROM embeddings WHERE backbone=?", (key,)):
      texts.append(prompt)
      vectors.append(np.frombuffer(vector, np.float32))
      tokens.append(int(count))
    table = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
    if with_tokens:
      return texts, table, np.array(tokens, np.int64)
    return texts, table

  def count(self, key: str | None = None) -> int:
    if key is None:
      return self.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    return self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE backbone=?",
                             (key,)).fetchone()[0]

  # Other stores.
  def merge_from(self, path: str) -> int:
    """Copies every row of the store at ``path`` that this one lacks; returns how many.

    Raises:
      StoreError: ``path`` is not a lasca_jax embedding store (or is of a newer format).
    """
    try:
      src = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True)
      version = src.execute("PRAGMA user_version").fetchone()[0]
      tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
      raise StoreError(f"{path} is not an embedding store ({e}); give the shard stores that "
                       "experiments/encode.py wrote") from e
    if version > SCHEMA_VERSION or not {"embeddings", "backbones"} <= tables:
      src.close()
      raise StoreError(f"{path} is not an embedding store of format <= {SCHEMA_VERSION} "
                       f"(format {version}, tables {sorted(tables)})")
    try:
      for row in src.execute("SELECT key, name, dim, max_tokens, precision FROM backbones"):
        known = self.backbone(row[0])
        if known is not None and known["dim"] != row[2]:
          raise StoreError(f"{path} holds {row[2]}-d embeddings under backbone key {row[0]}, "
                           f"{self.path} {known['dim']}-d ones: not the same backbone")
        self.conn.execute("INSERT OR IGNORE INTO backbones VALUES (?, ?, ?, ?, ?)", row)
      added, batch = 0, []
      for row in src.execute("SELECT backbone, hash, prompt, tokens, vector FROM embeddings"):
        batch.append(row)
        if len(batch) >= 2000:
          added += self._insert_rows(batch)
          batch = []
      return added + (self._insert_rows(batch) if batch else 0)
    finally:
      src.close()

  def import_npz(self, path: str, key: str, token_counts) -> int:
    """Reads a legacy ``<key>.npz`` store (``texts``, ``embeddings``) once; returns new rows.

    ``token_counts(texts)`` gives the untruncated token counts. An unreadable file is named in a
    warning and skipped (it is left in place); a file already imported with the same size and
    modification time is not read again.
    """
    st = os.stat(path)
    row = self.conn.execute("SELECT size, mtime FROM imports WHERE path=?",
                            (os.path.abspath(path),)).fetchone()
    if row is not None and row[0] == st.st_size and row[1] == st.st_mtime:
      return 0
    try:
      with np.load(path, allow_pickle=False) as data:
        texts = data["texts"].tolist()
        table = np.asarray(data["embeddings"], np.float32)
      if table.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} texts but {table.shape[0]} embeddings")
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("legacy embedding store %s is unreadable (%s: %s); ignored (left in place), "
                      "its prompts are encoded again", path, type(e).__name__, e)
      return 0
    added = self.add(key, texts, table, token_counts(texts)) if texts else 0
    self.conn.execute("INSERT OR REPLACE INTO imports VALUES (?, ?, ?, ?)",
                      (os.path.abspath(path), st.st_size, st.st_mtime, len(texts)))
    logging.info("imported %d embeddings (%d new) from legacy store %s", len(texts), added, path)
    return added
