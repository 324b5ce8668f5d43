"""Shared loading and checking of split files that list ``(image path, label)`` entries."""
import os.path as osp
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

from mmpretrain.datasets import BaseDataset

__all__ = ['LabelledImageListDataset', 'SplitEntry', 'SplitFileError']


class SplitFileError(ValueError):
    """A split file names a missing image, a label out of range, or is malformed."""


class SplitEntry(NamedTuple):
    """One entry of a split file.

    Attributes:
        path: Image path relative to the dataset's image folder.
        label: The label as the file writes it.
        line: 1-based line of the entry in the file (None when it cannot be located).
    """
    path: str
    label: int
    line: Optional[int]


class LabelledImageListDataset(BaseDataset):
    """Base of the FGVC and VTAB-1k datasets: images listed with labels in split files.

    A subclass names the split files of a split (:meth:`split_files`) and parses one file into
    :class:`SplitEntry` items (:meth:`parse_split_file`). This class checks every entry: the
    image must exist (``check_files``) and the label must be one of the dataset's classes;
    otherwise a :class:`SplitFileError` (a ``ValueError``) names the file, the line and the
    problem.

    Args:
        num_classes (int): Number of classes of the task.
        split (str): The split to load; one of the subclass's ``SPLITS``.
        data_root (str): Root of the dataset; split files and ``data_prefix`` are relative to
            it. Defaults to ''.
        data_prefix (str | dict): Folder of the images, relative to ``data_root``.
            Defaults to ''.
        check_files (bool): Whether to check that every listed image exists. Defaults to True.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ``classes``, ...).
    """

    SPLITS: Sequence[str] = ()

    def __init__(self,
                 num_classes: int,
                 split: str,
                 data_root: str = '',
                 data_prefix: str = '',
                 check_files: bool = True,
                 **kwargs) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be a positive int, '
                             f'got {num_classes!r}')
        if split not in self.SPLITS:
            raise ValueError(f'{type(self).__name__}: split must be one of {tuple(self.SPLITS)}, '
                             f'got {split!r}')
        self.num_classes = num_classes
        self.split = split
        self.check_files = check_files
        kwargs.setdefault('ann_file', '')
        super().__init__(data_root=data_root, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ subclass interface
    def split_files(self) -> List[str]:
        """Paths of the files that make up ``self.split``."""
        raise NotImplementedError

    def parse_split_file(self, path: str) -> Iterator[SplitEntry]:
        """Entries of one split file, in file order."""
        raise NotImplementedError

    def label_to_index(self) -> Dict[int, int]:
        """Map from the labels the files write to class indices in ``[0, num_classes)``.

        Defaults to the identity on ``range(num_classes)``.
        """
        return {i: i for i in range(self.num_classes)}

    def label_error(self, label: int) -> str:
        """Why ``label`` is not accepted (for the error message)."""
        return f'label {label} is outside [0, {self.num_classes})'

    def class_names(self, mapping: Dict[int, int]) -> tuple:
        """Class names in index order: the file labels as strings."""
        names = [''] * self.num_classes
        for label, index in mapping.items():
            names[index] = str(label)
        return tuple(names)

    # ------------------------------------------------------------------ loading
    @property
    def image_root(self) -> str:
        """Folder the listed image paths are relative to."""
        return self.data_prefix.get('img_path', '') or self.data_root or ''

    def load_data_list(self) -> List[dict]:
        mapping = self.label_to_index()
        image_root = self.image_root
        data_list = []
        for path in self.split_files():
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{type(self).__name__}: split file {path} of split {self.split!r} does '
                    'not exist (see docs/data_preparation.md for the expected tree)')
            count = 0
            for entry in self.parse_split_file(path):
                where = f'{path}, line {entry.line}' if entry.line else path
                if entry.label not in mapping:
                    raise SplitFileError(f'{where}: {self.label_error(entry.label)} '
                                         f'(image {entry.path!r})')
                image = osp.join(image_root, entry.path)
                if self.check_files and not osp.isfile(image):
                    raise SplitFileError(f'{where}: image {entry.path!r} does not exist '
                                         f'(looked for {image})')
                data_list.append(dict(img_path=image, gt_label=mapping[entry.label]))
                count += 1
            if count == 0:
                raise SplitFileError(f'{path}: the split file lists no images')
        names = self.class_names(mapping)
        if self._metainfo.get('classes') is None:
            self._metainfo['classes'] = names
        elif len(self._metainfo['classes']) != self.num_classes:
            raise ValueError(f'{type(self).__name__}: {len(self._metainfo["classes"])} class '
                             f'names given for num_classes={self.num_classes}')
        return data_list

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}', f'Number of classes: \t{self.num_classes}',
                f'Image root: \t{self.image_root}']
