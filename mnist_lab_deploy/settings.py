"""The deployment's settings: written once, in ``hub/.env``, and read from there by every mode.

As in DockerSpawner's examples: compose reads ``hub/.env`` and passes each value on as ``${VAR}`` without a default
(a missing one stops compose with its name), and the code reads ``os.environ["VAR"]``. The standalone mode gets the
same values through the ``.env`` that ``make_env`` writes from this file; the Kubernetes values are checked against
it (:mod:`.kube`); the tests read it too. So the memory limit, the CUDA version or the port is one line here.

Each value is read by one parser of this module (:data:`PARSERS`), whoever reads it: the hub, make_env and the
Kubernetes check never disagree on what a value means, and none of them takes one that switches a limit off.

>>> parse("# a comment\\nCUDA=cu126\\n\\nHUB_URL=\\n")
{'CUDA': 'cu126', 'HUB_URL': ''}
>>> parse('\\ufeffexport CPUS = "4"  \\n  MEM_LIMIT=8G # per student\\n')
{'CPUS': '4', 'MEM_LIMIT': '8G'}
>>> docker_size("8G"), docker_size("1.5g"), docker_size("8gb"), kube_quantity("8g")
('8g', '1610612736', '8g', '8Gi')
"""

import math
import os
import re
from pathlib import Path

from .gpu_policy import MAX_STUDENTS

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "hub" / ".env"
# What a standalone .env takes from hub/.env: the image and each container's limits.
SHARED = ("BASE_IMAGE", "CUDA", "JUPYTER_PORT", "MEM_LIMIT", "CPUS", "PIDS_LIMIT", "SHM_SIZE")
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
MAX_BYTES = 2**50  # 1 PiB: more is a typo, not a limit
MAX_CPUS = 1024
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SettingsError(ValueError):
    """A settings file that cannot be read, or a value that cannot be used: ``str()`` is one Japanese line."""


ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}  # inside "...", as compose
VARIABLE = r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
UNQUOTED, QUOTED = re.compile(VARIABLE), re.compile(r"\\(?P<escaped>.)|" + VARIABLE, re.DOTALL)


def substituted(match, lookup, quoted):
    """One ``$$``, ``\\x``, ``$VAR`` or ``${VAR[:-+?]arg}`` as compose interpolates it; ValueError for ``${VAR:?why}``
    when VAR is unset (or empty)."""
    groups = match.groupdict()
    if groups.get("escaped") is not None:
        return ESCAPES.get(groups["escaped"], match[0])
    if match[0] == "$$":
        return "$"
    value = lookup(groups["name"] or groups["bare"])
    op, arg = groups["op"] or "", interpolated(groups["arg"] or "", lookup, quoted)
    empty = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return arg if empty else value
    if op.endswith("+"):
        return "" if empty else arg
    if op.endswith("?") and empty:
        raise ValueError(f"${{{groups['name']}}} が設定されていません（{arg}）")
    return value or ""


def interpolated(text, lookup, quoted=False):
    """``text`` with its variables replaced as compose does (and, inside double quotes, its escapes)."""
    return (QUOTED if quoted else UNQUOTED).sub(lambda m: substituted(m, lookup, quoted), text)


def closing_quote(raw):
    """The index of the quote that closes ``raw``'s opening one (a ``\\"`` inside "..." does not); None if none."""
    quote, index = raw[0], 1
    while index < len(raw):
        if raw[index] == "\\" and quote == '"':
            index += 2
        elif raw[index] == quote:
            return index
        else:
            index += 1
    return None


def value_of(raw, lookup=lambda name: None):
    """A value as compose reads it: '...' as written; "..." with its escapes and variables; else an inline
    `` # comment`` and outer spaces dropped, and variables (``lookup(name)``: their value, None if unset) replaced.

    >>> value_of('"8g"  # per student'), value_of("${CPUS:-4} # cores"), value_of("'$A'"), value_of('"a$${B}"')
    ('8g', '4', '$A', 'a${B}')
    """
    raw = raw.strip()
    end = closing_quote(raw) if raw[:1] in ("'", '"') else None
    if end is not None:
        return raw[1:end] if raw[0] == "'" else interpolated(raw[1:end], lookup, quoted=True)
    return interpolated(re.split(r"\s+#", raw, maxsplit=1)[0].strip(), lookup)


def left_open(raw):
    """Whether ``raw`` starts a quoted value that it does not close."""
    return raw.strip()[:1] in ("'", '"') and closing_quote(raw.strip()) is None


def continued(raw, lines, number):
    """``raw`` and the lines after line ``number`` that a quoted value open at its end runs on to (compose reads a
    quoted value over several lines); ``(raw, how many lines it took)``."""
    taken = 0
    while left_open(raw) and number + taken < len(lines):
        raw, taken = raw + "\n" + lines[number + taken], taken + 1
    return raw, taken


def parse(text, source="hub/.env", strict=True, environ=None):
    """``NAME=value`` lines as compose reads a ``.env`` (comments and blank lines skipped, a BOM, ``export`` and
    spaces around the name allowed, a quoted value over several lines, ``$VAR`` and ``${VAR:-default}`` taken from
    the environment, else from the file's earlier lines), in order. A line compose would refuse:
    :class:`SettingsError` naming the file and the line, or (``strict=False``) the line is skipped."""
    environ, found, lines = os.environ if environ is None else environ, {}, text.lstrip("\ufeff").splitlines()
    number = 0
    while number < len(lines):
        line, number = lines[number], number + 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, equals, raw = line.partition("=")
        name = re.sub(r"^export\s+", "", name.strip())
        raw, taken = continued(raw, lines, number)
        try:
            if not (equals and NAME.fullmatch(name)) or left_open(raw):
                raise ValueError("NAME=値 の形に直してください（コメントは # で始め、引用符は閉じます）")
            found[name] = value_of(raw, lambda var: environ.get(var, found.get(var)))
        except ValueError as e:
            if strict:
                raise SettingsError(f"エラー: {source} の {number} 行目「{line.strip()[:40]}」が読めません。{e}。") from None
        number += taken
    return found


def load(path=None, required=SHARED):
    """The settings of ``path`` (``hub/.env``, :data:`SOURCE`); :class:`SettingsError` when it cannot be read or lacks
    one of ``required``."""
    path = Path(path or SOURCE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = "UTF-8 で保存し直してください" if isinstance(e, UnicodeDecodeError) else \
            f"{e.strerror or e}。リポジトリの hub/.env を取り直すか、管理者に相談してください"
        raise SettingsError(f"エラー: {path} が読めません（{why}）。") from None
    found = parse(text, str(path))
    missing = [name for name in required if name not in found]
    if missing:
        raise SettingsError(f"エラー: {path} に {', '.join(missing)} がありません。NAME=値 の行を書き足してください。")
    return found


def size_parts(text):
    """``(number, unit)`` of a Docker size (``8g``, ``1.5G``, ``64MiB``, ``8gb``, bytes); ValueError otherwise."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", str(text).strip().lower())
    if not found:
        raise ValueError("8g や 512m のような大きさにしてください")
    return found[1], found[2]


def size_in_bytes(text):
    """A Docker size (powers of 1024) -> bytes, 0 allowed; ValueError unless it is one (up to ``MAX_BYTES``)."""
    number, unit = size_parts(text)
    size = float(number) * UNITS[unit]
    if not size <= MAX_BYTES:
        raise ValueError(f"大きすぎます（{MAX_BYTES // 2**40}t まで）")
    return int(size)


def positive_size(text):
    """A size above 0 in bytes (0 would switch a limit off)."""
    if size_in_bytes(text) <= 0:
        raise ValueError("0 より大きくしてください（0 は上限なしになります）")
    return size_in_bytes(text)


def docker_size(text):
    """A size above 0, written as Docker, compose, JupyterHub and Kubernetes all read it: ``8g`` (a fraction in
    bytes)."""
    positive_size(text)
    number, unit = size_parts(text)
    return f"{int(number)}{unit}" if float(number).is_integer() else str(size_in_bytes(text))


def kube_quantity(size):
    """A Docker size (``8g``, powers of 1024) as a Kubernetes quantity (``8Gi``)."""
    number, unit = size_parts(docker_size(size))
    return f"{int(float(number))}{unit.upper()}i" if unit else number


def cpus(text):
    """A number of CPUs above 0 (0 would switch the limit off), at most ``MAX_CPUS``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_CPUS:
        raise ValueError(f"0 より大きく {MAX_CPUS} 以下の数にしてください（例: 4 や 0.5）")
    return value


def count(text):
    """A whole number above 0 (0 or less would switch a limit or a check off)."""
    if not str(text).strip().isdigit() or int(text) <= 0:
        raise ValueError("1 以上の整数にしてください（0 以下は上限やチェックを切ってしまいます）")
    return int(text)


def students(text):
    """Students per GPU: 1 to ``MAX_STUDENTS`` (more would round each one's share of its memory to 0, no cap)."""
    if not 1 <= count(text) <= MAX_STUDENTS:
        raise ValueError(f"1〜{MAX_STUDENTS} の人数にしてください（多すぎると 1 人分の GPU メモリが 0 になり、上限がなくなります）")
    return int(text)


def port(text):
    """A TCP port, 1 to 65535."""
    if not str(text).strip().isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("1〜65535 のポート番号にしてください")
    return int(text)


def cuda(text):
    """PyTorch's CUDA wheel tag, ``cuNNN``."""
    if not re.fullmatch(r"cu\d{3}", text):
        raise ValueError("cu126 や cu118 の形にしてください")
    return text


def folder(text):
    """An absolute folder on the server, or empty (none); a relative one would be a Docker volume's name."""
    if text and not text.startswith("/"):
        raise ValueError("/srv/datasets/mnist のような / で始まるフォルダーにするか、空にしてください")
    return text


def url(text):
    """The hub's address as students open it (``https://hub.lab.example``), or empty (``http://localhost:HUB_PORT``)."""
    if text and not re.fullmatch(r"https?://[^/\s]+", text):
        raise ValueError("https://hub.lab.example のように http:// か https:// で始まるアドレス（最後の / なし）に"
                         "するか、空にしてください")
    return text


def image(text):
    """A Docker image (``python:3.11-slim@sha256:...``): one word, not empty (compose would refuse the build)."""
    if not re.fullmatch(r"\S+", text):
        raise ValueError("python:3.11.11-slim-bookworm@sha256:... のような空白のない 1 語にしてください")
    return text


PARSERS = {"HUB_URL": url, "BASE_IMAGE": image, "MEM_LIMIT": docker_size, "SHM_SIZE": docker_size, "CPUS": cpus, "PIDS_LIMIT": count, "CUDA": cuda,
           "JUPYTER_PORT": port, "HUB_PORT": port, "DISK_QUOTA": positive_size, "DISK_RESERVE": size_in_bytes,
           "DISK_CHECK": count, "CULL_TIMEOUT": count, "MAX_PER_GPU": students, "MNIST_DIR": folder}


def checked(settings, name, source="hub/.env"):
    """``settings[name]`` read by its parser; :class:`SettingsError` naming ``source`` and the key."""
    parse_value = PARSERS.get(name, str)
    try:
        if "\n" in settings[name]:
            raise ValueError("値が複数行になっています。1 行に書いてください")
        return parse_value(settings[name])
    except (ValueError, OverflowError) as e:
        shown = settings[name].replace("\n", "\\n")
        where = f"{source} {shown}" if source.startswith("--") else f"{source} の {name}={shown}"
        raise SettingsError(f"エラー: {where} は使えません（{e}）。直してください。") from None
