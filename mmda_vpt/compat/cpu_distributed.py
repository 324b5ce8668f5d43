"""Distributed runs on a machine without CUDA: mmengine's launchers and DDP wrapper made to work.

mmengine's launchers call ``torch.cuda.set_device`` unconditionally ("Found no NVIDIA driver")
and the configs ask for the ``nccl`` backend; the runner wraps the model with
``device_ids=[LOCAL_RANK]``, which :class:`~torch.nn.parallel.DistributedDataParallel` refuses
for a CPU module. When no CUDA (nor NPU/MLU/MUSA) device is available,
:func:`patch_cpu_distributed` makes the launchers skip ``set_device`` and switch ``nccl`` to
``gloo``, and makes :class:`~mmengine.model.MMDistributedDataParallel` drop ``device_ids`` for a
module that lives on the CPU. Such a run also waits for every rank and destroys its process group
at exit: otherwise a rank that exits while another still talks to it can abort with "terminate
called without an active exception" (exit code -6, a quarter of two-process runs here), failing
a run whose work is all done. With CUDA nothing changes. SyncBN layers are handled by
:mod:`mmda_vpt.compat.cpu_sync_bn`, fp16 AMP by :mod:`mmda_vpt.compat.amp_fallback`; both ask
:func:`cuda_free_distributed` and :func:`on_cpu`.
"""
import atexit
import contextlib
import functools
import logging
import sys
from typing import Any, Callable, Iterator

import torch
from mmengine.logging import print_log

__all__ = ['cuda_free_distributed', 'on_cpu', 'patch_cpu_distributed']

# Set on every function this module installs, so a second call never wraps twice.
_PATCHED = '_mmda_vpt_cpu_distributed'


def cuda_free_distributed() -> bool:
    """Whether a distributed run here has to go without CUDA.

    True when neither CUDA nor one of the other accelerators mmengine's launchers know (NPU,
    MLU, MUSA) is available; those launch paths never touch CUDA and are left alone.

    Returns:
        bool: True when distributed processes must run on the CPU.
    """
    if torch.cuda.is_available():
        return False
    from mmengine import device
    for probe in ('is_npu_available', 'is_mlu_available', 'is_musa_available'):
        available = getattr(device, probe, None)
        if available is not None and available():
            return False
    return True


@contextlib.contextmanager
def _without_cuda_set_device() -> Iterator[None]:
    """Makes ``torch.cuda.set_device`` a no-op while a launcher initializes the process group."""
    set_device = torch.cuda.set_device

    def skip_set_device(device: Any) -> None:
        print_log(
            f'No CUDA device: skipped torch.cuda.set_device({device!r}) for a CPU '
            'distributed run.',
            logger='current',
            level=logging.DEBUG)

    torch.cuda.set_device = skip_set_device
    try:
        yield
    finally:
        torch.cuda.set_device = set_device


def _end_cpu_process_group() -> None:
    """At the exit of a CPU distributed run: waits for every rank, then destroys the group.

    Skipped when the process group is gone already, and after an uncaught exception (the other
    ranks are not coming; torchrun stops them).
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    if getattr(sys, 'last_value', None) is not None:
        return
    try:
        dist.barrier()
        dist.destroy_process_group()
    except Exception as error:  # noqa: BLE001 - exiting anyway; say why the exit is unclean
        print_log(f'Could not close the CPU process group at exit: {error}', logger='current',
                  level=logging.WARNING)


def _cuda_free_launcher(init_fn: Callable) -> Callable:
    """Wraps one of mmengine's ``_init_dist_*`` launchers so it works without CUDA.

    Args:
        init_fn (Callable): The launcher, called as ``init_fn(backend, *args, **kwargs)``.

    Returns:
        Callable: The wrapped launcher. With CUDA available it is a plain call of ``init_fn``.
    """

    @functools.wraps(init_fn)
    def launcher(backend: str, *args, **kwargs) -> None:
        if not cuda_free_distributed():
            return init_fn(backend, *args, **kwargs)
        if backend == 'nccl':
            print_log(
                'No CUDA device is available: the distributed backend "nccl" is replaced by '
                '"gloo" (set env_cfg.dist_cfg.backend="gloo" to silence this warning).',
                logger='current',
                level=logging.WARNING)
            backend = 'gloo'
        with _without_cuda_set_device():
            init_fn(backend, *args, **kwargs)
        # Registered once per process however often a launcher runs (atexit keeps duplicates).
        atexit.unregister(_end_cpu_process_group)
        atexit.register(_end_cpu_process_group)

    setattr(launcher, _PATCHED, True)
    return launcher


def _patch_dist_launchers() -> None:
    """Installs :func:`_cuda_free_launcher` around mmengine's process-group launchers.

    ``mmengine.dist.init_dist`` looks the launchers up in its module at call time, so patching
    the module attributes covers every caller of ``init_dist`` (the runner included).
    """
    from mmengine.dist import utils as dist_utils
    for name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
        init_fn = getattr(dist_utils, name, None)
        if init_fn is None or getattr(init_fn, _PATCHED, False):
            continue
        setattr(dist_utils, name, _cuda_free_launcher(init_fn))


def on_cpu(module: torch.nn.Module) -> bool:
    """Whether every parameter and buffer of ``module`` lives on the CPU (and it has some)."""
    devices = {tensor.device.type for tensor in module.parameters()}
    devices.update(tensor.device.type for tensor in module.buffers())
    return devices == {'cpu'}


def _patch_ddp_device_ids() -> None:
    """Lets :class:`~mmengine.model.MMDistributedDataParallel` wrap a CPU module.

    :meth:`mmengine.runner.Runner.wrap_model` always passes ``device_ids=[LOCAL_RANK]``;
    PyTorch requires ``device_ids=None`` for a CPU module. Without CUDA the ids are dropped for a
    module on the CPU; everything else is passed through unchanged.
    """
    from mmengine.model import MMDistributedDataParallel
    init = MMDistributedDataParallel.__init__
    if getattr(init, _PATCHED, False):
        return

    @functools.wraps(init)
    def __init__(self, module: torch.nn.Module, *args, **kwargs) -> None:
        if (kwargs.get('device_ids') is not None and cuda_free_distributed()
                and on_cpu(module)):
            kwargs['device_ids'] = None
            kwargs['output_device'] = None
        init(self, module, *args, **kwargs)

    setattr(__init__, _PATCHED, True)
    MMDistributedDataParallel.__init__ = __init__


def patch_cpu_distributed() -> None:
    """Makes mmengine's launchers and DDP wrapper work without CUDA; calling it again changes
    nothing."""
    _patch_dist_launchers()
    _patch_ddp_device_ids()
