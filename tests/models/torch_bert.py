"""An independent PyTorch implementation of the BERT sentence encoder (all-MiniLM-L6-v2), used as the
reference of the NumPy forward pass: padded batches with an attention mask, as Hugging Face's BertModel
and sentence-transformers compute them, straight from the checkpoint's tensors (Hugging Face names,
``[out, in]`` weights)."""

from __future__ import annotations

import math

import numpy as np


def embed(tensors: dict[str, np.ndarray], cfg: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ids, mask [B, T] -> [B, C] L2-normalised mean-pooled embeddings (float32 numpy)."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
    eps = cfg["layer_norm_eps"]
    H = cfg["num_attention_heads"]
    ids_t = torch.from_numpy(ids).long()
    m = torch.from_numpy(mask).float()
    B, T = ids_t.shape
    C = cfg["hidden_size"]
    hs = C // H
    with torch.no_grad():
        x = t["embeddings.word_embeddings.weight"][ids_t] + t["embeddings.token_type_embeddings.weight"][0]
        x = x + t["embeddings.position_embeddings.weight"][torch.arange(T)][None]
        x = F.layer_norm(x, (C,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
        ext = (1.0 - m)[:, None, None, :] * torch.finfo(torch.float32).min

        def lin(name: str, inp: torch.Tensor) -> torch.Tensor:
            return F.linear(inp, t[name + ".weight"], t[name + ".bias"])

        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."

            def heads(z: torch.Tensor) -> torch.Tensor:
                return z.view(B, T, H, hs).permute(0, 2, 1, 3)

            q = heads(lin(p + "attention.self.query", x))
            k = heads(lin(p + "attention.self.key", x))
            v = heads(lin(p + "attention.self.value", x))
            s = q @ k.transpose(-1, -2) / math.sqrt(hs) + ext
            a = torch.softmax(s, dim=-1) @ v
            a = a.permute(0, 2, 1, 3).reshape(B, T, C)
            x = F.layer_norm(
                lin(p + "attention.output.dense", a) + x,
                (C,),
                t[p + "attention.output.LayerNorm.weight"],
                t[p + "attention.output.LayerNorm.bias"],
                eps,
            )
            h = F.gelu(lin(p + "intermediate.dense", x))  # the exact (erf) GELU
            x = F.layer_norm(
                lin(p + "output.dense", h) + x,
                (C,),
                t[p + "output.LayerNorm.weight"],
                t[p + "output.LayerNorm.bias"],
                eps,
            )
        pooled = (x * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1).numpy()
