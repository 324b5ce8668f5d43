"""Segmentation label maps without a labelled pixel: refused for training, no IoU in evaluation.

A training set whose label maps hold nothing but the ignore index trains to nothing with no
sign (loss 0, accuracy 100, nan IoU): :func:`check_training_masks` refuses it before the first
step. It reads the label maps with the dataset's own annotation loader (so
``reduce_zero_label`` and ``label_map`` apply as in training) and stops at the first labelled
pixel, so a sound training set costs one file. An evaluation whose label maps hold no labelled
pixel gives mmsegmentation's :class:`~mmseg.evaluation.IoUMetric` nothing to measure (0 / 0:
nan for every IoU and accuracy): :func:`guard_iou_metric` makes it report no metric for that
round, with a warning naming the split, and training goes on (unless a hook or scheduler of
the config requires that metric every round: mmengine's ``EarlyStoppingHook(strict=True)`` and
``ReduceOnPlateau`` schedulers monitoring ``mIoU`` raise on a round without it). A pipeline without
mmseg's ``LoadAnnotations``, or a label map this check cannot read, leaves the training set
unchecked.

Both run in every runner through :class:`~mmda_vpt.engine.hooks.LabelledPixelCheckHook`,
which :mod:`mmda_vpt.compat.runner_label_checks` registers (``import mmda_vpt`` applies it).
"""
import copy
import functools
import logging
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
from mmengine.logging import print_log

__all__ = [
    'check_training_masks', 'describe_split', 'find_labelled_pixel', 'guard_iou_metric',
    'is_iou_metric', 'leaf_datasets'
]

# Set on a guarded metric: the split it evaluates.
_PATCHED = '_mmda_vpt_label_checks'
# Label maps named in an error message.
_EXAMPLES = 3


def leaf_datasets(dataset: Any) -> Iterator[Any]:
    """The datasets inside dataset wrappers (``ConcatDataset``, ``RepeatDataset``, ...).

    Args:
        dataset: A dataset, wrapped or not.

    Yields:
        The datasets that hold samples themselves, each once.
    """
    seen = set()
    stack = [dataset]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        inner = getattr(current, 'datasets', None)
        if isinstance(inner, (list, tuple)):
            stack.extend(reversed(inner))
        elif getattr(current, 'dataset', None) is not None:
            stack.append(current.dataset)
        else:
            yield current


def _annotation_loader(dataset: Any) -> Optional[Any]:
    """mmseg's ``LoadAnnotations`` of the dataset's pipeline, if it has one."""
    from mmseg.datasets.transforms import LoadAnnotations
    for transform in getattr(getattr(dataset, 'pipeline', None), 'transforms', None) or []:
        if isinstance(transform, LoadAnnotations):
            return transform
    return None


def _label_maps(dataset: Any) -> Iterator[Tuple[str, Optional[np.ndarray]]]:
    """``(source, label map)`` of every sample of a dataset, loaded as its pipeline loads them.

    Yields nothing for a dataset whose samples tell no label map (neither a ``gt_seg_map``
    nor a ``seg_map_path``), and ``(source, None)`` (unknown: the check is skipped) for one
    whose pipeline has no mmseg ``LoadAnnotations`` (e.g. ``LoadBiomedicalAnnotation``) or whose
    map fails to load here: another loader must not stop a run it would have trained.
    """
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    if not hasattr(dataset, 'get_data_info'):
        return
    loader = None
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        if info.get('gt_seg_map') is not None:
            yield f'sample {index}', np.asarray(info['gt_seg_map'])
            continue
        path = info.get('seg_map_path')
        if path is None:
            return
        if loader is None:
            loader = _annotation_loader(dataset)
            if loader is None:
                yield path, None
                return
        results = copy.copy(info)
        results['seg_fields'] = []
        try:
            label_map = np.asarray(loader(results)['gt_seg_map'])
        except Exception as error:  # noqa: BLE001  (the run's own loading reports its errors)
            print_log(f'label-map check skipped: {path} did not load here ({error!r})',
                      logger='current', level=logging.WARNING)
            yield path, None
            return
        yield path, label_map


def find_labelled_pixel(dataset: Any, ignore_index: int = 255) -> Tuple[Optional[bool], dict]:
    """Reads label maps of ``dataset`` until one holds a pixel that is not ``ignore_index``.

    Args:
        dataset: A segmentation dataset (mmseg's, or any with ``gt_seg_map`` or
            ``seg_map_path`` in its data information), wrapped or not.
        ignore_index (int): The label of ignored pixels. Defaults to 255.

    Returns:
        tuple: Whether a labelled pixel was found (None when the dataset tells no label
        maps), and what was read: ``maps`` (the number read), ``examples`` (the first few
        sources), ``reduce_zero_label`` (whether any sample reduces zero labels).
    """
    found: Optional[bool] = None
    seen = dict(maps=0, examples=[], reduce_zero_label=False)
    for leaf in leaf_datasets(dataset):
        for source, label_map in _label_maps(leaf):
            if label_map is None:
                return None, seen
            found = False
            seen['maps'] += 1
            if len(seen['examples']) < _EXAMPLES:
                seen['examples'].append(source)
            if bool((label_map != ignore_index).any()):
                return True, seen
        loader = _annotation_loader(leaf) if hasattr(leaf, 'pipeline') else None
        info = leaf.get_data_info(0) if hasattr(leaf, 'get_data_info') and len(leaf) else {}
        seen['reduce_zero_label'] |= bool(getattr(loader, 'reduce_zero_label', None)
                                          or info.get('reduce_zero_label'))
    return found, seen


def describe_split(name: str, dataset: Any) -> str:
    """``name`` and where its label maps come from, for messages.

    Args:
        name (str): ``'training'``, ``'validation'`` or ``'test'``.
        dataset: The split's dataset, wrapped or not.

    Returns:
        str: Such as ``"the validation split (BaseSegDataset, label maps in data/ann_dir/val)"``.
    """
    parts = []
    for leaf in leaf_datasets(dataset):
        prefix = getattr(leaf, 'data_prefix', None)
        folder = prefix.get('seg_map_path') if isinstance(prefix, dict) else None
        ann_file = getattr(leaf, 'ann_file', None)
        where = f'label maps in {folder}' if folder else None
        if ann_file and osp.isfile(str(ann_file)):
            where = f'{where}, list {ann_file}' if where else f'list {ann_file}'
        parts.append(f'{type(leaf).__name__}, {where}' if where else type(leaf).__name__)
    return f'the {name} split ({"; ".join(parts) or type(dataset).__name__})'


def check_training_masks(dataset: Any, ignore_index: int = 255,
                         split: Optional[str] = None) -> None:
    """Refuses a training set whose label maps hold only ``ignore_index``.

    Args:
        dataset: The training dataset, wrapped or not.
        ignore_index (int): The model's ignore index. Defaults to 255.
        split (str, optional): The split's description. Defaults to None
            (:func:`describe_split` of ``'training'``).

    Raises:
        ValueError: When the label maps were read and none holds a labelled pixel, naming the
            split, how many maps were read and a few of them.
    """
    found, seen = find_labelled_pixel(dataset, ignore_index)
    if found is not False:
        return
    split = split or describe_split('training', dataset)
    zero = (' reduce_zero_label is on, so a 0 in a file is read as 255;'
            if seen['reduce_zero_label'] else '')
    raise ValueError(
        f'{split} has no labelled pixel: every pixel of its {seen["maps"]} label maps is the '
        f'ignore index {ignore_index} (e.g. {", ".join(seen["examples"])}), so training would '
        f'learn nothing (loss 0).{zero} Check that the maps hold class indices (not colours), '
        'reduce_zero_label, and the classes of the config (mmseg ignores the values of classes '
        'it does not list).')


def is_iou_metric(metric: Any) -> bool:
    """Whether ``metric`` is mmsegmentation's ``IoUMetric`` (or a subclass)."""
    try:
        from mmseg.evaluation import IoUMetric
    except ImportError:  # pragma: no cover - mmseg is a dependency
        return False
    return isinstance(metric, IoUMetric)


def guard_iou_metric(metric: Any, split: str) -> None:
    """Makes an ``IoUMetric`` report nothing (with a warning) when no pixel was labelled.

    Every IoU and accuracy of such an evaluation is 0 / 0; without the guard they are logged
    as nan. Wrapped once per metric object; a later call only updates ``split``.

    Args:
        metric (IoUMetric): The metric of an evaluator.
        split (str): The evaluated split, named in the warning.
    """
    setattr(metric, _PATCHED, split)
    if '_mmda_vpt_compute_metrics' in vars(metric):
        return
    compute = metric.compute_metrics

    @functools.wraps(compute)
    def compute_metrics(results: List) -> dict:
        labelled = sum(float(result[3].sum()) for result in results)
        if results and labelled == 0 and not getattr(metric, 'format_only', False):
            print_log(
                f'{getattr(metric, _PATCHED)} has no labelled pixel: every pixel of its '
                f'{len(results)} label maps is the ignore index {metric.ignore_index}, so this '
                'evaluation reports no IoU metric (mIoU, aAcc, ...)',
                logger='current',
                level=logging.WARNING)
            return {}
        return compute(results)

    metric._mmda_vpt_compute_metrics = compute
    metric.compute_metrics = compute_metrics
