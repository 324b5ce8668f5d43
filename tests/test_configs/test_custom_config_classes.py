"""One class list per run, through the stock runner on the custom classification config.

The config of ``configs/custom/`` (its ``classes`` set in the file where the user sets it) and a
user's own config with mmpretrain's stock ``CustomDataset`` splits, shrunk to a tiny ViT as in
``test_custom_configs.py``, on tiny folder trees where a split lacks a class or has one more.
"""
import copy
import logging
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
from typing import Optional, Sequence
from unittest import TestCase, mock

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmda_vpt  # noqa: F401
from mmda_vpt.mapping.initial_pass_loader import _initial_pass_dataset
from tests.test_configs import test_custom_configs as custom
from tests.utils import REPO, SUBPROCESS_TIMEOUT, TRAIN

pytestmark = pytest.mark.slow  # runners and a subprocess

CLASSES = list(custom.CLS_CLASSES)  # ant, bee, cat
DATASETS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def config_with_classes(path: str, classes: Optional[Sequence[str]]) -> str:
    """The custom classification config with ``classes = ...`` in place of ``classes = None``,
    written to ``path`` (its bases named by absolute paths)."""
    with open(custom.CLS_CONFIG) as f:
        text = f.read()
    if classes is not None:
        line = '\nclasses = None'
        assert text.count(line) == 1, 'the config sets classes = None once'
        text = text.replace(line, f'\nclasses = {list(classes)!r}')
    text = text.replace("'../_base_/", repr(osp.join(REPO, 'configs', '_base_', ''))[:-1])
    with open(path, 'w') as f:
        f.write(text)
    return path


def folder_labels(dataset) -> dict:
    """Folder name -> the labels its images have in ``dataset``."""
    labels = {}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        folder = osp.basename(osp.dirname(info['img_path']))
        labels.setdefault(folder, set()).add(int(info['gt_label']))
    return labels


class TestOneClassListPerRun(TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.base = osp.join(cls.tmp.name, 'base.pth')
        custom.write_base_weights('cls', cls.base)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.tree()

    def tree(self) -> None:
        """A new tree (each warns once in a process): train, val, test of ant, bee, cat."""
        self.root = tempfile.mkdtemp(dir=self.tmp.name)
        self.data_root = osp.join(self.root, 'data')
        custom.write_cls_tree(self.data_root)

    def config(self, classes: Optional[Sequence[str]] = None, stock: bool = False,
               num_classes: int = len(CLASSES)) -> Config:
        """The shrunk custom config; ``stock``: the splits are plain ``CustomDataset``s."""
        path = config_with_classes(osp.join(self.root, 'custom.py'), classes)
        with mock.patch.object(custom, 'CLS_CONFIG', path):
            cfg = custom.shrunk_config('cls', self.data_root, self.base,
                                       osp.join(self.root, 'work'))
        if classes is not None:
            for loader in DATASETS:
                self.assertEqual(cfg[loader].dataset.classes, list(classes))
        if stock:  # stock CustomDataset: the same number of folders as classes, if any
            for loader in DATASETS:
                cfg[loader].dataset.type = 'CustomDataset'
                if classes is None:
                    cfg[loader].dataset.pop('classes')
        cfg.model.head.num_classes = num_classes
        cfg.model.data_preprocessor.num_classes = num_classes
        return cfg

    def remove(self, split: str, name: str) -> None:
        shutil.rmtree(osp.join(self.data_root, split, name))

    def add(self, split: str, name: str) -> None:
        shutil.copytree(osp.join(self.data_root, split, 'cat'),
                        osp.join(self.data_root, split, name))

    def assert_by_name(self, dataset, classes: Sequence[str]) -> None:
        labels = folder_labels(dataset)
        self.assertEqual(labels, {name: {list(classes).index(name)} for name in labels})
        self.assertEqual(dataset.metainfo['classes'], tuple(classes))

    def train(self, cfg: Config) -> Runner:
        runner = Runner.from_cfg(copy.deepcopy(cfg))
        with self.assertLogs(runner.logger, logging.WARNING) as logs:
            runner.train()
            runner.logger.warning('end of training')  # assertLogs needs one record
        runner.class_warnings = [r.getMessage() for r in logs.records
                                 if 'has no image of the classes' in r.getMessage()]
        return runner

    def test_train_lacks_a_class(self):
        # train/bee deleted: the list of train/ lacks bee, which val has: refused.
        self.remove('train', 'bee')
        for stock in (False, True):
            with self.subTest(stock=stock):
                runner = Runner.from_cfg(self.config(stock=stock))
                train, val = (osp.join(self.data_root, s) for s in ('train', 'val'))
                with self.assertRaisesRegex(
                        ValueError, rf"^the val split \({val}\) has class folders \['bee'\] that "
                        r"the class list lacks; its folders: \['ant', 'bee', 'cat'\]; the class "
                        rf"list \(the training split's, {train}\): \['ant', 'cat'\]"):
                    runner.train()
                self.assertEqual(runner.iter, 0)
        # The config's classes name all three: every split labels by name through them.
        runner = self.train(self.config(classes=CLASSES))
        self.assertEqual(runner.iter, 2)  # 8 images in batches of 4
        self.assert_by_name(runner.train_dataloader.dataset, CLASSES)
        self.assert_by_name(runner.val_dataloader.dataset, CLASSES)
        self.assertEqual(folder_labels(runner.train_dataloader.dataset), {'ant': {0}, 'cat': {2}})
        (warning, ) = runner.class_warnings
        self.assertIn("train has no image of the classes ['bee']", warning)
        checkpoint = torch.load(osp.join(self.root, 'work', 'epoch_1.pth'))
        self.assertEqual(checkpoint['meta']['dataset_meta']['classes'], tuple(CLASSES))

    def test_classes_in_another_order(self):
        # Stock CustomDataset numbers the folders in sorted order whatever classes says.
        order = ['cat', 'ant', 'bee']
        for stock in (False, True):
            with self.subTest(stock=stock):
                cfg = self.config(classes=order, stock=stock)
                cfg.work_dir = osp.join(self.root, f'work_{stock}')
                runner = self.train(cfg)
                for dataset in (runner.train_dataloader.dataset, runner.val_dataloader.dataset):
                    self.assert_by_name(dataset, order)
                self.assertEqual(runner.class_warnings, [])
                # The class-to-prompt map's initial pass builds the training split again.
                again = _initial_pass_dataset(runner, cfg.test_dataloader.dataset.pipeline)
                self.assert_by_name(again, order)

    def test_val_folder_unknown_to_the_list(self):
        # Through tools/train.py: refused before training, both lists named, no checkpoint.
        self.add('val', 'dog')
        config = osp.join(self.root, 'shrunk.py')
        self.config().dump(config)
        work_dir = osp.join(self.root, 'work')
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
        done = subprocess.run([sys.executable, TRAIN, config, '--work-dir', work_dir],
                              cwd=self.root, env=env, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT)
        self.assertNotEqual(done.returncode, 0)
        val, train = (osp.join(self.data_root, s) for s in ('val', 'train'))
        self.assertIn(f"ValueError: the val split ({val}) has class folders ['dog'] that the "
                      "class list lacks; its folders: ['ant', 'bee', 'cat', 'dog']; the class list "
                      f"(the training split's, {train}): ['ant', 'bee', 'cat']", done.stderr)
        self.assertNotIn('Epoch(train)', done.stdout + done.stderr)
        self.assertFalse(any(name.endswith('.pth') for name in os.listdir(work_dir)))

    def test_val_subset(self):
        # val/bee and test/bee deleted: cat stays class 2 in val and test, with one warning.
        for stock in (False, True):
            with self.subTest(stock=stock):
                self.tree()
                self.remove('val', 'bee')
                self.remove('test', 'bee')
                cfg = self.config(stock=stock)
                cfg.work_dir = osp.join(self.root, f'work_{stock}')
                runner = self.train(cfg)
                self.assertEqual(runner.iter, 3)
                self.assert_by_name(runner.val_dataloader.dataset, CLASSES)
                self.assertEqual(folder_labels(runner.val_dataloader.dataset),
                                 {'ant': {0}, 'cat': {2}})
                (warning, ) = runner.class_warnings
                self.assertRegex(warning, r"^the val split \(.*val\) has no image of the "
                                 r"classes \['bee'\]")
                # Testing the checkpoint: the test split through the list it was trained with.
                cfg.load_from = osp.join(cfg.work_dir, 'epoch_1.pth')
                tester = Runner.from_cfg(copy.deepcopy(cfg))
                with self.assertLogs(tester.logger, logging.WARNING) as logs:
                    metrics = tester.test()
                self.assertIn('accuracy/top1', metrics)
                self.assert_by_name(tester.test_dataloader.dataset, CLASSES)
                warnings = [r.getMessage() for r in logs.records if 'no image of' in r.getMessage()]
                self.assertEqual(len(warnings), 1)
                self.assertRegex(warnings[0], r"^the test split \(.*test\) has no image of the "
                                 r"classes \['bee'\]; .*\(the classes the loaded checkpoint was "
                                 r"trained with\)")
                # Validating it alone (runner.val()): the val split through that list too.
                validator = Runner.from_cfg(copy.deepcopy(cfg))
                self.assertIn('accuracy/top1', validator.val())
                self.assertEqual(folder_labels(validator.val_dataloader.dataset),
                                 {'ant': {0}, 'cat': {2}})

    def test_num_classes_mismatch(self):
        for classes, num_classes in ((None, 4), (CLASSES + ['dog'], 3)):
            with self.subTest(classes=classes):
                runner = Runner.from_cfg(self.config(classes=classes, num_classes=num_classes))
                count = len(classes or CLASSES)
                with self.assertRaisesRegex(
                        ValueError, rf'^the model has head\.num_classes={num_classes}, '
                        rf'data_preprocessor\.num_classes={num_classes} but the class list '
                        rf'\(.*\) has {count} classes: .*; set num_classes to {count}'):
                    runner.train()
                self.assertEqual(runner.iter, 0)
