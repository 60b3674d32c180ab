"""Write .env for `docker compose`: your user name, UID/GID, a free port, a random token, a GPU, and the image and
limits of the deployment's settings (hub/.env, :mod:`.settings`), each of which an option can change.

    python3 -m mnist_lab_deploy.make_env [--gpu N] [--port P] [--cuda CU] [--memory M] [--cpus C] [--gpu-share F] [--force]

The GPU follows :mod:`.gpu_policy`: the one you had (from an earlier .env), else the one with the fewest other
mnist-lab containers, capped by --max-per-gpu. The port is one no container, running or stopped, has claimed (a
stopped one wants its port back on its next start). On a server without NVIDIA GPUs (no nvidia-smi) GPUS=none:
the container asks for none. The kernels' share of the GPU's memory (GPU_MEMORY_SHARE, kept to by
:mod:`.gpu_share`) is --gpu-share, else derived from --max-per-gpu (gpu_policy.memory_share). Prints the ssh -L
command and the URL to open. Every mistake is one line. Standard library only: run it with the server's python3.
"""

import argparse
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
from pathlib import Path

from .gpu_policy import NvidiaSmiError, choose_gpu, memory_share, requested_gpus, server_gpus
from .settings import REPO, SHARED
from .settings import load as load_settings

PORTS = range(8800, 9000)
MIN_DOCKER = (28, 0)  # older engines expose ports published on 127.0.0.1 to the local network (moby#45610)


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


def docker_claims(own_project):
    """Return ``(ports, gpus)``: the host ports and GPU indices of the other mnist-lab containers, running or
    stopped, as ``docker inspect`` reports them; empty when docker cannot be asked (then a one-line note)."""
    try:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.service=jupyter"],
                             capture_output=True, text=True, check=True, timeout=30).stdout.split()
        found = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True,
                                          timeout=30).stdout) if ids else []
    except (OSError, subprocess.SubprocessError, ValueError):
        print("注意: docker に聞けなかったので、ほかの人のコンテナのポートと GPU を考えずに選びます。", file=sys.stderr)
        return set(), []
    ports, gpus = set(), []
    for container in found:
        if container["Config"]["Labels"].get("com.docker.compose.project") == own_project:
            continue
        host = container["HostConfig"]
        for bindings in (host.get("PortBindings") or {}).values():
            ports.update(int(b["HostPort"]) for b in bindings or () if b.get("HostPort", "").isdigit())
        gpus += requested_gpus(host)
    return ports, gpus


def previous_values(path):
    """The settings of an earlier .env at ``path`` (``{}`` if none)."""
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def chosen_gpu(args, previous, claimed_gpus):
    """``(GPU_ID, GPUS)`` to write: --gpu, else gpu_policy's choice among the server's GPUs; ``(0, "none")`` on a
    server without any."""
    if args.gpu is not None:
        return args.gpu, "one"
    try:
        gpus = server_gpus()
    except NvidiaSmiError as e:
        sys.exit(f"エラー: nvidia-smi が GPU を読めません（{e}）。ドライバーを確かめるか、--gpu で番号を指定してください。")
    if not gpus:
        return 0, "none"
    earlier = int(previous["GPU_ID"]) if previous.get("GPU_ID", "").isdigit() else None
    gpu = choose_gpu(gpus, claimed_gpus, args.max_per_gpu, earlier)
    if gpu is None:
        sys.exit(f"エラー: どの GPU もすでに {args.max_per_gpu} 人が使っています。空くのを待つか、先生に相談してください。")
    return gpu, "one"


def check_docker_version():
    """A one-line warning when the Docker engine is older than MIN_DOCKER (or cannot be asked)."""
    result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                            check=False) if shutil.which("docker") else None
    found = re.match(r"(\d+)\.(\d+)", result.stdout.strip()) if result and result.returncode == 0 else None
    if found and tuple(map(int, found.groups())) < MIN_DOCKER:
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


def main(argv=None):
    deployment = load_settings()
    parser = argparse.ArgumentParser(description=".env を作る（docker compose 用。既定値は hub/.env）")
    parser.add_argument("--gpu", type=int, default=None,
                        help="使う GPU の番号（既定: 前の .env の GPU、なければほかの人が一番少ない GPU）")
    parser.add_argument("--max-per-gpu", type=int, default=None, help="1 つの GPU を使う人数の上限（既定: なし）")
    parser.add_argument("--memory", default=deployment["MEM_LIMIT"],
                        help=f"コンテナのメモリの上限（既定: hub/.env の MEM_LIMIT = {deployment['MEM_LIMIT']}）")
    parser.add_argument("--cpus", default=deployment["CPUS"],
                        help=f"コンテナが使える CPU コア数（既定: hub/.env の CPUS = {deployment['CPUS']}）")
    parser.add_argument("--gpu-share", default="",
                        help="カーネルが使える GPU メモリの割合 0〜1（既定: --max-per-gpu N があれば 0.9/N、なければ 1 = 全部）")
    parser.add_argument("--port", type=int, default=None, help="サーバー側のポート（既定: 8800〜8999 の空き）")
    parser.add_argument("--cuda", default=deployment["CUDA"],
                        help=f"PyTorch の CUDA 版: cu126, cu118 など（既定: hub/.env の CUDA = {deployment['CUDA']}）")
    parser.add_argument("--force", action="store_true", help="既にある .env を上書きする（既定: しない）")
    parser.add_argument("--output", default=str(REPO / ".env"), help="書くファイル（既定: リポジトリの .env）")
    args = parser.parse_args(argv)

    path = Path(args.output)
    if path.exists() and not args.force:
        sys.exit(f"エラー: {path} は既にあります（トークンが変わらないよう上書きしません）。作り直すなら --force を付けてください。")
    if not re.fullmatch(r"\d+[kmg]", args.memory) or not re.fullmatch(r"\d+(\.\d+)?", args.cpus):
        sys.exit(f"エラー: --memory は 8g のように、--cpus は 4 のように指定してください（今は {args.memory}, {args.cpus}）。")
    if not re.fullmatch(r"cu\d{3}", args.cuda):
        sys.exit(f"エラー: --cuda は cu126 や cu118 の形で指定してください（今は {args.cuda}）。")
    try:
        gpu_share = memory_share(args.gpu_share, args.max_per_gpu)
    except ValueError as e:
        sys.exit(f"エラー: --gpu-share: {e}")
    if args.port is not None and not port_is_free(args.port):
        sys.exit(f"エラー: ポート {args.port} は使われています。別の番号にするか、--port を省いてください。")
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        sys.exit("エラー: root では .env を作りません（コンテナを root で動かさないため）。自分のユーザーで実行してください。")
    user = re.sub(r"[^a-z0-9_-]", "-", getpass.getuser().lower()) or f"uid{uid}"
    check_docker_version()
    claimed_ports, claimed_gpus = docker_claims(f"mnist-lab-{user}")
    if args.port is not None and args.port in claimed_ports:
        sys.exit(f"エラー: ポート {args.port} は止まっているほかのコンテナが使う番号です。別の番号にするか、--port を省いてください。")
    port = args.port or free_port(uid, claimed_ports)
    token = secrets.token_hex(24)
    gpu, gpus = chosen_gpu(args, previous_values(path), claimed_gpus)
    path.write_text(env_text(student_env(user, uid, gid, port, token, gpu, gpus, gpu_share, CUDA=args.cuda,
                                         MEM_LIMIT=args.memory, CPUS=args.cpus)))
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)  # 0600: only you can read your token
    print(f"{path} を書きました（ユーザー {user}, UID {uid}, ポート {port}, GPU {gpu}）。次に:\n"
          f"  docker compose up -d\n"
          f"手元の PC で:  ssh -L {port}:127.0.0.1:{port} あなた@サーバー\n"
          f"ブラウザで:    http://127.0.0.1:{port}/lab/tree/main.ipynb?token={token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
