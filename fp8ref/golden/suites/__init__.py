"""The golden suites: casts, scaling, matmul, trainer, tensorcore (one module each)."""
