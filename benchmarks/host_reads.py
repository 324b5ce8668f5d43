"""Count the places where code reads tensor values on the host.

On an accelerator, a read of a device tensor's values by the host (``int(t)``, ``t.item()``,
``t.tolist()``, ``t.cpu()``, boolean-mask indexing, ``nonzero``, ``bincount`` ...) waits for
all queued work: a host-device synchronization that stalls the pipeline. The counter finds
these reads on any device, the CPU included, so a test can keep a training step free of them
without a GPU. On the CPU it cannot tell a read of a tensor that lives on the host anyway (such
as an optimizer's step counter) from one that would be a synchronization on a GPU.
"""
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Iterator, List

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['HostReadCounter', 'count_host_reads']

aten = torch.ops.aten

# Operators whose result (or its size) depends on tensor values read by the host.
_READING_OPS = {
    aten._local_scalar_dense,  # int(t), float(t), bool(t), t.item()
    aten.nonzero,
    aten.masked_select,
    aten.masked_scatter,
    aten.bincount,  # sizes its output from the largest value
    aten.histc,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.repeat_interleave,
    aten.is_nonzero,
    aten.equal,
}
# Indexing with a boolean mask turns the mask into indices on the host.
_INDEXING_OPS = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
# Copies, which read device values on the host when they go from a device to the CPU.
_COPY_OPS = {aten._to_copy, aten.copy_}

_LOCK = threading.Lock()
_ACTIVE: List['HostReadCounter'] = []  # the open counters, of all threads
_ORIGINALS = {name: getattr(torch.Tensor, name) for name in ('tolist', 'numpy')}


def _bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


def _device_to_host(packet, args, out) -> bool:
    source = args[1] if packet is aten.copy_ else args[0]
    target = args[0] if packet is aten.copy_ else out
    return (isinstance(source, torch.Tensor) and isinstance(target, torch.Tensor)
            and source.device.type not in ('cpu', 'meta') and target.device.type == 'cpu')


class HostReadCounter(TorchDispatchMode):
    """A dispatch mode counting host reads by operator name (``counts``), in its own thread.

    ``Tensor.tolist`` and ``Tensor.numpy``, which read memory without an operator on the CPU,
    are counted by :func:`count_host_reads`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self.thread = threading.get_ident()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        out = func(*args, **(kwargs or {}))
        if (packet in _READING_OPS or (packet in _INDEXING_OPS and _bool_index(args))
                or (packet in _COPY_OPS and _device_to_host(packet, args, out))):
            self.counts[str(packet).replace('aten.', '')] += 1
        return out

    @property
    def total(self) -> int:
        """All host reads counted."""
        return sum(self.counts.values())


def _counted(name: str):

    def read(tensor, *args, **kwargs):
        thread = threading.get_ident()
        for counter in list(_ACTIVE):
            if counter.thread == thread:
                counter.counts[name] += 1
        return _ORIGINALS[name](tensor, *args, **kwargs)

    return read


@contextmanager
def count_host_reads() -> Iterator[HostReadCounter]:
    """Count the host reads of the code run in this thread inside the context.

    Contexts may nest and may be open in several threads at once.

    Example:
        >>> with count_host_reads() as reads:
        ...     loss = model(inputs)
        >>> reads.total, reads.counts
    """
    counter = HostReadCounter()
    with _LOCK:
        if not _ACTIVE:
            for name in _ORIGINALS:
                setattr(torch.Tensor, name, _counted(name))
        _ACTIVE.append(counter)
    try:
        with counter:
            yield counter
    finally:
        with _LOCK:
            _ACTIVE.remove(counter)
            if not _ACTIVE:
                for name, original in _ORIGINALS.items():
                    setattr(torch.Tensor, name, original)
