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
drop is logged.
"""
import os.path as osp
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

__all__ = [
    'SRC_FORMATS', 'DST_FORMATS', 'ConversionReport', 'load_source_checkpoint',
    'npz_to_timm', 'torch_source_to_timm', 'timm_to_host', 'convert_vit_weights',
    'convert_vit_checkpoint', 'save_converted_checkpoint', 'KNOWN_CONVERSIONS',
    'converter_command'
]

SRC_FORMATS = ('npz', 'timm', 'safetensors', 'mae', 'mocov3')
DST_FORMATS = ('mmpretrain', 'mmseg')

# Heads and pooling pieces that a backbone never holds, by source family.
_HEAD_PREFIXES = ('head.', 'head_dist.', 'pre_logits.')
_MAE_DROP_PREFIXES = ('decoder_', 'mask_token')
_MOCO_PREFIXES = ('module.base_encoder.', 'base_encoder.')
_MOCO_DROP_PREFIXES = ('module.momentum_encoder.', 'momentum_encoder.', 'module.predictor.',
                       'predictor.')

#: The converted files the README and the configs name -> (downloaded source, --src-format).
KNOWN_CONVERSIONS: Dict[str, Tuple[str, str]] = {
    'vit-b16_in21k-augreg.pth': ('model.safetensors', 'safetensors'),
    'vit-b16_mae.pth': ('model.safetensors', 'safetensors'),
    'vit-b16_mocov3.pth': ('vit-b-300ep.pth.tar', 'mocov3'),
    'vit-l16_jx384_mmseg.pth': ('jx_vit_large_p16_384-b3be5167.pth', 'timm'),
}
CONVERTER = 'tools/model_converters/convert_vit.py'

_BLOCK_PARAMS = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.proj.weight',
                 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight',
                 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')
_OPTIONAL_BLOCK_PARAMS = ('attn.qkv.bias', 'ls1.gamma', 'ls2.gamma')


@dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        src_format: The source format.
        dst: The destination host.
        mapped: ``(source key(s), destination key)`` for every tensor written.
        dropped: Reason -> source keys dropped for that reason.
        notes: Advice on the host config the checkpoint needs (e.g. ``patch_bias=True``).
    """
    src_format: str
    dst: str
    mapped: List[Tuple[str, str]] = field(default_factory=list)
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def drop(self, reason: str, key: str) -> None:
        self.dropped.setdefault(reason, []).append(key)

    def summary(self) -> List[str]:
        """Human-readable lines: mapping rules (layer index folded to ``{i}``), drops, notes."""
        groups: Dict[Tuple[str, str], int] = OrderedDict()
        for src, dst in self.mapped:
            rule = (_fold_index(src), _fold_index(dst))
            groups[rule] = groups.get(rule, 0) + 1
        lines = [f'converted {self.src_format} -> {self.dst}: {len(self.mapped)} tensors']
        for (src, dst), count in groups.items():
            lines.append(f'  {src} -> {dst}' + (f'  (x{count})' if count > 1 else ''))
        for reason, keys in self.dropped.items():
            lines.append(f'  dropped {len(keys)} key(s), {reason}: {_short_list(keys)}')
        lines.extend(f'  note: {note}' for note in self.notes)
        return lines


def _fold_index(key: str) -> str:
    key = re.sub(r'(blocks|layers)\.\d+\.', r'\1.{i}.', key, count=1)
    key = re.sub(r'\[\d+\]$', '[{i}]', key)
    return re.sub(r'encoderblock_\d+', 'encoderblock_{i}', key)


def _short_list(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def _unknown_keys_error(keys: List[str], src_format: str) -> ValueError:
    return ValueError(
        f'{len(keys)} unknown key(s) in the {src_format} checkpoint, refusing to convert: '
        f'{sorted(keys)}. Only plain ViT weights (patch embedding, CLS token, position '
        'embedding, pre-norm transformer blocks, final norm) are converted; heads, '
        "pre_logits, MAE's decoder (--src-format mae) and MoCo v3's momentum encoder / "
        'predictor (--src-format mocov3) are dropped.')


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


# ---------------------------------------------------------------------------------- npz
def _npz_prefix(weights: Mapping[str, np.ndarray]) -> str:
    for prefix in ('', 'opt/target/', 'params/', 'params/img/'):
        if f'{prefix}embedding/kernel' in weights:
            return prefix
    raise ValueError('not a ViT .npz checkpoint: no embedding/kernel (also looked under '
                     "'opt/target/', 'params/', 'params/img/'); first keys: "
                     f'{sorted(weights)[:10]}')


def npz_to_timm(weights: Mapping[str, np.ndarray],
                report: Optional[ConversionReport] = None
                ) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, str]]:
    """Map a Google ViT ``.npz`` checkpoint to timm's ``VisionTransformer`` keys.

    Follows timm's ``_load_weights``: kernels are transposed from Flax's (in, out) layout, the
    separate query/key/value projections are fused into ``attn.qkv``.

    Args:
        weights: Flax path -> array, as :func:`load_source_checkpoint` returns.
        report: Collects dropped keys. Defaults to None.

    Returns:
        tuple: The timm state dict and, for each of its keys, the source key(s) it came from.
    """
    if report is None:
        report = ConversionReport('npz', 'timm')
    prefix = _npz_prefix(weights)
    pending = dict(weights)
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    origin: Dict[str, str] = {}

    for key in list(pending):
        if not key.startswith(prefix):
            if prefix == 'opt/target/' and key.startswith('opt/'):
                report.drop('optimizer state', key)
                pending.pop(key)
        elif key[len(prefix):].split('/')[0] in ('head', 'pre_logits', 'MAPHead_0'):
            report.drop('classification head / pre-logits', key)
            pending.pop(key)

    def take(name: str, index: Optional[int] = None) -> np.ndarray:
        full = prefix + name
        if full not in weights:
            raise KeyError(f'npz checkpoint lacks {full!r}')
        pending.pop(full, None)
        value = weights[full]
        return value[index] if index is not None else value

    def put(key: str, value: np.ndarray, source: str) -> None:
        if value.dtype.kind != 'f':
            raise TypeError(f'{source} has dtype {value.dtype}, expected floats (bfloat16 '
                            'checkpoints must be cast to float32 first)')
        out[key] = torch.from_numpy(np.ascontiguousarray(value))
        origin[key] = source

    def has(name: str) -> bool:
        return prefix + name in weights

    kernel = take('embedding/kernel')
    if kernel.ndim != 4:
        raise ValueError('npz embedding/kernel must be a (ph, pw, C, D) conv kernel, got shape '
                         f'{kernel.shape}')
    put('patch_embed.proj.weight', kernel.transpose(3, 2, 0, 1), prefix + 'embedding/kernel')
    if has('embedding/bias'):
        put('patch_embed.proj.bias', take('embedding/bias'), prefix + 'embedding/bias')
    if has('cls'):
        put('cls_token', take('cls'), prefix + 'cls')
    big_vision = (prefix.startswith('params/') or has('pos_embedding')
                  or has('Transformer/encoderblock/LayerNorm_0/scale'))
    pos_name = 'pos_embedding' if has('pos_embedding') else \
        'Transformer/posembed_input/pos_embedding'
    pos = take(pos_name)
    if pos.ndim == 2:
        pos = pos[None]
    put('pos_embed', pos, prefix + pos_name)
    for param, flax in (('weight', 'scale'), ('bias', 'bias')):
        name = f'Transformer/encoder_norm/{flax}'
        if has(name):
            put(f'norm.{param}', take(name), prefix + name)

    mha_sub, mlp_sub, ln2_sub = (0, 0, 1) if big_vision else (1, 3, 2)
    scanned = has('Transformer/encoderblock/LayerNorm_0/scale')
    if scanned:
        num_layers = weights[prefix + 'Transformer/encoderblock/LayerNorm_0/scale'].shape[0]
    else:
        found = {int(m.group(1)) for k in weights
                 for m in [re.match(re.escape(prefix) + r'Transformer/encoderblock_(\d+)/', k)]
                 if m}
        num_layers = len(found)
        if found != set(range(num_layers)):
            raise KeyError(f'npz encoder blocks are not numbered 0..{num_layers - 1}: '
                           f'{sorted(found)}')
    if num_layers == 0:
        raise KeyError('npz checkpoint has no Transformer/encoderblock_* weights')

    for i in range(num_layers):
        if scanned:
            block, idx, shown = 'Transformer/encoderblock/', i, f'[{i}]'
        else:
            block, idx, shown = f'Transformer/encoderblock_{i}/', None, ''
        mha = f'{block}MultiHeadDotProductAttention_{mha_sub}/'
        norms = (('norm1', 'LayerNorm_0'), ('norm2', f'LayerNorm_{ln2_sub}'))
        for dst, flax in norms:
            for param, leaf in (('weight', 'scale'), ('bias', 'bias')):
                put(f'blocks.{i}.{dst}.{param}', take(f'{block}{flax}/{leaf}', idx),
                    f'{prefix}{block}{flax}/{leaf}{shown}')
        qkv_w = [take(f'{mha}{n}/kernel', idx) for n in ('query', 'key', 'value')]
        put(f'blocks.{i}.attn.qkv.weight',
            np.concatenate([w.reshape(w.shape[0], -1).T for w in qkv_w]),
            f'{prefix}{mha}{{query,key,value}}/kernel{shown}')
        if has(f'{mha}query/bias'):
            qkv_b = [take(f'{mha}{n}/bias', idx) for n in ('query', 'key', 'value')]
            put(f'blocks.{i}.attn.qkv.bias', np.concatenate([b.reshape(-1) for b in qkv_b]),
                f'{prefix}{mha}{{query,key,value}}/bias{shown}')
        out_w = take(f'{mha}out/kernel', idx)  # (heads, head_dim, D)
        put(f'blocks.{i}.attn.proj.weight', out_w.transpose(2, 0, 1).reshape(out_w.shape[-1], -1),
            f'{prefix}{mha}out/kernel{shown}')
        put(f'blocks.{i}.attn.proj.bias', take(f'{mha}out/bias', idx),
            f'{prefix}{mha}out/bias{shown}')
        for r in range(2):
            dense = f'{block}MlpBlock_{mlp_sub}/Dense_{r}/'
            put(f'blocks.{i}.mlp.fc{r + 1}.weight', take(dense + 'kernel', idx).T,
                f'{prefix}{dense}kernel{shown}')
            put(f'blocks.{i}.mlp.fc{r + 1}.bias', take(dense + 'bias', idx),
                f'{prefix}{dense}bias{shown}')
    if pending:
        raise _unknown_keys_error(list(pending), 'npz')
    return out, origin


# ---------------------------------------------------------------------------------- torch
def _unwrap_state_dict(checkpoint: Any, src_format: str,
                       report: ConversionReport) -> Dict[str, torch.Tensor]:
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'a {src_format} checkpoint must be a dict, got {type(checkpoint)}')
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint)
    for key in ('state_dict', 'model', 'module'):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            others = sorted(k for k in checkpoint if k != key)
            if others:
                report.notes.append(f'took the weights from checkpoint[{key!r}]; ignored the '
                                    f'top-level entries {others}')
            bad = [k for k, v in inner.items() if not isinstance(v, torch.Tensor)]
            if bad:
                raise TypeError(f'checkpoint[{key!r}] has non-tensor entries {bad}')
            return dict(inner)
    raise ValueError(f'no weights found in the {src_format} checkpoint: expected a state dict or '
                     f"one under 'state_dict' / 'model'; top-level keys: {sorted(checkpoint)}")


def torch_source_to_timm(checkpoint: Mapping[str, Any],
                         src_format: str,
                         report: Optional[ConversionReport] = None
                         ) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, str]]:
    """Bring a timm / safetensors / MAE / MoCo v3 checkpoint to plain timm backbone keys.

    Args:
        checkpoint: The loaded checkpoint (a state dict or a dict holding one).
        src_format: ``'timm'``, ``'safetensors'``, ``'mae'`` or ``'mocov3'``.
        report: Collects dropped keys. Defaults to None.

    Returns:
        tuple: The timm state dict (heads and other documented extras removed) and the source
        key of each of its keys.
    """
    if src_format not in SRC_FORMATS or src_format == 'npz':
        raise ValueError(f'src_format must be one of {SRC_FORMATS[1:]}, got {src_format!r}')
    if report is None:
        report = ConversionReport(src_format, 'timm')
    state_dict = _unwrap_state_dict(checkpoint, src_format, report)
    origin = {k: k for k in state_dict}

    if src_format == 'mocov3':
        base = next((p for p in _MOCO_PREFIXES if any(k.startswith(p) for k in state_dict)),
                    None)
        if base is None:
            raise ValueError(f'no key starts with {" or ".join(_MOCO_PREFIXES)}: not a MoCo v3 '
                             'pre-training checkpoint (use --src-format timm for a converted one)')
        kept = {}
        for key, value in state_dict.items():
            if key.startswith(base):
                kept[key[len(base):]] = value
                origin[key[len(base):]] = key
            elif key.startswith(_MOCO_DROP_PREFIXES):
                report.drop('MoCo v3 momentum encoder / predictor', key)
            else:
                kept[key] = value
        state_dict = kept
    elif state_dict and all(k.startswith('module.') for k in state_dict):
        report.notes.append("removed the 'module.' prefix of every key")
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
        origin = {k[len('module.'):]: k for k in origin}

    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(_HEAD_PREFIXES):
            reason = ('MoCo v3 projection head' if src_format == 'mocov3'
                      else 'classification head / pre-logits')
            report.drop(reason, origin[key])
        elif src_format == 'mae' and key.startswith(_MAE_DROP_PREFIXES):
            report.drop('MAE decoder', origin[key])
        else:
            out[key] = value
    return out, {k: origin[k] for k in out}


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
        raise _unknown_keys_error(unknown, report.src_format)

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
