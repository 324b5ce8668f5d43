"""Convert pre-trained ViT checkpoints to mmpretrain's and mmsegmentation's ViT key layouts.

Sources (``src_format``):

- ``'npz'``: Google's JAX/Flax ViT checkpoints (``ViT-B_16.npz``, ``imagenet21k_ViT-B_16.npz``,
  ``ViT-L_16.npz``, AugReg files; optional ``opt/target/`` prefix; big_vision ``params/``
  layouts with per-layer or scanned blocks), mapped as timm's ``_load_weights`` does.
- ``'timm'``: a timm ``VisionTransformer`` state dict saved with ``torch.save`` (raw, or under
  ``'state_dict'`` / ``'model'``; a ``module.`` prefix on every key is removed).
- ``'safetensors'``: the same keys in a ``.safetensors`` file (as on the Hugging Face hub).
- ``'mae'``: MAE checkpoints (``mae_pretrain_vit_base.pth``: ``{'model': timm keys}``); the MAE
  decoder (``mask_token``, ``decoder_*``) is dropped when present.
- ``'mocov3'``: MoCo v3 checkpoints (``{'state_dict': {'module.base_encoder.' + timm key}}``);
  the momentum encoder, the predictor and the projection head are dropped.

Every source is first brought to timm's key names, then renamed for the destination
(``dst``): ``'mmpretrain'`` (``layers.0.attn.qkv.weight``, ``layers.0.ffn.layers.0.0.weight``,
final norm ``ln1``) or ``'mmseg'`` (``layers.0.attn.attn.in_proj_weight``,
``layers.0.attn.attn.out_proj.weight``, final norm ``ln1``). Keys that no rule covers make the
conversion fail with the list of them; only documented keys (classification heads, ``pre_logits``,
MAE's decoder, MoCo's momentum encoder and predictor, optimizer state) are dropped, and every
drop is logged. The two stages live in :mod:`.vit_source_keys` (to timm) and
:mod:`.vit_host_keys` (to the host); this module reads the files and runs them.
"""
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from .vit_host_keys import DST_FORMATS, timm_to_host
from .vit_source_keys import SRC_FORMATS, ConversionReport, npz_to_timm, torch_source_to_timm

__all__ = [
    'SRC_FORMATS', 'DST_FORMATS', 'ConversionReport', 'load_source_checkpoint',
    'convert_vit_weights', 'convert_vit_checkpoint', 'save_converted_checkpoint',
    'KNOWN_CONVERSIONS', 'converter_command'
]

#: The converted files the README and the configs name -> (downloaded source, --src-format).
KNOWN_CONVERSIONS: Dict[str, Tuple[str, str]] = {
    'vit-b16_in21k-augreg.pth': ('model.safetensors', 'safetensors'),
    'vit-b16_mae.pth': ('model.safetensors', 'safetensors'),
    'vit-b16_mocov3.pth': ('vit-b-300ep.pth.tar', 'mocov3'),
    'vit-l16_jx384_mmseg.pth': ('jx_vit_large_p16_384-b3be5167.pth', 'timm'),
}
CONVERTER = 'tools/model_converters/convert_vit.py'


# ---------------------------------------------------------------------------------- loading
def load_source_checkpoint(path: str, src_format: str,
                           allow_pickle: bool = False) -> Mapping[str, Any]:
    """Read a checkpoint file as the raw mapping of its format.

    Args:
        path: The checkpoint file.
        src_format: One of :data:`SRC_FORMATS`.
        allow_pickle: Unpickle arbitrary objects from a torch file (e.g. the ``args``
            namespace of MAE / DeiT training checkpoints). Only for files you trust.
            Defaults to False (``torch.load(weights_only=True)``).

    Returns:
        Mapping: numpy arrays by Flax path for ``'npz'``; the loaded object (usually a dict)
        otherwise.
    """
    if src_format not in SRC_FORMATS:
        raise ValueError(f'src_format must be one of {SRC_FORMATS}, got {src_format!r}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    if src_format == 'npz':
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    if src_format == 'safetensors':
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError('reading .safetensors needs the safetensors package '
                              '(pip install safetensors)') from err
        return load_file(path, device='cpu')
    try:
        return torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'{path} holds objects besides tensors, which weights_only loading refuses ({err}). '
            'If you trust the file, pass allow_pickle=True (--allow-pickle in '
            'tools/model_converters/convert_vit.py).') from err


# ---------------------------------------------------------------------------------- pipeline
def convert_vit_weights(checkpoint: Mapping[str, Any],
                        src_format: str,
                        dst: str,
                        drop_final_norm: bool = False,
                        drop_patch_bias: bool = False
                        ) -> Tuple['OrderedDict[str, torch.Tensor]', ConversionReport]:
    """Convert an already loaded checkpoint (see :func:`load_source_checkpoint`).

    Args:
        checkpoint: Flax path -> array for ``'npz'``, the loaded torch / safetensors object
            otherwise.
        src_format: One of :data:`SRC_FORMATS`.
        dst: One of :data:`DST_FORMATS`.
        drop_final_norm: See :func:`timm_to_host`. Defaults to False.
        drop_patch_bias: See :func:`timm_to_host`. Defaults to False.

    Returns:
        tuple: The host state dict and the :class:`ConversionReport`.
    """
    if src_format not in SRC_FORMATS:
        raise ValueError(f'src_format must be one of {SRC_FORMATS}, got {src_format!r}')
    if dst not in DST_FORMATS:
        raise ValueError(f'dst must be one of {DST_FORMATS}, got {dst!r}')
    report = ConversionReport(src_format, dst)
    if src_format == 'npz':
        timm_sd, origin = npz_to_timm(checkpoint, report)
    else:
        timm_sd, origin = torch_source_to_timm(checkpoint, src_format, report)
    return timm_to_host(timm_sd, dst, report, origin, drop_final_norm, drop_patch_bias), report


def convert_vit_checkpoint(src: str,
                           src_format: str,
                           dst: str,
                           log: bool = True,
                           allow_pickle: bool = False,
                           drop_final_norm: bool = False,
                           drop_patch_bias: bool = False
                           ) -> Tuple['OrderedDict[str, torch.Tensor]', ConversionReport]:
    """Load ``src`` and convert it to the ``dst`` host's ViT keys.

    Args:
        src: The source checkpoint file.
        src_format: One of :data:`SRC_FORMATS`.
        dst: One of :data:`DST_FORMATS`.
        log: Whether to log the mapping, the drops and the notes. Defaults to True.
        allow_pickle: See :func:`load_source_checkpoint`. Defaults to False.
        drop_final_norm: See :func:`timm_to_host`. Defaults to False.
        drop_patch_bias: See :func:`timm_to_host`. Defaults to False.

    Returns:
        tuple: The host state dict and the :class:`ConversionReport`.
    """
    checkpoint = load_source_checkpoint(src, src_format, allow_pickle)
    state_dict, report = convert_vit_weights(checkpoint, src_format, dst, drop_final_norm,
                                             drop_patch_bias)
    if log:
        print_log(f'{src}:\n' + '\n'.join(report.summary()), logger='current')
    return state_dict, report


def save_converted_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str,
                              report: Optional[ConversionReport] = None,
                              source: Optional[str] = None) -> None:
    """Save ``{'state_dict': ..., 'meta': ...}``, loadable by ``init_cfg=dict(type='Pretrained')``.

    Args:
        state_dict: The converted weights.
        path: Destination file; its directory is created.
        report: Recorded in ``meta`` when given. Defaults to None.
        source: The source file name, recorded in ``meta``. Defaults to None.
    """
    import mmengine
    meta: Dict[str, Any] = {'converted_by': 'mmda_vpt.checkpoints.vit_checkpoint'}
    if source is not None:
        meta['source'] = osp.basename(source)
    if report is not None:
        meta.update(src_format=report.src_format, dst=report.dst,
                    dropped={k: list(v) for k, v in report.dropped.items()})
    directory = osp.dirname(osp.abspath(path))
    mmengine.mkdir_or_exist(directory)
    torch.save({'state_dict': OrderedDict(state_dict), 'meta': meta}, path)


def converter_command(path: str, dst: str, drop_final_norm: bool = False) -> str:
    """The command of ``tools/model_converters/convert_vit.py`` that writes ``path``.

    For the file names of :data:`KNOWN_CONVERSIONS` the downloaded source and its format are
    filled in; otherwise they are placeholders.

    Args:
        path: The converted file a config names (``init_cfg.checkpoint``).
        dst: The host, one of :data:`DST_FORMATS`.
        drop_final_norm: The backbone is built with ``final_norm=False``. Defaults to False.

    Returns:
        str: ``python tools/model_converters/convert_vit.py SRC PATH --src-format ... --dst ...``.
    """
    if dst not in DST_FORMATS:
        raise ValueError(f'dst must be one of {DST_FORMATS}, got {dst!r}')
    src, src_format = KNOWN_CONVERSIONS.get(
        osp.basename(path), ('DOWNLOADED_CHECKPOINT', '{' + ','.join(SRC_FORMATS) + '}'))
    return (f'python {CONVERTER} {src} {path} --src-format {src_format} --dst {dst}'
            + (' --drop-final-norm' if drop_final_norm else ''))
