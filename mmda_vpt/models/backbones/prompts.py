"""VPT-Deep prompts: one learned token set per layer, inserted after the prefix tokens.

Token layout inside the blocks: ``[prefix tokens (CLS), prompts, patches]``; each layer replaces
the previous layer's prompts with its own, as in VPT-Deep.
"""
import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['DeepPrompts', 'patches_only_mask']

#: The epsilon of ``prompt_norm='l2'`` (the authors' ``L2NormalizationLayer(dim=-1, eps=1e-6)``).
L2_EPS = 1e-6


def patches_only_mask(num_prefix_tokens: int, num_prompts: int, num_tokens: int,
                      device: Optional[torch.device] = None) -> torch.Tensor:
    """The attention mask of ``prompt_attn_mask='patches_only'`` for one layer.

    Tokens are ``[prefix, prompts, patches]``; the prompts' query rows may attend only to the
    patch columns (not to the prefix tokens, the other prompts or themselves); every other row
    attends to every token.

    Args:
        num_prefix_tokens (int): P, the tokens before the prompts.
        num_prompts (int): M, the layer's prompts.
        num_tokens (int): T = P + M + N.
        device (torch.device, optional): Where the mask lives. Defaults to None (CPU).

    Returns:
        Tensor: A (T, T) bool mask for ``scaled_dot_product_attention``: True where a query
        (row) may attend to a key (column).
    """
    start, end = num_prefix_tokens, num_prefix_tokens + num_prompts
    if end >= num_tokens:
        raise ValueError(f'patches_only_mask: {num_tokens} tokens leave no patch after '
                         f'{num_prefix_tokens} prefix tokens and {num_prompts} prompts')
    mask = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=device)
    mask[start:end, :end] = False
    return mask


class DeepPrompts(nn.ParameterDict):
    """The deep prompts of a ViT: parameters, initialization, insertion and stripping.

    A ``ParameterDict`` keyed by layer index (``'0'``, ``'1'``, ...), so a backbone that holds
    it as ``prompts`` has the state-dict keys ``prompts.<layer>``; layers without prompts have no
    entry, so that no prompts at all leave the host's state dict as it is.

    Args:
        counts (Sequence[int]): Prompts of each layer (0 for none).
        embed_dims (int): Token width.
        patch_size (tuple[int, int]): The patch embedding's kernel size (for VPT's init bound).
        num_prefix_tokens (int): Tokens before the prompts (the CLS token).
        init (str): ``'uniform'`` (VPT's), ``'xavier'`` (per layer) or ``'xavier_stacked'``
            (the authors': per stack of layers, see ``guided_layers``). Defaults to
            ``'uniform'``.
        dropout (float): Dropout on the prompts in training. Defaults to 0.0.
        init_scale (float): Factor on the initialized prompts. Defaults to 1.0.
        guided_layers (Sequence[int]): For ``'xavier_stacked'``: the prompts of these layers
            are initialized as one (layers, length, dim) tensor, those of the other layers as
            another (the authors' ``proxy_prompt_tokens`` and ``other_prompt_tokens``).
            Defaults to ``()``.
        norm (str, optional): ``'l2'``: each prompt token is scaled to unit L2 norm over the
            width before the dropout, in every layer (see :meth:`tokens`). Defaults to None.

    Attributes:
        bounds (dict[int, float]): Each layer's initialization bound: its prompts are drawn
            from U(-bound, bound) (scale included).
    """

    def __init__(self,
                 counts: Sequence[int],
                 embed_dims: int,
                 patch_size: Tuple[int, int],
                 num_prefix_tokens: int,
                 init: str = 'uniform',
                 dropout: float = 0.0,
                 init_scale: float = 1.0,
                 guided_layers: Sequence[int] = (),
                 norm: Optional[str] = None) -> None:
        super().__init__()
        if norm not in (None, 'l2'):
            raise ValueError(f"prompt norm must be None or 'l2', got {norm!r}")
        self.norm = norm
        self.counts = tuple(counts)
        self.num_prefix_tokens = num_prefix_tokens
        self.init = init
        self.init_scale = float(init_scale)
        for i, count in enumerate(self.counts):
            if count > 0:
                self[str(i)] = nn.Parameter(torch.zeros(count, embed_dims))
        self.dropout = nn.Dropout(dropout)
        patch_area = patch_size[0] * patch_size[1]
        #: VPT's bound (``'uniform'``), before the scale.
        self.bound = math.sqrt(6.0 / float(3 * patch_area + embed_dims))
        guided = set(guided_layers)
        self.init_groups: Tuple[Tuple[int, ...], ...] = tuple(
            group for group in (tuple(i for i in range(len(self.counts)) if i in guided),
                                tuple(i for i in range(len(self.counts)) if i not in guided))
            if group)
        self.bounds = self._bounds(embed_dims)
        self.reset()

    def _stacks(self) -> List[Tuple[int, ...]]:
        """Layers initialized together: one stack per group with prompts, or one per layer."""
        layers = [i for i in range(len(self.counts)) if str(i) in self]
        if self.init != 'xavier_stacked':
            return [(i, ) for i in layers]
        return [tuple(i for i in group if str(i) in self) for group in self.init_groups
                if any(str(i) in self for i in group)]

    def _bounds(self, dim: int) -> Dict[int, float]:
        bounds = {}
        for stack in self._stacks():
            length = self[str(stack[0])].shape[0]
            if self.init == 'uniform':
                bound = self.bound
            elif self.init == 'xavier':  # fan_in = dim, fan_out = length
                bound = math.sqrt(6.0 / float(length + dim))
            else:  # (layers, length, dim): fan_in = length * dim, fan_out = layers * dim
                bound = math.sqrt(6.0 / float((length + len(stack)) * dim))
            bounds.update({i: bound * self.init_scale for i in stack})
        return bounds

    def reset(self) -> None:
        """(Re-)initialize the prompts: U(-bound, bound) for each layer's ``bounds``."""
        for stack in self._stacks():
            prompts = [self[str(i)] for i in stack]
            with torch.no_grad():
                if self.init == 'uniform':
                    for prompt in prompts:
                        nn.init.uniform_(prompt, -self.bound, self.bound)
                elif self.init == 'xavier':
                    nn.init.xavier_uniform_(prompts[0])
                else:
                    first = prompts[0]
                    stacked = first.new_empty(len(prompts), *first.shape)
                    nn.init.xavier_uniform_(stacked)
                    for prompt, values in zip(prompts, stacked):
                        prompt.copy_(values)
                if self.init_scale != 1.0:
                    for prompt in prompts:
                        prompt.mul_(self.init_scale)

    def tokens(self, index: int) -> torch.Tensor:
        """Layer ``index``'s prompts as the block receives them, before the dropout.

        Args:
            index (int): A layer with prompts.

        Returns:
            Tensor: (M, D): the parameter, or with ``norm='l2'`` each token scaled to unit L2
            norm (``F.normalize(p, dim=-1, eps=1e-6)``).
        """
        prompts = self[str(index)]
        if self.norm == 'l2':
            prompts = F.normalize(prompts, p=2, dim=-1, eps=L2_EPS)
        return prompts

    def insert(self, x: torch.Tensor, index: int, replace: bool) -> torch.Tensor:
        """Put layer ``index``'s prompts after the prefix tokens of ``x``.

        Args:
            x (Tensor): Tokens (B, T, D).
            index (int): The layer whose prompts to use.
            replace (bool): Whether ``x`` already holds the previous layer's prompts (VPT-Deep
                replaces them); the previous count is taken from ``counts[index - 1]``.

        Returns:
            Tensor: ``[prefix, prompts of layer index, patches]``.
        """
        prefix = self.num_prefix_tokens
        old = self.counts[index - 1] if replace else 0
        count = self.counts[index]
        if count == 0 and old == 0:
            return x
        if count == 0:
            return torch.cat([x[:, :prefix], x[:, prefix + old:]], dim=1)
        prompts = self.dropout(self.tokens(index)).to(x.dtype)
        prompts = prompts.unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :prefix], prompts, x[:, prefix + old:]], dim=1)

    def strip(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Remove layer ``index``'s prompts from ``x``: ``[prefix, patches]``.

        Args:
            x (Tensor): Tokens (B, T, D) that hold layer ``index``'s prompts.
            index (int): The layer whose prompts ``x`` holds.

        Returns:
            Tensor: ``x`` without the prompts.
        """
        count = self.counts[index]
        if count == 0:
            return x
        prefix = self.num_prefix_tokens
        return torch.cat([x[:, :prefix], x[:, prefix + count:]], dim=1)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """No layer has prompts inside the context: :meth:`insert` and :meth:`strip` pass."""
        saved = self.counts
        self.counts = (0, ) * len(saved)
        try:
            yield
        finally:
            self.counts = saved
