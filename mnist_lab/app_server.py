"""The Voilà server behind ``mnist-lab app``, made fit for students: every page's kernel goes away once the page
is gone, and nothing but the app's own Japanese lines reaches the terminal.

Kernels: each page load takes the pool's waiting kernel (an ipykernel process of a few hundred MB) and the pool
starts the next one. A page that closes or reloads asks Voilà to shut its kernel down (a POST that must carry the
``_xsrf`` cookie, which :class:`AppPage` sets); a page that never asks (``curl``, a link preview, a crashed browser, a
phone that never sends it) leaves its kernel, so :class:`AppKernels` shuts down a kernel that no page has been
connected to for :data:`IDLE_SECONDS` (:data:`NEVER_CONNECTED_SECONDS` when no page ever connected to it), and
past :data:`MAX_KERNELS` kernels a new page's kernel replaces one that no page ever connected to: a client that
reloads without ever connecting cannot fill the memory. A page left open stays connected and keeps its kernel.
:data:`MAX_KERNELS` is a hard cap, those being started included: when every kernel is in use (or too young to be
replaced, as in a burst of page loads), a new page gets a short Japanese page saying the app is full (status 503)
and the pool's next kernel waits for room.

Logs: the libraries' English lines (access lines, tracebacks of odd requests, the kernels' own output) go nowhere
unless ``MNIST_LAB_DEBUG`` is set (:func:`~mnist_lab.errors.debugging`); then they all print, as the libraries print them.
"""

import asyncio
import contextlib
import html
import logging
import shutil
import time
from pathlib import Path

from jupyter_core.utils import run_sync
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.escape import url_escape
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler
from voila.voila_identity_provider import VoilaLoginHandler

from .errors import debugging

IDLE_SECONDS = 120  # a kernel no page has been connected to for this long is shut down (a phone's tab may sleep)
NEVER_CONNECTED_SECONDS = 45  # ... and one whose page never connected at all (curl, a link preview): sooner
MAX_KERNELS = 6  # kernels (a few hundred MB each) past which a new page's kernel replaces one no page ever used
EVICT_AFTER = 10  # seconds a never-connected kernel is left alone before it may be replaced (its page may be loading)
CULL_EVERY = 15  # seconds between looks for such kernels
FILL_DELAY = 1  # seconds before the pool starts a new kernel for the next page (Voilà's default)
ROOM_WAIT = 1  # seconds between looks for room, for the pool's next kernel while MAX_KERNELS are alive


class KernelsFull(Exception):
    """No room for one more kernel: :data:`MAX_KERNELS` are alive or starting, and none may be replaced now."""


class AppKernels(AsyncMappingKernelManager):
    """The kernel manager under Voilà's pool. Voilà never culls a kernel waiting in its pool, so every kernel that
    reaches :meth:`cull_kernel_if_idle` was handed to a page; it goes once no page has been connected to it for
    ``cull_idle_timeout`` seconds, counted from when that was first seen (a kernel that has just left the pool has
    no connection yet: its page is still loading). Kernels write into a file next to their connection files, not
    the terminal, unless debugging."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._alone_since = {}  # kernel id -> time.monotonic() when it was first seen with no page connected
        self._connected_once = set()  # kernel ids a page has connected to at least once
        self._starting = 0  # kernels being started: counted against MAX_KERNELS before they are listed
        self._closing = False  # the app is stopping: a kernel waiting for room gives up
        # Where the kernels write (stdout and stderr): a file in Voilà's folder for their connection files, which
        # it removes when it stops; closed by shutdown_all.
        self._output = None if debugging() else open(Path(self.connection_dir) / "kernels.log", "ab")  # noqa: SIM115

    async def start_kernel(self, *args, **kwargs):
        await self._reserve(waiting=(kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True")
        try:
            if self._output is not None:  # a kernel's own output would be the terminal's: English notes, tracebacks
                kwargs.setdefault("stdout", self._output)
                kwargs.setdefault("stderr", self._output)
            return await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1

    def _alive(self):
        """The kernels alive or starting (one that has just been listed may count twice for an instant: never less)."""
        return len(self._kernels) + self._starting

    def full(self):
        """Whether a new page would be refused now: no kernel waiting for it in Voilà's pool, no room for its own,
        and no kernel that may be replaced."""
        pools = getattr(self, "_pools", {}).values()  # Voilà's pool (its manager is a subclass of this one)
        ready = any(task.done() and not task.cancelled() and task.exception() is None for pool in pools for task in pool)
        return not ready and self._alive() >= MAX_KERNELS and not self._unused(time.monotonic())

    async def _reserve(self, waiting):
        """Take a place for one more kernel, making room first (:meth:`_make_room`). Without room, the pool's next
        kernel (``waiting``) looks again every :data:`ROOM_WAIT` seconds; a page's own kernel is refused at once
        (:class:`KernelsFull`), as is any while the app stops."""
        while True:
            await self._make_room()
            if self._alive() < MAX_KERNELS:
                self._starting += 1  # no await since the count: no other start can slip in between
                return
            if not waiting or self._closing:
                raise KernelsFull
            await asyncio.sleep(ROOM_WAIT)

    def _unused(self, now):
        """The kernels no page ever connected to, alone for :data:`EVICT_AFTER` seconds or more, oldest first."""
        return sorted((since, kernel_id) for kernel_id, since in self._alone_since.items()
                      if kernel_id not in self._connected_once and now - since >= EVICT_AFTER)

    async def _make_room(self):
        """With :data:`MAX_KERNELS` kernels or more, shut down the kernels whose pages never connected (oldest
        first, each left alone for :data:`EVICT_AFTER` seconds at least), so that reloads by a client that never
        connects (or sends the page's shutdown) cannot fill the machine's memory."""
        for _, kernel_id in self._unused(time.monotonic())[: max(0, self._alive() - MAX_KERNELS + 1)]:
            with contextlib.suppress(Exception):
                await self.shutdown_kernel(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id):
        if self._kernel_connections.get(kernel_id, 0):
            self._alone_since.pop(kernel_id, None)
            self._connected_once.add(kernel_id)
            return
        since = self._alone_since.setdefault(kernel_id, time.monotonic())
        if kernel_id not in self._connected_once and time.monotonic() - since >= NEVER_CONNECTED_SECONDS:
            await self.shutdown_kernel(kernel_id)  # its page never connected: no one can be using it
        elif time.monotonic() - since >= self.cull_idle_timeout:
            await super().cull_kernel_if_idle(kernel_id)  # also idle by its own activity, and not busy

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        self._alone_since.pop(kernel_id, None)
        self._connected_once.discard(kernel_id)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)

    async def shutdown_all(self, *args, **kwargs):
        """As the base class, once the kernels still starting have started (the app stopped during its start-up):
        Jupyter Server refuses to shut down a kernel it does not list yet. One that failed to start is forgotten."""
        self._closing = True
        while starting := [(kernel_id, task) for kernel_id, task in self._pending_kernels.items()
                           if kernel_id not in self._kernels]:
            for kernel_id, task in starting:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
                if kernel_id not in self._kernels:
                    self._pending_kernels.pop(kernel_id, None)
        try:
            return await super().shutdown_all(*args, **kwargs)
        finally:
            if self._output is not None:
                self._output.close()


class AppPage(TornadoVoilaHandler):
    """The page. It sets the ``_xsrf`` cookie, which the page's script sends back when the page closes or reloads
    (Voilà's shutdown request): without it the server refuses the request and the page's kernel stays."""

    async def get(self, path=None):
        self.xsrf_token  # noqa: B018 -- reading it sets the cookie
        manager = self.kernel_manager
        try:
            if isinstance(manager, AppKernels) and manager.full():
                raise KernelsFull
            return await super().get(path)
        except KernelsFull:  # raised before the page's first byte: its kernel was never started
            self.set_status(503)
            self.set_header("Retry-After", str(EVICT_AFTER))
            self.finish(FULL_PAGE.format(limit=MAX_KERNELS))


FULL_PAGE = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>手書き数字アプリ（満員）</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; line-height: 1.6">
<p>いまこのアプリは開いているページでいっぱいです（同時に {limit} ページまで）。使っていないタブを閉じて、
しばらくしてからこのページを開き直してください。</p>
</body></html>
"""


LOGIN_PAGE = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>手書き数字アプリ</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; line-height: 1.6">
<p>{wrong}このページを開くにはトークンが必要です。アプリを起動したターミナルに出ている URL を、
<code>?token=</code> から後ろまで全部そのまま開いてください（またはトークンをここに入力）。</p>
<form method="post" action="{action}">{xsrf}
<input type="password" name="password" aria-label="トークン" autocomplete="off" autofocus>
<button type="submit">開く</button></form>
</body></html>
"""


class AppLogin(VoilaLoginHandler):
    """The page a visit without the token gets: in Japanese, what to open instead (Jupyter Server's English page
    would tell the student to run ``jupyter server list``, which does not list this app). Its form logs in as
    Jupyter Server's does."""

    def _render(self, message=None):
        action = f"{self.base_url}login?next={url_escape(self.get_argument('next', default=self.base_url))}"
        wrong = "トークンが違います。" if message else ""
        self.write(LOGIN_PAGE.format(wrong=wrong, action=html.escape(action), xsrf=self.xsrf_form_html()))


class AppServer(Voila):
    """Voilà serving the app's notebook with :class:`AppPage` and :class:`AppLogin`."""

    def init_settings(self):
        settings = super().init_settings()
        self.identity_provider.login_handler_class = AppLogin
        return settings

    def init_handlers(self):
        return [(pattern, AppPage if handler is TornadoVoilaHandler else handler, *rest)
                for pattern, handler, *rest in super().init_handlers()]

    def stop(self):
        """Remove the kernels' connection folder as Voilà does, but never fail the stop over it: a kernel the pool
        was starting as the app stopped can still write a file there ("Directory not empty"), and the student
        would read an error for an app that did stop."""
        shutil.rmtree(self.connection_dir, ignore_errors=True)
        run_sync(self.kernel_manager.shutdown_all)()
        shutil.rmtree(self.connection_dir, ignore_errors=True)  # what the kernels left as they went


def server_arguments():
    """Voilà's options for the kernels: the pool, its refill and the culling of kernels no page uses."""
    return ["--preheat_kernel=True", "--pool_size=1", f"--VoilaKernelManager.fill_delay={FILL_DELAY}",
            "--KernelManager.transport=ipc", f"--VoilaConfiguration.multi_kernel_manager_class={__name__}.AppKernels",
            f"--MappingKernelManager.cull_idle_timeout={IDLE_SECONDS}",
            f"--MappingKernelManager.cull_interval={CULL_EVERY}"]


def quiet_libraries(app_log):
    """Keep the libraries' log lines and warnings off the student's terminal (all of them print when debugging).
    Voilà's own logger keeps its handlers that are not printing (the app's ready line listens there)."""
    if debugging():
        return
    for handler in app_log.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.CRITICAL + 1)
    logging.getLogger().addHandler(logging.NullHandler())  # tornado, asyncio...: never Python's last-resort print
    logging.captureWarnings(True)  # Python's warnings, as log lines: the same nowhere
