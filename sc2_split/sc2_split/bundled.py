"""The assets that ship inside the package: the demo model's checkpoints and the head exported from
its default student. Torch-free, so that the head node can find its bundled head on a robot."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "models" / "demo"
BUNDLED_HEAD = DEMO_DIR / "head" / "head.json"
# The weights of the bundled head (and so the tail's default): the stage-2 student at beta 4.5.
DEMO_CHECKPOINT = "demo_fp_beta4.5_stage2"
# Ends the name of a student whose decoder and tail were fine-tuned (SC2 stage 2).
STAGE2_SUFFIX = "_stage2"
