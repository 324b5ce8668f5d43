"""Segmentation label checks in every runner: a LabelledPixelCheckHook registered by default.

A training set whose label maps hold only the ignore index trains to nothing with no sign, and an
evaluation without a labelled pixel reports nan IoUs (:mod:`mmda_vpt.datasets.labelled_pixels`).
:func:`patch_runner_label_checks` makes every runner, whatever its config, register a
:class:`~mmda_vpt.engine.hooks.LabelledPixelCheckHook`, which checks both; a classifier's runner
is untouched by it.
"""
import functools

from mmengine.runner import Runner

from mmda_vpt.engine.hooks.labelled_pixel_check_hook import LabelledPixelCheckHook

__all__ = ['patch_runner_label_checks']

# Set on the function this module installs, so a second call never wraps twice.
_PATCHED = '_mmda_vpt_runner_label_checks'


def patch_runner_label_checks() -> None:
    """Registers a :class:`~mmda_vpt.engine.hooks.LabelledPixelCheckHook` in every runner.

    :meth:`mmengine.runner.Runner.register_hooks` (which ``Runner.__init__`` calls with the
    config's hooks) adds one, unless the config lists it already.
    """
    register_hooks = Runner.register_hooks
    if getattr(register_hooks, _PATCHED, False):
        return

    @functools.wraps(register_hooks)
    def register(self, *args, **kwargs) -> None:
        register_hooks(self, *args, **kwargs)
        if not any(isinstance(hook, LabelledPixelCheckHook) for hook in self._hooks):
            self.register_hook(LabelledPixelCheckHook())

    setattr(register, _PATCHED, True)
    Runner.register_hooks = register
