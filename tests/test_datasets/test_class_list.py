"""Tests of one class list per run: ClassFolderDataset and mmda_vpt.datasets.class_list."""
import logging
import os
import os.path as osp
import tempfile
from typing import Dict, Sequence
from unittest import TestCase

import cv2
import numpy as np
import torch.nn as nn
from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset, ImageNet
from mmpretrain.registry import DATASETS

import mmda_vpt  # noqa: F401
from mmda_vpt.datasets import ClassFolderDataset, trained_classes
from mmda_vpt.datasets.class_list import (apply_class_list, check_num_classes,
                                          check_split_folders, folder_dataset)

CLASSES = ('ant', 'bee', 'cat')


def write_split(root: str, split: str, folders: Dict[str, int]) -> None:
    """``root/split/<folder>/<i>.png``, ``count`` images per folder."""
    for name, count in folders.items():
        os.makedirs(osp.join(root, split, name), exist_ok=True)
        for index in range(count):
            cv2.imwrite(osp.join(root, split, name, f'{index}.png'),
                        np.zeros((4, 4, 3), dtype=np.uint8))


def folder_labels(dataset) -> Dict[str, set]:
    """Folder name -> the labels its images have in ``dataset``."""
    labels: Dict[str, set] = {}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        folder = osp.basename(osp.dirname(info['img_path']))
        labels.setdefault(folder, set()).add(int(info['gt_label']))
    return labels


class TestClassList(TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.logger = MMLogger.get_current_instance()

    def tearDown(self):
        self.tmp.cleanup()

    def assert_by_name(self, dataset, classes: Sequence[str]) -> None:
        self.assertEqual(folder_labels(dataset),
                         {name: {classes.index(name)} for name in folder_labels(dataset)})
        self.assertEqual(dataset.metainfo['classes'], tuple(classes))

    def warnings(self, logs) -> list:
        return [r.getMessage() for r in logs.records if 'has no image of the classes' in
                r.getMessage()]

    def test_class_folder_dataset_labels_by_name(self):
        write_split(self.root, 'val', dict(ant=2, cat=1))
        self.assertIs(DATASETS.get('ClassFolderDataset'), ClassFolderDataset)
        order = ['cat', 'bee', 'ant']  # not the sorted order
        with self.assertLogs(self.logger, logging.WARNING) as logs:
            dataset = ClassFolderDataset(data_root=self.root, data_prefix='val', classes=order)
        self.assert_by_name(dataset, order)
        (warning, ) = self.warnings(logs)
        self.assertIn(f"the split {osp.join(self.root, 'val')} has no image of the classes "
                      "['bee']", warning)
        # Stock CustomDataset numbers the same folders 0, 1 whatever its classes say.
        stock = CustomDataset(data_root=self.root, data_prefix='val')
        self.assertEqual(folder_labels(stock), {'ant': {0}, 'cat': {1}})

    def test_class_folder_dataset_without_classes_is_custom_dataset(self):
        write_split(self.root, 'val', dict(cat=1, ant=2))
        dataset = ClassFolderDataset(data_root=self.root, data_prefix='val')
        self.assert_by_name(dataset, ['ant', 'cat'])

    def test_unknown_folder_refused(self):
        write_split(self.root, 'val', dict(ant=1, bee=1, dog=1))
        with self.assertRaisesRegex(
                ValueError, r"^the split .*val has class folders \['dog'\] that the class list "
                r"lacks; its folders: \['ant', 'bee', 'dog'\]; the class list \(the dataset's "
                r"classes\): \['ant', 'bee', 'cat'\]"):
            ClassFolderDataset(data_root=self.root, data_prefix='val', classes=CLASSES)
        with self.assertRaisesRegex(ValueError, r"names \['ant'\] more than once"):
            check_split_folders(['ant', 'bee', 'ant'], ['ant'], ['ant'], 'val', 'the config')

    def test_stock_dataset_relabelled(self):
        for serialize in (True, False):
            with self.subTest(serialize_data=serialize):
                root = osp.join(self.root, str(serialize))  # warned once per split and list
                write_split(root, 'val', dict(ant=2, cat=2))
                stock = CustomDataset(data_root=root, data_prefix='val',
                                      serialize_data=serialize)
                self.assertIs(folder_dataset(stock), stock)
                with self.assertLogs(self.logger, logging.WARNING) as logs:
                    apply_class_list(stock, CLASSES, 'val', 'the training split')
                    apply_class_list(stock, CLASSES, 'val', 'the training split')  # once
                    self.logger.warning('end')  # assertLogs needs one record
                self.assert_by_name(stock, CLASSES)
                self.assertEqual(stock.folder_to_idx, {'ant': 0, 'cat': 2})
                (warning, ) = self.warnings(logs)
                self.assertRegex(warning, r"^the val split \(.*val\) has no image of the classes "
                                 r"\['bee'\]; its images are labelled through the class list "
                                 r"\(the training split\): \['ant', 'bee', 'cat'\]$")
                if serialize:
                    self.assertEqual(stock.data_list, [])  # serialized again
                with self.assertRaisesRegex(ValueError, r"class folders \['cat'\]"):
                    apply_class_list(CustomDataset(data_root=root, data_prefix='val'),
                                     ('ant', 'bee'), 'val', 'the training split')

    def test_folder_dataset(self):
        write_split(self.root, 'train', dict(ant=1))
        with open(osp.join(self.root, 'ann.txt'), 'w') as f:
            f.write('ant/0.png 0\n')
        listed = CustomDataset(data_root=self.root, data_prefix='train', ann_file='ann.txt')
        self.assertIsNone(folder_dataset(listed))
        self.assertIsNone(folder_dataset(nn.Module()))
        named = ImageNet(data_root=self.root, data_prefix='train', lazy_init=True)
        self.assertIsNone(folder_dataset(named))  # its classes are names, not folders

        class Wrapper:
            dataset = CustomDataset(data_root=self.root, data_prefix='train')

        self.assertIs(folder_dataset(Wrapper()), Wrapper.dataset)

    def test_check_num_classes(self):

        class Head(nn.Module):
            num_classes = 3

        class Model(nn.Module):

            def __init__(self, head_classes: int) -> None:
                super().__init__()
                self.head = Head()
                self.head.num_classes = head_classes

        check_num_classes(Model(3), CLASSES, 'the training split')
        with self.assertRaisesRegex(
                ValueError, r"^the model has head\.num_classes=4 but the class list \(the "
                r"training split\) has 3 classes: \['ant', 'bee', 'cat'\]; set num_classes to 3"):
            check_num_classes(Model(4), CLASSES, 'the training split')

    def test_trained_classes(self):
        self.assertEqual(trained_classes({'meta': {'dataset_meta': {'classes': ['a', 'b']}}}),
                         ('a', 'b'))
        self.assertIsNone(trained_classes({'meta': {}}))
        self.assertIsNone(trained_classes({'state_dict': {}}))
