"""DA-VPT+ bias tuning: the K and V biases of attention, trained apart from the fused qkv bias.

The tuned K/V biases live in one parameter of their own (``kv_bias``, (layers, 2, D)), so the
fused qkv bias, and with it the Q bias, stays frozen and untouched by weight decay.
"""
from typing import Optional, Sequence

import torch

__all__ = ['kv_rows', 'tuned_qkv_bias']


def kv_rows(qkv_biases: Sequence[torch.Tensor]) -> torch.Tensor:
    """The K and V parts of fused qkv biases, stacked.

    Args:
        qkv_biases (Sequence[Tensor]): One fused bias (3D,) per layer, ordered q, k, v.

    Returns:
        Tensor: (layers, 2, D), a new tensor.
    """
    return torch.stack([bias.view(3, -1)[1:] for bias in qkv_biases])


def tuned_qkv_bias(qkv_bias: Optional[torch.Tensor],
                   kv_bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A layer's qkv bias with the tuned K/V biases in place of the frozen ones.

    Args:
        qkv_bias (Tensor, optional): The frozen fused bias (3D,).
        kv_bias (Tensor, optional): The layer's tuned K/V biases (2, D); None without bias
            tuning.

    Returns:
        Tensor, optional: ``[b_Q, b_K, b_V]`` (3D,), or ``qkv_bias`` itself without tuning.
    """
    if kv_bias is None:
        return qkv_bias
    dim = kv_bias.shape[-1]
    return torch.cat([qkv_bias[:dim], kv_bias.flatten()])
