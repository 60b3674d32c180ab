"""make_env on a server where things go wrong: a fake nvidia-smi and a fake docker (in tmp_path) that hang, fail or
answer in odd shapes, a broken hub/.env, names and options a student may give. Each mistake is one Japanese line and
an exit, never a traceback, never a file written somewhere else, never a limit switched off."""

import json
import os
import re
import socket
import stat

import pytest

from mnist_lab_deploy import make_env, settings

FAKE_DOCKER = """#!/bin/sh
case "$1" in
  version) [ -n "$FAKE_DOCKER_HANG" ] && exec sleep 30; echo 28.3.0 ;;
  ps) printf '%s\\n' $FAKE_DOCKER_IDS ;;
  inspect) shift; exec python3 -c "
import json, os, sys
state = json.load(open(os.environ['FAKE_DOCKER_STATE']))
if not isinstance(state, list) or not all(isinstance(c, dict) and 'Id' in c for c in state):
    print(json.dumps(state)); sys.exit(0)
found = [c for c in state if c['Id'] in sys.argv[1:]]
print(json.dumps(found)); sys.exit(0 if len(found) == len(sys.argv[1:]) else 1)" "$@" ;;
esac
"""


@pytest.fixture(autouse=True)
def reservations(tmp_path, monkeypatch):
    """The server's reservations file, this test's own."""
    monkeypatch.setattr(make_env, "RESERVATIONS", tmp_path / "reservations", raising=False)
    return tmp_path / "reservations"


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A student (UID 2000, "hanako") on a server with two GPUs and no other container; returns the state file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    smi(tmp_path, "0, 81000\n1, 40000")
    (bin_dir / "docker").chmod(0o755)
    state = tmp_path / "containers.json"
    state.write_text("[]")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    monkeypatch.setenv("FAKE_DOCKER_IDS", "")
    monkeypatch.setattr(os, "getuid", lambda: 2000)
    monkeypatch.setattr(os, "getgid", lambda: 2000)
    monkeypatch.setattr(make_env.getpass, "getuser", lambda: "hanako")
    return state


def smi(tmp_path, output, code=0):
    (tmp_path / "bin" / "nvidia-smi").write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    (tmp_path / "bin" / "nvidia-smi").chmod(0o755)


def container(name, port, gpu):
    return {"Id": name, "Config": {"Labels": {"com.docker.compose.project": f"mnist-lab-{name}"}},
            "HostConfig": {"PortBindings": {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
                           "DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": [str(gpu)]}]}}


def written(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def refused(capsys, *argv):
    """make_env's one-line refusal of ``argv`` (SystemExit or argparse's exit 2)."""
    with pytest.raises(SystemExit) as stopped:
        make_env.main(list(argv))
    said = str(stopped.value) if stopped.value.code not in (2,) else capsys.readouterr().err
    assert stopped.value.code != 0 and "\n" not in said.strip() and re.search(r"[\u3040-\u30ff]", said), said
    assert "Traceback" not in said and "Error" not in said, said
    return said


@pytest.mark.parametrize("args", [("--memory", "0g"), ("--cpus", "0"), ("--cpus", "0.0"), ("--cpus", "9999"),
                                  ("--memory", "999999999g"), ("--gpu", "99"), ("--gpu", "-1"), ("--gpu", "abc"),
                                  ("--max-per-gpu", "0"), ("--max-per-gpu", "-1"), ("--max-per-gpu", "1000"),
                                  ("--port", "65536"), ("--port", "-1"), ("--port", "80")])
def test_an_option_that_would_switch_a_limit_off_or_cannot_work_is_refused(tmp_path, server, capsys, args):
    said = refused(capsys, "--output", str(tmp_path / ".env"), *args)
    assert args[0] in said if args[0] == "--max-per-gpu" else args[0] in said or args[1] in said  # named, never "full"
    assert not (tmp_path / ".env").exists()


def test_a_privileged_port_is_called_privileged_not_busy(tmp_path, server, capsys):
    said = refused(capsys, "--output", str(tmp_path / ".env"), "--port", "80")
    assert "使われています" not in said and "1024" in said


def test_no_gpu_can_be_asked_for_and_a_broken_driver_says_so(tmp_path, server, capsys):
    path = tmp_path / ".env"
    assert make_env.main(["--output", str(path), "--gpu", "none"]) == 0
    assert written(path)["GPUS"] == "none"
    smi(tmp_path, "No devices were found", code=6)
    said = refused(capsys, "--output", str(tmp_path / "new.env"))
    assert "--gpu none" in said


def test_no_gpu_chosen_before_is_kept_until_a_gpu_is_asked_for(tmp_path, server):
    path = tmp_path / ".env"
    assert make_env.main(["--output", str(path), "--gpu", "none"]) == 0
    assert make_env.main(["--output", str(path), "--force", "--memory", "4g"]) == 0
    assert written(path)["GPUS"] == "none" and written(path)["MEM_LIMIT"] == "4g"
    assert make_env.main(["--output", str(path), "--force", "--gpu", "1"]) == 0
    assert (written(path)["GPUS"], written(path)["GPU_ID"]) == ("one", "1")


@pytest.mark.parametrize("names", [("山田", "佐藤"), ("..", "__"), ("Taro.Yamada", "taro-yamada")])
def test_two_students_never_share_a_compose_project(tmp_path, server, monkeypatch, capsys, names):
    users = []
    for uid, name in enumerate(names, 3000):
        monkeypatch.setattr(os, "getuid", lambda uid=uid: uid)
        monkeypatch.setattr(make_env.getpass, "getuser", lambda name=name: name)
        assert make_env.main(["--output", str(tmp_path / f"{uid}.env"), "--gpu", "none"]) == 0
        users.append(written(tmp_path / f"{uid}.env")["MNIST_LAB_USER"])
    assert users[0] != users[1] and all(re.fullmatch(r"[a-z0-9][a-z0-9_-]*", u) for u in users)


def test_a_uid_without_a_name_gets_a_project_named_by_its_uid(tmp_path, server, monkeypatch):
    def no_name():
        raise KeyError("getpwuid(): uid not found: 2000")

    monkeypatch.setattr(make_env.getpass, "getuser", no_name)
    assert make_env.main(["--output", str(tmp_path / ".env"), "--gpu", "0"]) == 0
    assert "2000" in written(tmp_path / ".env")["MNIST_LAB_USER"]


def test_a_symlinked_env_is_never_written_through(tmp_path, server, capsys):
    target = tmp_path / "hub.env"
    target.write_text("the admin's settings\n")
    (tmp_path / ".env").symlink_to(target)
    refused(capsys, "--output", str(tmp_path / ".env"), "--force")
    assert target.read_text() == "the admin's settings\n" and stat.S_IMODE(target.stat().st_mode) != 0o600


@pytest.mark.parametrize("where", ["folder", "missing folder", "read-only old"])
def test_an_env_that_cannot_be_written_is_one_line(tmp_path, server, capsys, where):
    path = {"folder": tmp_path / "d.env", "missing folder": tmp_path / "no" / ".env", "read-only old": tmp_path / ".env"}[where]
    if where == "folder":
        path.mkdir()
        refused(capsys, "--output", str(path), "--force")
    elif where == "missing folder":
        refused(capsys, "--output", str(path))
    else:
        path.write_text("GPU_ID=1\nNOTE=caf\xe9\n".encode("latin-1").decode("latin-1"), encoding="latin-1")
        path.chmod(0o400)
        assert make_env.main(["--output", str(path), "--force"]) == 0  # the student's own file, asked for
        assert written(path)["GPU_ID"] == "1" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_a_hanging_docker_is_given_up_with_a_note(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_DOCKER_HANG", "1")
    real_run = make_env.subprocess.run
    monkeypatch.setattr(make_env.subprocess, "run", lambda *a, **k: real_run(*a, **{**k, "timeout": min(k.get("timeout") or 99, 1)}))
    assert make_env.main(["--output", str(tmp_path / ".env")]) == 0
    assert re.search(r"[\u3040-\u30ff]", capsys.readouterr().err)


def test_a_hanging_nvidia_smi_is_one_line(tmp_path, server, monkeypatch, capsys):
    (tmp_path / "bin" / "nvidia-smi").write_text("#!/bin/sh\nexec sleep 30\n")
    from mnist_lab_deploy import gpu_policy

    real_run = gpu_policy.subprocess.run
    monkeypatch.setattr(gpu_policy.subprocess, "run", lambda *a, **k: real_run(*a, **{**k, "timeout": 1}))
    refused(capsys, "--output", str(tmp_path / ".env"))


@pytest.mark.parametrize("shape", [{"Id": "x"}, None, [{"Id": "x"}], [{"Id": "x", "Config": {"Labels": None},
                                   "HostConfig": {"PortBindings": {"8888/tcp": [{"HostPort": 8842}]}}}]])
def test_docker_inspect_of_an_unexpected_shape_is_the_usual_note(tmp_path, server, monkeypatch, capsys, shape):
    server.write_text(json.dumps(shape))
    monkeypatch.setenv("FAKE_DOCKER_IDS", "x")
    assert make_env.main(["--output", str(tmp_path / ".env")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_a_container_that_vanished_does_not_hide_the_others_claims(tmp_path, server, monkeypatch, capsys):
    server.write_text(json.dumps([container("taro", 8842, 0)]))
    monkeypatch.setenv("FAKE_DOCKER_IDS", "taro gone")
    smi(tmp_path, "0, 81000")
    refused(capsys, "--output", str(tmp_path / ".env"), "--max-per-gpu", "1")
    refused(capsys, "--output", str(tmp_path / ".env"), "--port", "8842")


def test_a_warning_from_nvidia_smi_is_not_a_driver_error(tmp_path, server):
    smi(tmp_path, "WARNING: infoROM is corrupted at gpu 0000:41:00.0\n0, 81000")
    assert make_env.main(["--output", str(tmp_path / ".env")]) == 0
    assert written(tmp_path / ".env")["GPU_ID"] == "0"


@pytest.mark.parametrize("line", ["MEM_LIMIT=8G", "MEM_LIMIT=\"8g\"", "CPUS=0.5 ", "CPUS=4 # per student",
                                  "MEM_LIMIT=1.5g"])
def test_a_hub_env_value_compose_accepts_is_accepted(tmp_path, server, monkeypatch, line):
    name = line.split("=")[0]
    env = tmp_path / "hub.env"
    env.write_text(re.sub(rf"(?m)^{name}=.*$", line, settings.SOURCE.read_text()))
    monkeypatch.setattr(settings, "SOURCE", env)
    assert make_env.main(["--output", str(tmp_path / ".env"), "--gpu", "none"]) == 0
    assert written(tmp_path / ".env")[name] == str(settings.checked(settings.load(env), name)).removesuffix(".0")


@pytest.mark.parametrize("change", ["MEM_LIMIT=0g", "MEM_LIMIT=", "\ufeffMEM_LIM", "PIDS_LIMIT=lots", "no MEM_LIMIT",
                                    "folder"])
def test_a_broken_hub_env_names_hub_env_not_a_flag_the_student_never_gave(tmp_path, server, monkeypatch, capsys,
                                                                         change):
    env = tmp_path / "hub.env"
    if change == "folder":
        env.mkdir()
    else:
        text = settings.SOURCE.read_text()
        text = text.replace("\nMEM_LIMIT=", "\n#MEM_LIMIT=") if change == "no MEM_LIMIT" else \
            re.sub(rf"(?m)^{change.split('=')[0].lstrip(chr(0xfeff))}=.*$", change, text)
        env.write_text(text if change[0] != "\ufeff" else change + "\n" + text)
    monkeypatch.setattr(settings, "SOURCE", env)
    said = refused(capsys, "--output", str(tmp_path / ".env"))
    assert "hub.env" in said and "--memory" not in said and "--cpus" not in said


def test_usage_mistakes_are_japanese(tmp_path, server, capsys):
    said = refused(capsys, "--output", str(tmp_path / ".env"), "--frobnicate")
    assert "--frobnicate" in said


@pytest.mark.parametrize("line", ['GPU_ID="1"', "GPU_ID = 1", "export GPU_ID=1", "\ufeffGPU_ID=1"])
def test_a_hand_edited_env_keeps_its_gpu_as_compose_reads_it(tmp_path, server, line):
    path = tmp_path / ".env"
    path.write_text(line + "\nNOTE=caf\udce9\n", errors="surrogateescape")  # and a byte that is not UTF-8
    assert make_env.main(["--output", str(path), "--force"]) == 0
    assert written(path)["GPU_ID"] == "1"


def test_a_gpu_asked_for_by_number_still_keeps_to_the_maximum(tmp_path, server, monkeypatch, capsys):
    server.write_text(json.dumps([container("taro", 8842, 1)]))
    monkeypatch.setenv("FAKE_DOCKER_IDS", "taro")
    said = refused(capsys, "--output", str(tmp_path / ".env"), "--gpu", "1", "--max-per-gpu", "1")
    assert "--max-per-gpu" in said
    assert make_env.main(["--output", str(tmp_path / ".env"), "--gpu", "0", "--max-per-gpu", "1"]) == 0


def with_hub_env(tmp_path, monkeypatch, name, lines):
    """hub/.env with its ``name`` line replaced by ``lines``, as make_env's settings."""
    env = tmp_path / "hub.env"
    env.write_text(re.sub(rf"(?m)^{name}=.*$", lambda _: lines, settings.SOURCE.read_text()))
    monkeypatch.setattr(settings, "SOURCE", env)


@pytest.mark.parametrize("name, lines, shell, want", [
    ("MEM_LIMIT", 'MEM_LIMIT="8g"  # per student', {}, "8g"),
    ("CPUS", "NCPU=2\nCPUS=${NCPU:-4}", {}, "2"),
    ("CPUS", "CPUS=${NCPU:-4} # cores", {}, "4"),
    ("CPUS", "NCPU=2\nCPUS=${NCPU}", {"NCPU": "3"}, "3"),  # compose: the shell's value wins
    ("BASE_IMAGE", "IMG=python:3.11.11-slim-bookworm\nBASE_IMAGE=${IMG}", {}, "python:3.11.11-slim-bookworm"),
    ("BASE_IMAGE", "IMG=python:3.11.11-slim-bookworm\nBASE_IMAGE=$IMG", {}, "python:3.11.11-slim-bookworm"),
    ("MEM_LIMIT", 'MEM_LIMIT=4g\nNOTE="two\nlines"', {}, "4g"),  # a multi-line value elsewhere is no reason to stop
])
def test_hub_env_values_are_interpolated_as_compose_does(tmp_path, server, monkeypatch, name, lines, shell, want):
    monkeypatch.delenv("NCPU", raising=False)
    for variable, value in shell.items():
        monkeypatch.setenv(variable, value)
    with_hub_env(tmp_path, monkeypatch, name, lines)
    assert make_env.main(["--output", str(tmp_path / ".env"), "--gpu", "none"]) == 0
    assert written(tmp_path / ".env")[name] == want


@pytest.mark.parametrize("name, lines", [("BASE_IMAGE", 'BASE_IMAGE="python:3.11\nslim"'), ("BASE_IMAGE", "BASE_IMAGE=${IMG}"),
                                         ("CPUS", "CPUS=${NCPU:?set NCPU}"), ("CUDA", 'CUDA="cu126')])
def test_a_hub_env_value_that_cannot_be_copied_whole_is_one_line(tmp_path, server, monkeypatch, capsys, name, lines):
    monkeypatch.delenv("IMG", raising=False)
    monkeypatch.delenv("NCPU", raising=False)
    with_hub_env(tmp_path, monkeypatch, name, lines)
    said = refused(capsys, "--output", str(tmp_path / ".env"), "--gpu", "none")
    assert "hub.env" in said and not (tmp_path / ".env").exists()


def test_your_own_running_container_keeps_its_port(tmp_path, server, monkeypatch):
    """--force while your own container runs (its port held, as by docker-proxy): the port stays, so does your ssh -L
    line; --port with that same port is yours too. A port another student's container claims is never kept."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        path = tmp_path / ".env"
        path.write_text(f"HOST_PORT={port}\nGPU_ID=1\nGPUS=one\n")
        server.write_text(json.dumps([{**container("hanako", port, 1), "Id": "mine"}, container("taro", 8900, 0)]))
        monkeypatch.setenv("FAKE_DOCKER_IDS", "mine taro")
        assert make_env.main(["--output", str(path), "--force"]) == 0
        assert written(path)["HOST_PORT"] == str(port)
        assert make_env.main(["--output", str(path), "--force", "--port", str(port)]) == 0
        assert written(path)["HOST_PORT"] == str(port)
    path.write_text("HOST_PORT=8900\n")
    assert make_env.main(["--output", str(path), "--force"]) == 0
    assert written(path)["HOST_PORT"] != "8900"


def test_a_shell_export_compose_would_use_instead_is_one_note(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("JUPYTER_TOKEN", "mytoken123")
    monkeypatch.setenv("CPUS", "64")
    monkeypatch.setenv("HOST_PORT", "8842")
    assert make_env.main(["--output", str(tmp_path / ".env"), "--port", "8842", "--gpu", "none"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "JUPYTER_TOKEN" in line]
    assert len(notes) == 1 and "CPUS" in notes[0] and "HOST_PORT" not in notes[0]  # the same value is no conflict
    monkeypatch.delenv("JUPYTER_TOKEN")
    monkeypatch.delenv("CPUS")
    assert make_env.main(["--output", str(tmp_path / ".env"), "--force", "--gpu", "none"]) == 0
    assert "CPUS" not in capsys.readouterr().err


def test_a_gpu_asked_for_on_a_server_without_nvidia_smi_says_there_is_none(tmp_path, server, capsys):
    (tmp_path / "bin" / "nvidia-smi").unlink()
    said = refused(capsys, "--output", str(tmp_path / ".env"), "--gpu", "0")
    assert "nvidia-smi" in said and "--gpu none" in said and "GPU: " not in said  # no empty list of GPUs
    assert make_env.main(["--output", str(tmp_path / ".env"), "--gpu", "none"]) == 0


def test_two_students_before_either_has_a_container_get_their_own_port_and_gpu(tmp_path, server, monkeypatch,
                                                                               reservations):
    """UIDs 4242 and 4442 try the same port first; nothing holds it until a container exists."""
    def student(uid, *argv):
        monkeypatch.setattr(os, "getuid", lambda: uid)
        monkeypatch.setattr(make_env.getpass, "getuser", lambda: f"s{uid}")
        assert make_env.main(["--output", str(tmp_path / f"{uid}.env"), "--max-per-gpu", "1", *argv]) == 0
        return written(tmp_path / f"{uid}.env")

    first, second = student(4242), student(4442)
    assert first["HOST_PORT"] != second["HOST_PORT"] and first["GPU_ID"] != second["GPU_ID"]
    assert student(4242, "--force")["HOST_PORT"] == first["HOST_PORT"]  # your own reservation is yours
    with pytest.raises(SystemExit):
        student(4642)  # both GPUs taken (--max-per-gpu 1), though no container runs yet
    assert stat.S_IMODE(reservations.stat().st_mode) == 0o666
    monkeypatch.setattr(make_env, "RESERVED_FOR", 0)  # reservations that were never started expire
    assert student(4642)["HOST_PORT"] == first["HOST_PORT"]


def test_a_reservations_lock_held_too_long_is_a_note_not_a_hang(tmp_path, server, monkeypatch, capsys, reservations):
    import fcntl

    monkeypatch.setattr(make_env, "LOCK_WAIT", 0.3)
    with open(reservations, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert make_env.main(["--output", str(tmp_path / ".env")]) == 0
    assert re.search(r"[\u3040-\u30ff]", capsys.readouterr().err)


def test_a_second_make_env_at_the_same_moment_never_replaces_the_first_ones_env(tmp_path, server, monkeypatch,
                                                                              reservations):
    """Two runs started together both pass the first check; the one that comes second to the lock must find the
    first one's .env and leave it (its token is the one in the URL printed)."""
    env = tmp_path / ".env"
    real_claims = make_env.docker_claims

    def meanwhile(project):
        env.write_text("JUPYTER_TOKEN=the-first-runs-token\n")  # the other run wrote it while this one asked docker
        return real_claims(project)

    monkeypatch.setattr(make_env, "docker_claims", meanwhile)
    with pytest.raises(SystemExit):
        make_env.main(["--output", str(env)])
    assert env.read_text() == "JUPYTER_TOKEN=the-first-runs-token\n"


@pytest.mark.parametrize("shape", ["folder", "link"])
def test_a_folder_or_link_as_output_is_refused_the_same_with_or_without_force(tmp_path, server, capsys, shape):
    """The first refusal already says what is wrong: it never sends the student to --force, which then fails."""
    path = tmp_path / "d.env"
    if shape == "folder":
        path.mkdir()
    else:
        (tmp_path / "hub.env").write_text("the admin's settings\n")
        path.symlink_to(tmp_path / "hub.env")
    assert refused(capsys, "--output", str(path)) == refused(capsys, "--output", str(path), "--force")
    assert path.is_dir() if shape == "folder" else (tmp_path / "hub.env").read_text() == "the admin's settings\n"


def test_an_empty_output_name_is_refused_and_nothing_is_written(tmp_path, server, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert refused(capsys, "--output", "") == refused(capsys, "--output", "", "--force")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_output_in_a_folder_that_cannot_be_searched_is_one_line(tmp_path, server, capsys, monkeypatch):
    """A non-root user's ``--output /root/x.env``: looking at the name is refused (EACCES). Root may look anywhere,
    so the refusal is injected where the file system gives it."""
    path = tmp_path / "locked" / "x.env"
    real_stat, real_lstat = os.stat, os.lstat

    def refusing(real):
        def look(target, *args, **kwargs):
            if os.fspath(target) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real(target, *args, **kwargs)
        return look

    monkeypatch.setattr(os, "stat", refusing(real_stat))
    monkeypatch.setattr(os, "lstat", refusing(real_lstat))
    refused(capsys, "--output", str(path))
    assert not (tmp_path / "locked").exists()
