"""The FGVC benchmark (CUB-200-2011, NABirds, Oxford Flowers, Stanford Dogs, Stanford Cars)."""
import json
import os.path as osp
from typing import Dict, Iterator, List

from mmpretrain.registry import DATASETS

from .labelled_image_list_dataset import LabelledImageListDataset, SplitEntry, SplitFileError

__all__ = ['FGVCDataset']

LABEL_MAPPINGS = ('sorted', 'identity')


@DATASETS.register_module()
class FGVCDataset(LabelledImageListDataset):
    """An FGVC dataset in VPT's split format.

    VPT (Jia et al. 2022) ships ``train.json``, ``val.json`` and ``test.json`` per dataset, each
    a JSON object mapping image paths (relative to the image folder) to integer labels. The
    expected trees are in ``docs/data_preparation.md``; for example CUB-200-2011::

        data/cub/train.json  val.json  test.json
        data/cub/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg

    Args:
        num_classes (int): Number of classes (CUB 200, NABirds 555, Flowers 102, Dogs 120,
            Cars 196).
        split (str): ``'train'``, ``'val'``, ``'trainval'`` (train.json and val.json) or
            ``'test'``. Defaults to ``'train'``.
        data_root (str): Dataset folder holding the JSON files. Defaults to ''.
        image_dir (str): Image folder relative to ``data_root`` (VPT: ``'images'`` for CUB and
            NABirds, ``'Images'`` for Dogs, ``''`` for Flowers and Cars). Defaults to
            ``'images'``.
        ann_dir (str): Folder of the JSON files relative to ``data_root``. Defaults to ''.
        label_mapping (str): ``'sorted'`` maps the sorted distinct labels of ``train.json`` to
            ``0..num_classes-1``, as VPT does (NABirds' labels are not contiguous);
            ``'identity'`` takes the labels as class indices in ``[0, num_classes)``.
            Defaults to ``'sorted'``.
        check_files (bool): Check that every listed image exists. Defaults to True.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """

    SPLITS = ('train', 'val', 'trainval', 'test')
    _SPLIT_FILES = dict(
        train=('train.json', ), val=('val.json', ), trainval=('train.json', 'val.json'),
        test=('test.json', ))

    def __init__(self,
                 num_classes: int,
                 split: str = 'train',
                 data_root: str = '',
                 image_dir: str = 'images',
                 ann_dir: str = '',
                 label_mapping: str = 'sorted',
                 check_files: bool = True,
                 **kwargs) -> None:
        if label_mapping not in LABEL_MAPPINGS:
            raise ValueError(f'FGVCDataset: label_mapping must be one of {LABEL_MAPPINGS}, '
                             f'got {label_mapping!r}')
        self.ann_dir = ann_dir
        self.label_mapping = label_mapping
        self._class_file = ''
        super().__init__(
            num_classes=num_classes,
            split=split,
            data_root=data_root,
            data_prefix=image_dir,
            check_files=check_files,
            **kwargs)

    def _ann_path(self, name: str) -> str:
        return osp.join(self.data_root or '', self.ann_dir, name)

    def split_files(self) -> List[str]:
        return [self._ann_path(name) for name in self._SPLIT_FILES[self.split]]

    def parse_split_file(self, path: str) -> Iterator[SplitEntry]:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        try:
            content = json.loads(text)
        except json.JSONDecodeError as err:
            raise SplitFileError(f'{path}, line {err.lineno}: not valid JSON ({err.msg})') \
                from None
        if not isinstance(content, dict):
            raise SplitFileError(f'{path}, line 1: expected a JSON object mapping image paths '
                                 f'to labels, got a {type(content).__name__}')
        # json keeps the order of the keys, so one forward scan locates every entry's line.
        pos, line = 0, 1
        for key, label in content.items():
            found = -1
            for quoted in (json.dumps(key, ensure_ascii=False), json.dumps(key)):
                found = text.find(quoted, pos)
                if found >= 0:
                    break
            entry_line = None
            if found >= 0:
                line += text.count('\n', pos, found)
                pos = found
                entry_line = line
            where = f'{path}, line {entry_line}' if entry_line else path
            if isinstance(label, bool) or not isinstance(label, int):
                raise SplitFileError(f'{where}: label of {key!r} must be an integer, got '
                                     f'{label!r}')
            yield SplitEntry(key, label, entry_line)

    def label_to_index(self) -> Dict[int, int]:
        if self.label_mapping == 'identity':
            return super().label_to_index()
        self._class_file = self._ann_path('train.json')
        if not osp.isfile(self._class_file):
            raise FileNotFoundError(
                f'FGVCDataset: {self._class_file} does not exist; label_mapping=\'sorted\' '
                'takes the classes from it (see docs/data_preparation.md)')
        first_line = {}
        for entry in self.parse_split_file(self._class_file):
            first_line.setdefault(entry.label, entry.line)
        labels = sorted(first_line)
        if len(labels) != self.num_classes:
            extra = labels[self.num_classes] if len(labels) > self.num_classes else None
            at = (f', line {first_line[extra]} (label {extra} is the first beyond '
                  f'{self.num_classes} classes)' if extra is not None and first_line[extra]
                  else '')
            raise SplitFileError(
                f'{self._class_file}{at}: the file holds {len(labels)} distinct labels but '
                f'num_classes is {self.num_classes}')
        return {label: i for i, label in enumerate(labels)}

    def label_error(self, label: int) -> str:
        if self.label_mapping == 'identity':
            return super().label_error(label)
        return (f'label {label} is not one of the {self.num_classes} classes that '
                f'{self._class_file} defines')

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Label mapping: \t{self.label_mapping}']
