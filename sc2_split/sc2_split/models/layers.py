"""Bottleneck layers that sc2bench 0.1.1 lacks, registered in its layer registry so configs name them."""

import torch
from compressai.layers import GDN1
from sc2bench.models.layer import FPBasedResNetBottleneck, SimpleBottleneck, register_layer_func
from sc2bench.transforms.misc import SimpleDequantizer, SimpleQuantizer
from torch import nn


@register_layer_func
def quantized_resnet_bottleneck(
    num_input_channels: int = 3,
    num_bottleneck_channels: int = 24,
    num_target_channels: int = 256,
    num_bits: int = 8,
    decoder_bias: bool = False,
    encoder_width: int | None = None,
) -> SimpleBottleneck:
    """The entropic student's encoder and decoder with an 8-bit (or fp16) quantized bottleneck.

    sc2bench's own bottleneck-quantization layer (larger_resnet_bottleneck) emits 512 channels and
    cannot feed a ResNet-50's layer2, so the 8-bit variant keeps FPBasedResNetBottleneck's layout
    and swaps the entropy bottleneck for torchdistill's quantizer (Jacob et al.). The encoder's
    inner layers are 4x and 2x `encoder_width` wide (default: the bottleneck's channels), so that a
    1-channel bottleneck can keep a 16-channel student's encoder.
    """
    width = encoder_width or num_bottleneck_channels
    enc = [num_input_channels, width * 4, width * 2, num_bottleneck_channels]
    dec = [num_bottleneck_channels, num_target_channels * 2, num_target_channels, num_target_channels]
    encoder = nn.Sequential(
        nn.Conv2d(enc[0], enc[1], kernel_size=5, stride=2, padding=2, bias=False),
        GDN1(enc[1]),
        nn.Conv2d(enc[1], enc[2], kernel_size=5, stride=2, padding=2, bias=False),
        GDN1(enc[2]),
        nn.Conv2d(enc[2], enc[3], kernel_size=2, stride=1, padding=0, bias=False),
    )
    decoder = nn.Sequential(
        nn.Conv2d(dec[0], dec[1], kernel_size=2, stride=1, padding=1, bias=False),
        GDN1(dec[1], inverse=True),
        nn.Conv2d(dec[1], dec[2], kernel_size=2, stride=1, padding=0, bias=False),
        GDN1(dec[2], inverse=True),
        nn.Conv2d(dec[2], dec[3], kernel_size=2, stride=1, padding=1, bias=False),
    )
    if decoder_bias:
        _add_biases(decoder)
    return SimpleBottleneck(encoder, decoder, SimpleQuantizer(num_bits), SimpleDequantizer(num_bits))


@register_layer_func
def fp_resnet_bottleneck_with_decoder_bias(
    num_input_channels: int = 3, num_bottleneck_channels: int = 24, num_target_channels: int = 256
) -> FPBasedResNetBottleneck:
    """sc2bench's FPBasedResNetBottleneck whose decoder convolutions have biases.

    Distilled from scratch, the bias-free decoder approaches a teacher's ReLU features (all >= 0)
    very slowly: SC2 starts it from an ImageNet-trained bottleneck, which cannot be downloaded here.
    With biases it learns within the minutes of GPU time the demo models get. The encoder, the
    entropy bottleneck and so the robot's head and bitstream are sc2bench's own.
    """
    bottleneck = FPBasedResNetBottleneck(num_input_channels, num_bottleneck_channels, num_target_channels)
    _add_biases(bottleneck.decoder)
    return bottleneck


def _add_biases(layers: nn.Sequential) -> None:
    for layer in layers:
        if isinstance(layer, nn.Conv2d) and layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(layer.out_channels))
