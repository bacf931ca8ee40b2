"""Where a frame's pixels go on their way into the detector, and how boxes come back.

The numbers follow torchvision's GeneralizedRCNNTransform (resize so that the short side reaches
min_size unless the long side would pass max_size, then pad bottom and right to a multiple of the
backbone's stride), so a head computed without torch agrees with the model's own transform.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageGeometry:
    """Sizes of one frame: as received, as resized by the model's transform, and as padded."""

    image_height: int
    image_width: int
    resized_height: int
    resized_width: int
    padded_height: int
    padded_width: int

    @classmethod
    def for_image(
        cls, height: int, width: int, min_size: int, max_size: int, size_divisible: int = 32
    ) -> "ImageGeometry":
        if height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        # Same arithmetic as torchvision: a Python float scale, then floor(size * scale) in double.
        scale = min(min_size / min(height, width), max_size / max(height, width))
        resized_height = math.floor(height * scale)
        resized_width = math.floor(width * scale)
        return cls(
            image_height=height,
            image_width=width,
            resized_height=resized_height,
            resized_width=resized_width,
            padded_height=math.ceil(resized_height / size_divisible) * size_divisible,
            padded_width=math.ceil(resized_width / size_divisible) * size_divisible,
        )

    def is_consistent(self) -> bool:
        """Whether the sizes could have come from a real transform (a guard against bad messages)."""
        return (
            self.image_height > 0
            and self.image_width > 0
            and 0 < self.resized_height <= self.padded_height
            and 0 < self.resized_width <= self.padded_width
        )
