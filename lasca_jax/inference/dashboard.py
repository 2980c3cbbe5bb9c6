"""The live dashboard: a local web page that follows a :class:`~lasca_jax.inference.live.LiveTracker`.

An aiohttp server on its own thread and event loop serves the page and its two assets from the
package (``dashboard_static/``: no network, no third-party script; the chart is a small canvas
drawing of its own), the decisions as server-sent events (``/events``: the history first, then
each decision as it is made), the state so far as JSON (``/state``) and the current frame as a
JPEG (``/frame.jpg``, re-encoded at most every ``frame_interval`` seconds, only while a page
is open). The socket is bound when the :class:`Dashboard` is made, so a busy port is an error
before anything starts. It binds to localhost unless another host is named.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import socket
import threading
import time
from typing import Any, Optional

import numpy as np

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard_static")
ASSETS = {"": ("index.html", "text/html"), "app.js": ("app.js", "text/javascript"),
          "style.css": ("style.css", "text/css")}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class DashboardError(ValueError):
  """A ``--serve`` address that cannot be used (one line)."""


def parse_address(address: str) -> tuple[str, int]:
  """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` -> ``(host, port)``; the host defaults to
  127.0.0.1 (this machine only).

  Raises:
    DashboardError: no valid port.
  """
  text = str(address).strip()
  host, sep, port = text.rpartition(":")
  if not sep:
    host, port = "", text
  host = host.strip("[]") or "127.0.0.1"
  try:
    number = int(port)
  except ValueError:
    number = -1
  if number == -1:
    raise DashboardError(f"--serve={address}: give HOST:PORT or PORT (e.g. 127.0.0.1:8765)")
  if not 1 <= number <= 65535:
    raise DashboardError(f"--serve={address}: the port must be 1-65535")
  return host, number


class Dashboard:
  """The page and its event stream (module docstring).

  Args:
    address: ``--serve``'s ``HOST:PORT``.
    info: what the page shows in its header (model label, target, source, substitutes).
    frame_interval: seconds between two JPEG encodings of the current frame.

  Raises:
    DashboardError: the port is busy or the host is not an address of this machine.
  """

  def __init__(self, address: str, info: dict, frame_interval: float = 0.5):
    self.host, port = parse_address(address)
    family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
    self._sock = socket.socket(family, socket.SOCK_STREAM)
    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      self._sock.bind((self.host, port))
    except OSError as e:
      self._sock.close()
      why = ("is in use by another program: pick another port, or stop that program"
             if e.errno == errno.EADDRINUSE else f"cannot be bound ({e.strerror or e})")
      raise DashboardError(f"--serve={address}: {self.host}:{port} {why}") from None
    self._sock.listen(64)
    self._sock.setblocking(False)
    self.port = self._sock.getsockname()[1]
    self.info = dict(info)
    self.history: list[tuple[str, Any]] = [("info", self.info)]
    self.frame_interval = frame_interval
    self._clients: set = set()
    self._jpeg: Optional[bytes] = None
    self._jpeg_count = 0
    self._last_frame = 0.0
    self._loop: Optional[asyncio.AbstractEventLoop] = None
    self._thread: Optional[threading.Thread] = None
    self._ready = threading.Event()
    self._runner = None

  @property
  def url(self) -> str:
    host = f"[{self.host}]" if ":" in self.host else self.host
    return f"http://{host}:{self.port}/"

  @property
  def local_only(self) -> bool:
    return self.host in LOCAL_HOSTS

  @property
  def viewers(self) -> int:
    return len(self._clients)

  # ------------------------------------------------------------------ server thread

  def start(self) -> "Dashboard":
    self._thread = threading.Thread(target=self._serve, daemon=True, name="lasca-dashboard")
    self._thread.start()
    self._ready.wait(10)
    return self

  def _serve(self) -> None:
    from aiohttp import web  # pylint: disable=import-outside-toplevel
    loop = asyncio.new_event_loop()
    self._loop = loop
    asyncio.set_event_loop(loop)
    app = web.Application()
    app.router.add_get("/", self._asset)
    app.router.add_get("/static/{name}", self._asset)
    app.router.add_get("/events", self._events)
    app.router.add_get("/state", self._state)
    app.router.add_get("/frame.jpg", self._frame)
    self._runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(self._runner.setup())
    loop.run_until_complete(web.SockSite(self._runner, self._sock).start())
    self._ready.set()
    try:
      loop.run_forever()
    finally:
      loop.run_until_complete(self._runner.cleanup())
      loop.close()

  async def _asset(self, request):
    from aiohttp import web  # pylint: disable=import-outside-toplevel
    name = request.match_info.get("name", "")
    if name not in ASSETS:
      raise web.HTTPNotFound()
    file, kind = ASSETS[name]
    with open(os.path.join(STATIC, file), "rb") as f:
      return web.Response(body=f.read(), content_type=kind, charset="utf-8",
                          headers={"Cache-Control": "no-store"})

  async def _state(self, request):
    from aiohttp import web  # pylint: disable=import-outside-toplevel
    del request
    return web.json_response({"events": [[k, v] for k, v in self.history]},
                             dumps=_dumps)

  async def _frame(self, request):
    from aiohttp import web  # pylint: disable=import-outside-toplevel
    del request
    if self._jpeg is None:
      return web.Response(status=204)
    return web.Response(body=self._jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store",
                                 "X-Frame-Count": str(self._jpeg_count)})

  async def _events(self, request):
    from aiohttp import web  # pylint: disable=import-outside-toplevel
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    inbox: asyncio.Queue = asyncio.Queue()
    backlog = list(self.history)      # this loop owns history: no event is missed or doubled
    self._clients.add(inbox)
    try:
      for kind, payload in backlog:
        await response.write(_event(kind, payload))
      while True:
        try:
          kind, payload = await asyncio.wait_for(inbox.get(), 15)
        except asyncio.TimeoutError:
          await response.write(b": keep-alive\n\n")
          continue
        if kind == "closed":          # the server stops: end the stream cleanly
          break
        await response.write(_event(kind, payload))
    except (ConnectionResetError, asyncio.CancelledError):
      pass
    finally:
      self._clients.discard(inbox)
    return response

  def _fanout(self, kind: str, payload: Any) -> None:
    self.history.append((kind, payload))
    for inbox in list(self._clients):
      inbox.put_nowait((kind, payload))

  # ------------------------------------------------------------------ tracker side

  def publish(self, kind: str, payload: Any) -> None:
    """Sends an event (``"decision"``, ``"status"``, ``"end"``) to every open page; thread-safe."""
    if self._loop is not None and self._loop.is_running():
      self._loop.call_soon_threadsafe(self._fanout, kind, payload)
    else:
      self.history.append((kind, payload))

  def set_frame(self, rgb: Optional[np.ndarray]) -> None:
    """Offers the current frame; encoded (at most every ``frame_interval`` s, 480 px wide) only
    while a page is open."""
    now = time.monotonic()
    if rgb is None or not self._clients or now - self._last_frame < self.frame_interval:
      return
    from PIL import Image  # pylint: disable=import-outside-toplevel
    self._last_frame = now
    image = Image.fromarray(np.asarray(rgb))
    if image.width > 480:
      image = image.resize((480, max(1, round(image.height * 480 / image.width))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    self._jpeg, self._jpeg_count = buffer.getvalue(), self._jpeg_count + 1

  def close(self, timeout: float = 5.0) -> None:
    """Stops the server (pages keep what they show)."""
    loop = self._loop
    if loop is not None and loop.is_running():
      async def _stop():
        for inbox in list(self._clients):
          inbox.put_nowait(("closed", {}))
        await asyncio.sleep(0.2)       # the event streams return their responses
        loop.stop()
      asyncio.run_coroutine_threadsafe(_stop(), loop)
    if self._thread is not None:
      self._thread.join(timeout)
    else:
      self._sock.close()


def _dumps(obj: Any) -> str:
  return json.dumps(obj, default=_plain, allow_nan=False)


def _plain(value: Any) -> Any:
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"not JSON: {type(value).__name__}")


def _event(kind: str, payload: Any) -> bytes:
  return f"event: {kind}\ndata: {_dumps(payload)}\n\n".encode()
