"""The golden suites: casts, scaling, matmul, trainer (one module each)."""
