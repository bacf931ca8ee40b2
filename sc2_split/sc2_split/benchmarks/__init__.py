"""Benchmarks that print figures (never timed asserts in the test suite): head latency per backend,
payload bytes against JPEG and PNG, tail throughput, end to end through ROS 2."""
