"""fp16 AMP configs on a machine without CUDA: mmengine's ``AmpOptimWrapper`` becomes fp32.

mmengine's :class:`~mmengine.optim.AmpOptimWrapper` refuses to be built without CUDA (or NPU,
MLU, MUSA): "``AmpOptimizerWrapper`` is only available training on gpu, npu, mlu or musa". The
configs that train as the DA-VPT authors do ask for it (``optim_wrapper.type='AmpOptimWrapper'``,
``dtype='float16'``, their ``autocast()`` + ``GradScaler``), so without a GPU they could not be
built or trained in tests. :func:`patch_amp_optim_wrapper` makes ``AmpOptimWrapper(...)`` return
a plain fp32 :class:`~mmengine.optim.OptimWrapper` on such a machine, with every argument but
the AMP ones (``loss_scale``, ``dtype``, ``use_fsdp``) kept (``optimizer``,
``accumulative_counts``, ``clip_grad``), and one warning per wrapper built, as the ``nccl``
backend becomes ``gloo`` in :mod:`mmda_vpt.compat.cpu_distributed`. With CUDA (or another
accelerator mmengine's AMP supports) nothing changes; subclasses of ``AmpOptimWrapper`` are
never replaced.
"""
import functools
import inspect
import logging
from typing import Any, Callable, Tuple

from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from .cpu_distributed import cuda_free_distributed

__all__ = ['amp_unavailable', 'fp32_optim_wrapper', 'patch_amp_optim_wrapper']

# Set on the __new__ this module installs, so a second call never wraps twice.
_PATCHED = '_mmda_vpt_amp_fallback'


def amp_unavailable() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` would refuse to be built here.

    Returns:
        bool: True when neither CUDA nor NPU, MLU or MUSA is available (the devices mmengine's
        AMP supports, the same ones its distributed launchers know).
    """
    return cuda_free_distributed()


@functools.lru_cache(maxsize=None)
def _amp_arguments() -> Tuple[str, ...]:
    """The named arguments of ``AmpOptimWrapper.__init__`` that ``OptimWrapper`` does not take."""
    own = inspect.signature(OptimWrapper.__init__).parameters
    return tuple(
        name for name, param in inspect.signature(AmpOptimWrapper.__init__).parameters.items()
        if name != 'self' and name not in own
        and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY))


def fp32_optim_wrapper(*args, **kwargs) -> OptimWrapper:
    """The fp32 ``OptimWrapper`` for the arguments of an ``AmpOptimWrapper``.

    Args:
        *args: ``AmpOptimWrapper``'s positional arguments (its AMP ones first).
        **kwargs: Its keyword arguments: the AMP ones are dropped, the rest (``optimizer``,
            ``accumulative_counts``, ``clip_grad``) go to ``OptimWrapper``.

    Returns:
        OptimWrapper: The fp32 wrapper.
    """
    amp_names = _amp_arguments()
    bound = dict(zip(amp_names, args))
    if len(args) > len(amp_names):
        raise TypeError(f'AmpOptimWrapper takes at most {len(amp_names)} positional arguments '
                        f'({", ".join(amp_names)}), got {len(args)}')
    bound.update((name, kwargs.pop(name)) for name in amp_names if name in kwargs)
    print_log(
        'No CUDA device is available: optim_wrapper type "AmpOptimWrapper" (dtype '
        f'{bound.get("dtype")}) is replaced by the fp32 "OptimWrapper" (set '
        'optim_wrapper.type="OptimWrapper" to silence this warning).',
        logger='current',
        level=logging.WARNING)
    return OptimWrapper(**kwargs)


def _fallback_new(original_new: Callable) -> Callable:
    """``AmpOptimWrapper.__new__`` that returns an fp32 ``OptimWrapper`` without CUDA.

    Args:
        original_new (Callable): The ``__new__`` in place before (``object.__new__``).

    Returns:
        Callable: The new ``__new__``.
    """

    def __new__(cls, *args, **kwargs) -> Any:
        # copy and pickle call __new__ without arguments: they rebuild an existing wrapper.
        if cls is AmpOptimWrapper and (args or kwargs) and amp_unavailable():
            # Not an AmpOptimWrapper instance, so Python skips AmpOptimWrapper.__init__.
            return fp32_optim_wrapper(*args, **kwargs)
        if original_new is object.__new__:
            return object.__new__(cls)
        return original_new(cls, *args, **kwargs)

    setattr(__new__, _PATCHED, True)
    return __new__


def patch_amp_optim_wrapper() -> None:
    """Makes ``AmpOptimWrapper`` fall back to fp32 on a machine without CUDA; idempotent.

    The fallback is decided when a wrapper is built, so a process that sees CUDA keeps AMP.
    ``__new__`` is patched (not a registry entry), so every way of building the wrapper is
    covered: ``OPTIM_WRAPPERS.build``, optimizer-wrapper constructors and direct calls.
    """
    original_new = AmpOptimWrapper.__new__  # object.__new__ unless a parent defines one
    if getattr(original_new, _PATCHED, False):
        return
    AmpOptimWrapper.__new__ = staticmethod(_fallback_new(original_new))
