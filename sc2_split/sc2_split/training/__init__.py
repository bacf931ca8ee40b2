"""The SC2 recipe on one process or many (torchrun, DDP): a teacher (trained here, a torchvision
detector with the user's weights, or the user's own config and checkpoint), entropic students by
head distillation from it (stage 1), and stage 2 for chosen students, on COCO-format data or the
procedural frames. `engine` is the one training loop; docs/training.md shows how to use it.

`python -m sc2_split.training all --out DIR` reproduces the demo's checkpoints; `--quick` is a CPU
smoke run.
"""
