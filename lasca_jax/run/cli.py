"""How every experiment script starts and ends: ``cli.run(main)`` instead of ``app.run(main)``.

* Flags are parsed by :func:`lasca_jax.run.validate.parse_flags` (a bad flag or config override is
  one line);
* an ``OSError`` that reaches the top (a read-only or full work folder or cache) is one line naming
  the path, the cause and the fix, exit status 1;
* Ctrl-C is one line saying what is kept and how to resume, exit status 130 (no traceback);
* start-up noise is quietened: JAX's note that it found no TPU, and the weight-loading progress
  bars of the sentence-transformer libraries.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import Callable, Sequence

INTERRUPTED = 130   # The shell's status for a command ended by SIGINT.

_FIXES = {
    errno.ENOSPC: "no space left on its device: free space there, or point --workdir / "
                  "--config.cache_dir (or $LASCA_JAX_CACHE) at another disk",
    errno.EDQUOT: "disk quota exceeded: free space there, or point --workdir / "
                  "--config.cache_dir (or $LASCA_JAX_CACHE) at another disk",
    errno.EROFS: "the file system is read-only: point --workdir / --config.cache_dir "
                 "(or $LASCA_JAX_CACHE) at a writable folder",
    errno.EACCES: "permission denied: make it writable, or point --workdir / --config.cache_dir "
                  "(or $LASCA_JAX_CACHE) at a writable folder",
    errno.EPERM: "operation not permitted: make it writable, or point --workdir / "
                 "--config.cache_dir (or $LASCA_JAX_CACHE) at a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another --workdir / "
                   "--config.cache_dir",
    errno.EEXIST: "a file is there where a folder is needed: choose another --workdir / "
                  "--output / --config.cache_dir, or move the file",
}


def os_error_line(error: OSError) -> str:
  """One line for an ``OSError``: the path, the cause and what to do."""
  path = error.filename or ""
  if error.filename2:
    path = f"{path} -> {error.filename2}"
  fix = _FIXES.get(error.errno)
  cause = error.strerror or str(error)
  if fix:
    return f"{path or 'a file'}: {fix}"
  return f"{path}: {cause}" if path else cause


def quiet_start_up() -> None:
  """Silences the start-up lines a user cannot act on (a missing TPU, weight-loading bars)."""
  logging.getLogger("jax._src.xla_bridge").addFilter(
      lambda record: "Unable to initialize backend" not in record.getMessage())
  os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
  os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def guarded(main: Callable[[Sequence[str]], None],
            resume: str = "the same command resumes from what was kept"
            ) -> Callable[[Sequence[str]], None]:
  """``main`` with an ``OSError`` or Ctrl-C turned into one line on stderr (see the module)."""
  def wrapped(argv):
    try:
      return main(argv)
    except KeyboardInterrupt:
      sys.stderr.write(f"\ninterrupted: every finished stage and file is kept; {resume}\n")
      sys.exit(INTERRUPTED)
    except OSError as e:
      sys.stderr.write(f"error: {os_error_line(e)}\n")
      sys.exit(1)
  return wrapped


def run(main: Callable[[Sequence[str]], None], **kwargs) -> None:
  """``absl.app.run`` of :func:`guarded` ``main`` with the project's flag parser."""
  from absl import app  # pylint: disable=import-outside-toplevel
  from lasca_jax.run import validate  # pylint: disable=import-outside-toplevel
  quiet_start_up()
  app.run(guarded(main, **kwargs), flags_parser=validate.parse_flags)
