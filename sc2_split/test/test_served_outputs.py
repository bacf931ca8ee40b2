"""The served model's output tensors for a batch: every frame's own detections or error, and no
empty dimension where no frame of the batch found anything (PyTriton fails such a batch whole)."""

import numpy as np
import pytest
from sc2_split.codecs.payload import PayloadError
from sc2_split.frames import Detections
from sc2_split.serving.protocol import BOXES, LABELS, SCORES, batch_outputs, detections_from_outputs


def detections(count: int) -> Detections:
    boxes = np.arange(4 * count, dtype=np.float32).reshape(count, 4)
    scores, labels = np.linspace(0.9, 0.5, count, dtype=np.float32), np.arange(count, dtype=np.int64)
    return Detections(boxes=boxes, scores=scores, labels=labels, decode_ms=1.0, tail_ms=2.0)


def request(outputs: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Request i's rows, as Triton hands each client its own."""
    return {name: array[i : i + 1] for name, array in outputs.items()}


@pytest.mark.parametrize(
    "results", [[detections(0)], [PayloadError("truncated", "short")], [detections(0)] * 3]
)
def test_a_batch_without_detections_has_no_empty_dimension(results: list) -> None:
    outputs = batch_outputs(results)
    assert all(0 not in array.shape for array in outputs.values())
    for i, result in enumerate(results):
        if isinstance(result, Exception):
            with pytest.raises(PayloadError, match="short"):
                detections_from_outputs(request(outputs, i))
        else:
            got = detections_from_outputs(request(outputs, i))
            assert got.boxes.shape == (0, 4) and len(got.scores) == len(got.labels) == 0


def test_each_frame_gets_its_own_rows_of_a_padded_batch() -> None:
    results = [detections(3), PayloadError("corrupt", "bad"), detections(1)]
    outputs = batch_outputs(results)
    assert outputs[BOXES].shape == (3, 3, 4) and outputs[SCORES].shape == outputs[LABELS].shape == (3, 3)
    for i in (0, 2):
        got, want = detections_from_outputs(request(outputs, i)), results[i]
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_array_equal(got.labels, want.labels)
    with pytest.raises(PayloadError, match="bad"):
        detections_from_outputs(request(outputs, 1))
