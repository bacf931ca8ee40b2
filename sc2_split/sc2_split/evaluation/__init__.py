"""How well a detector does: COCO mAP on annotated frames, reusable by training and benchmarks."""
