"""Datasets and samplers for the DA-VPT benchmarks.

``FGVCDataset`` and ``VTABDataset`` are registered in mmpretrain's DATASETS,
``ClassBalancedSampler`` in mmengine's DATA_SAMPLERS (visible from mmpretrain and mmseg).
"""
from .class_balanced_sampler import ClassBalancedSampler
from .fgvc_dataset import FGVCDataset
from .labelled_image_list_dataset import LabelledImageListDataset, SplitFileError
from .vtab_dataset import VTABDataset

__all__ = [
    'ClassBalancedSampler', 'FGVCDataset', 'LabelledImageListDataset', 'SplitFileError',
    'VTABDataset'
]
