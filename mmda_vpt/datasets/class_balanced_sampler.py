"""Class-balanced sampling in groups of one class, as the DA-VPT authors train with."""
import logging
import math
from typing import Iterator, List, Optional, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

__all__ = ['ClassBalancedSampler', 'dataset_labels', 'draw_distinct', 'SAMPLER_MODES']

#: How :class:`ClassBalancedSampler` fills an epoch.
SAMPLER_MODES = ('rounds', 'class_slots')


def dataset_labels(dataset: Sized) -> np.ndarray:
    """The class index of every sample of ``dataset``.

    Uses ``get_gt_labels()`` (mmpretrain datasets) or ``get_cat_ids(i)`` (mmengine datasets and
    wrappers).

    Raises:
        TypeError: If the dataset offers neither.
    """
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels(), dtype=np.int64).reshape(-1)
    if hasattr(dataset, 'get_cat_ids'):
        labels = []
        for i in range(len(dataset)):
            ids = dataset.get_cat_ids(i)
            if len(ids) != 1:
                raise ValueError(f'ClassBalancedSampler needs one label per sample; sample {i} '
                                 f'has {len(ids)}')
            labels.append(int(ids[0]))
        return np.asarray(labels, dtype=np.int64)
    raise TypeError(f'ClassBalancedSampler needs a dataset with get_gt_labels() or '
                    f'get_cat_ids(); {type(dataset).__name__} has neither')


def draw_distinct(num: int, count: int, gen: torch.Generator) -> List[int]:
    """``count`` of ``range(num)`` at random: distinct while ``count <= num``, otherwise every
    item ``count // num`` times and ``count % num`` distinct ones more, in a random order.

    The authors' ``_smart_sample`` (``Dataset/class_sampler.py``), on a torch generator.
    """
    if count <= num:
        return torch.randperm(num, generator=gen)[:count].tolist()
    extra = torch.randperm(num, generator=gen)[:count % num].tolist()
    picks = list(range(num)) * (count // num) + extra
    return [picks[i] for i in torch.randperm(count, generator=gen).tolist()]


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Sample every class equally often, in runs of ``samples_per_class`` images of one class.

    ``mode='rounds'`` (the default): each epoch goes over the classes in rounds: every round visits
    all classes (in a random order when ``shuffle``) and takes the next ``samples_per_class`` images
    of each from a per-class pool that is reshuffled when used up, so small classes are repeated and
    large ones subsampled. A batch of ``k * samples_per_class`` images then holds ``k`` classes with
    ``samples_per_class`` images each, which gives the metric losses positives in every batch. An
    epoch has about as many samples as the dataset (rounded up to a multiple of
    ``samples_per_class`` per process).

    ``mode='class_slots'`` (the authors' ``Dataset/class_sampler.py``): every batch of
    ``batch_size`` images is drawn on its own: ``batch_size // samples_per_class`` class slots,
    classes drawn uniformly (distinct within a batch while there are at least as many classes as
    slots; with fewer, every class fills ``slots // C`` slots and ``slots % C`` classes one more),
    each slot ``samples_per_class`` distinct images of its class (a class with fewer images repeats
    them the same way). Batches are independent, so a class recurs from batch to batch and an epoch
    does not cover every image (55-62% of them in the regimes the tests measure, as the authors'
    sampler). An epoch has ``len(dataset) // (batch_size * world_size)`` batches per process (at
    least one), the authors' ``N // batch_size`` on one process; ``batch_size`` must be the training
    dataloader's (per process), so that its batches are the drawn ones.

    The index list is built identically on every process from ``seed + epoch``; each process
    takes a contiguous chunk, so the class runs (and, with ``'class_slots'``, the batches) stay
    intact under distributed training. Use it in a config with::

        train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', samples_per_class=4))
        # the authors' batches:
        train_dataloader = dict(batch_size=32, sampler=dict(
            type='ClassBalancedSampler', samples_per_class=2, mode='class_slots',
            batch_size=32))

    Args:
        dataset (Sized): The dataset; it must tell its labels (``get_gt_labels`` or
            ``get_cat_ids``).
        samples_per_class (int): Consecutive samples of one class. Choose a divisor of the
            batch size. Defaults to 4.
        shuffle (bool): Shuffle the class order and the pools (``'rounds'``; ``'class_slots'``
            is random by nature and needs True). Defaults to True.
        seed (int, optional): Random seed, identical across processes. Defaults to None (a
            seed synchronized across processes).
        mode (str): ``'rounds'`` or ``'class_slots'`` (above). Defaults to ``'rounds'``.
        batch_size (int, optional): The images of one batch of one process, a multiple of
            ``samples_per_class``; needed by ``'class_slots'`` (unused by ``'rounds'``).
            Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 samples_per_class: int = 4,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 mode: str = 'rounds',
                 batch_size: Optional[int] = None) -> None:
        if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, int) \
                or samples_per_class < 1:
            raise ValueError('ClassBalancedSampler: samples_per_class must be a positive int, '
                             f'got {samples_per_class!r}')
        if mode not in SAMPLER_MODES:
            raise ValueError(f'ClassBalancedSampler: mode must be one of {SAMPLER_MODES}, got '
                             f'{mode!r}')
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, int) or batch_size < 1
                                       or batch_size % samples_per_class):
            raise ValueError('ClassBalancedSampler: batch_size must be a positive multiple of '
                             f'samples_per_class={samples_per_class}, got {batch_size!r}')
        if mode == 'class_slots':
            if batch_size is None:
                raise ValueError("ClassBalancedSampler: mode='class_slots' needs batch_size "
                                 "(the training dataloader's)")
            if not shuffle:
                raise ValueError("ClassBalancedSampler: mode='class_slots' draws its batches "
                                 'at random; shuffle=False is not supported')
        elif batch_size is not None:
            print_log("ClassBalancedSampler: batch_size is only used by mode='class_slots'; "
                      "mode='rounds' ignores it", logger='current', level=logging.WARNING)
        if len(dataset) == 0:
            raise ValueError('ClassBalancedSampler: the dataset is empty')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.samples_per_class = samples_per_class
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.mode = mode
        self.batch_size = batch_size
        self.epoch = 0
        labels = dataset_labels(dataset)
        if len(labels) != len(dataset):
            raise ValueError(f'ClassBalancedSampler: {len(labels)} labels for '
                             f'{len(dataset)} samples')
        self.classes = np.unique(labels)
        self.class_indices: List[np.ndarray] = [
            np.flatnonzero(labels == c) for c in self.classes]
        if mode == 'class_slots':
            #: Batches per process and epoch (``'class_slots'``; None for ``'rounds'``).
            self.num_batches = max(1, len(dataset) // (batch_size * self.world_size))
            self.num_samples = self.num_batches * batch_size
        else:
            self.num_batches = None
            per_rank = math.ceil(len(dataset) / self.world_size)
            self.num_samples = math.ceil(per_rank / samples_per_class) * samples_per_class
        self.total_size = self.num_samples * self.world_size

    def global_indices(self) -> List[int]:
        """The epoch's index list over all processes (``total_size`` indices)."""
        gen = torch.Generator()
        gen.manual_seed(self.seed + self.epoch)
        if self.mode == 'class_slots':
            return self._class_slots(gen)

        def order(n: int) -> List[int]:
            if self.shuffle:
                return torch.randperm(n, generator=gen).tolist()
            return list(range(n))

        pools = [[] for _ in self.class_indices]
        indices: List[int] = []
        while len(indices) < self.total_size:
            for c in order(len(self.class_indices)):
                members = self.class_indices[c]
                for _ in range(self.samples_per_class):
                    if not pools[c]:
                        # reversed, so that pop() yields the pool in order
                        pools[c] = [int(members[i]) for i in reversed(order(len(members)))]
                    indices.append(pools[c].pop())
                if len(indices) >= self.total_size:
                    break
        return indices[:self.total_size]

    def _class_slots(self, gen: torch.Generator) -> List[int]:
        """``num_batches * world_size`` batches of class slots, one after the other."""
        slots = self.batch_size // self.samples_per_class
        indices: List[int] = []
        for _ in range(self.num_batches * self.world_size):
            for c in draw_distinct(len(self.class_indices), slots, gen):
                members = self.class_indices[c]
                chosen = draw_distinct(len(members), self.samples_per_class, gen)
                indices.extend(int(members[i]) for i in chosen)
        return indices

    def __iter__(self) -> Iterator[int]:
        start = self.rank * self.num_samples
        return iter(self.global_indices()[start:start + self.num_samples])

    def __len__(self) -> int:
        """The number of samples of this process per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which reseeds the order (``seed + epoch``)."""
        self.epoch = epoch
