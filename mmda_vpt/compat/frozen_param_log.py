"""One log line for the frozen parameters an optimizer leaves out, instead of one per tensor.

mmengine's :class:`~mmengine.optim.DefaultOptimWrapperConstructor` logs
"<name> is skipped since its requires_grad=False" as a warning for every frozen parameter
tensor when the config has a ``paramwise_cfg`` (about 150 lines for a prompt-tuned ViT-B).
While it builds an optimizer wrapper those messages are counted instead of logged, and one
summary line follows.
"""
import contextlib
import functools
import logging
import re
from typing import Iterator, List

from mmengine.logging import MMLogger, print_log

__all__ = ['collapse_frozen_param_messages', 'patch_frozen_param_log']

# Set on the function this module installs, so a second call never wraps twice.
_PATCHED = '_mmda_vpt_frozen_param_log'
_SKIPPED = re.compile(r' is skipped since its requires_grad=False$')


class _FrozenParamFilter(logging.Filter):
    """Drops mmengine's per-tensor "is skipped since its requires_grad=False" records."""

    def __init__(self) -> None:
        super().__init__()
        self.names: List[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        match = _SKIPPED.search(message)
        if match is None:
            return True
        self.names.append(message[:match.start()])
        return False


@contextlib.contextmanager
def collapse_frozen_param_messages() -> Iterator[List[str]]:
    """Within the block, mmengine's per-tensor frozen-parameter messages become one line.

    Yields:
        list[str]: The names of the skipped tensors, filled as the block runs.
    """
    logger = MMLogger.get_current_instance()
    record_filter = _FrozenParamFilter()
    logger.addFilter(record_filter)
    try:
        yield record_filter.names
    finally:
        logger.removeFilter(record_filter)
        if record_filter.names:
            print_log(
                f'{len(record_filter.names)} frozen parameter tensors (requires_grad=False) '
                'are left out of the optimizer',
                logger='current',
                level=logging.INFO)


def patch_frozen_param_log() -> None:
    """Wraps :meth:`DefaultOptimWrapperConstructor.__call__` in
    :func:`collapse_frozen_param_messages` (subclasses that call it are covered)."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    call = DefaultOptimWrapperConstructor.__call__
    if getattr(call, _PATCHED, False):
        return

    @functools.wraps(call)
    def __call__(self, model):
        with collapse_frozen_param_messages():
            return call(self, model)

    setattr(__call__, _PATCHED, True)
    DefaultOptimWrapperConstructor.__call__ = __call__
