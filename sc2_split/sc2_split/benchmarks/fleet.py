"""One edge GPU for a fleet: N robots at 30 Hz each against N in-process tails (one process and one
model copy per robot, batch 1, as without a server) and against one served tail (dynamic batching
across robots), served by `tail_server` (PyTriton: its instances share one Python process) or by a
standalone `tritonserver` on a written repository (one backend process per instance), side by side
with `--serve tail_server:2 --serve tritonserver:8`. Robots are processes that send recorded coded
frames at their camera's rate, all at once or at random phases (`--phases`); a served robot sends
through the tail node's own client (serving/client.py), with no ROS in between, so that the figures
are the tail's.

    python -m sc2_split.benchmarks.fleet --model demo_fp:demo_fp_beta4.5_stage2 --robots 1 4 16 32 \
        --serve tritonserver:8 --serve tail_server:2

Per row: aggregate frames/s answered, per-robot request latency p50/p99 (send to detections, the
worst robot's), frames dropped or lost, GPU memory in use on the device and edge CPU (cores busy in
the tail processes, or in the server's process tree and, apart, in the robots' clients, which a tail
node in client mode runs on the edge); for a served row also what the server did, from Triton's
own statistics (batches by size, a frame's queueing, a batch's execution) and the GPU's utilization.
`--table FILE...` prints the rows of JSON files as markdown,
with what each added robot costs in GPU memory and edge CPU.
"""

import argparse
import json
import multiprocessing
import os
import pickle
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

RATE_HZ = 30.0
HEIGHT, WIDTH = 480, 640


@dataclass(frozen=True)
class Serving:
    """A served setting, "SERVER:INSTANCES": `tail_server` (PyTriton), or `tritonserver` (the PyTriton
    wheel's binary on the repository `tail_server --write-repository` writes), with that many
    instances of the model on the device."""

    server: str
    instances: int

    @classmethod
    def parse(cls, text: str) -> "Serving":
        server, _, count = text.partition(":")
        if server not in ("tail_server", "tritonserver") or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not tail_server:N or tritonserver:N")
        return cls(server, int(count))

    def __str__(self) -> str:
        return f"{self.server}:{self.instances}"

    @property
    def mode(self) -> str:
        return f"served, {self.server} x{self.instances}"


@dataclass(frozen=True)
class RobotReport:
    sent: int
    answered: int
    dropped: int  # not sent: the robot's requests in flight were all taken (or its tail was busy)
    lost: int  # sent, never answered (timeouts, refusals)
    latencies_ms: list[float]
    lost_reasons: dict[str, int]


def record(spec: str, codec: str, count: int, out: Path) -> tuple[str, Path]:
    """(model spec with a checkpoint every process loads, pickled coded frames). Random weights are
    saved once, so that head, server and tails agree on the model id."""
    # Here and in the in-process tails only: the robot processes, which import this module anew,
    # stay as light as a tail node's client.
    import torch

    from sc2_split.data import sample_frames
    from sc2_split.frames import CodedFrame
    from sc2_split.models.build import build_detector, model_id, save_checkpoint
    from sc2_split.models.config import bundled_config_path, checkpoint_path, load_model_config
    from sc2_split.models.split import Head, image_geometry
    from sc2_split.tail import TailPipeline

    name, _, checkpoint = spec.partition(":")
    if not checkpoint:
        torch.manual_seed(0)
        checkpoint = str(out / f"{name}.pt")
        save_checkpoint(build_detector(load_model_config(bundled_config_path(name))), checkpoint)
    model = build_detector(load_model_config(bundled_config_path(name)), checkpoint_path(checkpoint))
    geometry = image_geometry(model, HEIGHT, WIDTH)
    head, identity = Head(model, geometry).eval(), model_id(name, model)
    with torch.inference_mode(), TailPipeline(model, identity) as tail:
        coder = tail.codecs[codec]
        frames = [
            CodedFrame(coder.encode(head(torch.from_numpy(f)).numpy()), geometry, identity)
            for f in sample_frames(HEIGHT, WIDTH, count)
        ]
    path = out / f"{name}_{codec}.pkl"
    path.write_bytes(pickle.dumps(frames))
    return f"{name}:{checkpoint}", path


def served_robot(
    url: str, frames_path: str, warmup_s: float, seconds: float, timeout_s: float, ready, start, queue
) -> None:
    """A robot process: frames at RATE_HZ through ServedTail, latencies of those sent after warmup."""
    from sc2_split.serving.client import ServedTail

    frames = pickle.loads(Path(frames_path).read_bytes())
    tail = ServedTail(url, max_in_flight=4, timeout_s=timeout_s)
    reasons: Counter[str] = Counter()
    ready.release()
    start_at = start.get()
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"sent": 0, "answered": 0, "dropped": 0, "lost": 0}
    measure_from, end = start_at + warmup_s, start_at + warmup_s + seconds
    i = 0
    while time.time() < start_at:
        time.sleep(0.001)
    next_at = time.perf_counter()
    while time.time() < end:
        sent_at = time.perf_counter()
        measured = time.time() >= measure_from

        def done(result: object, sent_at: float = sent_at, measured: bool = measured) -> None:
            with lock:
                if not measured:
                    return
                if isinstance(result, Exception):
                    counts["lost"] += 1
                    reasons[getattr(result, "reason", type(result).__name__)] += 1
                else:
                    counts["answered"] += 1
                    latencies.append(1e3 * (time.perf_counter() - sent_at))

        if tail.submit(frames[i % len(frames)], done):
            counts["sent"] += measured
        else:
            counts["dropped"] += measured
        i += 1
        next_at += 1 / RATE_HZ
        time.sleep(max(0.0, next_at - time.perf_counter()))
    time.sleep(timeout_s + 0.5)  # the last answers, or their timeouts
    with lock:
        queue.put(asdict(RobotReport(**counts, latencies_ms=latencies, lost_reasons=dict(reasons))))
    tail.close()


def in_process_robot(
    spec: str,
    device: str,
    precision: str,
    frames_path: str,
    warmup_s: float,
    seconds: float,
    ready,
    start,
    queue,
) -> None:
    """A robot with a tail of its own (its own process and model copy), batch 1: a frame that comes
    while the tail is busy is dropped, as the tail node's newest-wins worker drops it."""
    from sc2_split.tail import TailPipeline

    config, _, checkpoint = spec.partition(":")
    frames = pickle.loads(Path(frames_path).read_bytes())
    tail = TailPipeline.from_config(config, checkpoint, device=device, precision=precision)
    tail(frames[0])  # CUDA context, graphs
    ready.release()
    start_at = start.get()
    measure_from, end = start_at + warmup_s, start_at + warmup_s + seconds
    latencies: list[float] = []
    counts = {"sent": 0, "answered": 0, "dropped": 0, "lost": 0}
    while time.time() < start_at:
        time.sleep(0.001)
    t0, i = time.perf_counter(), 0
    while time.time() < end:
        now = time.perf_counter()
        due = t0 + i / RATE_HZ
        if now < due:
            time.sleep(due - now)
            continue
        # Frames that came while the tail was busy: all but the newest dropped.
        behind = int((now - due) * RATE_HZ)
        measured = time.time() >= measure_from
        counts["dropped"] += behind if measured else 0
        i += behind
        arrived = t0 + i / RATE_HZ
        tail(frames[i % len(frames)])
        if measured:
            counts["sent"] += 1
            counts["answered"] += 1
            latencies.append(1e3 * (time.perf_counter() - arrived))
        i += 1
    queue.put(asdict(RobotReport(**counts, latencies_ms=latencies, lost_reasons={})))
    tail.close()


def gpu_memory_mib() -> float:
    """Memory in use on GPU 0, all processes (nvidia-smi); NaN without one."""
    return _gpu_query("memory.used")


def cuda_mps_running() -> bool:
    """Whether a CUDA MPS control daemon runs, so that a server's instances (processes) share the GPU
    through one MPS server, their kernels side by side, rather than taking turns by time slicing."""
    return any(p.info["name"] == "nvidia-cuda-mps-control" for p in psutil.process_iter(["name"]))


def gpu_busy_percent() -> float:
    """GPU 0's utilization (nvidia-smi: the share of the last sample period a kernel ran); NaN
    without one. Below 100 while robots wait, the server is not keeping its GPU busy."""
    return _gpu_query("utilization.gpu")


def _gpu_query(field: str) -> float:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return float(out.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return float("nan")


def server_counters(url: str, model: str) -> Counter[str]:
    """Triton's own cumulative counters of `model`: frames answered, their nanoseconds in the server
    (arrival to response) and in its queue, and per batch size the executions and their nanoseconds
    (`execute_ns/8`, `batches/8`)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model, as_json=True).get("model_stats", [])
    finally:
        client.close()
    counts: Counter[str] = Counter()
    for version in stats:  # protobuf's JSON: int64 as strings, zeros left out
        inference = version.get("inference_stats", {})
        counts["frames"] += int(inference.get("success", {}).get("count", 0))
        counts["server_ns"] += int(inference.get("success", {}).get("ns", 0))
        counts["queue_ns"] += int(inference.get("queue", {}).get("ns", 0))
        for entry in version.get("batch_stats", []):
            size, infer = int(entry["batch_size"]), entry.get("compute_infer", {})
            counts[f"batches/{size}"] += int(infer.get("count", 0))
            counts[f"execute_ns/{size}"] += int(infer.get("ns", 0))
    return counts


def server_window(before: Counter[str], after: Counter[str]) -> dict:
    """What the server did between two readings of `server_counters`: batches run, their mean size,
    a frame's mean time in the server (below the robots' latency: the rest is gRPC and the clients)
    and in Triton's queue, and a batch's mean execution (the backend's whole work: parsing,
    decoding, the network, outputs)."""
    delta = after - before
    sizes = {int(k.partition("/")[2]): n for k, n in delta.items() if k.startswith("batches/")}
    batches = sum(sizes.values())
    frames = sum(size * n for size, n in sizes.items())
    execute_ns = sum(n for k, n in delta.items() if k.startswith("execute_ns/"))
    answered, nan = delta["frames"], float("nan")
    return {
        "batches": batches,
        "mean_batch": frames / batches if batches else nan,
        "batch_sizes": dict(sorted(sizes.items())),
        "server_ms": delta["server_ns"] / answered / 1e6 if answered else nan,
        "queue_ms": delta["queue_ns"] / answered / 1e6 if answered else nan,
        "execute_ms_per_batch": execute_ns / batches / 1e6 if batches else nan,
    }


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """CPU time of `processes` and all their children."""
    total = 0.0
    for p in processes:
        for q in [p, *p.children(recursive=True)]:
            try:
                t = q.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


def summarize(
    mode: str,
    robots: int,
    reports: list[dict],
    seconds: float,
    cpu_s: float,
    gpu_mib: float,
    client_cpu_s: float = float("nan"),
) -> dict:
    p50 = [float(np.percentile(r["latencies_ms"], 50)) for r in reports if r["latencies_ms"]]
    p99 = [float(np.percentile(r["latencies_ms"], 99)) for r in reports if r["latencies_ms"]]
    answered = sum(r["answered"] for r in reports)
    return {
        "mode": mode,
        "robots": robots,
        "fps": answered / seconds,
        "offered_fps": robots * RATE_HZ,
        "p50_ms": float(np.median(p50)) if p50 else float("nan"),
        "p99_ms_worst_robot": max(p99) if p99 else float("nan"),
        "dropped": sum(r["dropped"] for r in reports),
        "lost": sum(r["lost"] for r in reports),
        "lost_reasons": dict(sum((Counter(r["lost_reasons"]) for r in reports), Counter())),
        "edge_cpu_cores": cpu_s / seconds,
        "client_cpu_cores": client_cpu_s / seconds,
        "gpu_memory_mib": gpu_mib,
    }


def camera_phases(robots: int, phases: str) -> list[float]:
    """Each robot's first frame after the common start, s: "aligned", every camera at once (the
    largest burst a server sees); "random", independent cameras, each at a random point of its
    period (seeded by the robot count, so that two servers see the same fleet)."""
    if phases == "aligned":
        return [0.0] * robots
    return np.random.default_rng(robots).uniform(0.0, 1.0 / RATE_HZ, robots).tolist()  # floats: JSON


def start_together(procs: list, ready, starts: list, phases: list[float]) -> float:
    """Starts the robot processes; once all are ready, the time they all begin at (each robot's
    first frame `phases` later)."""
    for p in procs:
        p.daemon = True  # gone with this process, also when it is interrupted
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=600):
            raise RuntimeError("a robot process did not start")
    start_at = time.time() + 0.5
    for s, phase in zip(starts, phases, strict=True):
        s.put(start_at + phase)
    return start_at


def run_in_process(
    spec: str,
    device: str,
    precision: str,
    frames: Path,
    robots: int,
    warmup: float,
    seconds: float,
    phases: str,
) -> dict:
    ctx = multiprocessing.get_context("spawn")
    ready, queue = ctx.Semaphore(0), ctx.Queue()
    starts = [ctx.Queue() for _ in range(robots)]
    procs = [
        ctx.Process(
            target=in_process_robot,
            args=(spec, device, precision, str(frames), warmup, seconds, ready, s, queue),
        )
        for s in starts
    ]
    start_at = start_together(procs, ready, starts, camera_phases(robots, phases))
    handles = [psutil.Process(p.pid) for p in procs]
    time.sleep(max(0.0, start_at + warmup - time.time()))
    cpu0 = cpu_seconds(handles)
    time.sleep(seconds * 0.8)
    gpu = gpu_memory_mib()
    reports = [queue.get(timeout=600) for _ in procs]
    cpu1 = cpu_seconds(handles) if all(p.is_alive() for p in procs) else float("nan")
    for p in procs:
        p.join(timeout=60)
    return summarize("in-process", robots, reports, seconds, cpu1 - cpu0, gpu)


def run_served(
    mode: str,
    url: str,
    model: str,
    server: psutil.Process,
    frames: Path,
    robots: int,
    warmup: float,
    seconds: float,
    timeout_s: float,
    phases: str,
) -> dict:
    ctx = multiprocessing.get_context("spawn")
    ready, queue = ctx.Semaphore(0), ctx.Queue()
    starts = [ctx.Queue() for _ in range(robots)]
    procs = [
        ctx.Process(target=served_robot, args=(url, str(frames), warmup, seconds, timeout_s, ready, s, queue))
        for s in starts
    ]
    start_at = start_together(procs, ready, starts, camera_phases(robots, phases))
    clients = [psutil.Process(p.pid) for p in procs]
    time.sleep(max(0.0, start_at + warmup - time.time()))
    cpu0, client0, counters0 = cpu_seconds([server]), cpu_seconds(clients), server_counters(url, model)
    time.sleep(seconds * 0.8)
    gpu, busy = gpu_memory_mib(), gpu_busy_percent()
    time.sleep(max(0.0, start_at + warmup + seconds - time.time()))
    cpu1, client1, counters1 = cpu_seconds([server]), cpu_seconds(clients), server_counters(url, model)
    reports = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    row = summarize(mode, robots, reports, seconds, cpu1 - cpu0, gpu, client1 - client0)
    return row | {"gpu_busy_percent": busy, "server": server_window(counters0, counters1)}


@contextmanager
def started(serving: Serving, args: argparse.Namespace, spec: str, out: Path, name: str) -> Iterator[tuple]:
    """(server process, ports) of `serving`, each batch size warmed up for the recorded frames' size,
    until the block ends."""
    from sc2_split.serving.process import ServerPorts, server_process, tail_server_process
    from sc2_split.serving.server import Batching, ServedModel

    ports, devices = ServerPorts.free(), [args.device] * serving.instances
    preferred = None if args.preferred_batch is None else tuple(args.preferred_batch)
    log = out / f"{serving.server}-{serving.instances}.log"
    if serving.server == "tail_server":
        server_args = ["--model", spec, "--precision", args.precision, "--max-batch", str(args.max_batch)]
        server_args += ["--queue-delay-us", str(args.queue_delay_us)]
        if preferred is not None:  # else tail_server's default
            server_args += ["--preferred-batch", *map(str, preferred)]
        server_args += ["--decode-workers", str(args.decode_workers)]
        server_args += [a for d in devices for a in ("--device", d)]
        # Every batch size's CUDA graph captured before the first robot: not within a row's seconds.
        server_args += ["--warm-up", f"{WIDTH}x{HEIGHT}"]
        with tail_server_process(server_args, ports, dict(os.environ), log, [name]) as server:
            yield server, ports
        return
    from sc2_split.serving.process import wheel_tritonserver_command
    from sc2_split.serving.repository import write_repository

    repository = out / f"repository-{serving.instances}"
    batching = Batching(args.max_batch, args.queue_delay_us, preferred=preferred)
    write_repository(
        repository, [ServedModel.parse(spec)], devices, batching, args.decode_workers, args.precision,
        [(WIDTH, HEIGHT)],
    )  # fmt: skip
    command, env = wheel_tritonserver_command(repository, ports, out / "triton", os.environ)
    with server_process(command, ports, env, log, [name]) as server:
        yield server, ports


def per_added_robot(rows: list[dict], key: str) -> list[float]:
    """What each robot added costs in `key` (GPU memory, edge CPU), from one setting to the next of
    the same mode; NaN for the first."""
    costs, last = [], {}
    for row in rows:
        before = last.get(row["mode"])
        costs.append(
            (row[key] - before[key]) / (row["robots"] - before["robots"])
            if before and row["robots"] > before["robots"]
            else float("nan")
        )
        last[row["mode"]] = row
    return costs


def markdown_table(results: list[dict]) -> str:
    """The rows of fleet results (one JSON each) as a markdown table, machine and model named."""
    lines = [
        "| machine | model | mode | robots | frames/s (offered) | p50 / p99 ms | dropped / lost "
        "| edge CPU cores (+ clients) | per added robot: CPU cores, GPU MiB | GPU MiB in use |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        rows = result["rows"]
        cpu = per_added_robot(rows, "edge_cpu_cores")
        gpu = per_added_robot(rows, "gpu_memory_mib")
        for row, dcpu, dgpu in zip(rows, cpu, gpu, strict=True):
            clients = row.get("client_cpu_cores", float("nan"))
            lines.append(
                f"| {result['machine']} | {result['model']} ({result['codec']}) | {row['mode']} "
                f"| {row['robots']} | {row['fps']:.0f} ({row['offered_fps']:.0f}) "
                f"| {row['p50_ms']:.1f} / {row['p99_ms_worst_robot']:.1f} | {row['dropped']} / {row['lost']} "
                f"| {row['edge_cpu_cores']:.2f}{'' if clients != clients else f' (+ {clients:.2f})'} "
                f"| {dcpu:.3f}, {dgpu:.0f} | {row['gpu_memory_mib']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="CONFIG[:CHECKPOINT]; random weights without one")
    parser.add_argument("--codec", default="entropy", help="codec of the recorded frames")
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--in-process-robots", type=int, nargs="*", help="default: --robots")
    parser.add_argument("--device", help="default: cuda where there is one, else cpu")
    parser.add_argument("--precision", help="default: fp16 on cuda, fp32 on cpu")
    parser.add_argument(
        "--serve", type=Serving.parse, action="append", metavar="SERVER:INSTANCES",
        help="tail_server:N or tritonserver:N, repeatable, run in turn (default tail_server:2)",
    )  # fmt: skip
    parser.add_argument("--decode-workers", type=int, default=0)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--queue-delay-us", type=int, default=5000)
    parser.add_argument(
        "--preferred-batch", type=int, nargs="*", metavar="N", help="default: as tail_server's"
    )
    parser.add_argument(
        "--phases", choices=("aligned", "random"), default="aligned",
        help="the robots' cameras: all at once (the largest burst), or each at a random phase",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=2.0, help="served robots' request timeout, s")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--machine", default="")
    parser.add_argument("--json", type=Path, help="rows written after each one")
    parser.add_argument(
        "--table", type=Path, nargs="+", metavar="JSON", help="print these results as markdown"
    )
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table([json.loads(path.read_text()) for path in args.table]))
        return 0
    if not args.model:
        parser.error("--model is required")
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.precision = args.precision or ("fp16" if args.device.startswith("cuda") else "fp32")
    from sc2_split.serving.protocol import triton_model_name

    servings = args.serve or [Serving("tail_server", 2)]
    out = Path(tempfile.mkdtemp(prefix="fleet-"))
    spec, frames = record(args.model, args.codec, 8, out)
    served_name = triton_model_name(pickle.loads(frames.read_bytes())[0].model_id)
    result = {
        "machine": args.machine,
        "model": args.model,
        "codec": args.codec,
        "settings": vars(args) | {"json": str(args.json), "table": None, "serve": [str(s) for s in servings]},
        "gpu_memory_idle_mib": gpu_memory_mib(),
        "cuda_mps": cuda_mps_running(),
        "rows": [],
    }

    def emit(row: dict) -> None:
        result["rows"].append(row)
        print(
            f"{row['mode']:>10} {row['robots']:>3} robots: {row['fps']:7.1f} frames/s of "
            f"{row['offered_fps']:.0f}, p50 {row['p50_ms']:6.1f} ms, p99 {row['p99_ms_worst_robot']:6.1f} "
            f"ms, dropped {row['dropped']}, lost {row['lost']} {row['lost_reasons'] or ''}, edge CPU "
            f"{row['edge_cpu_cores']:.2f} cores (clients {row['client_cpu_cores']:.2f}), GPU "
            f"{row['gpu_memory_mib']:.0f} MiB",
            flush=True,
        )
        if "server" in row:
            served = row["server"]
            print(
                f"{'':>14} server: {served['batches']} batches of {served['mean_batch']:.1f} frames "
                f"{served['batch_sizes']}, a frame {served['server_ms']:.1f} ms in the server, "
                f"{served['queue_ms']:.1f} in its queue, execute "
                f"{served['execute_ms_per_batch']:.1f} ms a batch, GPU busy {row['gpu_busy_percent']:.0f}%",
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))

    left_in_process = set(args.robots if args.in_process_robots is None else args.in_process_robots)
    # Side by side: each number of robots served, then in process (the served model idle meanwhile)
    # alongside the first server that starts, so that a run cut short still compares the settings it
    # reached; each further server then serves the same numbers of robots.
    try:
        for serving in servings:
            with ExitStack() as stack:
                try:
                    server, ports = stack.enter_context(started(serving, args, spec, out, served_name))
                except RuntimeError as exc:  # this server did not start: the others still run
                    print(f"{serving.mode}: {exc}", flush=True)
                    continue
                mode = serving.mode + (", CUDA MPS" if result["cuda_mps"] else "")
                for robots in sorted(set(args.robots) | left_in_process):
                    if robots in args.robots:
                        row = run_served(
                            mode, ports.url, served_name, psutil.Process(server.pid), frames, robots,
                            args.warmup, args.seconds, args.timeout, args.phases,
                        )  # fmt: skip
                        emit(row)
                    if robots in left_in_process:
                        row = run_in_process(
                            spec, args.device, args.precision, frames, robots, args.warmup, args.seconds,
                            args.phases,
                        )  # fmt: skip
                        emit(row)
                        left_in_process.discard(robots)
    except KeyboardInterrupt:
        print(f"interrupted after {len(result['rows'])} rows", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
