"""Where a DA-VPT backbone's frozen base weights come from, carried inside its state dict.

A checkpoint written with ``TrainableCheckpointHook`` holds only what DA-VPT trains. Stock
loaders (the runner's ``load_from`` / ``--resume``, ``tools/test.py``, mmpretrain's
``get_model`` and inferencers, mmseg's ``init_model`` and ``MMSegInferencer``,
``load_checkpoint(model, path)``) hand the model nothing but the state dict, and mmseg's
``init_model`` drops ``init_cfg`` before building. So the backbone's state dict carries one more
entry, ``<backbone prefix>._base_weights``: a uint8 tensor holding the JSON
``{"path": ..., "prefix": ..., "fingerprint": ...}``: the pre-trained checkpoint its frozen
weights were loaded from (``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``) and
the content hash of those frozen weights as the backbone holds them (:func:`weights_fingerprint`:
tensor bytes in a fixed key order, so a re-converted or re-saved file with the same tensors
matches, and nothing is written beside the base file). A backbone that loads a state dict with
that entry and without its frozen weights loads the base checkpoint first, then the trained part
(:meth:`~mmda_vpt.checkpoints.frozen_weights.FrozenWeights.complete_state_dict`).

The path is looked for as written, then in the folder of the checkpoint being loaded (recorded
by mmengine's local checkpoint loader, which :func:`install_checkpoint_loader` wraps), then in
the folder named by the environment variable ``MMDA_VPT_PRETRAINED_DIR``; the first file whose
weights have the recorded fingerprint is taken (:func:`find_base_weights`). Where none has, one
line names both fingerprints and every place looked at. An entry without a fingerprint (written
before there were fingerprints) takes the first file that exists (:func:`resolve_base_weights`).
"""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch

__all__ = [
    'BASE_WEIGHTS_KEY', 'PRETRAINED_DIR_ENV', 'FINGERPRINT', 'BaseWeightsMismatchError',
    'encode_base_weights', 'decode_base_weights', 'base_weights_from_init_cfg',
    'is_base_weights_key', 'is_local_checkpoint', 'same_base_weights', 'weights_fingerprint',
    'base_weights_candidates',
    'resolve_base_weights', 'find_base_weights', 'record_checkpoint_dir',
    'install_checkpoint_loader', 'save_base_weights_hook', 'strip_base_weights'
]

#: Name of the state-dict entry, under the backbone's prefix.
BASE_WEIGHTS_KEY = '_base_weights'
#: Environment variable naming a folder of pre-trained checkpoints, searched last.
PRETRAINED_DIR_ENV = 'MMDA_VPT_PRETRAINED_DIR'
#: Key that the checkpoint loader adds to an entry: the folder of the file being loaded.
CHECKPOINT_DIR = 'checkpoint_dir'
#: Key of an entry: :func:`weights_fingerprint` of the frozen weights the base supplies.
FINGERPRINT = 'fingerprint'
# Set on the loader installed by install_checkpoint_loader, so it never wraps twice.
_INSTALLED = '_mmda_vpt_base_weights_loader'


def encode_base_weights(pointer: Dict[str, Any]) -> torch.Tensor:
    """The state-dict entry (a uint8 tensor of JSON) for ``pointer``.

    Args:
        pointer: ``{'path': str, 'prefix': str or None}`` and optionally ``'fingerprint'`` and
            ``'checkpoint_dir'``.

    Returns:
        Tensor: 1-D uint8 tensor.
    """
    data = json.dumps(pointer, sort_keys=True).encode('utf-8')
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def decode_base_weights(entry: torch.Tensor) -> Dict[str, Any]:
    """The pointer held by a state-dict entry written by :func:`encode_base_weights`.

    Raises:
        ValueError: If the entry is not such a tensor.
    """
    if not isinstance(entry, torch.Tensor) or entry.dtype != torch.uint8 or entry.dim() != 1:
        raise ValueError(f'a {BASE_WEIGHTS_KEY} entry must be a 1-D uint8 tensor, got '
                         f'{type(entry).__name__}')
    try:
        pointer = json.loads(bytes(entry.cpu().tolist()).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'unreadable {BASE_WEIGHTS_KEY} entry: {error}') from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get('path'), str):
        raise ValueError(f'a {BASE_WEIGHTS_KEY} entry must name a path, got {pointer!r}')
    return pointer


def base_weights_from_init_cfg(init_cfg: Any) -> Optional[Dict[str, Optional[str]]]:
    """The pointer of ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``.

    Returns:
        dict, optional: ``{'path', 'prefix'}``, or None for any other ``init_cfg``.
    """
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained' \
            and isinstance(init_cfg.get('checkpoint'), str):
        return dict(path=init_cfg['checkpoint'], prefix=init_cfg.get('prefix'))
    return None


def is_base_weights_key(key: str) -> bool:
    """Whether a state-dict key is a base-weights entry (of any module)."""
    return key == BASE_WEIGHTS_KEY or key.endswith('.' + BASE_WEIGHTS_KEY)


def same_base_weights(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    """Whether two pointers name the same base weights.

    By fingerprint where either has one; otherwise by path as written and prefix.
    """
    if a is None or b is None:
        return False
    if a.get(FINGERPRINT) is not None or b.get(FINGERPRINT) is not None:
        return a.get(FINGERPRINT) == b.get(FINGERPRINT)
    return a.get('path') == b.get('path') and a.get('prefix') == b.get('prefix')


class BaseWeightsMismatchError(ValueError):
    """No place holds base weights with the fingerprint a trainable-only checkpoint records."""


def weights_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """The content hash of a set of tensors, independent of the file they came from.

    BLAKE2b (128 bits) over each tensor's name, dtype, shape and raw bytes, names in sorted
    order. ViT-B's 86M float32 parameters take well under a second on a CPU core.

    Args:
        tensors: Name -> tensor (on any device; copied to the CPU one at a time).

    Returns:
        str: ``'blake2b-128:<32 hex digits>'``.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}\n'.encode('utf-8'))
        data = tensor.cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(memoryview(data.numpy()))
    return 'blake2b-128:' + digest.hexdigest()


def is_local_checkpoint(path: str) -> bool:
    """Whether mmengine loads ``path`` from the local file system."""
    from mmengine.runner.checkpoint import CheckpointLoader
    loader = CheckpointLoader._get_checkpoint_loader(path)
    return loader is None or loader.__name__ == 'load_from_local'


def base_weights_candidates(pointer: Dict[str, Any]) -> List[str]:
    """The files where the base weights of ``pointer`` are looked for, in order.

    The path as written (relative to the working directory), then in the folder of the
    checkpoint being loaded (the path joined to it, then the file name alone), then in
    ``$MMDA_VPT_PRETRAINED_DIR`` (the same two).
    """
    path = osp.expanduser(pointer['path'])
    candidates = [path]
    for folder in (pointer.get(CHECKPOINT_DIR), os.environ.get(PRETRAINED_DIR_ENV)):
        if not folder:
            continue
        folder = osp.expanduser(folder)
        if not osp.isabs(path):
            candidates.append(osp.join(folder, path))
        candidates.append(osp.join(folder, osp.basename(path)))
    unique, seen = [], set()
    for candidate in candidates:
        key = osp.normpath(osp.abspath(candidate))
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def _looked_at(pointer: Dict[str, Any], places: List[str], hint: Optional[str]) -> str:
    env = os.environ.get(PRETRAINED_DIR_ENV)
    where = f'{PRETRAINED_DIR_ENV}={env}' if env else f'{PRETRAINED_DIR_ENV} is not set'
    name = osp.basename(pointer['path'])
    return (f'looked at: {", ".join(places)} ({where}; point it to the folder that holds '
            f'{name}' + (f'; {hint}' if hint else '') + ')')


def resolve_base_weights(pointer: Dict[str, Any], hint: Optional[str] = None) -> str:
    """The first file that exists among the places of :func:`base_weights_candidates`.

    For an entry without a fingerprint. Non-local paths (``https://``, ``s3://``, ...) are
    returned as written, for mmengine's loaders.

    Args:
        pointer: The decoded entry.
        hint: Appended to the message, e.g. the converter command that makes the file.
            Defaults to None.

    Raises:
        FileNotFoundError: One line naming every place looked at, when none holds the file.
    """
    path = pointer['path']
    if not is_local_checkpoint(path):
        return path
    candidates = base_weights_candidates(pointer)
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f'the base weights {path!r} of this DA-VPT checkpoint (it holds only the trained '
        f'parameters) are not found; {_looked_at(pointer, candidates, hint)}')


def find_base_weights(pointer: Dict[str, Any], probe: Callable[[str], Tuple[str, Any]],
                      hint: Optional[str] = None) -> Tuple[str, Any]:
    """The first place whose weights have the fingerprint the entry records.

    Args:
        pointer: The decoded entry, with ``'fingerprint'``.
        probe: Reads one file: returns its fingerprint (as the backbone would hold its weights)
            and anything the caller wants back for the matching file. An exception marks the
            file as unusable, and the search goes on.
        hint: Appended to the messages, e.g. the converter command that makes the file.
            Defaults to None.

    Returns:
        tuple: The matching file and what ``probe`` returned with its fingerprint.

    Raises:
        FileNotFoundError: When no place holds a file (one line naming every place).
        BaseWeightsMismatchError: When files exist but none matches (one line naming both
            fingerprints and every place).
    """
    path, expected = pointer['path'], pointer[FINGERPRINT]
    local = is_local_checkpoint(path)
    candidates = base_weights_candidates(pointer) if local else [path]
    places, found = [], False
    for candidate in candidates:
        if local and not osp.isfile(candidate):
            places.append(f'{candidate} (no file)')
            continue
        found = True
        try:
            fingerprint, payload = probe(candidate)
        except Exception as error:  # noqa: BLE001  (reported with the place, search goes on)
            places.append(f'{candidate} (unusable: {str(error).splitlines()[0][:200]})')
            continue
        if fingerprint == expected:
            return candidate, payload
        places.append(f'{candidate} (other weights: {fingerprint})')
    head = (f'the base weights {path!r} of this DA-VPT checkpoint (it holds only the trained '
            f'parameters; fingerprint of its base weights {expected})')
    if not found:
        raise FileNotFoundError(f'{head} are not found; {_looked_at(pointer, places, hint)}')
    raise BaseWeightsMismatchError(
        f'{head}: no file holds them, the checkpoint was trained on other frozen weights than '
        f'these; {_looked_at(pointer, places, hint)}')


def record_checkpoint_dir(checkpoint: Any, filename: str) -> Any:
    """Add the folder of ``filename`` to every base-weights entry of a loaded checkpoint.

    Args:
        checkpoint: What ``torch.load`` returned: a state dict, or a dict with ``state_dict``.
        filename: The file it was read from.

    Returns:
        The same checkpoint, changed in place.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        return checkpoint
    folder = osp.dirname(osp.abspath(osp.expanduser(filename)))
    for key in [k for k in state if isinstance(k, str) and is_base_weights_key(k)]:
        try:
            pointer = decode_base_weights(state[key])
        except ValueError:
            continue  # the backbone's load reports it
        pointer[CHECKPOINT_DIR] = folder
        state[key] = encode_base_weights(pointer)
    return checkpoint


def install_checkpoint_loader() -> None:
    """Wrap mmengine's local checkpoint loader so that it records the checkpoint's folder.

    Idempotent; every stock loading path (``load_checkpoint``, ``_load_checkpoint``, the
    runner, the inferencers) reads local files through it.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader._schemes.get('')
    installed = current
    while installed is not None:  # under other wrappers too
        if getattr(installed, _INSTALLED, False):
            return
        installed = getattr(installed, '__wrapped__', None)
    if current is None:
        return

    def load_from_local(filename: str, map_location: Any = None) -> Any:
        return record_checkpoint_dir(current(filename, map_location), filename)

    setattr(load_from_local, _INSTALLED, True)
    load_from_local.__wrapped__ = current
    load_from_local.__doc__ = current.__doc__
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def save_base_weights_hook(module: torch.nn.Module, state_dict: dict, prefix: str,
                           local_metadata: dict) -> None:
    """State-dict hook: add the entry of ``module.base_weights`` when it names a checkpoint.

    The entry also holds ``module.frozen_fingerprint()`` where the module has that method and
    it returns one.
    """
    pointer = getattr(module, 'base_weights', None)
    if pointer is not None:
        pointer = dict(pointer)
        fingerprint = getattr(module, 'frozen_fingerprint', None)
        fingerprint = fingerprint() if callable(fingerprint) else None
        if fingerprint is not None:
            pointer[FINGERPRINT] = fingerprint
        state_dict[prefix + BASE_WEIGHTS_KEY] = encode_base_weights(pointer)


def strip_base_weights(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``state_dict`` without base-weights entries (for self-contained files)."""
    return type(state_dict)((k, v) for k, v in state_dict.items()
                            if not is_base_weights_key(k))
