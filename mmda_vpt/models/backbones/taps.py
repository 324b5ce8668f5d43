"""The taps: what one training forward records for the metric losses and the class map.

The prompt metric loss reads the prompts' queries and the patch representations of the guided
layers; the class-to-prompt mapping reads the final CLS feature.
"""
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple

import torch

__all__ = ['PromptTaps', 'LayerTaps']


class LayerTaps(NamedTuple):
    """What one guided layer records (see :class:`PromptTaps` for the shapes)."""
    prompt_query: torch.Tensor
    prompt_raw: torch.Tensor
    patch_attn: torch.Tensor
    patch_input: torch.Tensor
    cls_query: torch.Tensor  # empty without a CLS token


@dataclass
class PromptTaps:
    """What one training forward recorded, one list entry per guided layer.

    Attributes:
        guided_layers: The 0-based guided layers, in order.
        prompt_query: The prompts' query projections ``LN(p) W_Q + b_Q``, each (M, D).
        prompt_raw: The raw prompt parameters, each (M, D).
        patch_attn: Post-attention patch representations (concatenated head outputs before the
            output projection), each (B, N, D).
        patch_input: Block-input patch tokens, each (B, N, D) (the authors' variant).
        cls_query: The CLS token's query projection, each (B, D); empty without a CLS token.
        cls_final: The final CLS feature after the final norm (B, D), or None without one.
        patch_final: The final patch tokens (B, N, D) after the final norm.
        patch_resolution: (H, W) of the patch grid.
    """
    guided_layers: Tuple[int, ...] = ()
    prompt_query: List[torch.Tensor] = field(default_factory=list)
    prompt_raw: List[torch.Tensor] = field(default_factory=list)
    patch_attn: List[torch.Tensor] = field(default_factory=list)
    patch_input: List[torch.Tensor] = field(default_factory=list)
    cls_query: List[torch.Tensor] = field(default_factory=list)
    cls_final: Optional[torch.Tensor] = None
    patch_final: Optional[torch.Tensor] = None
    patch_resolution: Tuple[int, int] = (0, 0)

    def add_layer(self, layer: LayerTaps, has_cls: bool) -> None:
        """Append what one guided layer recorded.

        Args:
            layer (LayerTaps): The layer's taps.
            has_cls (bool): Whether the ViT has a CLS token (its query is recorded then).
        """
        self.prompt_query.append(layer.prompt_query)
        self.prompt_raw.append(layer.prompt_raw)
        self.patch_attn.append(layer.patch_attn)
        self.patch_input.append(layer.patch_input)
        if has_cls:
            self.cls_query.append(layer.cls_query)

    def set_final(self, tokens: torch.Tensor, num_prefix_tokens: int) -> None:
        """Record the final features from the last block's output, prompts stripped.

        Args:
            tokens (Tensor): ``[prefix, patches]`` (B, P + N, D) after the final norm.
            num_prefix_tokens (int): P, 1 with a CLS token (then the first token).
        """
        self.cls_final = tokens[:, 0] if num_prefix_tokens > 0 else None
        self.patch_final = tokens[:, num_prefix_tokens:]
