"""Pre-trained ViT sources (Flax npz, timm, safetensors, MAE, MoCo v3) brought to timm's keys.

The first stage of :mod:`.vit_checkpoint`'s conversion: :func:`npz_to_timm` maps Google's Flax
paths as timm's ``_load_weights`` does; :func:`torch_source_to_timm` unwraps a torch or
safetensors state dict and drops what a backbone never holds (heads, ``pre_logits``, MAE's
decoder, MoCo v3's momentum encoder and predictor). Every drop is recorded in the
:class:`ConversionReport`; a key no rule covers fails the conversion
(:func:`unknown_keys_error`).
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

__all__ = [
    'SRC_FORMATS', 'ConversionReport', 'npz_to_timm', 'torch_source_to_timm',
    'unknown_keys_error'
]

SRC_FORMATS = ('npz', 'timm', 'safetensors', 'mae', 'mocov3')

# Heads and pooling pieces that a backbone never holds, by source family.
_HEAD_PREFIXES = ('head.', 'head_dist.', 'pre_logits.')
_MAE_DROP_PREFIXES = ('decoder_', 'mask_token')
_MOCO_PREFIXES = ('module.base_encoder.', 'base_encoder.')
_MOCO_DROP_PREFIXES = ('module.momentum_encoder.', 'momentum_encoder.', 'module.predictor.',
                       'predictor.')


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


def unknown_keys_error(keys: List[str], src_format: str) -> ValueError:
    """The error for keys that no conversion rule covers, naming them and what is dropped."""
    return ValueError(
        f'{len(keys)} unknown key(s) in the {src_format} checkpoint, refusing to convert: '
        f'{sorted(keys)}. Only plain ViT weights (patch embedding, CLS token, position '
        'embedding, pre-norm transformer blocks, final norm) are converted; heads, '
        "pre_logits, MAE's decoder (--src-format mae) and MoCo v3's momentum encoder / "
        'predictor (--src-format mocov3) are dropped.')


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
        raise unknown_keys_error(list(pending), 'npz')
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
