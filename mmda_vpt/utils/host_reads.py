"""Count the places where code reads tensor values on the host.

On an accelerator every such read (``int(t)``, ``t.item()``, ``t.tolist()``, boolean-mask
indexing, ``nonzero``, ``bincount`` ...) waits for all queued work: a host-device
synchronization that stalls the pipeline. The counter finds them on any device, the CPU
included, so a test can keep a training step free of them without a GPU.
"""
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['HostReadCounter', 'count_host_reads']

aten = torch.ops.aten

# Operators whose result (or its size) depends on tensor values read by the host.
_READING_OPS = {
    aten._local_scalar_dense,  # int(t), float(t), bool(t), t.item()
    aten.nonzero,
    aten.masked_select,
    aten.bincount,  # sizes its output from the largest value
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.repeat_interleave,
    aten.is_nonzero,
    aten.equal,
}
# Indexing with a boolean mask turns the mask into indices on the host.
_INDEXING_OPS = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}


def _bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


class HostReadCounter(TorchDispatchMode):
    """A dispatch mode counting host reads by operator name (``counts``).

    ``Tensor.tolist`` and ``Tensor.numpy``, which read memory without an operator on the CPU,
    are counted by :func:`count_host_reads`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        if packet in _READING_OPS or (packet in _INDEXING_OPS and _bool_index(args)):
            self.counts[str(packet).replace('aten.', '')] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        """All host reads counted."""
        return sum(self.counts.values())


@contextmanager
def count_host_reads() -> Iterator[HostReadCounter]:
    """Count the host reads of the code inside the context.

    Example:
        >>> with count_host_reads() as reads:
        ...     loss = model(inputs)
        >>> reads.total, reads.counts
    """
    counter = HostReadCounter()
    originals = {name: getattr(torch.Tensor, name) for name in ('tolist', 'numpy')}

    def counted(name):
        def read(tensor, *args, **kwargs):
            counter.counts[name] += 1
            return originals[name](tensor, *args, **kwargs)
        return read

    for name in originals:
        setattr(torch.Tensor, name, counted(name))
    try:
        with counter:
            yield counter
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
