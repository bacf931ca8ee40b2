# The entry point for people: `make demo` runs the split detector on the bundled defaults,
# `make test` runs the tests. Both set up the workspace first (tools/setup.sh; quick when nothing changed).
SHELL := /bin/bash
ENV := source tools/env.sh
PYTEST := pytest -q -p no:cacheprovider

# The robot side's tests that need neither torch nor ROS: they also run under Python 3.10 (JetPack 6,
# Humble): codecs and payload fuzzing, entropy coding on worker processes, the exported head on ONNX
# Runtime, the head's newest-frame worker.
ROBOT_TESTS := sc2_split/test/test_codecs.py sc2_split/test/test_channel_pool_encoding.py \
	sc2_split/test/test_head_pipeline_onnxruntime.py sc2_split/test/test_newest_wins.py
# The ROS tests that also run on Jazzy, the robots' distribution: torch-free, so no tail of their own;
# the camera test runs camera, head and overlay on Jazzy against a tail on Kilted.
JAZZY_TESTS := sc2_split/test/test_camera_frames_over_dds.py sc2_split/test/test_dds_exchange.py \
	sc2_split/test/test_image_conversion.py sc2_split/test/test_imports_without_torch.py \
	sc2_split/test/test_robot_side_untrusted.py sc2_split/test/test_spin_until.py

.PHONY: setup setup-robot demo test lint

setup:
	bash tools/setup.sh

# The robot's older distribution and Python: .venv-jazzy with install-jazzy/, and .venv-py310.
setup-robot:
	bash tools/setup.sh jazzy
	bash tools/setup.sh py310

demo: setup
	$(ENV) && python -m sc2_split.demo

test: setup setup-robot
	$(ENV) && $(PYTEST) sc2_split/test
	$(ENV) jazzy && $(PYTEST) $(JAZZY_TESTS)
	PYTHONPATH=sc2_split .venv-py310/bin/python -m $(PYTEST) $(ROBOT_TESTS)

lint: setup
	$(ENV) && ruff check . && ruff format --check .
