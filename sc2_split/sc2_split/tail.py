"""The edge's half of the detector: coded bottleneck -> detections in the source frame's pixels.

Everything in a payload is untrusted: the model id, the codec, the latent shape and the frame
geometry are checked against this tail's model before anything is allocated or run.
"""

import copy
import time
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from sc2_split.codecs import CODECS, Codec, make_codec
from sc2_split.codecs.channel_pool import ChannelPool
from sc2_split.codecs.entropy import EntropyCodec
from sc2_split.codecs.lanes import LaneLayout
from sc2_split.codecs.payload import PayloadError
from sc2_split.frames import CodedFrame, Detections
from sc2_split.geometry import ImageGeometry
from sc2_split.models.batched_heads import graphable
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import checkpoint_path, config_path, load_class_names, load_model_config
from sc2_split.models.cuda_graph import GraphedFeatures, GraphedHeads
from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
from sc2_split.models.split import Tail, entropy_bottleneck
from sc2_split.untrusted import shown

# A decoded latent: on the GPU decoder's device, or in host memory.
Latent = np.ndarray | torch.Tensor

# Largest source frame accepted, per side: far beyond any camera, small enough to bound memory.
MAX_IMAGE_SIDE = 16384


class TailPipeline:
    """Entropy version 2 payloads (rANS lanes) are decoded on the GPU straight into the network's input
    on a CUDA device (codecs/lanes_cuda.py), else on all cores in this process. `decode_workers` > 0
    decodes version 1 payloads on that many processes (a ChannelPool); 0 decodes them in this
    process. Close the pipeline (or use it as a context manager) to stop them. On a CUDA device
    `cuda_graphs` replays the network's fixed-shape part from CUDA graphs (models/cuda_graph.py);
    `detect` then runs one frame at a time. On a CUDA device `batched_heads` filters proposals and
    post-processes detections for a batch of frames at once (models/batched_heads.py), from CUDA
    graphs too with `cuda_graphs` where the NMS kernel compiles; on a CPU, where its dense IoU
    matrices cost more than torchvision's loop saves, the tail runs torchvision's."""

    def __init__(
        self,
        model: GeneralizedRCNN,
        model_id: str,
        device: str = "cpu",
        precision: str = "fp32",
        class_names: tuple[str, ...] = (),
        decode_workers: int = 0,
        cuda_graphs: bool = True,
        batched_heads: bool = True,
    ) -> None:
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be fp32 or fp16, not {precision!r}")
        if decode_workers < 0:
            raise ValueError(f"decode_workers must be 0 or more, not {decode_workers}")
        self.model_id = model_id
        self.class_names = class_names
        self.device = torch.device(device)
        # fp16 through autocast: convolutions and matrix products in half, box arithmetic in float.
        self.half = precision == "fp16"
        self.tail = Tail(model).to(self.device).eval()
        if self.device.type == "cuda":  # on a CPU the tail stays the model's, operation by operation
            self.tail.fold_batch_norms()
            self.tail.fuse_conv_relus()
            self.tail.fuse_top_down()
            self.tail.add_biases_by_kernel()
            self.tail.fix_gdns()
        # cuDNN's tensor-core convolutions take NHWC: in NCHW each one transposes its input and output.
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.tail.to(memory_format=self.memory_format)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.batched_heads = batched_heads and self.device.type == "cuda"
        self._features = self.tail.features
        self._heads: GraphedHeads | None = None
        if self.cuda_graphs:
            self._features = GraphedFeatures(self.tail.features, self.half)
            if self.batched_heads and graphable(self.device):
                self._heads = GraphedHeads(self.tail.rpn, self.tail.roi_heads, self.half)
        eb = entropy_bottleneck(model)
        tables = None if eb is None else tables_from_entropy_bottleneck(eb)
        self.decode_pool = (
            ChannelPool(tables, decode_workers) if tables is not None and decode_workers else None
        )
        self.codecs = {
            name: make_codec(name, tables, self.decode_pool) for name in CODECS if name != "entropy" or tables
        }
        self.gpu_decoder = None
        if tables is not None and self.device.type == "cuda":
            try:
                from sc2_split.codecs.lanes_cuda import GpuLanesDecoder

                with torch.cuda.device(self.device):
                    self.gpu_decoder = GpuLanesDecoder(tables)
            except Exception as err:  # no numba-cuda, or no NVVM for it: the CPU decoder serves
                message = f"entropy version 2 decodes on the CPU, the GPU decoder is unavailable: {err}"
                warnings.warn(message, stacklevel=2)
        transform = model.transform
        self._min_size, self._max_size = transform.min_size[0], transform.max_size
        self._stride = transform.size_divisible
        # Shape inference on the meta device: no memory, no arithmetic.
        self._meta_encoder = copy.deepcopy(model.backbone.body.bottleneck_layer.encoder).to("meta")
        self.latent_shape = lru_cache(maxsize=16)(self._latent_shape)

    @classmethod
    def from_config(
        cls,
        model_config: str,
        checkpoint: str,
        model_name: str = "",
        device: str = "cpu",
        decode_workers: int = 0,
        precision: str = "fp32",
    ) -> "TailPipeline":
        """The tail the nodes and tools serve: a config (bundled name or YAML path), its checkpoint
        (bundled name, .pt path, or empty for random weights) and the name in the model id (empty:
        the config's file name, as the export tool uses)."""
        config = config_path(model_config)
        model = build_detector(load_model_config(config), checkpoint_path(checkpoint))
        name = model_id(model_name or config.stem, model)
        class_names = load_class_names(config)
        return cls(model, name, device, precision, class_names, decode_workers)

    def close(self) -> None:
        """Stops the decoding processes, if any."""
        if self.decode_pool is not None:
            self.decode_pool.close()

    def __enter__(self) -> "TailPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, frame: CodedFrame) -> Detections:
        t0 = time.perf_counter()
        latent = self.decode(frame)
        t1 = time.perf_counter()
        result = self.detect(latent, frame.geometry)
        t2 = time.perf_counter()
        return Detections(**result, decode_ms=1e3 * (t1 - t0), tail_ms=1e3 * (t2 - t1))

    def decode(self, frame: CodedFrame) -> Latent:
        """The latent of a coded frame, once every field is checked against this tail's model: on the
        GPU (a CUDA tensor) for entropy version 2 on a CUDA device, else a numpy array."""
        latent = self.decode_batch([frame])[0]
        if isinstance(latent, Exception):
            raise latent
        return latent

    def decode_batch(self, frames: Sequence[CodedFrame]) -> list[Latent | Exception]:
        """Each frame's latent (as `decode`), or the error that refused it: one frame's fault never
        fails another's. Entropy version 2 frames of one latent shape share one GPU launch (a served
        tail's frames of many robots), the rest decode one by one."""
        results: list[Latent | Exception] = [ValueError("not decoded")] * len(frames)
        lanes: dict[tuple[int, ...], list[tuple[int, LaneLayout]]] = defaultdict(list)
        for i, frame in enumerate(frames):
            try:
                codec, shape = self._checked(frame)
                layout = None
                if self.gpu_decoder is not None and isinstance(codec, EntropyCodec):
                    layout = codec.lane_layout(frame.encoded, shape)
                if layout is not None:
                    lanes[shape].append((i, layout))
                    continue
                latent = codec.decode(frame.encoded, shape)
                if not np.isfinite(latent).all():
                    raise PayloadError("corrupt", "the decoded latent holds NaN or infinite values")
                results[i] = latent
            except Exception as exc:  # this frame's fault, or this frame's failure
                results[i] = exc
        for shape, members in lanes.items():  # symbol + median: always finite
            assert self.gpu_decoder is not None
            try:
                with torch.cuda.device(self.device):
                    batch, errors = self.gpu_decoder.decode_to_tensor(
                        [m[1] for m in members], shape, self.device
                    )
            except Exception as exc:  # the shared launch's failure: its frames', not the others'
                batch, errors = None, [exc] * len(members)
            for k, ((i, _), error) in enumerate(zip(members, errors, strict=True)):
                results[i] = batch[k * shape[0] : (k + 1) * shape[0]] if error is None else error
        return results

    def _checked(self, frame: CodedFrame) -> tuple[Codec, tuple[int, ...]]:
        """The codec of a frame and its latent's shape, once its model id, codec and geometry are
        checked against this tail's model: PayloadError otherwise."""
        if frame.model_id != self.model_id:
            raise PayloadError(
                "model", f"payload from model {shown(frame.model_id)}, this tail serves {self.model_id!r}"
            )
        codec = self.codecs.get(frame.encoded.codec)
        if codec is None:
            raise PayloadError(
                "unknown_codec", f"codec {shown(frame.encoded.codec)} is not one of {sorted(self.codecs)}"
            )
        geometry = frame.geometry
        self.check_geometry(geometry)
        return codec, self.latent_shape(geometry.padded_height, geometry.padded_width)

    def detect(self, latent: Latent, geometry: ImageGeometry) -> dict[str, np.ndarray]:
        """The network on a decoded latent: boxes, scores and labels in the source frame's pixels."""
        return self.detect_batch([latent], [geometry])[0]

    def detect_batch(
        self, latents: Sequence[Latent], geometries: Sequence[ImageGeometry]
    ) -> list[dict[str, np.ndarray]]:
        """The network on latents of one shape, one batch (a served tail's frames of many robots);
        numpy arrays or tensors already on this tail's device (the GPU decoder's).

        Under CUDA graphs the batch is padded to a power of two, so that a few captured graphs cover
        every batch size."""
        if all(isinstance(latent, np.ndarray) for latent in latents):
            batch = torch.from_numpy(np.concatenate(latents)).to(self.device)
        else:
            for latent in latents:  # the GPU decoder's, from its own stream
                if isinstance(latent, torch.Tensor) and latent.is_cuda:
                    latent.record_stream(torch.cuda.current_stream(latent.device))
            batch = torch.cat([torch.as_tensor(latent, device=self.device) for latent in latents])
        size = len(latents)
        if self.cuda_graphs:
            padded = 1 << (size - 1).bit_length()
            batch = torch.cat([batch, batch.new_zeros((padded - size, *batch.shape[1:]))])
        batch = batch.contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), torch.autocast(self.device.type, torch.float16, enabled=self.half):
            features = self._features(batch)
            if self._heads is not None:  # the padding frames' detections are computed, then dropped
                padding = [geometries[-1]] * (len(batch) - size)
                images, originals = self.tail.images(features, [*geometries, *padding])
                return self._heads(images, features, originals).to_host(size)
            if self.cuda_graphs:
                features = OrderedDict((k, v[:size]) for k, v in features.items())
            # Eager, a frame alone runs torchvision's heads: at batch 1 they wait on the device less.
            outs = self.tail.detections(features, geometries, self.batched_heads and size > 1)
        # One copy to the host per output of the batch, not one per frame: each waits on the device.
        splits = np.cumsum([len(out["labels"]) for out in outs])[:-1]
        host = {
            key: np.split(torch.cat([out[key] for out in outs]).cpu().numpy(), splits)
            for key in ("boxes", "scores", "labels")
        }
        return [
            {
                "boxes": boxes.astype(np.float32),
                "scores": scores.astype(np.float32),
                "labels": labels,
            }
            for boxes, scores, labels in zip(host["boxes"], host["scores"], host["labels"], strict=True)
        ]

    def warm_up(self, width: int, height: int, max_batch: int) -> None:
        """Runs the network on frames of width x height at every batch size a served tail pads to, up
        to `max_batch`: on CUDA each batch size's graph is captured (and cuDNN has picked its
        kernels) before the first robot's frame, which would otherwise wait seconds for it."""
        geometry = ImageGeometry.for_image(height, width, self._min_size, self._max_size, self._stride)
        self.check_geometry(geometry)
        latent = np.zeros(self.latent_shape(geometry.padded_height, geometry.padded_width), np.float32)
        size = 1
        while True:
            self.detect_batch([latent] * size, [geometry] * size)
            if size >= max_batch:
                return
            size = min(2 * size, max_batch)

    def check_geometry(self, g: ImageGeometry) -> None:
        """Sizes that this model's transform could have produced, else PayloadError("shape")."""
        resized_long, resized_short = (
            max(g.resized_height, g.resized_width),
            min(g.resized_height, g.resized_width),
        )
        ok = (
            g.is_consistent()
            and max(g.image_height, g.image_width) <= MAX_IMAGE_SIDE
            and resized_long <= self._max_size
            and resized_short <= self._min_size
            and g.padded_height == -(-g.resized_height // self._stride) * self._stride
            and g.padded_width == -(-g.resized_width // self._stride) * self._stride
        )
        if not ok:
            raise PayloadError(
                "shape",
                f"frame geometry {g} does not fit this model (min_size {self._min_size}, "
                f"max_size {self._max_size}, stride {self._stride}, frames up to {MAX_IMAGE_SIDE} px)",
            )

    def _latent_shape(self, padded_height: int, padded_width: int) -> tuple[int, ...]:
        probe = torch.empty((1, 3, padded_height, padded_width), device="meta")
        return tuple(self._meta_encoder(probe).shape)
