"""SyncBN in distributed runs without CUDA: converted to BatchNorm when the model is wrapped.

PyTorch's :class:`~torch.nn.parallel.DistributedDataParallel` refuses a CPU module that holds
:class:`~torch.nn.SyncBatchNorm` layers ("SyncBatchNorm layers only work with GPU modules"),
and mmsegmentation's configs build their heads with ``norm_cfg=dict(type='SyncBN')``. So when
no CUDA device (nor another accelerator mmengine knows) is available and the module to wrap
lives on the CPU, its SyncBN layers become BatchNorm layers (mmengine's
:func:`~mmengine.model.revert_sync_batchnorm`, which keeps their parameters and statistics)
before DistributedDataParallel sees them, with one warning per process: every process then
normalizes over its own batch. This is what :mod:`mmda_vpt.compat.cpu_distributed` does for
the distributed backend (``nccl`` becomes ``gloo``); with CUDA nothing changes.
"""
import functools
import logging

import torch
from mmengine.logging import print_log

from .cpu_distributed import cuda_free_distributed, on_cpu

__all__ = ['patch_cpu_sync_bn', 'revert_cpu_sync_bn']

# Set on the function this module installs, so a second call never wraps twice.
_PATCHED = '_mmda_vpt_cpu_sync_bn'


def _sync_bn_types() -> tuple:
    """The SyncBN classes :func:`~mmengine.model.revert_sync_batchnorm` converts."""
    types = [torch.nn.SyncBatchNorm]
    try:
        from mmcv.ops import SyncBatchNorm
        types.append(SyncBatchNorm)
    except ImportError:  # mmcv without its ops
        pass
    return tuple(types)


def revert_cpu_sync_bn(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with its SyncBN layers as BatchNorm, for a distributed run without CUDA.

    Args:
        module (torch.nn.Module): The module about to be wrapped for distributed training.

    Returns:
        torch.nn.Module: ``module`` itself (converted in place) or, when ``module`` is a SyncBN
        layer, its BatchNorm replacement. Unchanged with CUDA (or another accelerator), for a
        module not on the CPU, and without SyncBN layers.
    """
    if not cuda_free_distributed() or not on_cpu(module):
        return module  # a GPU run is never touched, not even by the look-up below
    types = _sync_bn_types()
    count = sum(isinstance(layer, types) for layer in module.modules())
    if count == 0:
        return module
    from mmengine.model import revert_sync_batchnorm
    print_log(
        f'No CUDA device is available: {count} SyncBatchNorm layer(s) are converted to '
        'BatchNorm for this CPU distributed run (each process normalizes over its own batch).',
        logger='current',
        level=logging.WARNING)
    return revert_sync_batchnorm(module)


def patch_cpu_sync_bn() -> None:
    """Makes :class:`~torch.nn.parallel.DistributedDataParallel` convert SyncBN of CPU modules.

    DistributedDataParallel is patched (not only mmengine's wrapper of it), so every wrapper
    built on it is covered; its ``module`` argument goes through :func:`revert_cpu_sync_bn`,
    which changes nothing where DistributedDataParallel would have accepted the module.
    """
    ddp = torch.nn.parallel.DistributedDataParallel
    init = ddp.__init__
    if getattr(init, _PATCHED, False):
        return

    @functools.wraps(init)
    def __init__(self, module: torch.nn.Module, *args, **kwargs) -> None:
        init(self, revert_cpu_sync_bn(module), *args, **kwargs)

    setattr(__init__, _PATCHED, True)
    ddp.__init__ = __init__
