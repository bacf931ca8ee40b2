"""Model-side helpers that may use torch: exports that feed the torch-free robot head."""
