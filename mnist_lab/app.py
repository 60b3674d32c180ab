"""The draw pad as a web app: ``mnist-lab app [CHECKPOINT]`` serves ``mnist_lab/app.ipynb`` with Voilà.

The page is the notebook's :class:`~mnist_lab.widgets.DrawPad` and nothing else (Voilà shows a notebook's outputs,
never its code), so the app reads a drawing exactly as the lesson's pad does. The same page opens inside JupyterLab
as ``/voila/render/mnist_lab/app.ipynb`` (behind a JupyterHub: ``/user/NAME/voila/render/...``).

Safe by default: the server listens on 127.0.0.1 only and asks for a random token (other users of a shared server
can reach its loopback too); ``--no-token`` is allowed on loopback only. A kernel is started and the notebook run
before the first visit (Voilà's pre-heated kernel), so the page is ready as soon as the server says so.
"""

import asyncio
import errno
import html
import logging
import os
import secrets
import signal
import socket
import sys
import traceback
from pathlib import Path

import ipywidgets as widgets

from .checkpoint import load_checkpoint, read_checkpoint, unfinished
from .console import one_line
from .errors import UserError, debugging
from .interrupts import NAMES, Interrupted
from .paths import env_path, usable_home_folders, user_path
from .widgets import DrawPad

APP_NOTEBOOK = Path(__file__).with_name("app.ipynb")
PAD_MODEL = Path(__file__).with_name("pad_model.pt")
CHECKPOINT_ENV = "MNIST_LAB_APP_CHECKPOINT"  # how `mnist-lab app CHECKPOINT` tells the page's kernel
LOOPBACK = ("127.0.0.1", "localhost", "::1")
READY = "is filled with"  # Voilà's log line once its waiting kernel has started (the notebook then runs in it)


def model_source(checkpoint=None):
    """Return ``(path, words)``: the checkpoint the app reads with, and a Japanese phrase saying where it is from."""
    path = checkpoint or env_path(CHECKPOINT_ENV)
    if path:
        return Path(user_path(path)), f"チェックポイント {path}"
    if not _bundled(PAD_MODEL):  # replaced (by hand, or by a copy of the package): not the model the title describes
        return PAD_MODEL, "mnist_lab/pad_model.pt（同梱のパッド用モデルではなく、あとから書き換えられたファイル）"
    return PAD_MODEL, "同梱のパッド用モデル mnist_lab/pad_model.pt（手書き風のデータ拡張で学習: --preset pad）"


def _bundled(path):
    """Whether the checkpoint at ``path`` is the pad model resources/make_pad_model.py writes: a pad_cnn whose
    results say the ``pad`` recipe made it and hold its "not a digit" threshold."""
    try:
        ckpt = read_checkpoint(path)
    except UserError:
        return False
    results = ckpt.get("results") if isinstance(ckpt.get("results"), dict) else {}
    return ckpt["model"] == "pad_cnn" and results.get("preset") == "pad" and results.get("energy_threshold") is not None


def drawing_app(checkpoint=None):
    """Return the app's widget: a title line naming the model and its test accuracy, and a :class:`DrawPad`.

    The model is read on the CPU: one drawing needs no GPU, and a shared GPU's memory is kept for training. A
    checkpoint that cannot be read (removed or replaced after the app started) gives the page one Japanese line
    saying so, instead of a pad.
    """
    path, words = model_source(checkpoint)
    try:
        model, ckpt = load_checkpoint(path)
    except UserError as e:
        return widgets.HTML(html.escape(f"{e} アプリを起動したターミナルで Ctrl+C で止めてから、"
                                        "読めるチェックポイントを指定して起動し直してください。")
                            ).add_class("mnist-model-error")
    accuracy = ckpt.get("results", {}).get("test_accuracy")
    score = f"、MNIST テスト正解率 {accuracy:.2%}" if isinstance(accuracy, float) else ""
    note = f"（{unfinished(ckpt)}）" if unfinished(ckpt) else ""
    source = widgets.HTML(html.escape(f"モデル: {words} — {ckpt['model']}{score}{note}")).add_class("mnist-model-source")
    return widgets.VBox([source, DrawPad(model)])


BIND_REASONS = {errno.EADDRNOTAVAIL: "このマシンのアドレスではありません", errno.EACCES: "その番号を使う権限がありません",
                errno.EAFNOSUPPORT: "このマシンではその種類のアドレスを使えません"}


def checked_address(host, port, token):
    """Return ``token`` to use (a new random one for ``None``); :class:`UserError` if ``host:port`` cannot be
    listened on or a server off loopback would have no token."""
    if not host.strip():  # an empty --host "$HOST" would listen on every network
        raise UserError("--host が空です。自分のマシンだけなら 127.0.0.1（既定）、ほかのマシンからも開くなら 0.0.0.0 を指定してください。")
    if not token and token is not None and host not in LOOPBACK:
        raise UserError(f"{host} で待ち受けるときはトークンが必要です。--no-token を外してください"
                        "（同じネットワークの誰でも開けてしまいます）。")
    if not 0 < port < 65536:
        raise UserError(f"ポート番号 {port} は使えません。1〜65535 の番号を --port に指定してください。")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"ポート {port} はほかのプログラムが使っています。--port 8867 のように別の番号を"
                                "指定してください（ssh -L の番号も合わせて）。") from e
            why = BIND_REASONS.get(e.errno, "このアドレスでは待ち受けられません") if not isinstance(e, socket.gaierror) else (
                "そういう名前やアドレスは見つかりません")
            raise UserError(f"{host}:{port} で待ち受けられません（{why}）。--host には 127.0.0.1（既定）か 0.0.0.0、"
                            "またはこのマシンのアドレスを指定してください。") from e
    return secrets.token_urlsafe(24) if token is None else token


class _ReadyLine(logging.Handler):
    """Print the app's URL, in Japanese, once Voilà has run the notebook in its waiting kernel: from then on a
    page opens at once. (Voilà logs when the kernel has started; the notebook's run is its pool's render task.)"""

    def __init__(self, app, url):
        super().__init__(logging.INFO)
        self.app, self.url, self.said, self.told, self.failed = app, url, False, False, None

    def emit(self, record):
        if not self.said and READY in record.getMessage():
            self.said = True
            asyncio.ensure_future(self._after_the_notebook_ran())

    async def _after_the_notebook_ran(self):
        """Print the ready line; or, when the page cannot be made (its kernel or the notebook's run failed: no page
        would ever open), keep the error in ``failed`` and stop the server, which shuts its kernels down."""
        try:
            for pool in self.app.kernel_manager._pools.values():  # Voilà 0.5's pre-heated kernels
                for kernel in pool:
                    await (await kernel)["task"]
        except Exception as e:  # noqa: BLE001 -- whatever it was, no page would open: say so and stop
            if debugging():
                traceback.print_exc()
            self.failed = e
            asyncio.get_running_loop().stop()
            return
        print(f"アプリの準備ができました。ブラウザで開いてください: {self.url}\n"
              "（サーバーの上で動かしているときは ssh -L でこのポートをつないでから。止めるには Ctrl+C）", flush=True)
        self.told = True


class _Stopper:
    """Ctrl+C, SIGTERM or SIGHUP (a closed terminal) stop the app at any moment, with one line at most.

    While the server runs, the first signal stops its loop from inside the loop (a KeyboardInterrupt raised in the
    middle of a callback can be caught there, and the app would go on running); Voilà then shuts its kernels down.
    Before the loop runs (Voilà still loading or starting) it raises :class:`Interrupted` at once. Later signals
    wait for that stop. A signal ignored when the app started (``nohup`` ignores SIGHUP) stays ignored."""

    def __init__(self):
        self.received = None
        self.take()

    def take(self):
        """Handle the signals from now on (again after Voilà, which sets its own SIGTERM handler)."""
        for name in NAMES:
            number = getattr(signal, name, None)
            if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
                signal.signal(number, self.handle)

    def handle(self, signum, frame):
        if self.received is not None:
            return
        self.received = signum
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise Interrupted(signum) from None
        loop.call_soon_threadsafe(loop.stop)


def app_url(host, port, token):
    """The address to open, as the ready line shows it (an address that listens everywhere is to be replaced)."""
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    if host in ("0.0.0.0", "::"):
        url += f"  （{host} はこのマシンの IP アドレスに置き換えて開いてください）"
    return url


def serve(checkpoint=None, host="127.0.0.1", port=8866, token=None):
    """Serve the app until Ctrl+C. ``token=None`` makes a random token; ``""`` means none (loopback only).

    The checkpoint and the address are checked first, so a mistake is one line, not a server that fails later.
    Returns 0 once a running app is stopped, 128 + the signal's number when a signal stopped it before it was ready,
    2 (one line) when its page cannot be made.
    """
    path, words = model_source(checkpoint)
    note = unfinished(read_checkpoint(path))
    if note:
        print(f"お知らせ: {note}", file=sys.stderr)
    token = checked_address(host, port, token)
    if usable_home_folders():  # Jupyter, IPython and matplotlib, here and in the page's kernels
        raise UserError("ホームフォルダにも一時フォルダにも書き込めないため、アプリを起動できません。"
                        "書き込めるフォルダを環境変数 TMPDIR に指定して起動し直してください。")
    if checkpoint:
        os.environ[CHECKPOINT_ENV] = str(Path(checkpoint).resolve())  # the page's kernel inherits it
    url = app_url(host, port, token)
    stopper = _Stopper()
    ready = None
    try:
        print(f"アプリを起動しています（モデル: {words}）…", flush=True)
        from .app_server import AppServer, quiet_libraries, server_arguments  # only this command needs Voilà

        app = AppServer()
        app.initialize([str(APP_NOTEBOOK), "--no-browser", f"--Voila.ip={host}", f"--port={port}",
                        "--Voila.port_retries=0", f"--token={token}", "--Voila.log_level=INFO", "--theme=light",
                        *server_arguments()])
        stopper.take()
        quiet_libraries(app.log)
        ready = _ReadyLine(app, url)
        app.log.addHandler(ready)
        app.start()  # until a signal; then Voilà shuts its kernels down
    except KeyboardInterrupt:  # a signal before the server's loop ran: nothing was started
        pass
    return _ended(ready, stopper)


def _ended(ready, stopper):
    """Say how the app ended (its ready line, if any, was ``ready``); return the command's status."""
    if ready is not None and ready.failed is not None and stopper.received is None:
        e = ready.failed
        print(one_line(f"エラー: アプリのページを用意できませんでした（{type(e).__name__}: {e}）。"
                       "環境変数 MNIST_LAB_DEBUG=1 を付けて起動すると詳細が出ます。"), file=sys.stderr, flush=True)
        return 2
    if ready is not None and ready.told:
        print("アプリを止めました。", flush=True)
        return 0
    print("中断しました（アプリはまだ準備中でした）。", file=sys.stderr, flush=True)
    return 128 + (stopper.received or signal.SIGINT)
