"""`tail_server`: Triton Inference Server embedded through PyTriton, serving the tail of one or more
models (model ids) to every robot that sends to it, with dynamic batching across their requests.

    ros2 run sc2_split tail_server                          # the bundled demo model, on the CPU
    ros2 run sc2_split tail_server --device cuda:0 --device cuda:1 \\
        --model demo_fp:demo_fp_beta4.5_stage2 --model sc2_resnet50_fp:my_weights.pt

Tail nodes then run with `server_url:=HOST:8001`. `--write-repository DIR` writes the same models as a
model repository for a standalone `tritonserver` instead (serving/repository.py).
"""

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from sc2_split.bundled import DEMO_CHECKPOINT
from sc2_split.serving.process import libpython_env
from sc2_split.serving.protocol import INPUT_TENSORS, OUTPUT_TENSORS, triton_model_name
from sc2_split.serving.tail_model import BatchedTail
from sc2_split.tail import TailPipeline

DEFAULT_MODEL = f"demo_fp:{DEMO_CHECKPOINT}"


@dataclass(frozen=True)
class ServedModel:
    """A model to serve: its config (bundled name or YAML path) and checkpoint, as the tail node
    takes them; "CONFIG:CHECKPOINT" on the command line, the checkpoint empty for random weights."""

    model_config: str
    checkpoint: str

    @classmethod
    def parse(cls, text: str) -> "ServedModel":
        config, _, checkpoint = text.partition(":")
        return cls(config, checkpoint)


@dataclass(frozen=True)
class Batching:
    """Triton's dynamic batcher: frames of many robots wait at most `queue_delay_us` to fill a batch.
    At most `max_queue` frames wait: an overloaded server refuses more (the client counts them as
    lost) instead of growing a queue, and drops a frame that waited past its client's timeout.
    `preferred` batch sizes are formed at once when enough frames wait, the rest waiting for the next
    batch: a CUDA tail pads a batch to the next power of two, so 26 frames run as 32, but 16 as 16.
    None: the devices' `unpadded_sizes`."""

    max_batch: int = 32
    queue_delay_us: int = 2000
    max_queue: int = 128
    preferred: tuple[int, ...] | None = None

    def preferred_on(self, devices: Sequence[str]) -> tuple[int, ...]:
        """The preferred batch sizes of instances on `devices`."""
        return unpadded_sizes(devices, self.max_batch) if self.preferred is None else self.preferred


def unpadded_sizes(devices: Sequence[str], max_batch: int) -> tuple[int, ...]:
    """The preferred batch sizes by default: on CUDA devices those a tail runs unpadded, powers of two
    from 8 up to `max_batch` (on the H200 they took a ResNet-50 served to 20 robots from 430 to 490
    frames/s); none on CPUs, which pad nothing."""
    if not any(d.startswith("cuda") for d in devices):
        return ()
    return tuple(1 << k for k in range(3, max_batch.bit_length()))


def serve(
    models: Sequence[ServedModel],
    devices: Sequence[str],
    batching: Batching,
    workers: int = 0,
    ports: tuple[int, int, int] = (8000, 8001, 8002),
    precision: str = "fp32",
    warm_up: Sequence[tuple[int, int]] = (),
) -> None:
    """Serves until SIGINT or SIGTERM: one instance of each model per device, each with `workers`
    entropy decoding processes, warmed up for frames of each (width, height) in `warm_up` before
    the server takes requests."""
    os.environ.update(libpython_env(os.environ))  # for the tritonserver PyTriton starts
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor, TimeoutAction
    from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig

    http_port, grpc_port, metrics_port = ports
    config = TritonConfig(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
    # Triton's statistics (batches by size, queueing, execution) readable, as a standalone
    # tritonserver's are: they are how batching is tuned. The other endpoints stay PyTriton's.
    restricted = [e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"]
    security = TritonSecurityConfig(restricted_endpoints=restricted)
    pipelines = []
    with Triton(config=config, security_config=security) as triton:
        for model in models:
            instances = [
                TailPipeline.from_config(
                    model.model_config,
                    model.checkpoint,
                    device=d,
                    decode_workers=workers,
                    precision=precision,
                )
                for d in devices
            ]
            pipelines += instances
            for pipeline in instances:
                for width, height in warm_up:
                    pipeline.warm_up(width, height, batching.max_batch)
            name = triton_model_name(instances[0].model_id)
            triton.bind(
                model_name=name,
                infer_func=[batch(BatchedTail(p)) for p in instances],
                inputs=[Tensor(name=n, dtype=t, shape=s) for n, t, s in INPUT_TENSORS],
                outputs=[Tensor(name=n, dtype=t, shape=s) for n, t, s in OUTPUT_TENSORS],
                config=ModelConfig(
                    max_batch_size=batching.max_batch,
                    batcher=DynamicBatcher(
                        max_queue_delay_microseconds=batching.queue_delay_us,
                        preferred_batch_size=list(batching.preferred_on(devices)) or None,
                        default_queue_policy=QueuePolicy(
                            timeout_action=TimeoutAction.REJECT,
                            allow_timeout_override=True,
                            max_queue_size=batching.max_queue,
                        ),
                    ),
                ),
                strict=True,
            )
            logging.info("serving %s as model %r on %s", instances[0].model_id, name, ", ".join(devices))
        try:
            triton.serve()
        finally:
            for pipeline in pipelines:
                pipeline.close()


def frame_size(text: str) -> tuple[int, int]:
    """(width, height) of "640x480"."""
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 640x480")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tail_server", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", type=ServedModel.parse,
        help=f"CONFIG:CHECKPOINT to serve, repeatable (default {DEFAULT_MODEL})",
    )  # fmt: skip
    parser.add_argument(
        "--device", action="append",
        help="torch device of one instance of each model, repeatable: one per GPU (default cpu)",
    )  # fmt: skip
    parser.add_argument("--max-batch", type=int, default=Batching.max_batch)
    parser.add_argument("--queue-delay-us", type=int, default=Batching.queue_delay_us)
    parser.add_argument("--max-queue", type=int, default=Batching.max_queue, help="most frames waiting")
    parser.add_argument(
        "--preferred-batch", type=int, nargs="*", metavar="N",
        help="batch sizes the batcher forms at once where enough frames wait (default: on CUDA devices "
        "the powers of two from 8 up to --max-batch, which a tail runs unpadded; none on CPUs)",
    )  # fmt: skip
    parser.add_argument(
        "--decode-workers", type=int, default=0, help="entropy decoding processes per instance"
    )
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="fp16: on CUDA devices")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument(
        "--warm-up", action="append", type=frame_size, default=[], metavar="WIDTHxHEIGHT",
        help="camera size to warm each instance up for (every batch size) before serving, repeatable; "
        "written into a repository too",
    )  # fmt: skip
    parser.add_argument(
        "--write-repository", metavar="DIR",
        help="write a model repository for a standalone tritonserver instead of serving",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[tail_server] %(message)s")
    models = args.model or [ServedModel.parse(DEFAULT_MODEL)]
    devices = args.device or ["cpu"]
    preferred = None if args.preferred_batch is None else tuple(args.preferred_batch)
    batching = Batching(args.max_batch, args.queue_delay_us, args.max_queue, preferred)
    if args.write_repository:
        from sc2_split.serving.repository import write_repository

        written = write_repository(
            args.write_repository,
            models,
            devices,
            batching,
            args.decode_workers,
            args.precision,
            args.warm_up,
        )
        for path in written:
            print(path)
        return 0
    ports = (args.http_port, args.grpc_port, args.metrics_port)
    serve(models, devices, batching, args.decode_workers, ports, args.precision, args.warm_up)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
