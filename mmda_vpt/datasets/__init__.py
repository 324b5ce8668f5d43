"""Datasets and samplers for the DA-VPT benchmarks and for a user's own data.

``FGVCDataset``, ``VTABDataset`` and ``ClassFolderDataset`` (mmpretrain's ``CustomDataset``
labelled by folder name through its ``classes``) are registered in mmpretrain's DATASETS,
``ClassBalancedSampler`` in mmengine's DATA_SAMPLERS (visible from mmpretrain and mmseg).
:func:`apply_run_classes` gives a run's folder-labelled splits one class list.
"""
from .class_balanced_sampler import ClassBalancedSampler
from .class_folder_dataset import ClassFolderDataset
from .class_list import apply_run_classes, trained_classes
from .fgvc_dataset import FGVCDataset
from .labelled_image_list_dataset import LabelledImageListDataset, SplitFileError
from .vtab_dataset import VTABDataset

__all__ = [
    'ClassBalancedSampler', 'ClassFolderDataset', 'FGVCDataset', 'LabelledImageListDataset',
    'SplitFileError', 'VTABDataset', 'apply_run_classes', 'trained_classes'
]
