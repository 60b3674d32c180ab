"""Short-lived helper containers the hub runs from its own image (a student's network rules, the size of the
students' folders): each does one fixed command with only the capabilities it needs, and is removed."""

import socket

_own_image = []


async def own_image(spawner):
    """The image ID of the hub's own container (the hub runs in a container whose hostname is its ID)."""
    if not _own_image:
        _own_image.append((await spawner.docker("inspect_container", socket.gethostname()))["Image"])
    return _own_image[0]


async def run_helper(spawner, image, command, network_mode="none", cap_add=(), environment=None, binds=None):
    """Run ``command`` in a throwaway container from ``image`` on the engine ``spawner`` talks to (``binds``:
    volume name -> read-only path); return its output. Raise RuntimeError with the output's end when it fails."""
    binds = binds or {}
    host_config = spawner.client.create_host_config(
        network_mode=network_mode, cap_drop=["ALL"], cap_add=list(cap_add), security_opt=["no-new-privileges"],
        binds={name: {"bind": path, "mode": "ro"} for name, path in binds.items()})
    container = await spawner.docker("create_container", image=image, command=command, environment=environment,
                                     host_config=host_config, volumes=list(binds.values()),
                                     labels={"mnist-lab.helper": "hub"})
    try:
        await spawner.docker("start", container["Id"])
        status = (await spawner.docker("wait", container["Id"], timeout=120))["StatusCode"]
        output = (await spawner.docker("logs", container["Id"], stdout=True, stderr=True)).decode(errors="replace")
    finally:
        await spawner.docker("remove_container", container["Id"], force=True)
    if status != 0:
        raise RuntimeError(" ".join(output.split())[-300:] or f"exit status {status}")
    return output
