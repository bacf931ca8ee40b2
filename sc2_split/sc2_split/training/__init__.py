"""Training the bundled demo models with the SC2 recipe: a Faster R-CNN teacher on procedural frames,
then entropic students (one per rate) and the 8-bit variant by head distillation from it.

`python -m sc2_split.training all --out DIR` reproduces every checkpoint; `--quick` is a CPU smoke run.
"""
