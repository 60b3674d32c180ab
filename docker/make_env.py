"""Write .env for `docker compose`: your user name, UID/GID, a free port, a random token and a GPU.

    python docker/make_env.py [--gpu N] [--port P] [--cuda cu126] [--force]

Prints the ssh -L command and the URL to open. Uses only the standard library (run it with the server's python3).
"""

import argparse
import getpass
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORTS = range(8800, 9000)


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(uid):
    """A free port, starting from one derived from the UID so students rarely even try the same one."""
    start = uid % len(PORTS)
    for offset in range(len(PORTS)):
        port = PORTS[(start + offset) % len(PORTS)]
        if port_is_free(port):
            return port
    sys.exit(f"エラー: {PORTS.start}〜{PORTS.stop - 1} に空いているポートがありません。--port で指定してください。")


def least_used_gpu():
    """The index of the GPU with the most free memory, from nvidia-smi; 0 when there is no nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=False).stdout
    rows = [tuple(int(v) for v in line.split(",")) for line in out.strip().splitlines() if line.strip()]
    return max(rows, key=lambda row: row[1])[0] if rows else 0


def env_text(user, uid, gid, port, token, gpu, cuda):
    return "\n".join([
        "# Written by docker/make_env.py for one student. Keep it private: it holds your Jupyter token.",
        f"MNIST_LAB_USER={user}",
        f"HOST_UID={uid}",
        f"HOST_GID={gid}",
        f"JUPYTER_PORT={port}",
        f"JUPYTER_TOKEN={token}",
        f"GPU_ID={gpu}",
        f"CUDA={cuda}",
        "",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=".env を作る（docker compose 用）")
    parser.add_argument("--gpu", type=int, default=None, help="使う GPU の番号（既定: 空きメモリが一番多い GPU）")
    parser.add_argument("--port", type=int, default=None, help="サーバー側のポート（既定: 8800〜8999 の空き）")
    parser.add_argument("--cuda", default="cu126", help="PyTorch の CUDA 版: cu126, cu118 など（既定: cu126）")
    parser.add_argument("--force", action="store_true", help="既にある .env を上書きする（既定: しない）")
    parser.add_argument("--output", default=str(REPO / ".env"), help="書くファイル（既定: リポジトリの .env）")
    args = parser.parse_args(argv)

    path = Path(args.output)
    if path.exists() and not args.force:
        sys.exit(f"エラー: {path} は既にあります（トークンが変わらないよう上書きしません）。作り直すなら --force を付けてください。")
    if not re.fullmatch(r"cu\d{3}", args.cuda):
        sys.exit(f"エラー: --cuda は cu126 や cu118 の形で指定してください（今は {args.cuda}）。")
    if args.port is not None and not port_is_free(args.port):
        sys.exit(f"エラー: ポート {args.port} は使われています。別の番号にするか、--port を省いてください。")
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        sys.exit("エラー: root では .env を作りません（コンテナを root で動かさないため）。自分のユーザーで実行してください。")
    user = re.sub(r"[^a-z0-9_-]", "-", getpass.getuser().lower()) or f"uid{uid}"
    port = args.port or free_port(uid)
    token = secrets.token_hex(24)
    gpu = least_used_gpu() if args.gpu is None else args.gpu
    path.write_text(env_text(user, uid, gid, port, token, gpu, args.cuda))
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)  # 0600: only you can read your token
    print(f"{path} を書きました（ユーザー {user}, UID {uid}, ポート {port}, GPU {gpu}）。次に:\n"
          f"  docker compose up -d\n"
          f"手元の PC で:  ssh -L {port}:127.0.0.1:{port} あなた@サーバー\n"
          f"ブラウザで:    http://127.0.0.1:{port}/lab/tree/main.ipynb?token={token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
