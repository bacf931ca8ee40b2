"""Harness for the tests, the demo and the benchmarks: nodes started as processes, their counters read
back from /diagnostics, waiting on an executor, and the soak run; nothing here runs in a node."""
