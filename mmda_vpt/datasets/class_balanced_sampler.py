"""Class-balanced sampling in groups of one class, as the DA-VPT authors train with."""
import math
from typing import Iterator, List, Optional, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

__all__ = ['ClassBalancedSampler', 'dataset_labels']


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


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Sample every class equally often, in runs of ``samples_per_class`` images of one class.

    Each epoch goes over the classes in rounds: every round visits all classes (in a random
    order when ``shuffle``) and takes the next ``samples_per_class`` images of each from a
    per-class pool that is reshuffled when used up, so small classes are repeated and large
    ones subsampled. A batch of ``k * samples_per_class`` images then holds ``k`` classes with
    ``samples_per_class`` images each, which gives the metric losses positives in every batch.
    An epoch has about as many samples as the dataset (rounded up to a multiple of
    ``samples_per_class`` per process).

    The index list is built identically on every process from ``seed + epoch``; each process
    takes a contiguous chunk, so the class runs stay intact under distributed training.
    Use it in a config with::

        train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', samples_per_class=4))

    Args:
        dataset (Sized): The dataset; it must tell its labels (``get_gt_labels`` or
            ``get_cat_ids``).
        samples_per_class (int): Consecutive samples of one class. Choose a divisor of the
            batch size. Defaults to 4.
        shuffle (bool): Shuffle the class order and the pools. Defaults to True.
        seed (int, optional): Random seed, identical across processes. Defaults to None (a
            seed synchronized across processes).
    """

    def __init__(self,
                 dataset: Sized,
                 samples_per_class: int = 4,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, int) \
                or samples_per_class < 1:
            raise ValueError('ClassBalancedSampler: samples_per_class must be a positive int, '
                             f'got {samples_per_class!r}')
        if len(dataset) == 0:
            raise ValueError('ClassBalancedSampler: the dataset is empty')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.samples_per_class = samples_per_class
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        labels = dataset_labels(dataset)
        if len(labels) != len(dataset):
            raise ValueError(f'ClassBalancedSampler: {len(labels)} labels for '
                             f'{len(dataset)} samples')
        self.classes = np.unique(labels)
        self.class_indices: List[np.ndarray] = [
            np.flatnonzero(labels == c) for c in self.classes]
        per_rank = math.ceil(len(dataset) / self.world_size)
        self.num_samples = math.ceil(per_rank / samples_per_class) * samples_per_class
        self.total_size = self.num_samples * self.world_size

    def global_indices(self) -> List[int]:
        """The epoch's index list over all processes (``total_size`` indices)."""
        gen = torch.Generator()
        gen.manual_seed(self.seed + self.epoch)

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

    def __iter__(self) -> Iterator[int]:
        start = self.rank * self.num_samples
        return iter(self.global_indices()[start:start + self.num_samples])

    def __len__(self) -> int:
        """The number of samples of this process per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which reseeds the order (``seed + epoch``)."""
        self.epoch = epoch
