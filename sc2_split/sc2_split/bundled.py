"""The assets that ship inside the package: the demo model's checkpoints and the heads exported from
its students. Torch-free, so that the head node can find its bundled heads on a robot."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "models" / "demo"
BUNDLED_HEAD = DEMO_DIR / "head" / "head.json"
# The weights of the bundled head (and so the tail's default): the stage-2 student at beta 4.5.
DEMO_CHECKPOINT = "demo_fp_beta4.5_stage2"
# Ends the name of a student whose decoder and tail were fine-tuned (SC2 stage 2).
STAGE2_SUFFIX = "_stage2"


def bundled_head(student: str) -> Path:
    """The head.json exported from a bundled student (config demo_fp): the default student's is
    BUNDLED_HEAD, the other rates of the bundled ladder (config/rate_ladder.yaml) are under heads/."""
    path = BUNDLED_HEAD if student == DEMO_CHECKPOINT else DEMO_DIR / "heads" / student / "head.json"
    if not path.is_file():
        raise ValueError(f"no bundled head of {student!r}: {path} is missing")
    return path
