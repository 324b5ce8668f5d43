"""``weights_only`` checkpoint loading: the non-tensor globals of mmengine checkpoints allowlisted.

PyTorch >= 2.6 defaults ``torch.load`` to ``weights_only=True``. mmengine checkpoints hold a few
non-tensor objects (the message hub's :class:`~mmengine.logging.HistoryBuffer` and the numpy
arrays, scalars and dtypes inside it), so ``--resume`` failed with "Weights only load failed ...
HistoryBuffer was not an allowed global". :func:`allowlist_checkpoint_globals` allowlists exactly
these classes with ``torch.serialization.add_safe_globals``; ``weights_only`` stays on, so a
downloaded checkpoint still cannot run code. A torch without an allowlist (and so without the
``weights_only`` default) is left alone.
"""
import functools
import inspect
import io
import pickle
from typing import Any, Callable, List, Optional

import numpy as np
import torch

__all__ = ['allowlist_checkpoint_globals', 'checkpoint_safe_globals']

# Numeric, boolean and string dtype codes whose dtype classes a checkpoint may rebuild. Object
# arrays are deliberately absent.
_SAFE_DTYPE_CODES = '?bBhHiIlLqQefdgFDGSUMm'


def checkpoint_safe_globals() -> List[Any]:
    """The globals that mmengine checkpoints hold besides tensors.

    A checkpoint written by :meth:`mmengine.runner.Runner.save_checkpoint` contains the message
    hub's state, whose :class:`~mmengine.logging.HistoryBuffer` objects keep numpy arrays and
    their statistics methods (pickled as ``getattr(HistoryBuffer, 'mean')``), and runtime
    information that may hold numpy scalars. Unpickling those needs ``HistoryBuffer``, a
    ``builtins.getattr`` that resolves nothing but HistoryBuffer's methods
    (:func:`_history_buffer_getattr`; the real ``getattr`` would let a checkpoint reach any
    attribute), ``numpy.ndarray``, ``numpy.dtype`` and the classes of plain (non-object)
    dtypes, and numpy's ``_reconstruct`` / ``scalar`` helpers, under both the ``numpy._core``
    (numpy >= 2) and the ``numpy.core`` (numpy 1.x) names, so checkpoints saved with either
    numpy load.

    Returns:
        list: Entries for ``torch.serialization.add_safe_globals``: objects, or
        ``(object, 'module.name')`` pairs where the pickled name differs from the object's own.
    """
    from mmengine.logging import HistoryBuffer

    safe: List[Any] = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), np.ndarray,
                       np.dtype]
    safe.extend(_dtype_classes())
    multiarray = _numpy_multiarray()
    for name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, name, None)
        if func is None:
            continue
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            safe.append((func, f'{module}.{name}'))
    return safe


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` for ``weights_only`` loading, limited to the methods of HistoryBuffer.

    Args:
        obj (Any): The object the checkpoint looks the attribute up on.
        name (str): The attribute name.

    Returns:
        Callable: ``HistoryBuffer.<name>``, a public function defined on the class.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    from mmengine.logging import HistoryBuffer
    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_')
            and inspect.isfunction(vars(HistoryBuffer).get(name))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only load refused getattr({obj!r}, {name!r}): only the public methods of '
        'mmengine.logging.HistoryBuffer may be looked up by a checkpoint.')


def _dtype_classes() -> List[type]:
    """Classes of the numpy dtypes in ``_SAFE_DTYPE_CODES`` (``numpy.dtypes.Float64DType``...)."""
    classes: List[type] = []
    for code in _SAFE_DTYPE_CODES:
        try:
            dtype_class = type(np.dtype(code))
        except TypeError:
            continue
        if dtype_class is not np.dtype and dtype_class not in classes:
            classes.append(dtype_class)
    return classes


def _numpy_multiarray() -> Any:
    """numpy's ``multiarray`` module under whichever name this numpy has."""
    core = getattr(np, '_core', None)
    if core is None or not hasattr(core, 'multiarray'):
        core = np.core
    return core.multiarray


@functools.lru_cache(maxsize=None)
def _accepts_named_globals() -> bool:
    """Whether this torch's allowlist takes ``(object, 'module.name')`` pairs (torch >= 2.6).

    Probed once by loading what needs one: ``HistoryBuffer.mean``, pickled as
    ``getattr(HistoryBuffer, 'mean')``, inside a temporary ``safe_globals`` context (which
    removes its entries on exit, so it runs before anything is allowlisted for good).
    """
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        return False
    from mmengine.logging import HistoryBuffer
    buffer = io.BytesIO()
    torch.save(HistoryBuffer.mean, buffer)
    buffer.seek(0)
    try:
        with safe_globals([HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')]):
            return torch.load(buffer, weights_only=True) is HistoryBuffer.mean
    except Exception:  # an older allowlist fails on the pair in many ways
        return False


def allowlist_checkpoint_globals() -> None:
    """Allowlists :func:`checkpoint_safe_globals` for ``weights_only`` loading, if it exists."""
    add_safe_globals: Optional[Callable] = getattr(torch.serialization, 'add_safe_globals',
                                                   None)
    if add_safe_globals is None:
        # A torch without an allowlist has no weights_only default either: nothing to fix.
        return
    named = _accepts_named_globals()
    entries = checkpoint_safe_globals()
    add_safe_globals([entry for entry in entries if named or not isinstance(entry, tuple)])
