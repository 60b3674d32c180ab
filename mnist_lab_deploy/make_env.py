"""Write .env for `docker compose`: your user name, UID/GID, a free port, a random token, a GPU, and the image and
limits of the deployment's settings (hub/.env, :mod:`.settings`), each of which an option can change.

    python3 -m mnist_lab_deploy.make_env [--gpu N|none] [--port P] [--cuda CU] [--memory M] [--cpus C] [--gpu-share F] [--force]

The GPU follows :mod:`.gpu_policy`: the one you had (from an earlier .env), else the one with the fewest other
mnist-lab containers, capped by --max-per-gpu. The port is the earlier .env's while it is still yours, else one no
container, running or stopped, has claimed (a stopped one wants its port back on its next start). What make_env
chose for each student is kept for RESERVED_FOR seconds under a lock every user shares (RESERVATIONS), so two
students before either has a container never get the same port or GPU. A variable the shell exports with another
value than the .env's is noted (compose would take the shell's). On a server without NVIDIA GPUs (no nvidia-smi), or with
--gpu none, GPUS=none: the container asks for none. The kernels' share of the GPU's memory (GPU_MEMORY_SHARE, kept to by
:mod:`.gpu_share`) is --gpu-share, else derived from --max-per-gpu (gpu_policy.memory_share). Prints the ssh -L
command and the URL to open. Every mistake is one line. Standard library only: run it with the server's python3.
"""

import argparse
import contextlib
import fcntl
import getpass
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import settings
from .gpu_policy import NvidiaSmiError, choose_gpu, memory_share, requested_gpus, server_gpus
from .settings import REPO, SHARED, SettingsError, checked, parse
from .settings import load as load_settings
from .usage import Parser

PORTS = range(8800, 9000)
MIN_DOCKER = (28, 0)  # older engines expose ports published on 127.0.0.1 to the local network (moby#45610)


# What make_env chose for each student lately, one "UID PORT GPU|- TIME" line each, read and written under flock so
# that two students at the same moment, or before either has a container, never get the same port or exceed a GPU's
# maximum. /tmp, so that every student can make it (0666; /tmp's sticky bit keeps others from replacing it).
RESERVATIONS = Path("/tmp/mnist-lab-make_env.reservations")
RESERVED_FOR = 900  # seconds a student has to start the container make_env chose for them
LOCK_WAIT = 30
NOTE_NO_LOCK = "注意: ほかの人の make_env が今選んだポートと GPU を確かめられなかったので、それを考えずに選びます。"
NOTE_NO_DOCKER = "注意: docker に聞けなかったので、ほかの人のコンテナのポートと GPU を考えずに選びます。"
def gpu_argument(text):
    """``--gpu``: a GPU's index, or ``none`` (no GPU)."""
    if text.strip().lower() == "none":
        return "none"
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError("GPU の番号（0, 1 など）か none を指定してください")
    return int(text)


def students_argument(text):
    """``--max-per-gpu``: a number of students, 1 or more."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("1 以上の人数を指定してください")
    return int(text)


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(uid, claimed=()):
    """A free port no container has claimed, starting from one derived from the UID so students rarely even try the
    same one."""
    start = uid % len(PORTS)
    for offset in range(len(PORTS)):
        port = PORTS[(start + offset) % len(PORTS)]
        if port not in claimed and port_is_free(port):
            return port
    sys.exit(f"エラー: {PORTS.start}〜{PORTS.stop - 1} に空いているポートがありません。--port で指定してください。")


def inspected(ids):
    """``docker inspect`` of the containers ``ids``; one that vanished since ``docker ps`` is left out (it claims
    nothing any more). Raises (OSError, SubprocessError, ValueError, TypeError) when docker cannot be asked at all."""
    def inspect(*which):
        """``(containers found, whether all were)``: docker prints the ones it found, and fails for the others."""
        result = subprocess.run(["docker", "inspect", *which], capture_output=True, text=True, check=False, timeout=30)
        found = json.loads(result.stdout or "[]")
        if not isinstance(found, list):
            raise TypeError("docker inspect did not give a list")
        return found, result.returncode == 0

    if not ids:
        return []
    found, whole = inspect(*ids)
    if whole:
        return found
    answers = [inspect(one) for one in ids]  # one by one: a vanished one fails alone
    if not any(ok for _, ok in answers) and not found:
        raise subprocess.CalledProcessError(1, ["docker", "inspect", *ids])
    return [c for its, ok in answers if ok for c in its] or found


def claims_of(container):
    """``(project, ports, gpus)`` of one container as ``docker inspect`` reports it; ValueError for another shape."""
    try:
        project = (container["Config"].get("Labels") or {}).get("com.docker.compose.project")
        host = container["HostConfig"] or {}
        ports = {int(b["HostPort"]) for bindings in (host.get("PortBindings") or {}).values() for b in bindings or ()
                 if str(b.get("HostPort", "")).isdigit()}
        return project, ports, requested_gpus(host)
    except (AttributeError, KeyError, TypeError) as e:
        raise ValueError(f"unexpected docker inspect output: {e!r}") from e


def docker_claims(own_project):
    """Return ``(ports, gpus, own ports)``: the host ports and GPU indices of the other mnist-lab containers, running
    or stopped, as ``docker inspect`` reports them, and the ports of your own project's; empty when docker cannot be
    asked (then a one-line note)."""
    ports, gpus, own = set(), [], set()
    try:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.service=jupyter"],
                             capture_output=True, text=True, check=True, timeout=30).stdout.split()
        for project, its_ports, its_gpus in map(claims_of, inspected(ids)):
            if project != own_project:
                ports |= its_ports
                gpus += its_gpus
            else:
                own |= its_ports
    except (OSError, subprocess.SubprocessError, ValueError, TypeError):
        print(NOTE_NO_DOCKER, file=sys.stderr)
        return set(), [], set()
    return ports, gpus, own


def previous_values(path):
    """The settings of an earlier .env at ``path`` (``{}`` if none or unreadable), read as compose reads them."""
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"), strict=False) if path.is_file() else {}
    except OSError:
        return {}


def given_gpu(gpu):
    """``(GPU_ID, GPUS)`` for ``--gpu``: none, or one nvidia-smi lists (any, when it cannot read them)."""
    if gpu == "none":
        return 0, "none"
    try:
        gpus = server_gpus()
    except NvidiaSmiError:
        return gpu, "one"  # the driver may be fine for Docker: the student's choice
    if not gpus:
        sys.exit(f"エラー: このサーバーには nvidia-smi がないので GPU {gpu} は使えません（NVIDIA の GPU かドライバーが"
                 "ありません）。GPU なしで使うなら --gpu none にしてください。")
    if gpu not in [g.index for g in gpus]:
        listed = ", ".join(str(g.index) for g in gpus)
        sys.exit(f"エラー: GPU {gpu} はこのサーバーにありません（nvidia-smi の GPU: {listed}）。"
                 "番号を選び直すか、GPU なしなら --gpu none にしてください。")
    return gpu, "one"


def chosen_gpu(args, previous, claimed_gpus):
    """``(GPU_ID, GPUS)`` to write: --gpu, else none when the earlier .env had none, else gpu_policy's choice among
    the server's GPUs; ``(0, "none")`` on a server without any."""
    if args.gpu is not None:
        if args.max_per_gpu is not None and claimed_gpus.count(args.gpu) >= args.max_per_gpu:
            sys.exit(f"エラー: GPU {args.gpu} はすでに {args.max_per_gpu} 人（--max-per-gpu）が使っています。"
                     "--gpu を省くと空いている GPU を選びます。")
        return given_gpu(args.gpu)
    if previous.get("GPUS") == "none":
        return 0, "none"  # chosen before (--gpu none): kept, as an earlier GPU is
    try:
        gpus = server_gpus()
    except NvidiaSmiError as e:
        sys.exit(f"エラー: nvidia-smi が GPU を読めません（{e}）。管理者にドライバーを確かめてもらうか、GPU なしで"
                 "使うなら --gpu none を付けてください。")
    if not gpus:
        return 0, "none"
    earlier = int(previous["GPU_ID"]) if previous.get("GPU_ID", "").isdigit() else None
    gpu = choose_gpu(gpus, claimed_gpus, args.max_per_gpu, earlier)
    if gpu is None:
        sys.exit(f"エラー: どの GPU もすでに {args.max_per_gpu} 人が使っています。空くのを待つか、先生に相談してください。")
    return gpu, "one"


def reservation_file():
    """An open descriptor of :data:`RESERVATIONS` (made 0666 when new, never through a link); None when it cannot
    be opened. An existing file is opened without O_CREAT: fs.protected_regular refuses that in /tmp for a file
    another user owns."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(2):
        try:
            return os.open(RESERVATIONS, flags)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                fd = os.open(RESERVATIONS, flags | os.O_CREAT | os.O_EXCL, 0o666)
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o666)  # whatever the umask
                return fd
        except OSError:
            return None
    return None


def held(fd):
    """Whether the lock on ``fd`` was taken within LOCK_WAIT seconds."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        except OSError:
            return False


def recent_reservations(fd, uid):
    """The other students' reservations in ``fd`` younger than RESERVED_FOR: ``[(uid, port, gpu or None, time)]``;
    a line that is not one is dropped."""
    os.lseek(fd, 0, os.SEEK_SET)
    found, now = [], time.time()
    for line in os.read(fd, 1 << 20).decode("ascii", errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isdigit() and fields[1].isdigit() and re.fullmatch(r"\d+|-", fields[2]) \
                and re.fullmatch(r"\d+", fields[3]) and int(fields[0]) != uid and 0 <= now - int(fields[3]) < RESERVED_FOR:
            found.append((int(fields[0]), int(fields[1]), None if fields[2] == "-" else int(fields[2]), int(fields[3])))
    return found


@contextlib.contextmanager
def reservations(uid, docker_ports):
    """Hold the server's reservations while choosing: yields ``(ports, gpus, keep)``, the ports and GPUs other
    students were given lately (a GPU not counted again once that student's container, holding the port, exists),
    and ``keep(port, gpu)`` to record yours. Without the file or its lock: nothing reserved, one note."""
    fd = reservation_file()
    try:
        if fd is None or not held(fd):
            print(NOTE_NO_LOCK, file=sys.stderr)
            yield set(), [], lambda port, gpu: None
            return
        others = recent_reservations(fd, uid)

        def keep(port, gpu):
            lines = [*others, (uid, port, gpu, int(time.time()))]
            text = "".join(f"{u} {p} {'-' if g is None else g} {t}\n" for u, p, g, t in lines)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, text.encode(), 0)

        yield {p for _, p, _, _ in others}, [g for _, p, g, _ in others if g is not None and p not in docker_ports], keep
    finally:
        if fd is not None:
            os.close(fd)


def check_docker_version():
    """A one-line warning when the Docker engine is older than MIN_DOCKER (or cannot be asked)."""
    if not shutil.which("docker"):
        return
    try:
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                text=True, errors="replace", check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        result = None
    found = re.match(r"(\d+)\.(\d+)", result.stdout.strip()) if result and result.returncode == 0 else None
    if not found:
        print("注意: docker の版を確かめられませんでした（docker が答えません）。", file=sys.stderr)
    elif tuple(map(int, found.groups())) < MIN_DOCKER:
        print(f"注意: Docker {result.stdout.strip()} は古すぎます（{'.'.join(map(str, MIN_DOCKER))} 以上が必要）。"
              "127.0.0.1 に出したポートが同じネットワークから見えてしまいます。管理者に更新を頼んでください。",
              file=sys.stderr)


def student_env(user, uid, gid, port, token, gpu, gpus="one", gpu_share=1.0, **chosen):
    """One student's .env values: who they are, their port, token and GPU, then the deployment's settings (hub/.env:
    image and limits), each replaced by ``chosen`` (``MEM_LIMIT="4g"``...) when given."""
    deployment = load_settings()
    return {"MNIST_LAB_USER": user, "HOST_UID": uid, "HOST_GID": gid, "HOST_PORT": port, "JUPYTER_TOKEN": token,
            "GPUS": gpus, "GPU_ID": gpu, "GPU_MEMORY_SHARE": f"{gpu_share:g}",
            **{name: chosen.get(name, deployment[name]) for name in SHARED}}


def env_text(values):
    """``values`` as a .env file."""
    header = "# Written by mnist_lab_deploy.make_env from hub/.env for one student. Keep it private: it holds your token."
    return "\n".join([header, *(f"{name}={value}" for name, value in values.items()), ""])


def parser(deployment):
    """make_env's options; the defaults are ``deployment``'s (hub/.env)."""
    p = Parser(prog="python3 -m mnist_lab_deploy.make_env", description=".env を作る（docker compose 用。既定値は hub/.env）")
    p.add_argument("--gpu", type=gpu_argument, default=None,
                   help="使う GPU の番号か none（既定: 前の .env の GPU か none、なければほかの人が一番少ない GPU）")
    p.add_argument("--max-per-gpu", type=students_argument, default=None, help="1 つの GPU を使う人数の上限（既定: なし）")
    p.add_argument("--memory", help=f"コンテナのメモリの上限（既定: hub/.env の MEM_LIMIT = {deployment['MEM_LIMIT']}）")
    p.add_argument("--cpus", help=f"コンテナが使える CPU コア数（既定: hub/.env の CPUS = {deployment['CPUS']}）")
    p.add_argument("--gpu-share", default="",
                   help="カーネルが使える GPU メモリの割合 0〜1（既定: --max-per-gpu N があれば 0.9/N、なければ 1 = 全部）")
    p.add_argument("--port", type=int, default=None, help="サーバー側のポート 1024〜65535（既定: 8800〜8999 の空き）")
    p.add_argument("--cuda", help=f"PyTorch の CUDA 版: cu126, cu118 など（既定: hub/.env の CUDA = {deployment['CUDA']}）")
    p.add_argument("--force", action="store_true", help="既にある .env を上書きする（既定: しない）")
    p.add_argument("--output", default=str(REPO / ".env"), help="書くファイル（既定: リポジトリの .env）")
    return p


def chosen_limits(args, deployment):
    """``{CUDA, MEM_LIMIT, CPUS}`` as written to the .env: each option given, else hub/.env's; a wrong one is one
    line naming where it came from (the option, or hub/.env and its key)."""
    given = {"CUDA": ("--cuda", args.cuda), "MEM_LIMIT": ("--memory", args.memory), "CPUS": ("--cpus", args.cpus)}
    try:
        limits = {name: checked(deployment, name, source=str(settings.SOURCE)) for name in SHARED}
    except SettingsError as e:
        sys.exit(f"{e}（管理者に伝えてください）")
    try:
        for name, (option, value) in given.items():
            if value is not None:
                limits[name] = checked({name: value}, name, source=option)
    except SettingsError as e:
        sys.exit(str(e))
    return {name: f"{limits[name]:g}" if name == "CPUS" else limits[name] for name in SHARED}


def check_port(port, own=()):
    """A --port the student's container can be given: 1024 to 65535, and free (or held by ``own``, your own
    container's ports)."""
    if port is None:
        return
    if not 1 <= port <= 65535:
        sys.exit(f"エラー: ポート {port} はありません。1024〜65535 の番号にするか、--port を省いてください。")
    if port < 1024:
        sys.exit(f"エラー: ポート {port} は特権ポート（1024 未満）なので使えません。1024〜65535 にするか、--port を省いてください。")
    if port not in own and not port_is_free(port):
        sys.exit(f"エラー: ポート {port} は使われています。別の番号にするか、--port を省いてください。")


def chosen_port(asked, uid, previous, claimed, own):
    """The port to write: ``asked`` (--port), else the earlier .env's while it is still yours (your own container
    holds it, or it is free and no other container claims it: your ssh -L line stays), else a free one."""
    if asked is not None:
        if asked in claimed:
            sys.exit(f"エラー: ポート {asked} は止まっているほかのコンテナが使う番号です。別の番号にするか、--port を省いてください。")
        check_port(asked, own)
        return asked
    earlier = int(previous["HOST_PORT"]) if previous.get("HOST_PORT", "").isdigit() else None
    if earlier in own or (earlier and 1024 <= earlier <= 65535 and earlier not in claimed and port_is_free(earlier)):
        return earlier
    return free_port(uid, claimed)


def login_name():
    """Your login name; "" when there is none (a UID without a passwd entry and no USER)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def user_name(name, uid):
    """The name of your compose project (``mnist-lab-NAME``): your login name when it is one already, else one made
    from it and your UID (two students never share a project: Docker would replace one's container by the other's).

    >>> user_name("hanako", 1500), user_name("Taro.Yamada", 1500), user_name("山田", 1500), user_name("", 7)
    ('hanako', 'taro-yamada-1500', 'uid1500', 'uid7')
    """
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        return name
    ascii_name = re.sub(r"[^a-z0-9_-]", "-", name.lower()).strip("-_")
    return f"{ascii_name}-{uid}" if name.isascii() and re.search(r"[a-z0-9]", ascii_name) else f"uid{uid}"


def write_private(path, text):
    """Write ``text`` to ``path`` readable by you alone (0600 from the start), all or nothing: through a temporary
    file renamed over it, so a failed write leaves the old file whole. A link or a folder there is refused just
    before, under the lock (:func:`refuse_existing`)."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".env-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as e:
        sys.exit(f"エラー: {path} を書けません（{e.strerror or e}）。フォルダーがあって書けるか確かめるか、"
                 "--output で別の場所を指定してください。")


def note_shell_values(values):
    """One line when your shell exports one of ``values`` with another value: compose would take the shell's."""
    differing = [name for name, value in values.items() if os.environ.get(name, str(value)) != str(value)]
    if differing:
        print(f"注意: シェルの環境変数 {', '.join(differing)} が .env と違います。docker compose はシェルの値を使うので、"
              f"先に unset {' '.join(differing)} してください（~/.bashrc にあればそこからも消します）。", file=sys.stderr)


def output_path(text):
    """The file ``--output`` names; an empty name (an unset shell variable) is refused rather than read as "."."""
    if not text:
        sys.exit("エラー: --output の名前が空です。書くファイルの名前を指定してください（例: --output .env）。")
    return Path(text)


def refuse_existing(path, force):
    """Refuse, in the order that leads to a fix, what ``path`` must not be: a place that cannot be looked at, a link
    (its target is never written), a folder; and without ``--force`` an existing ``.env`` (its token is in the URL
    the student uses)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # a new file; a folder missing on the way is told when it is written
    except OSError as e:
        sys.exit(f"エラー: {path} を調べられません（{e.strerror or e}）。そのフォルダーに入れるか確かめるか、"
                 "--output で別の場所を指定してください。")
    if stat.S_ISLNK(mode):
        sys.exit(f"エラー: {path} はリンクです（先のファイルを書き換えないよう上書きしません）。リンクを消すか、"
                 "--output で別のファイルを指定してください。")
    if stat.S_ISDIR(mode):
        sys.exit(f"エラー: {path} はフォルダーです。--output でファイルの名前を指定してください。")
    if not force:
        sys.exit(f"エラー: {path} は既にあります（トークンが変わらないよう上書きしません）。作り直すなら --force を付けてください。")


def main(argv=None):
    try:
        deployment = load_settings()
    except SettingsError as e:
        sys.exit(f"{e} 管理者に伝えてください。")
    args = parser(deployment).parse_args(argv)
    path = output_path(args.output)
    refuse_existing(path, args.force)
    limits = chosen_limits(args, deployment)
    try:
        gpu_share = memory_share(args.gpu_share, args.max_per_gpu)
    except ValueError as e:
        sys.exit(f"エラー: --gpu-share: {e}")
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        sys.exit("エラー: root では .env を作りません（コンテナを root で動かさないため）。自分のユーザーで実行してください。")
    user = user_name(login_name(), uid)
    check_docker_version()
    claimed_ports, claimed_gpus, own_ports = docker_claims(f"mnist-lab-{user}")
    previous = previous_values(path)
    with reservations(uid, claimed_ports) as (reserved_ports, reserved_gpus, keep):
        refuse_existing(path, args.force)  # again: another make_env of yours may have written it meanwhile
        port = chosen_port(args.port, uid, previous, claimed_ports | reserved_ports, own_ports)
        token = secrets.token_hex(24)
        gpu, gpus = chosen_gpu(args, previous, claimed_gpus + reserved_gpus)
        values = student_env(user, uid, gid, port, token, gpu, gpus, gpu_share, **limits)
        write_private(path, env_text(values))
        keep(port, gpu if gpus == "one" else None)
    note_shell_values(values)
    print(f"{path} を書きました（ユーザー {user}, UID {uid}, ポート {port}, GPU {gpu if gpus == 'one' else 'なし'}）。次に:\n"
          f"  docker compose up -d\n"
          f"手元の PC で:  ssh -L {port}:127.0.0.1:{port} あなた@サーバー\n"
          f"ブラウザで:    http://127.0.0.1:{port}/lab/tree/main.ipynb?token={token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
