"""Subscriptions that also tell which DDS publisher sent each message: the sender, which no field of
the message can forge, so that per-sender accounting (sequence_gaps.py) counts each head apart."""

from collections.abc import Callable, Mapping
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription


def subscribe_with_sender(
    node: Node, msg_type: Any, topic: str, callback: Callable[[Any, bytes], None], qos: QoSProfile
) -> Subscription:
    """`callback(msg, sender)` for each message on `topic`; the sender is the publisher's GID. rclpy
    hands a callback the MessageInfo since Iron; on Humble every message has the sender b""."""
    if not hasattr(Subscription, "CallbackType"):
        return node.create_subscription(msg_type, topic, lambda msg: callback(msg, b""), qos)

    # rclpy's MessageInfo (a TypedDict from Kilted on; Jazzy passes a plain dict and names no type).
    def with_sender(msg: Any, info: Mapping[str, Any] | None) -> None:
        gid = (info or {}).get("publisher_gid") or {}
        callback(msg, bytes(gid.get("data", b"")))

    return node.create_subscription(msg_type, topic, with_sender, qos)
