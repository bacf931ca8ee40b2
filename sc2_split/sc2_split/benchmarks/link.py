"""An emulated network link between a robot and an edge machine: two network namespaces joined by a
veth pair, each direction shaped to a bit rate with an HTB qdisc (needs root and iproute2).

This kernel has no netem (nor tbf): the rate is enforced on the wire, the round-trip delay is not,
and the benchmark adds it to each measured latency instead (one round trip per frame on either path).
"""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

ROBOT_ADDRESS, EDGE_ADDRESS = "10.77.0.1", "10.77.0.2"


@dataclass(frozen=True)
class Link:
    robot: list[str]  # command prefix that runs a program in the robot's namespace
    edge: list[str]
    robot_address: str = ROBOT_ADDRESS
    edge_address: str = EDGE_ADDRESS


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def emulated_link(mbit: float, tag: str = "sc2") -> Iterator[Link]:
    robot_ns, edge_ns = f"{tag}_robot", f"{tag}_edge"
    for ns in (robot_ns, edge_ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # left over from a killed run
        _ip("netns", "add", ns)
    try:
        _ip(
            "link",
            "add",
            "veth_robot",
            "netns",
            robot_ns,
            "type",
            "veth",
            "peer",
            "name",
            "veth_edge",
            "netns",
            edge_ns,
        )
        for ns, dev, address in (
            (robot_ns, "veth_robot", ROBOT_ADDRESS),
            (edge_ns, "veth_edge", EDGE_ADDRESS),
        ):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
            # DDS discovery is multicast: send it out of the veth.
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
            shape = ["ip", "netns", "exec", ns, "tc"]
            subprocess.run(
                [*shape, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10"],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [
                    *shape,
                    "class",
                    "add",
                    "dev",
                    dev,
                    "parent",
                    "1:",
                    "classid",
                    "1:10",
                    "htb",
                    "rate",
                    f"{mbit}mbit",
                    "ceil",
                    f"{mbit}mbit",
                ],
                check=True,
                capture_output=True,
            )
        yield Link(["ip", "netns", "exec", robot_ns], ["ip", "netns", "exec", edge_ns])
    finally:
        for ns in (robot_ns, edge_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
