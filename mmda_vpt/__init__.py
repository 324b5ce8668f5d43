"""mmda_vpt: DA-VPT for mmpretrain and mmsegmentation.

``import mmda_vpt`` (or ``custom_imports=dict(imports=['mmda_vpt'])`` in a config) applies the
compatibility fixes of :mod:`mmda_vpt.compat` and registers every component into
mmpretrain's and mmsegmentation's MODELS / DATASETS and mmengine's HOOKS; it also makes mmengine's
local checkpoint loader record the folder of each file it reads (see
:mod:`mmda_vpt.checkpoints.base_weights`).
"""
from .checkpoints.base_weights import install_checkpoint_loader
from .compat import apply_compat_patches

apply_compat_patches()
install_checkpoint_loader()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'datasets', 'engine', 'models', 'apply_compat_patches']
