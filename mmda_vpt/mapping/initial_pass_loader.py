"""The data of the class-to-prompt map's initial pass: the training set, a few images per class.

The training set goes through the test pipeline (no augmentation) or its own training
pipeline, optionally only a few images of every class.

:class:`~mmda_vpt.engine.hooks.ClassPromptMappingHook` runs the pass; this module builds what it
reads (:func:`build_initial_pass_loader`) and the per-class bookkeeping of its batches
(:func:`split_batch`, :func:`apply_quota`).
"""
import copy
import math
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import DataLoader, Subset

from mmda_vpt.mapping.labels import check_label_range
from mmda_vpt.datasets.class_list import label_like

__all__ = [
    'apply_quota', 'build_initial_pass_loader', 'dataset_labels', 'find_pipeline',
    'select_per_class', 'split_batch'
]

WHO = 'ClassPromptMappingHook'


def find_pipeline(cfg) -> Optional[list]:
    """The ``pipeline`` of a dataset config, looking through dataset wrappers.

    Args:
        cfg (dict | Any): A dataset config (anything else gives None).

    Returns:
        list | None: The first pipeline found, or None.
    """
    if not isinstance(cfg, dict):
        return None
    if cfg.get('pipeline') is not None:
        return cfg['pipeline']
    if isinstance(cfg.get('dataset'), dict):
        return find_pipeline(cfg['dataset'])
    for sub in cfg.get('datasets') or []:
        found = find_pipeline(sub)
        if found is not None:
            return found
    return None


def _replace_pipeline(cfg: dict, pipeline: list) -> bool:
    """Put ``pipeline`` into a dataset config (and every dataset it wraps)."""
    if 'pipeline' in cfg:
        cfg['pipeline'] = copy.deepcopy(pipeline)
        return True
    done = False
    if isinstance(cfg.get('dataset'), dict):
        done = _replace_pipeline(cfg['dataset'], pipeline)
    for sub in cfg.get('datasets') or []:
        if isinstance(sub, dict):
            done = _replace_pipeline(sub, pipeline) or done
    return done


def dataset_labels(dataset) -> Optional[np.ndarray]:
    """Single-label classes of every sample without loading images.

    Args:
        dataset: A dataset with ``get_gt_labels()`` or ``get_data_info(idx)['gt_label']``.

    Returns:
        np.ndarray | None: (N,) int64 labels, or None if the dataset does not tell them.

    Raises:
        ValueError: A sample has more than one label.
    """
    labels = None
    if hasattr(dataset, 'get_gt_labels'):
        labels = list(dataset.get_gt_labels())
    elif hasattr(dataset, 'get_data_info'):
        labels = []
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            if not isinstance(info, dict) or info.get('gt_label') is None:
                return None
            labels.append(info['gt_label'])
    if labels is None:
        return None
    flat = []
    for label in labels:
        arr = np.asarray(label).reshape(-1)
        if arr.size != 1:
            raise ValueError(f'{WHO} supports single-label classification, but a sample has the '
                             f'label {label!r}')
        flat.append(int(arr[0]))
    return np.asarray(flat, dtype=np.int64)


def select_per_class(labels: np.ndarray, num_classes: int, samples_per_class: int,
                     seed: int) -> np.ndarray:
    """Indices of at most ``samples_per_class`` random samples of every class.

    Args:
        labels (np.ndarray): (N,) class of every sample.
        num_classes (int): C; labels outside ``[0, C)`` are never chosen.
        samples_per_class (int): The most samples kept per class.
        seed (int): Seed of the choice.

    Returns:
        np.ndarray: The chosen indices, sorted.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in range(num_classes):
        idx = np.flatnonzero(labels == cls)
        if len(idx) > samples_per_class:
            idx = rng.choice(idx, samples_per_class, replace=False)
        chosen.append(idx)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


class _SharedSubset(Subset):
    """A ``Subset`` that stays shared when ``Runner.build_dataloader`` deep-copies its config."""

    def __deepcopy__(self, memo: dict) -> '_SharedSubset':
        return self


def _train_loader_cfg(runner) -> Optional[dict]:
    cfg = runner.cfg.get('train_dataloader')
    if not isinstance(cfg, dict):
        cfg = getattr(runner, '_train_dataloader', None)
    return cfg if isinstance(cfg, dict) else None


def _test_pipeline(runner) -> list:
    for name in ('test_dataloader', 'val_dataloader'):
        for cfg in (runner.cfg.get(name), getattr(runner, f'_{name}', None)):
            if isinstance(cfg, dict):
                found = find_pipeline(cfg.get('dataset'))
                if found is not None:
                    return found
    raise ValueError(f'{WHO} passes the training set through the test pipeline (no '
                     'augmentation), but neither test_dataloader nor val_dataloader has a '
                     'dataset pipeline; pass pipeline=[...] to the hook')


def _initial_pass_dataset(runner, pipeline: Union[list, str]):
    """The runner's training dataset with ``pipeline`` (``'train'``: the built one as it is)."""
    loader_cfg = _train_loader_cfg(runner)
    dataset_cfg = loader_cfg.get('dataset') if loader_cfg is not None else None
    if pipeline == 'train':
        dataset = runner.train_dataloader.dataset
    elif isinstance(dataset_cfg, dict):
        dataset_cfg = copy.deepcopy(dataset_cfg)
        if not _replace_pipeline(dataset_cfg, pipeline):
            raise ValueError(f'{WHO}: the training dataset config has no pipeline to '
                             'replace with the test pipeline')
        dataset = DATASETS.build(dataset_cfg)
    else:
        from mmengine.dataset import Compose
        built = runner.train_dataloader.dataset
        if not hasattr(built, 'pipeline'):
            raise ValueError(f'{WHO}: the training dataset {type(built).__name__} was '
                             'passed built and has no pipeline to replace; pass its config')
        dataset = copy.copy(built)
        dataset.pipeline = Compose(copy.deepcopy(pipeline))
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    # Built again: the run's class list as the training split has it (labels by folder name).
    label_like(dataset, getattr(getattr(runner, 'train_dataloader', None), 'dataset', None))
    return dataset


def build_initial_pass_loader(runner,
                              num_classes: int,
                              samples_per_class: Optional[int],
                              seed: int,
                              segmentation: bool,
                              world_size: int = 1,
                              batch_size: Optional[int] = None,
                              num_workers: Optional[int] = None,
                              pipeline: Union[None, str, List[dict]] = None
                              ) -> Tuple[DataLoader, Optional[int]]:
    """The loader of the initial pass over the runner's training set, and its image quota.

    The training dataset is rebuilt with the test pipeline (no augmentation; ``pipeline='train'``:
    the runner's built training dataset, with its own pipeline) and read in order by a
    ``DefaultSampler`` (this rank's share). With ``samples_per_class``, single-label
    datasets keep that many random images of every class; where the labels cannot be read
    without loading images (segmentation), the images come in a seeded random order and the
    returned quota, ``ceil(samples_per_class / world_size)``, is applied batch by batch with
    :func:`apply_quota`.

    Args:
        runner (Runner): Its ``train_dataloader`` config (or built loader) and its test or
            validation pipeline are read.
        num_classes (int): C.
        samples_per_class (int, optional): Images per class; None for the whole training set.
        seed (int): Seed of the choice and of the loader.
        segmentation (bool): Whether the model segments (labels are read from the maps).
        world_size (int): Ranks sharing the pass. Defaults to 1.
        batch_size (int, optional): Defaults to None (the training loader's).
        num_workers (int, optional): Defaults to None (the training loader's).
        pipeline (list[dict] | str, optional): A pipeline, or ``'train'`` for the training
            dataset's own. Defaults to None: the test dataloader's dataset pipeline, else the
            validation one.

    Returns:
        tuple: The loader and the per-rank quota of images per class (None without one).

    Raises:
        ValueError: No test or validation pipeline, a training dataset without a pipeline to
            replace, or (single-label datasets) a label outside ``[0, C)``.
    """
    from mmengine.runner import Runner
    dataset = _initial_pass_dataset(runner, pipeline if pipeline is not None else
                                    _test_pipeline(runner))
    quota = None
    indices = np.arange(len(dataset))
    if samples_per_class is not None:
        labels = None if segmentation else dataset_labels(dataset)
        if labels is not None:
            check_label_range(torch.from_numpy(labels), num_classes, 'training-set')
            indices = select_per_class(labels, num_classes, samples_per_class, seed)
        else:
            indices = np.random.default_rng(seed).permutation(len(dataset))
            quota = math.ceil(samples_per_class / world_size)
    dataset = _SharedSubset(dataset, indices.tolist())
    train_cfg = _train_loader_cfg(runner) or {}
    batch_size = batch_size or train_cfg.get('batch_size') or \
        runner.train_dataloader.batch_size or 1
    if num_workers is None:
        num_workers = train_cfg.get('num_workers', 0)
    cfg = dict(dataset=dataset,
               sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
               batch_size=batch_size, num_workers=num_workers, persistent_workers=False)
    if train_cfg.get('collate_fn') is not None:
        cfg['collate_fn'] = copy.deepcopy(train_cfg['collate_fn'])
    return Runner.build_dataloader(cfg, seed=seed), quota


def split_batch(data_batch: dict, segmentation: bool) -> Iterator[dict]:
    """The batch, or one sample at a time when segmentation images differ in size.

    Args:
        data_batch (dict): A collated batch (``inputs``, ``data_samples``).
        segmentation (bool): Whether the images may differ in size.

    Yields:
        dict: Batches the data preprocessor can stack.
    """
    inputs = data_batch['inputs']
    sizes = {tuple(x.shape[-2:]) for x in inputs} if isinstance(inputs, list) else {0}
    if not segmentation or len(sizes) <= 1:
        yield data_batch
        return
    for i in range(len(inputs)):
        yield {key: value[i:i + 1] for key, value in data_batch.items()}


def apply_quota(labels: torch.Tensor, served: torch.Tensor,
                quota: Optional[int]) -> torch.Tensor:
    """Count the images of every class; with a quota, keep only the classes still under it.

    Args:
        labels (torch.Tensor): (B, ...) class labels of B images (-1: none).
        served (torch.Tensor): (C,) CPU long, images seen per class so far; updated in place.
        quota (int, optional): Images per class to keep; None keeps all.

    Returns:
        torch.Tensor: (B, N) labels; with a quota, the classes of an image that have had
        ``quota`` images already become -1.
    """
    labels = labels.reshape(labels.shape[0], -1)
    if quota is None:
        rows, cols = torch.nonzero(labels >= 0, as_tuple=True)
        hits = torch.zeros(labels.shape[0], len(served), dtype=torch.bool, device=labels.device)
        hits[rows, labels[rows, cols]] = True
        served += hits.sum(0).cpu()
        return labels
    labels = labels.clone()
    for row in labels:
        present = row[row >= 0].unique()
        if present.numel() == 0:
            continue
        open_ = (served[present.cpu()] < quota).to(present.device)
        row[~torch.isin(row, present[open_])] = -1
        served[present[open_].cpu()] += 1
    return labels
