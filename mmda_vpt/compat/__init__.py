"""Compatibility fixes for what the pinned OpenMMLab stack gets wrong on current PyTorch.

Everything here is applied once by :func:`apply_compat_patches`, which ``import mmda_vpt`` calls.
Each fix is guarded by feature detection (never by version upper bounds) and leaves a machine
with CUDA untouched:

* **Checkpoint loading with** ``weights_only`` (PyTorch >= 2.6 defaults ``torch.load`` to
  ``weights_only=True``). mmengine checkpoints hold a few non-tensor objects (the message hub's
  :class:`~mmengine.logging.HistoryBuffer` and the numpy arrays, scalars and dtypes inside it),
  so ``--resume`` failed with "Weights only load failed ... HistoryBuffer was not an allowed
  global". Exactly these classes are allowlisted with ``torch.serialization.add_safe_globals``;
  ``weights_only`` stays on, so a downloaded checkpoint still cannot run code.
* **Distributed runs on a machine without CUDA.** mmengine's launchers call
  ``torch.cuda.set_device`` unconditionally ("Found no NVIDIA driver") and the configs ask for
  the ``nccl`` backend; the runner wraps the model with ``device_ids=[LOCAL_RANK]``, which
  :class:`~torch.nn.parallel.DistributedDataParallel` refuses for a CPU module. When no CUDA (nor
  NPU/MLU/MUSA) device is available, the launchers skip ``set_device`` and switch ``nccl`` to
  ``gloo``, and :class:`~mmengine.model.MMDistributedDataParallel` drops ``device_ids`` for a
  module that lives on the CPU. Such a run also waits for every rank and destroys its process
  group at exit: otherwise a rank that exits while another still talks to it can abort with
  "terminate called without an active exception" (exit code -6, a quarter of two-process runs
  here), failing a run whose work is all done. SyncBN layers of a CPU module become BatchNorm
  before DistributedDataParallel wraps it (:mod:`mmda_vpt.compat.cpu_sync_bn`).
* **Package look-ups without** ``pkg_resources`` (setuptools >= 81 dropped it). mmengine resolves
  ``_base_ = 'mmpretrain::...'`` and ``mmseg::`` config paths with ``pkg_resources``
  ("No module named 'pkg_resources'"); when it is missing, mmengine's ``is_installed``,
  ``get_installed_path`` and ``package2module`` are replaced by ``importlib.metadata``
  equivalents.
* **One line for the frozen parameters** an optimizer leaves out, instead of mmengine's warning
  per tensor (:mod:`mmda_vpt.compat.frozen_param_log`).
* **Segmentation label checks** in every runner (:mod:`mmda_vpt.datasets.labelled_pixels`): a
  training set without a labelled pixel is refused before training; an evaluation without one
  reports no IoU metrics (with a warning) instead of nan.
* **fp16 AMP without a GPU**: an ``AmpOptimWrapper`` built where no CUDA device is available
  becomes the fp32 ``OptimWrapper`` with one warning (:mod:`mmda_vpt.compat.amp_fallback`).
* **Unreadable checkpoints** (truncated, empty, garbage) fail with one line naming the file, its
  size and what a checkpoint should be; ``--resume`` also lists the checkpoints of the work dir
  that load (:mod:`mmda_vpt.checkpoints.checkpoint_errors`).
"""
import atexit
import contextlib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import io
import logging
import os.path as osp
import pickle
import sys
from typing import Any, Callable, Iterator, List, Optional

import numpy as np
import torch
from mmengine.logging import print_log

from .cpu_sync_bn import patch_cpu_sync_bn
from .frozen_param_log import patch_frozen_param_log
from mmda_vpt.datasets.labelled_pixels import patch_runner_label_checks

__all__ = ['apply_compat_patches', 'checkpoint_safe_globals', 'cuda_free_distributed']

# Set on every function this module installs, so a second call never wraps twice.
_PATCHED = '_mmda_vpt_compat_patch'

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


def _allowlist_checkpoint_globals() -> None:
    """Allowlists :func:`checkpoint_safe_globals` for ``weights_only`` loading, if it exists."""
    add_safe_globals: Optional[Callable] = getattr(torch.serialization, 'add_safe_globals',
                                                   None)
    if add_safe_globals is None:
        # A torch without an allowlist has no weights_only default either: nothing to fix.
        return
    named = _accepts_named_globals()
    entries = checkpoint_safe_globals()
    add_safe_globals([entry for entry in entries if named or not isinstance(entry, tuple)])


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


def _on_cpu(module: torch.nn.Module) -> bool:
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
                and _on_cpu(module)):
            kwargs['device_ids'] = None
            kwargs['output_device'] = None
        init(self, module, *args, **kwargs)

    setattr(__init__, _PATCHED, True)
    MMDistributedDataParallel.__init__ = __init__


def _package2module(package: str) -> str:
    """The top-level module of an installed distribution (``mmcv-full`` -> ``mmcv``).

    Args:
        package (str): Distribution name.

    Returns:
        str: The first module of the distribution's ``top_level.txt``.

    Raises:
        ValueError: If the distribution does not list its top-level modules.
    """
    top_level = importlib.metadata.distribution(package).read_text('top_level.txt')
    if not top_level or not top_level.strip():
        raise ValueError(f'can not infer the module name of {package}')
    return top_level.split()[0]


def _module_dir(module: str) -> Optional[str]:
    """The directory of an importable (non-namespace) package, or None."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return osp.dirname(spec.origin)


def _is_installed(package: str) -> bool:
    """mmengine's ``is_installed`` on ``importlib.metadata``: a distribution or a module.

    Args:
        package (str): Distribution or module name.

    Returns:
        bool: Whether it is installed.
    """
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return _module_dir(package) is not None


def _get_installed_path(package: str) -> str:
    """mmengine's ``get_installed_path`` on ``importlib.metadata``.

    Args:
        package (str): Distribution or module name (``mmpretrain``, ``mmcv-full``).

    Returns:
        str: The directory of the installed package (its sources for an editable install).

    Raises:
        RuntimeError: If ``package`` is a namespace package.
        importlib.metadata.PackageNotFoundError: If nothing of that name is installed.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        path = _module_dir(package)
        if path is not None:
            return path
        if importlib.util.find_spec(package) is not None:
            raise RuntimeError(f'{package} is a namespace package, which is invalid for '
                               '`get_install_path`')
        raise
    for module in (package, _package2module(package)):
        path = _module_dir(module)
        if path is not None:
            return path
    return osp.join(str(dist.locate_file('')), _package2module(package))


def _patch_package_lookups() -> None:
    """Replaces mmengine's ``pkg_resources`` look-ups when ``pkg_resources`` is missing.

    The functions are bound by name in several mmengine modules (``from mmengine.utils import
    is_installed``), so each binding of the original function is replaced.
    """
    if importlib.util.find_spec('pkg_resources') is not None:
        return
    from mmengine.utils import package_utils
    replacements = {
        'is_installed': _is_installed,
        'get_installed_path': _get_installed_path,
        'package2module': _package2module,
    }
    originals = {name: getattr(package_utils, name, None) for name in replacements}
    for module_name in ('mmengine.utils.package_utils', 'mmengine.utils', 'mmengine.config.config',
                        'mmengine.hub.hub'):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, replacement in replacements.items():
            current = getattr(module, name, None)
            if current is not None and current is originals[name]:
                setattr(module, name, replacement)


def apply_compat_patches() -> None:
    """Applies every compatibility fix of this module; calling it again changes nothing.

    See the module docstring for what each fix does and when it takes effect.
    """
    _allowlist_checkpoint_globals()
    _patch_package_lookups()
    _patch_dist_launchers()
    _patch_ddp_device_ids()
    patch_cpu_sync_bn()
    patch_frozen_param_log()
    patch_runner_label_checks()
    importlib.import_module('.amp_fallback', __package__).patch_amp_optim_wrapper()
    importlib.import_module('mmda_vpt.checkpoints.checkpoint_errors').install_checkpoint_errors()
