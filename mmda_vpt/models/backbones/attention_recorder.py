"""Recording the attention maps of the prefix tokens and prompts (for figures and analysis)."""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch

from .layer_indices import resolve_layer_indices

__all__ = ['AttentionRecorder']


class AttentionRecorder:
    """Which layers record their attention maps, and the maps they recorded.

    Outside :meth:`record` no layer records, and the blocks use the fused
    ``scaled_dot_product_attention``.

    Attributes:
        layers: The 0-based layers that record, or None outside :meth:`record`.
        maps: ``maps[layer]`` (B, heads, rows, tokens) from the last recording.
    """

    def __init__(self) -> None:
        self.layers: Optional[Tuple[int, ...]] = None
        self.maps: Dict[int, torch.Tensor] = {}

    def wants(self, index: int) -> bool:
        """Whether layer ``index`` records its attention now."""
        return self.layers is not None and index in self.layers

    @contextmanager
    def record(self, layers: Optional[Sequence[int]],
               num_layers: int) -> Iterator[Dict[int, torch.Tensor]]:
        """Record the given layers (all when None) inside the context.

        Args:
            layers (Sequence[int], optional): Layers to record; negative indices count from the
                end.
            num_layers (int): The depth of the ViT.

        Yields:
            dict: The new ``maps`` dict, filled by the forward passes in the context.
        """
        if layers is None:
            layers = range(num_layers)
        resolved = resolve_layer_indices(layers, num_layers, 'attention layer')
        self.maps = {}
        self.layers = tuple(resolved)
        try:
            yield self.maps
        finally:
            self.layers = None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: int, rows: int,
               attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention with an explicit softmax; keeps the first ``rows`` rows as ``maps[index]``.

        Args:
            q (Tensor): Queries (B, heads, T, d).
            k (Tensor): Keys (B, heads, T, d).
            v (Tensor): Values (B, heads, T, d).
            index (int): The layer.
            rows (int): Leading query rows to keep (prefix tokens and prompts).
            attn_mask (Tensor, optional): A (T, T) bool mask, True where a query may attend
                to a key (as ``scaled_dot_product_attention``'s); masked entries of the maps
                are 0. Defaults to None (none).

        Returns:
            Tensor: The attention output (B, heads, T, d).
        """
        scale = q.shape[-1]**-0.5
        attn = (q * scale) @ k.transpose(-2, -1)
        if attn_mask is not None:
            attn = attn.masked_fill(~attn_mask, float('-inf'))
        attn = attn.softmax(dim=-1)
        self.maps[index] = attn[:, :, :rows].detach()
        return attn @ v
