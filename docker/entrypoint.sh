#!/bin/sh
# Give whatever UID the container runs as (compose runs it as the student's own) a name, so that `whoami`,
# getpass.getuser() and ~ work, without making /etc/passwd writable: nss_wrapper (LD_PRELOAD, set in the
# Dockerfile for every process, `docker exec` too) reads /tmp/passwd, a copy with that UID's line (re)named.
# The name: MNIST_LAB_USER (compose), else JUPYTERHUB_USER (spawned by the hub), else the image's own.
# Spawned by the hub, the image is read-only and /tmp an empty tmpfs: HOME (/tmp/home) is made here.
# Then the command: start-notebook (standalone) or start-singleuser (the hub's), which chooses the mode.
mkdir -p "${HOME:-/tmp/home}"
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
