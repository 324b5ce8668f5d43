"""DA-VPT+ bias tuning: rows of the fused qkv bias trained apart, and the authors' part sets.

The tuned Q/K/V biases live in one parameter of their own ((layers, rows, D), named after the
rows it holds: ``kv_bias`` for K and V, ``v_bias``, ``qkv_bias`` ...), so the fused qkv bias,
and with it every row that is not tuned (the Q bias under ``'kv'``), stays frozen and untouched
by weight decay. The other parts of :data:`~.prompt_options.BIAS_PARTS` are tensors of their
own and train in place.
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from .prompt_options import BIAS_PARTS, QKV_BIAS_PARTS

__all__ = ['qkv_rows', 'qkv_row_indices', 'tuned_qkv_bias', 'tuned_qkv_name',
           'authors_bias_parts', 'authors_flag', 'AUTHORS_BIAS_KEYS']

#: The authors' YAML switches (``params.py``) and the parts each releases. Their
#: ``set_learnable_parameters`` matches names by suffix, so ``bias_proj`` (``'proj.bias'``)
#: releases ``patch_embed.proj.bias`` as well as the attention output bias, ``norm_norm1``
#: (``'norm1'``) the weight and the bias of norm1, and ``learn_bias`` (``'bias'``) every bias.
AUTHORS_BIAS_KEYS: Dict[str, Tuple[str, ...]] = {
    'learn_bias': ('q_bias', 'k_bias', 'v_bias', 'attn_out_bias', 'fc1_bias', 'fc2_bias',
                   'norm1_bias', 'norm2_bias', 'patch_embed_bias', 'final_norm_bias'),
    'bias_q': ('q_bias', ),
    'bias_k': ('k_bias', ),
    'bias_v': ('v_bias', ),
    'bias_fc1': ('fc1_bias', ),
    'bias_fc2': ('fc2_bias', ),
    'bias_proj': ('attn_out_bias', 'patch_embed_bias'),
    'bias_norm1': ('norm1_bias', ),
    'bias_norm2': ('norm2_bias', ),
    'bias_norm': ('final_norm_bias', ),
    'norm_norm1': ('norm1_weight', 'norm1_bias'),
    'norm_norm2': ('norm2_weight', 'norm2_bias'),
    'norm_norm': ('final_norm_weight', 'final_norm_bias'),
}

_TRUE = ('1', 'true', 't', 'yes', 'y', 'on')
_FALSE = ('0', 'false', 'f', 'no', 'n', 'off')


def authors_flag(row: Dict[str, Any], key: str) -> bool:
    """One boolean switch of an authors' config row (absent: False), as their parser reads it.

    Args:
        row (dict): The row's keys and values (bools, 0/1, or strings such as ``'true'``).
        key (str): The switch (``'bias_k'``, ``'train_cls'`` ...).

    Returns:
        bool: The switch.

    Raises:
        ValueError: When the value is not a boolean.
    """
    value = row.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().strip('"').strip("'").lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f'{key} must be a boolean (true/false), got {value!r}')


def authors_bias_parts(yaml_row: Dict[str, Any]) -> Tuple[str, ...]:
    """The bias parts that one of the authors' configs (``configs/**/*.yaml``) trains.

    Their ``model_creator.create_model`` turns the switches of :data:`AUTHORS_BIAS_KEYS` into
    name patterns for ``set_learnable_parameters``; this gives the same tensors as
    ``bias_tune`` parts. Keys absent from the row are off (their ``store_true`` defaults). The
    CLS token (``train_cls``) is not a bias part: it is ``learnable_cls_token``
    (``authors_flag(yaml_row, 'train_cls')``).

    Two of their switches release what no part names: ``learn_bias`` also the fused
    ``qkv.bias`` (which their forward never reads: it runs the split q, k, v layers) and the
    head's bias; ``vpt_norm: layer`` trains a LayerNorm on the prompts. No released row sets
    either.

    Args:
        yaml_row (dict): The row's keys and values, as bools or as the strings of their YAML
            files (``'true'``, ``'false'``).

    Returns:
        tuple[str]: Parts out of :data:`~.prompt_options.BIAS_PARTS`, in that order (empty
        when the row tunes no bias).

    Raises:
        ValueError: When a switch is not a boolean.
    """
    parts = set()
    for key, released in AUTHORS_BIAS_KEYS.items():
        if authors_flag(yaml_row, key):
            parts.update(released)
    return tuple(part for part in BIAS_PARTS if part in parts)


def tuned_qkv_name(rows: Sequence[int]) -> str:
    """The name of the parameter that holds the tuned rows of the fused qkv bias.

    Args:
        rows (Sequence[int]): Rows of the fused bias (0: Q, 1: K, 2: V).

    Returns:
        str: ``'kv_bias'`` for (1, 2), ``'v_bias'`` for (2,), ``'qkv_bias'`` for (0, 1, 2) ...
    """
    return ''.join('qkv'[row] for row in rows) + '_bias'


def qkv_row_indices(parts: Sequence[str]) -> Tuple[int, ...]:
    """The rows of the fused qkv bias that ``parts`` names (0: Q, 1: K, 2: V), sorted."""
    return tuple(i for i, part in enumerate(QKV_BIAS_PARTS) if part in parts)


def qkv_rows(qkv_biases: Sequence[torch.Tensor], rows: Sequence[int]) -> torch.Tensor:
    """Rows of fused qkv biases, stacked over the layers.

    Args:
        qkv_biases (Sequence[Tensor]): One fused bias (3D,) per layer, ordered q, k, v.
        rows (Sequence[int]): The rows to take (0: Q, 1: K, 2: V).

    Returns:
        Tensor: (layers, len(rows), D), a new tensor.
    """
    index = list(rows)
    return torch.stack([bias.view(3, -1)[index] for bias in qkv_biases])


def tuned_qkv_bias(qkv_bias: Optional[torch.Tensor], tuned: Optional[torch.Tensor],
                   rows: Sequence[int] = (1, 2)) -> Optional[torch.Tensor]:
    """A layer's qkv bias with the tuned rows in place of the frozen ones.

    Args:
        qkv_bias (Tensor, optional): The frozen fused bias (3D,).
        tuned (Tensor, optional): The layer's tuned rows (len(rows), D); None without tuning.
        rows (Sequence[int]): Which rows ``tuned`` holds (0: Q, 1: K, 2: V). Defaults to
            (1, 2): K and V.

    Returns:
        Tensor, optional: ``[b_Q, b_K, b_V]`` (3D,), or ``qkv_bias`` itself without tuning.
    """
    if tuned is None:
        return qkv_bias
    pieces = list(qkv_bias.view(3, -1).unbind(0))
    for j, row in enumerate(rows):
        pieces[row] = tuned[j]
    return torch.cat(pieces)
