"""The VTAB-1k benchmark (19 tasks) in the common file-list format."""
import os.path as osp
from typing import Iterator, List, Optional

from mmpretrain.registry import DATASETS

from .labelled_image_list_dataset import LabelledImageListDataset, SplitEntry, SplitFileError

__all__ = ['VTABDataset']


@DATASETS.register_module()
class VTABDataset(LabelledImageListDataset):
    """One VTAB-1k task in the file-list format used by NOAH, SSF and most PEFT code.

    Each task folder holds ``train800.txt``, ``val200.txt``, ``train800val200.txt`` and
    ``test.txt``, one image per line as ``relative/path label`` (0-based labels), paths relative
    to the task folder::

        data/vtab-1k/cifar/train800val200.txt
        data/vtab-1k/cifar/images/train800val200/0.jpg

    VPT trains the final VTAB runs on ``train800val200`` and reports ``test``; ``train800`` and
    ``val200`` are for choosing hyperparameters.

    Args:
        num_classes (int): Number of classes of the task.
        split (str): ``'train800'``, ``'val200'``, ``'train800val200'`` or ``'test'``.
            Defaults to ``'train800val200'``.
        data_root (str): The task folder. Defaults to ''.
        ann_file (str, optional): The list file relative to ``data_root``. Defaults to None,
            meaning ``'{split}.txt'``.
        data_prefix (str): Folder the listed paths are relative to, relative to ``data_root``.
            Defaults to ''.
        check_files (bool): Check that every listed image exists. Defaults to True.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """

    SPLITS = ('train800', 'val200', 'train800val200', 'test')

    def __init__(self,
                 num_classes: int,
                 split: str = 'train800val200',
                 data_root: str = '',
                 ann_file: Optional[str] = None,
                 **kwargs) -> None:
        # data_prefix and check_files: LabelledImageListDataset's, documented above.
        super().__init__(num_classes, split, data_root, ann_file=ann_file or f'{split}.txt',
                         **kwargs)

    def split_files(self) -> List[str]:
        return [self.ann_file]

    def parse_split_file(self, path: str) -> Iterator[SplitEntry]:
        with open(path, encoding='utf-8') as f:
            for number, raw in enumerate(f, start=1):
                line = raw.strip()
                if not line:
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2:
                    raise SplitFileError(f'{path}, line {number}: expected "<image path> '
                                         f'<label>", got {line!r}')
                try:
                    label = int(parts[1])
                except ValueError:
                    raise SplitFileError(f'{path}, line {number}: label {parts[1]!r} is not '
                                         'an integer') from None
                yield SplitEntry(parts[0], label, number)

    @property
    def image_root(self) -> str:
        prefix = self.data_prefix.get('img_path', '')
        return prefix or osp.dirname(self.ann_file)
