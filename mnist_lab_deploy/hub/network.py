"""A student's server reaches the hub's API and, if the lab allows it, the internet; nothing of the other students,
of this server itself or of the lab's private networks, on any port.

The rules live in the student's own network namespace (a container's iptables, not the host's): the student
holds no capability (cap_drop ALL, no-new-privileges), so cannot change them, and they go away with the container.
A short-lived helper from the hub's image, started by the hub on the student's namespace with NET_ADMIN only,
loads them right after the container starts (before the hub routes anyone to it). They do not depend on the
host's firewall or on the Docker version.

- out: to the hub network only TCP port 8081 (the hub's API; no other student listens there, see "in"), to this
  server's own addresses (learned from its namespace at each start: docker0, br-..., eth0...) nothing, to private,
  link-local, shared and multicast ranges nothing, to the rest (the internet) only when ``internet``;
- in: only TCP ``server_port`` (the Jupyter server's, JUPYTER_PORT; the hub's proxy reaches it) from the hub
  network, and answers;
- IPv6: nothing but loopback.

A connection between two students would need port 8081 for the sender and the Jupyter port for the receiver at once.
"""

import ipaddress
import re

from .helper import run_helper

HUB_API_PORT = 8081
NOT_INTERNET = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")
HELPER_SCRIPT = """set -e
printf '%s' "$RULES_V4" | iptables-restore
if [ -e /proc/net/if_inet6 ]; then printf '%s' "$RULES_V6" | ip6tables-restore; fi
"""


def ipv4_rules(subnets, host_addresses, internet, server_port):
    """iptables-restore input (filter table) for a Jupyter server listening on ``server_port``, on ``subnets`` (the
    hub network's) of a server whose own addresses are ``host_addresses``."""
    subnets = [str(ipaddress.ip_network(s)) for s in subnets if ipaddress.ip_network(s).version == 4]
    hosts = sorted({str(a) for a in map(ipaddress.ip_address, host_addresses) if a.version == 4})
    lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT DROP [0:0]",
             "-A INPUT -i lo -j ACCEPT",
             "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
    lines += [f"-A INPUT -s {s} -p tcp --dport {server_port} -j ACCEPT" for s in subnets]
    lines += ["-A OUTPUT -o lo -j ACCEPT",
              "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
    lines += [f"-A OUTPUT -d {a}/32 -j REJECT --reject-with icmp-admin-prohibited" for a in hosts]
    lines += [f"-A OUTPUT -d {s} -p tcp --dport {HUB_API_PORT} -j ACCEPT" for s in subnets]
    lines += [f"-A OUTPUT -d {s} -j REJECT --reject-with icmp-admin-prohibited" for s in [*subnets, *NOT_INTERNET]]
    lines += ["-A OUTPUT -j ACCEPT" if internet else "-A OUTPUT -j REJECT --reject-with icmp-admin-prohibited",
              "COMMIT", ""]
    return "\n".join(lines)


IPV6_RULES = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
COMMIT
"""


def addresses_in(ip_addr_output):
    """Every address in ``ip -o addr show``'s output."""
    return [match.group(1) for match in re.finditer(r"\binet6? ([0-9a-fA-F.:]+)/\d+", ip_addr_output)]


def subnets_of(network):
    """The subnets of a Docker network (``docker network inspect``'s JSON)."""
    return [config["Subnet"] for config in (network.get("IPAM") or {}).get("Config") or [] if config.get("Subnet")]


async def fence(spawner, image, network_name, internet, server_port):
    """Load the rules into the network namespace of ``spawner``'s running container, using helpers from ``image``."""
    network = await spawner.docker("inspect_network", network_name)
    hosts = addresses_in(await run_helper(spawner, image, ["ip", "-o", "addr", "show"], network_mode="host"))
    env = {"RULES_V4": ipv4_rules(subnets_of(network), hosts, internet, server_port), "RULES_V6": IPV6_RULES}
    await run_helper(spawner, image, ["sh", "-c", HELPER_SCRIPT], network_mode=f"container:{spawner.container_id}",
                     cap_add=["NET_ADMIN", "NET_RAW"], environment=env)
