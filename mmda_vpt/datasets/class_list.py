"""One class list per classification run: every split labels its class folders by name.

mmpretrain's ``CustomDataset`` numbers the class folders of each split by their own sorted
order, also when a ``classes`` list is given, so a split that lacks a folder the others have
shifts every later label without a word. Here the run has one class list: the training split's
(its sorted folder names, or the ``classes`` it was given); every split then labels its images
through that list by folder name. A folder the list lacks is refused, a split without images
of some classes warns once, and the model's ``num_classes`` must be the list's length.

:func:`apply_run_classes` does it for the splits a runner has built (the DA-VPT hooks call it
before training and before testing); :class:`~mmda_vpt.datasets.ClassFolderDataset` does it as
the dataset loads, for the ``classes`` of a config.
"""
import logging
from typing import Dict, Iterable, Optional, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.runner import BaseLoop
from mmpretrain.datasets import CustomDataset

from mmda_vpt.utils.model_access import unwrap_model

__all__ = [
    'check_split_folders', 'folder_dataset', 'apply_class_list', 'apply_run_classes',
    'check_num_classes', 'trained_classes', 'label_like'
]

#: Attribute of a dataset labelled through a class list: that list (a tuple).
LABELLED_BY = '_labelled_by_classes'
SPLITS = ('train', 'val', 'test')
#: The warnings given: one per split, list and missing classes in a process (a split built
#: again, as the class-to-prompt map's initial pass does, or another trial of a search).
_WARNED = set()


def check_split_folders(classes: Sequence[str], folders: Iterable[str],
                        present: Iterable[str], split: str, source: str) -> None:
    """Refuse class folders the run's list lacks; warn about classes without images, once
    per split, list and missing classes in a process.

    Args:
        classes: The run's class list, in index order.
        folders: The class folders of the split.
        present: The folders that hold at least one image.
        split: What the split is, for the messages (e.g. ``"the val split (data/val)"``).
        source: Where the list comes from, for the messages.

    Raises:
        ValueError: A folder is not in ``classes``, or ``classes`` names a class twice; the
            message names the split's folders and the list.
    """
    classes = list(classes)
    doubles = sorted({name for name in classes if classes.count(name) > 1})
    if doubles:
        raise ValueError(f'the class list ({source}) names {doubles} more than once: {classes}')
    folders = sorted(folders)
    known = set(classes)
    unknown = [name for name in folders if name not in known]
    if unknown:
        raise ValueError(
            f'{split} has class folders {unknown} that the class list lacks; its folders: '
            f'{folders}; the class list ({source}): {classes}. Every split labels its folders '
            'by name through this list: name all classes in the config\'s classes (in index '
            'order) or give the training split a folder of each')
    present = set(present)
    missing = [name for name in classes if name not in present]
    key = (split, tuple(classes), tuple(missing))
    if missing and key not in _WARNED:
        _WARNED.add(key)
        print_log(f'{split} has no image of the classes {missing}; its images are labelled '
                  f'through the class list ({source}): {classes}',
                  logger='current', level=logging.WARNING)


def folder_dataset(dataset) -> Optional[CustomDataset]:
    """The ``CustomDataset`` that labels by class folders under ``dataset`` (wrappers with a
    ``dataset`` attribute are looked through), or None.

    Datasets with an annotation file, without labels, or whose class defines its own classes
    (``METAINFO``, e.g. ``ImageNet``) are not folder-labelled and give None.
    """
    while not isinstance(dataset, CustomDataset) and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    if (not isinstance(dataset, CustomDataset) or dataset.ann_file
            or not getattr(dataset, 'with_label', True)
            or 'classes' in getattr(type(dataset), 'METAINFO', {})):
        return None
    dataset.full_init()
    return dataset if isinstance(getattr(dataset, 'folder_to_idx', None), dict) else None


def _describe(split: str, dataset: CustomDataset) -> str:
    return f'the {split} split ({dataset.img_prefix})'


def _relabel(dataset: CustomDataset, new_label: Dict[int, int]) -> None:
    """Rewrite the ``gt_label`` of every sample through ``new_label`` (old -> new)."""
    infos = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        info.pop('sample_idx', None)  # added by get_data_info
        info['gt_label'] = new_label[int(info['gt_label'])]
        infos.append(info)
    dataset.data_list = infos
    if dataset.serialize_data:
        dataset.data_bytes, dataset.data_address = dataset._serialize_data()


def apply_class_list(dataset: CustomDataset, classes: Sequence[str], split: str,
                     source: str) -> None:
    """Label the images of a folder dataset through ``classes`` by their folder's name.

    Checks the folders with :func:`check_split_folders`, rewrites the labels where the
    dataset's own numbering differs and sets its ``classes`` to the list. A dataset already
    labelled through the same list is left as it is (no second warning).

    Args:
        dataset: A folder-labelled ``CustomDataset`` (:func:`folder_dataset`).
        classes: The run's class list, in index order.
        split: ``'train'``, ``'val'`` or ``'test'``, for the messages.
        source: Where the list comes from, for the messages.
    """
    classes = tuple(classes)
    if getattr(dataset, LABELLED_BY, None) == classes:
        return
    folder_to_idx = dataset.folder_to_idx
    folder_of = {index: name for name, index in folder_to_idx.items()}
    present = {folder_of[int(label)] for label in set(dataset.get_gt_labels().tolist())}
    check_split_folders(classes, folder_to_idx, present, _describe(split, dataset), source)
    index_of = {name: index for index, name in enumerate(classes)}
    new_label = {old: index_of[name] for name, old in folder_to_idx.items()}
    if any(old != new for old, new in new_label.items()):
        _relabel(dataset, new_label)
    dataset.folder_to_idx = {name: index_of[name] for name in folder_to_idx}
    dataset._metainfo['classes'] = classes
    setattr(dataset, LABELLED_BY, classes)


def check_num_classes(model, classes: Sequence[str], source: str) -> None:
    """Raise unless the classifier's head and data preprocessor have ``len(classes)`` classes.

    Args:
        model: A classifier (wrapped or not) with ``head.num_classes``; a model without a
            ``head`` is not checked.
        classes: The run's class list.
        source: Where the list comes from, for the message.
    """
    inner = unwrap_model(model)
    found = {}
    for part in ('head', 'data_preprocessor'):
        value = getattr(getattr(inner, part, None), 'num_classes', None)
        if value is not None:
            found[part] = int(value)
    wrong = {part: value for part, value in found.items() if value != len(classes)}
    if wrong:
        found_text = ', '.join(f'{part}.num_classes={value}' for part, value in found.items())
        raise ValueError(
            f'the model has {found_text} but the class list ({source}) has {len(classes)} '
            f'classes: {list(classes)}; set num_classes to {len(classes)} or name every class '
            'in the config\'s classes')


def trained_classes(checkpoint: dict) -> Optional[Tuple[str, ...]]:
    """The class names a checkpoint's training run recorded (``meta.dataset_meta.classes``)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    classes = ((meta or {}).get('dataset_meta') or {}).get('classes')
    return tuple(classes) if classes else None


def label_like(dataset, reference) -> None:
    """Label ``dataset``, a run's split built again from its config (the class-to-prompt
    map's initial pass does), through the class list the built split ``reference`` got from
    :func:`apply_run_classes`; nothing when either is not folder-labelled."""
    source = folder_dataset(reference) if reference is not None else None
    classes = getattr(source, LABELLED_BY, None)
    target = folder_dataset(dataset)
    if target is not None and classes is not None:
        apply_class_list(target, classes, 'train', f'the training split\'s, {source.img_prefix}')
        _set_classes(dataset, target, classes)


def _loop_datasets(runner) -> Dict[str, Tuple[BaseLoop, object]]:
    """The built loops of ``runner`` and their datasets (loops still configs are not built)."""
    loops = {}
    for split in SPLITS:
        # The private attributes: the public properties would build a loop not yet built.
        loop = getattr(runner, f'_{split}_loop', None)
        if isinstance(loop, BaseLoop) and hasattr(loop, 'dataloader'):
            loops[split] = (loop, loop.dataloader.dataset)
    return loops


def _set_classes(outer, inner: CustomDataset, classes: Tuple[str, ...]) -> None:
    """The classes of ``inner`` also in the metainfo of the wrappers around it."""
    while outer is not inner:
        if isinstance(getattr(outer, '_metainfo', None), dict):
            outer._metainfo['classes'] = classes
        outer = outer.dataset


def apply_run_classes(runner, trained: Optional[Sequence[str]] = None
                      ) -> Optional[Tuple[str, ...]]:
    """One class list for the folder-labelled splits the runner has built.

    The list is the training split's classes (its sorted folder names, or its ``classes``)
    when the runner trains, else ``trained`` (the classes a loaded checkpoint was trained
    with). Every built split (train, val, test) that labels by folders is labelled through it
    (:func:`apply_class_list`), the evaluators see it, and the model's ``num_classes`` must be
    its length (:func:`check_num_classes`). Runs without such a split are left alone.

    Args:
        runner: The runner, in ``before_run`` (training: train and val built) or
            ``before_test`` (testing: test built, the checkpoint loaded).
        trained: The classes the loaded checkpoint was trained with
            (:func:`trained_classes`). Defaults to None.

    Returns:
        tuple[str] | None: The list, or None when no split is folder-labelled.
    """
    loops = _loop_datasets(runner)
    folders = {split: folder_dataset(dataset) for split, (_, dataset) in loops.items()}
    train = folders.get('train')
    if train is not None:
        classes = tuple(train.metainfo['classes'])
        source = f'the training split\'s, {train.img_prefix}'
    elif trained and any(folders.values()):
        classes = tuple(trained)
        source = 'the classes the loaded checkpoint was trained with'
    else:
        return None
    for split in SPLITS:
        dataset = folders.get(split)
        if dataset is None:
            continue
        apply_class_list(dataset, classes, split, source)
        loop, outer = loops[split]
        _set_classes(outer, dataset, classes)
        if split != 'train' and getattr(loop, 'evaluator', None) is not None:
            loop.evaluator.dataset_meta = outer.metainfo
    check_num_classes(runner.model, classes, source)
    return classes
