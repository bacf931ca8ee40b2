"""Export of an EntropyBottleneck's coding tables, so that a head without torch codes like compressai."""

from compressai.entropy_models import EntropyBottleneck

from sc2_split.codecs.entropy import EntropyTables


def tables_from_entropy_bottleneck(eb: EntropyBottleneck) -> EntropyTables:
    """The tables of `eb` as plain arrays; `eb.update()` must have built them."""
    if eb.quantized_cdf.numel() == 0 or eb.offset.numel() == 0 or eb.cdf_length.numel() == 0:
        raise ValueError(
            "the EntropyBottleneck has no coding tables yet; call eb.update() before exporting them"
        )
    return EntropyTables(
        quantized_cdf=eb.quantized_cdf.detach().cpu().numpy(),
        cdf_length=eb.cdf_length.detach().cpu().numpy(),
        offset=eb.offset.detach().cpu().numpy(),
        medians=eb._get_medians().detach().cpu().numpy().reshape(-1),  # the medians compress() uses
        precision=eb.entropy_coder_precision,
    )
