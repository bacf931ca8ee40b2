"""Stopping a child process as a user would: Ctrl-C, then SIGKILL if it does not end. Free of ROS and
torch, so that the Triton server launcher (serving/process.py) runs on a GPU machine without ROS,
as the node launcher (testing/node_process.py) runs beside ROS."""

import signal
import subprocess


def interrupt(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Ctrl-C (SIGINT) to a process that still runs, and SIGKILL if it has not ended in `timeout_s`."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
