"""timm's ViT backbone keys renamed to mmpretrain's or mmsegmentation's ``VisionTransformer``.

The second stage of :mod:`.vit_checkpoint`'s conversion (:func:`timm_to_host`): the blocks must
be numbered 0..L-1 and complete; every key is renamed by a rule of its destination, recorded in
the :class:`~.vit_source_keys.ConversionReport`, or fails the conversion.
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

from .vit_source_keys import ConversionReport, unknown_keys_error

__all__ = ['DST_FORMATS', 'timm_to_host']

DST_FORMATS = ('mmpretrain', 'mmseg')

_BLOCK_PARAMS = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.proj.weight',
                 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight',
                 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')
_OPTIONAL_BLOCK_PARAMS = ('attn.qkv.bias', 'ls1.gamma', 'ls2.gamma')


# ---------------------------------------------------------------------------------- to host
_PATCH_RULES = {
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}
_BLOCK_RULES = {
    'mmpretrain': {
        'norm1.': 'ln1.',
        'norm2.': 'ln2.',
        'attn.qkv.weight': 'attn.qkv.weight',
        'attn.qkv.bias': 'attn.qkv.bias',
        'attn.proj.': 'attn.proj.',
        'mlp.fc1.': 'ffn.layers.0.0.',
        'mlp.fc2.': 'ffn.layers.1.',
        'ls1.gamma': 'attn.gamma1.weight',
        'ls2.gamma': 'ffn.gamma2.weight',
    },
    'mmseg': {
        'norm1.': 'ln1.',
        'norm2.': 'ln2.',
        'attn.qkv.weight': 'attn.attn.in_proj_weight',
        'attn.qkv.bias': 'attn.attn.in_proj_bias',
        'attn.proj.': 'attn.attn.out_proj.',
        'mlp.fc1.': 'ffn.layers.0.0.',
        'mlp.fc2.': 'ffn.layers.1.',
    },
}
_PRE_NORM = {'mmpretrain': 'pre_norm.', 'mmseg': 'ln_pre.'}


def _check_blocks(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Check that the blocks are numbered 0..L-1 and complete; return L."""
    blocks: Dict[int, set] = {}
    for key in state_dict:
        match = re.match(r'blocks\.(\d+)\.(.+)$', key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(match.group(2))
    if not blocks:
        raise KeyError('the checkpoint has no transformer blocks (blocks.0.*)')
    if set(blocks) != set(range(len(blocks))):
        raise KeyError(f'transformer blocks are not numbered 0..{len(blocks) - 1}: '
                       f'{sorted(blocks)}')
    missing = [f'blocks.{i}.{name}' for i in sorted(blocks) for name in _BLOCK_PARAMS
               if name not in blocks[i]]
    for name in _OPTIONAL_BLOCK_PARAMS:
        present = [i for i in blocks if name in blocks[i]]
        if present and len(present) != len(blocks):
            missing += [f'blocks.{i}.{name}' for i in sorted(blocks) if name not in blocks[i]]
    if missing:
        raise KeyError(f'incomplete ViT checkpoint, missing: {missing}')
    for key in ('patch_embed.proj.weight', 'pos_embed'):
        if key not in state_dict:
            raise KeyError(f'incomplete ViT checkpoint, missing: {key!r}')
    return len(blocks)


def timm_to_host(state_dict: Mapping[str, torch.Tensor],
                 dst: str,
                 report: Optional[ConversionReport] = None,
                 origin: Optional[Mapping[str, str]] = None,
                 drop_final_norm: bool = False,
                 drop_patch_bias: bool = False) -> 'OrderedDict[str, torch.Tensor]':
    """Rename a timm ``VisionTransformer`` backbone state dict for a host's ViT.

    Args:
        state_dict: timm keys (no head).
        dst: ``'mmpretrain'`` or ``'mmseg'``.
        report: Collects the mapping, drops and notes. Defaults to None.
        origin: Source key(s) of each timm key, for the report. Defaults to None (the timm keys).
        drop_final_norm: Drop the final norm (``norm.*``), for a host built with
            ``final_norm=False`` such as mmseg's SETR configs. Defaults to False.
        drop_patch_bias: Drop the patch-embedding bias (``patch_embed.proj.bias``), for a
            host built without it: mmseg's ``VisionTransformer`` defaults to
            ``patch_bias=False``, and mmseg's SETR configs (and the DA-VPT authors' SETR
            backbone) keep that default and load non-strictly, so they run without the bias.
            Defaults to False.

    Returns:
        OrderedDict: The state dict in the host's key layout.
    """
    if dst not in DST_FORMATS:
        raise ValueError(f'dst must be one of {DST_FORMATS}, got {dst!r}')
    if drop_patch_bias and dst != 'mmseg':
        raise ValueError("drop_patch_bias is for mmseg's VisionTransformer (patch_bias=False); "
                         "mmpretrain's always has the patch-embedding bias")
    if report is None:
        report = ConversionReport('timm', dst)
    origin = origin or {}
    _check_blocks(state_dict)
    rules = _BLOCK_RULES[dst]
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        new_key = None
        block = re.match(r'blocks\.(\d+)\.(.+)$', key)
        if drop_final_norm and key.startswith('norm.'):
            report.drop('final norm (drop_final_norm, for final_norm=False)',
                        origin.get(key, key))
            continue
        if drop_patch_bias and key == 'patch_embed.proj.bias':
            report.drop('patch-embedding bias (drop_patch_bias, for patch_bias=False)',
                        origin.get(key, key))
            continue
        if key in _PATCH_RULES:
            new_key = _PATCH_RULES[key]
        elif key.startswith('norm_pre.'):
            new_key = _PRE_NORM[dst] + key[len('norm_pre.'):]
        elif key.startswith('fc_norm.'):
            if dst == 'mmpretrain':
                new_key = 'ln2.' + key[len('fc_norm.'):]
            else:
                report.drop('norm of the pooled feature (fc_norm); mmseg has no pooled output',
                            origin.get(key, key))
                continue
        elif block:
            rest = block.group(2)
            for src, target in rules.items():
                if rest == src or (src.endswith('.') and rest in (src + 'weight', src + 'bias')):
                    new_key = f'layers.{block.group(1)}.{target}{rest[len(src):]}'
                    break
            if new_key is None and rest in ('ls1.gamma', 'ls2.gamma'):
                raise ValueError(f'{key}: layer scale is not supported by mmseg\'s '
                                 'VisionTransformer; convert with --dst mmpretrain')
        if new_key is None:
            unknown.append(origin.get(key, key))
            continue
        out[new_key] = value.contiguous()
        report.mapped.append((origin.get(key, key), new_key))
    if unknown:
        raise unknown_keys_error(unknown, report.src_format)

    if dst == 'mmseg':
        if 'cls_token' not in out:
            raise ValueError("mmseg's VisionTransformer always has a CLS token, and this "
                             'checkpoint has none; convert with --dst mmpretrain and use '
                             'with_cls_token=False there')
        if 'patch_embed.projection.bias' in out:
            report.notes.append("the patch embedding has a bias: set patch_bias=True in mmseg's "
                                'backbone config (its default is False), or convert with '
                                '--drop-patch-bias for patch_bias=False')
        report.notes.append("timm / Google ViTs use LayerNorm eps=1e-6: set norm_cfg=dict("
                            "type='LN', eps=1e-6) (mmseg's default eps is 1e-5)")
    if 'ln1.weight' in out:
        report.notes.append('the checkpoint has a final norm (ln1): build the backbone with '
                            'final_norm=True, or convert with --drop-final-norm for '
                            'final_norm=False')
    else:
        report.notes.append('no final norm in the checkpoint: set final_norm=False')
    if dst == 'mmpretrain' and 'ln2.weight' in out:
        report.notes.append("fc_norm became ln2: use out_type='avg_featmap', final_norm=False")
    return out
