"""Compatibility patches for what the pinned OpenMMLab stack gets wrong on current PyTorch.

:func:`apply_compat_patches` applies them all, once (calling it again changes nothing). It is
the one entry point, as mmpretrain's ``register_all_modules``: ``import mmda_vpt`` calls it, so
``custom_imports=dict(imports=['mmda_vpt'])`` in a config gets the patches too. Each patch is
guarded by feature detection (never by version upper bounds) and leaves a machine with CUDA
untouched. One module per patch:

* :mod:`~mmda_vpt.compat.checkpoint_globals` -- **checkpoint loading with** ``weights_only``
  (PyTorch >= 2.6 defaults ``torch.load`` to it): ``--resume`` failed on the message hub's
  ``HistoryBuffer`` and numpy objects inside mmengine checkpoints; exactly these are allowlisted,
  so a downloaded checkpoint still cannot run code.
* :mod:`~mmda_vpt.compat.cpu_distributed` -- **distributed runs without CUDA**: mmengine's
  launchers call ``torch.cuda.set_device`` and the configs ask for ``nccl``; the launchers skip
  ``set_device`` and use ``gloo``, the DDP wrapper drops ``device_ids`` for a CPU module, and the
  process group is closed at exit (a rank left talking to a finished one aborts with -6).
* :mod:`~mmda_vpt.compat.cpu_sync_bn` -- **SyncBN in such a run**: DDP refuses SyncBN layers of
  a CPU module, so they become BatchNorm when the model is wrapped.
* :mod:`~mmda_vpt.compat.amp_fallback` -- **fp16 AMP without a GPU**: mmengine refuses to
  build an ``AmpOptimWrapper``; it becomes the fp32 ``OptimWrapper`` with one warning.
* :mod:`~mmda_vpt.compat.package_lookups` -- **package look-ups without** ``pkg_resources``
  (setuptools >= 81 dropped it): mmengine's ``mmpretrain::`` / ``mmseg::`` config paths are
  resolved with ``importlib.metadata``.
* :mod:`~mmda_vpt.compat.frozen_param_log` -- **one log line for the frozen parameters** an
  optimizer leaves out, instead of mmengine's warning per tensor (about 150 for a ViT-B).
* :mod:`~mmda_vpt.compat.runner_label_checks` -- **segmentation label checks** in every runner
  (:mod:`mmda_vpt.datasets.labelled_pixels`): a training set without a labelled pixel is refused
  before training; an evaluation without one reports no IoU metrics (with a warning) instead of
  nan.

One more patch lives beside the code it serves and is applied here as well:

* :mod:`mmda_vpt.checkpoints.checkpoint_errors` -- **unreadable checkpoints** (truncated, empty,
  garbage) fail with one line naming the file, its size and what a checkpoint should be;
  ``--resume`` also lists the checkpoints of the work dir that load.
"""
from mmda_vpt.checkpoints.checkpoint_errors import install_checkpoint_errors

from .amp_fallback import patch_amp_optim_wrapper
from .checkpoint_globals import allowlist_checkpoint_globals, checkpoint_safe_globals
from .cpu_distributed import cuda_free_distributed, patch_cpu_distributed
from .cpu_sync_bn import patch_cpu_sync_bn
from .frozen_param_log import patch_frozen_param_log
from .package_lookups import patch_package_lookups
from .runner_label_checks import patch_runner_label_checks

__all__ = ['apply_compat_patches', 'checkpoint_safe_globals', 'cuda_free_distributed']


def apply_compat_patches() -> None:
    """Applies every compatibility patch listed in :mod:`mmda_vpt.compat`.

    Safe to call more than once: each patch marks what it installs and never wraps twice.
    ``import mmda_vpt`` calls it; a script that imports only parts of mmda_vpt calls it itself.
    """
    allowlist_checkpoint_globals()
    patch_package_lookups()
    patch_cpu_distributed()
    patch_cpu_sync_bn()
    patch_frozen_param_log()
    patch_runner_label_checks()
    patch_amp_optim_wrapper()
    install_checkpoint_errors()
