"""The detector cut at its bottleneck: a head (the model's preprocessing plus the encoder) for the
robot, and a tail (decoder, remaining backbone stages, FPN, RPN, ROI heads, postprocess) for the edge.

The tensor between them is the encoder's output, before the bottleneck's quantization: the codec
quantizes it on the robot, and the tail applies the model's own quantization again, which leaves an
already quantized latent unchanged. Boxes come back in the pixels of the image the head received.
"""

import copy
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import Tensor, nn
from torch.fx.experimental.optimization import fuse
from torch.nn import functional as F  # noqa: N812  (the torch idiom)
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList

from sc2_split.geometry import ImageGeometry
from sc2_split.models import batched_heads
from sc2_split.models.conv_relu import fuse_conv_relus
from sc2_split.models.gdn import fix_gdns
from sc2_split.models.top_down import TopDownFPN

BOTTLENECK = "bottleneck_layer"


def image_geometry(model: GeneralizedRCNN, height: int, width: int) -> ImageGeometry:
    """The sizes the model's own transform gives an image of this size."""
    transform = model.transform
    if len(transform.min_size) != 1 or transform.fixed_size is not None:
        raise ValueError("only a single min_size and no fixed_size are supported (as for eval)")
    return ImageGeometry.for_image(
        height, width, transform.min_size[0], transform.max_size, transform.size_divisible
    )


def entropy_bottleneck(model: GeneralizedRCNN) -> EntropyBottleneck | None:
    """The factorized prior of an entropic student, None for other bottlenecks."""
    return getattr(model.backbone.body.bottleneck_layer, "entropy_bottleneck", None)


class Head(nn.Module):
    """uint8 RGB image (H, W, 3) of one fixed size -> bottleneck latent (1, C, h, w), float32.

    After `.half()` it computes in float16 (for GPUs and TensorRT) and still returns float32.
    """

    def __init__(self, model: GeneralizedRCNN, geometry: ImageGeometry) -> None:
        super().__init__()
        transform = model.transform
        self.register_buffer("mean", torch.tensor(transform.image_mean).reshape(3, 1, 1))
        self.register_buffer("std", torch.tensor(transform.image_std).reshape(3, 1, 1))
        self.geometry = geometry
        self.encoder = model.backbone.body.bottleneck_layer.encoder

    def forward(self, image: Tensor) -> Tensor:
        g = self.geometry
        x = image.permute(2, 0, 1).to(self.mean.dtype).div(255)
        x = (x - self.mean) / self.std
        # A size instead of torchvision's scale factor: identical, since it recomputes the scale.
        x = F.interpolate(
            x[None], size=(g.resized_height, g.resized_width), mode="bilinear", align_corners=False
        )
        x = F.pad(x, (0, g.padded_width - g.resized_width, 0, g.padded_height - g.resized_height))
        return self.encoder(x).float()


class Tail(nn.Module):
    """Latents (B, C, h, w) and the frames' geometries -> detections in each frame's pixels."""

    def __init__(self, model: GeneralizedRCNN) -> None:
        super().__init__()
        body = model.backbone.body
        self.decoder = body.bottleneck_layer.decoder
        names = [name for name, _ in body.named_children()]
        if names[0] != BOTTLENECK:
            raise ValueError(f"the backbone must start with {BOTTLENECK}, found {names}")
        self.stages = nn.ModuleDict({name: getattr(body, name) for name in names[1:]})
        self.returned = dict(body.return_layer_dict)
        self.fpn = model.backbone.fpn
        self.rpn = model.rpn
        self.roi_heads = model.roi_heads
        self.transform = model.transform
        eb = entropy_bottleneck(model)
        self.register_buffer(
            "medians", None if eb is None else eb._get_medians().detach().reshape(1, -1, 1, 1)
        )

    def fold_batch_norms(self) -> None:
        """Folds the stages' batch norms into the convolutions before them (torch.fx's conv-BN fusion,
        on copies of the stages: the model's own stay as they are). In eval a batch norm is a fixed
        affine map, but on a GPU it is a pass over its activations of its own: the 42 of a ResNet-50
        tail took 9 of its 48 ms a batch of 32 (H200). A stage that torch.fx cannot trace stays."""
        for name, stage in self.stages.items():
            try:
                self.stages[name] = fuse(stage)
            except Exception as err:  # data-dependent Python in a user's stage: it runs as it is
                warnings.warn(
                    f"stage {name} keeps its batch norms, torch.fx cannot trace it: {err}", stacklevel=2
                )

    def fuse_conv_relus(self) -> int:
        """After fold_batch_norms, each stage's convolution + bias (+ residual) + ReLU as one cuDNN
        kernel on a CUDA device (models/conv_relu.py), and the RPN head's, on a copy of the RPN.
        Returns the number fused."""
        fused = sum(fuse_conv_relus(s) for s in self.stages.values() if isinstance(s, torch.fx.GraphModule))
        rpn = copy.deepcopy(self.rpn)
        conv = torch.fx.symbolic_trace(rpn.head.conv)
        in_rpn = fuse_conv_relus(conv)
        if in_rpn:
            rpn.head.conv, self.rpn = conv, rpn
        return fused + in_rpn

    def add_biases_by_kernel(self) -> int:
        """After fuse_conv_relus, the stages' and the FPN outputs' remaining convolution biases added
        by a vectorised kernel on a CUDA device (models/conv_bias.py), in a copy of the FPN. The FPN's
        lateral convolutions stay: top_down adds their biases at the coarser level's size. Returns the
        number of convolutions: 0 without Triton."""
        try:
            from sc2_split.models.conv_bias import add_biases_by_kernel
        except ImportError as err:  # a torch without Triton: torch adds the biases
            warnings.warn(
                f"convolution biases are added by torch, Triton is unavailable: {err}", stacklevel=2
            )
            return 0
        stages = [s for s in self.stages.values() if isinstance(s, torch.fx.GraphModule)]
        count = sum(add_biases_by_kernel(stage) for stage in stages)
        fpn = copy.deepcopy(self.fpn)
        in_fpn = add_biases_by_kernel(
            fpn.fpn.layer_blocks if isinstance(fpn, TopDownFPN) else fpn.layer_blocks
        )
        if in_fpn:
            self.fpn = fpn
        return count + in_fpn

    def fix_gdns(self) -> int:
        """The decoder's GDN layers with fixed parameters and each normaliser one cuDNN kernel on a
        CUDA device (models/gdn.py), in a copy of the decoder. Returns the number of layers."""
        decoder = copy.deepcopy(self.decoder)
        fixed = fix_gdns(decoder)
        if fixed:
            self.decoder = decoder
        return fixed

    def fuse_top_down(self) -> None:
        """The FPN's top-down sums as single passes in the features' dtype on a CUDA device
        (models/top_down.py)."""
        self.fpn = TopDownFPN(self.fpn)

    def decoder_input(self, latent: Tensor) -> Tensor:
        """The model's own quantization (round around the prior's medians) for an entropic student."""
        if self.medians is None:
            return latent
        return torch.round(latent - self.medians) + self.medians

    def forward(self, latent: Tensor, geometry: ImageGeometry) -> dict[str, Tensor]:
        return self.detections(self.features(latent), [geometry])[0]

    def features(self, latent: Tensor) -> OrderedDict[str, Tensor]:
        """Decoder, the backbone's remaining stages and the FPN: shapes fixed by the latent's."""
        x = self.decoder(self.decoder_input(latent))
        features: OrderedDict[str, Tensor] = OrderedDict()
        if BOTTLENECK in self.returned:
            features[self.returned[BOTTLENECK]] = x
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.returned:
                features[self.returned[name]] = x
        return self.fpn(features)

    def detections(
        self, features: OrderedDict[str, Tensor], geometries: Sequence[ImageGeometry], batched: bool = False
    ) -> list[dict[str, Tensor]]:
        """RPN, ROI heads and the boxes mapped back to each frame: data-dependent shapes. One geometry
        per latent of the batch; frames of one batch share the padded size (their latents' shape).
        `batched` filters and post-processes the whole batch at once (models/batched_heads.py)
        instead of torchvision's image by image."""
        images, original = self.images(features, geometries)
        if batched:
            return batched_heads.heads(self.rpn, self.roi_heads, images, features, original).per_image()
        proposals, _ = self.rpn(images, features)
        detections, _ = self.roi_heads(features, proposals, images.image_sizes)
        return self.transform.postprocess(detections, images.image_sizes, original)

    @staticmethod
    def images(
        features: OrderedDict[str, Tensor], geometries: Sequence[ImageGeometry]
    ) -> tuple[ImageList, list[tuple[int, int]]]:
        """The heads' view of the frames: their resized sizes in an ImageList, and their original
        sizes. The RPN reads only the padded size from the image tensor: a broadcast view, no memory."""
        first = next(iter(features.values()))
        g = geometries[0]
        padded = first.new_zeros(()).expand(len(geometries), 3, g.padded_height, g.padded_width)
        resized = [(g.resized_height, g.resized_width) for g in geometries]
        return ImageList(padded, resized), [(g.image_height, g.image_width) for g in geometries]
