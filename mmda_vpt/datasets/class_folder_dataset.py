"""mmpretrain's folder-per-class dataset, labelled through a class list by folder name."""
from typing import List, Tuple

from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import find_folders, get_samples
from mmpretrain.registry import DATASETS

from .class_list import LABELLED_BY, check_split_folders

__all__ = ['ClassFolderDataset']


@DATASETS.register_module()
class ClassFolderDataset(CustomDataset):
    """``CustomDataset`` whose folders are labelled by name through its ``classes``.

    One folder per class under ``data_prefix`` (``<class name>/<any path>.<extension>``), as
    mmpretrain's ``CustomDataset`` reads it. Given ``classes`` (or ``metainfo.classes``), the
    images of folder ``name`` get the label ``classes.index(name)``, whatever other folders the
    split has: a folder not in ``classes`` is refused (naming the split's folders and the
    list), classes without a folder or without an image give one warning. Without ``classes``
    it is ``CustomDataset`` (the sorted folder names), and the DA-VPT hooks label the other
    splits through the training split's list
    (:func:`~mmda_vpt.datasets.class_list.apply_run_classes`). ``CustomDataset`` itself,
    given ``classes``, still numbers the folders in sorted order and needs every split to hold
    exactly ``len(classes)`` folders.

    With an annotation file (``ann_file``) or ``with_label=False`` it is ``CustomDataset``.

    Args:
        **kwargs: The arguments of mmpretrain's ``CustomDataset`` (``data_root``,
            ``data_prefix``, ``classes``, ``pipeline``, ...).
    """

    def _find_samples(self) -> List[Tuple[str, int]]:
        if self.CLASSES is None or not self.with_label:
            return super()._find_samples()
        classes = tuple(self.CLASSES)
        folders, _ = find_folders(self.img_prefix)
        index_of = {name: index for index, name in enumerate(classes)}
        folder_to_idx = {name: index_of[name] for name in folders if name in index_of}
        samples, empty = get_samples(self.img_prefix, folder_to_idx,
                                     is_valid_file=self.is_valid_file)
        check_split_folders(classes, folders, set(folder_to_idx) - set(empty),
                            f'the split {self.img_prefix}', 'the dataset\'s classes')
        if not samples:
            raise RuntimeError(f'found no image in the class folders of {self.img_prefix}; '
                               f'extensions read: {", ".join(sorted(self.extensions))}')
        self.folder_to_idx = folder_to_idx
        setattr(self, LABELLED_BY, classes)
        return samples

