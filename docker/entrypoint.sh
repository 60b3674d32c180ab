#!/bin/sh
# Give whatever UID the container runs as (compose runs it as the student's own) a name, so that `whoami`,
# getpass.getuser() and ~ work, without making /etc/passwd writable: nss_wrapper (LD_PRELOAD, set in the
# Dockerfile for every process, `docker exec` too) reads /tmp/passwd, a copy with that UID's line (re)named.
# The name: MNIST_LAB_USER (compose), else JUPYTERHUB_USER (spawned by the hub), else the image's own.
# Spawned by the hub, the image is read-only and /tmp an empty tmpfs: HOME (/tmp/home) is made here.
# MNIST_LAB_DATA (/work/data as the image sets it) is made when it is missing and the folder above it exists: a
# fresh student volume (the hub, MNIST_DIR empty) or a fresh clone (standalone) has none, and mnist_lab refuses a
# named folder that does not exist. An existing one (the hub's read-only /data/mnist) is never touched.
# Then the command: start-notebook (standalone) or start-singleuser (the hub's), which chooses the mode.
mkdir -p "${HOME:-/tmp/home}"
data="${MNIST_LAB_DATA:-}"
if [ -n "$data" ] && [ ! -e "$data" ] && [ ! -L "$data" ] && [ -d "$(dirname "$data")" ]; then
    mkdir "$data" 2>/dev/null || echo "MNIST のフォルダー $data を作れませんでした（最初の MNIST のセルで案内が出ます）。" >&2
fi
uid=$(id -u)
name="${MNIST_LAB_USER:-${JUPYTERHUB_USER:-}}"
if [ -z "$name" ] && ! grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd; then
    name=student
fi
{
    if [ -n "$name" ]; then
        grep -v "^[^:]*:[^:]*:$uid:" /etc/passwd
        echo "$name:x:$uid:$(id -g):mnist-lab student:${HOME:-/tmp}:/bin/bash"
    else
        cat /etc/passwd
    fi
} >/tmp/passwd
exec "$@"
