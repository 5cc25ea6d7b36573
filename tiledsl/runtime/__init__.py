"""Running compiled kernels on real GPUs."""
