"""The host interface: the frozen pieces of one transformer block, as the host names them."""
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

__all__ = ['BlockParts']


class BlockParts(NamedTuple):
    """The frozen pieces of one pre-norm transformer block, as the host names them."""
    norm1: nn.Module
    qkv_weight: torch.Tensor  # (3D, D), rows ordered q, k, v
    qkv_bias: Optional[torch.Tensor]  # (3D,)
    num_heads: int
    proj: nn.Module  # attention output projection
    layer_scale: nn.Module  # identity unless the host uses layer scale
    norm2: nn.Module
    ffn: nn.Module  # an mmcv ``FFN``: ``ffn(x, identity=...)`` adds the residual
    proj_bias_owner: Optional[nn.Module]  # module whose ``bias`` is the projection bias
    fc2: Optional[nn.Linear]  # the second MLP linear layer
    fc1: Optional[nn.Linear] = None  # the first MLP linear layer
