"""Disk: a quota on each student's /work, kept by a watcher, and room kept for the hub's own database.

Docker's local volumes have no size limit on an ordinary file system, so the hub watches instead: every
``every`` seconds (JupyterHub's poll of each running server) one helper container from the hub's image measures
the /work volume of every running server (``du``, read-only, as root with CAP_DAC_READ_SEARCH only: a student's
unreadable folder is counted too). A student's server is stopped, and told why in Japanese at their next start
(mnist_lab_deploy/hub/messages.py), when

- the hub's file system is short of room and their /work grew since the last look, or
- their /work reached ``quota`` (and grew past what it held when the watcher last stopped it: a student who
  starts again over the quota to delete files is left alone while they delete).

A watcher acts after the fact: between two looks a student can write as fast as the disk allows, and a disk
filled at once leaves the hub itself unable to write its database until the next look. So the hub keeps a
``reserve``-sized file beside its database. When the watcher finds less than ``reserve`` free, it deletes that
file, which gives the hub that much room at once; it makes the file again once there is twice as much free.
While the file is missing the disk is short of room: every server that grows is stopped.
The writable layer of a student's container takes nothing: it is read-only, /tmp a tmpfs counted in their memory.
"""

import asyncio
import os
import time
from pathlib import Path

from . import messages
from .helper import own_image, run_helper

BALLAST = "disk-reserve"


def verdict(used, before, quota, baseline, short, free):
    """The note to stop a server with (``messages.note``), or None. ``used``/``before``: its /work now and at the
    previous look (None: first look); ``baseline``: what it held when last stopped for its quota; ``short``: the
    hub's file system is short of room (``free`` bytes free at the look)."""
    if short and before is not None and used > before:
        return messages.note("disk-full", free)
    if used >= quota and used > baseline:
        return messages.note("disk-quota", used, quota)
    return None


def parse_du(output):
    """``du -s -B1`` lines (size, tab, /v/NAME) -> {NAME: bytes}."""
    sizes = {}
    for line in output.splitlines():
        size, _, path = line.partition("\t")
        if size.strip().isdigit() and path:
            sizes[Path(path).name] = int(size)
    return sizes


class DiskWatch:
    """One measurement per ``every`` seconds for the whole class, shared by every server's poll."""

    def __init__(self, quota, reserve, every, data_dir):
        self.quota, self.reserve, self.every = quota, reserve, every
        self.ballast = Path(data_dir) / BALLAST
        self.sizes, self.before, self.measured_at = {}, {}, float("-inf")
        self.free_at_look, self.short = 0, False
        self._lock = asyncio.Lock()

    def free(self):
        stat = os.statvfs(self.ballast.parent)
        return stat.f_bavail * stat.f_frsize

    async def check(self, spawner):
        """The note to stop ``spawner``'s server with, or None (also None when its size cannot be read now)."""
        await self.measure(spawner)
        name = spawner.user.name
        if name not in self.sizes:
            return None
        used = self.sizes[name]
        if used < self.quota:
            spawner.disk_baseline = 0  # back under the quota: the next time it reaches it, it stops
        return verdict(used, self.before.get(name), self.quota, spawner.disk_baseline, self.short, self.free_at_look)

    async def measure(self, spawner):
        async with self._lock:
            if time.monotonic() - self.measured_at < 0.8 * self.every:
                return
            self.measured_at = time.monotonic()
            self.free_at_look = self.free()
            self.keep_room(spawner.log)
            self.short = not self.ballast.exists()
            volumes = await self.running_volumes(spawner)
            if not volumes:
                self.sizes = {}
                return
            binds = {volume: f"/v/{name}" for name, volume in volumes.items()}
            try:
                output = await run_helper(spawner, await own_image(spawner),
                                          ["sh", "-c", "du -s -x -B1 /v/* || true"], cap_add=["DAC_READ_SEARCH"],
                                          binds=binds)
            except Exception as e:  # noqa: BLE001 -- never stop a server on a failed measurement
                spawner.log.warning("disk watcher: could not measure the students' folders: %s", e)
                return
            self.before, self.sizes = self.sizes, parse_du(output)

    async def running_volumes(self, spawner):
        """{student: name of the volume at their server's /work} for every running server."""
        volumes = {}
        for container in await spawner.docker("containers", filters={"label": "mnist-lab.student"}):
            for mount in container.get("Mounts", []):
                if mount.get("Destination") == "/work" and mount.get("Type") == "volume":
                    volumes[container["Labels"]["mnist-lab.student"]] = mount["Name"]
        return volumes

    def keep_room(self, log):
        """Delete the reserve file when the disk is (nearly) full; make it again when there is room."""
        free = self.free_at_look
        if self.ballast.exists() and free < self.reserve:
            self.ballast.unlink()
            log.warning("disk watcher: only %d bytes free: released the hub's reserve of %d bytes; servers "
                             "that keep writing are stopped", free, self.reserve)
        elif not self.ballast.exists() and free >= 2 * self.reserve:
            try:
                fill(self.ballast, self.reserve)
            except OSError as e:
                self.ballast.unlink(missing_ok=True)
                log.warning("disk watcher: could not keep a reserve of %d bytes: %s", self.reserve, e)


def fill(path, size):
    """A file of ``size`` bytes, really allocated on disk."""
    with open(path, "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError:  # a file system without fallocate: write it
            f.writelines(b"\0" * 2**20 for _ in range(0, size, 2**20))
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())
