"""Tests of mmda_vpt.datasets.labelled_pixels and LabelledPixelCheckHook: segmentation label maps
that hold only the ignore index are refused for training; an evaluation without a labelled
pixel reports no IoU metric (no nan) and training goes on."""
import glob
import os
import os.path as osp
import tempfile
from unittest import TestCase

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import mmda_vpt  # noqa: F401  (registers the hook in every runner)
from mmda_vpt.engine.hooks import LabelledPixelCheckHook
from mmda_vpt.datasets.labelled_pixels import (check_training_masks, describe_split,
                                            find_labelled_pixel)
from tests.utils import REPO

SEG = osp.join(REPO, 'tests', 'data', 'configs', 'toy_davpt_seg.py')


def _write_maps(root: str, maps) -> None:
    """A BaseSegDataset tree: img_dir/train/<i>.png (16x16 grey) and ann_dir/train/<i>.png."""
    for folder in ('img_dir', 'ann_dir'):
        os.makedirs(osp.join(root, folder, 'train'), exist_ok=True)
    for index, label in enumerate(maps):
        cv2.imwrite(osp.join(root, 'img_dir', 'train', f'{index}.png'),
                    np.full((16, 16), 100, np.uint8))
        cv2.imwrite(osp.join(root, 'ann_dir', 'train', f'{index}.png'), label)


def _dataset(root: str, **kwargs):
    from mmseg.datasets import BaseSegDataset
    return BaseSegDataset(
        data_root=root, data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        img_suffix='.png', seg_map_suffix='.png', metainfo=dict(classes=('a', 'b')),
        pipeline=[dict(type='mmseg.LoadAnnotations')], **kwargs)


class TestFindLabelledPixel(TestCase):

    def test_stops_at_the_first_labelled_map(self):
        ignored = np.full((16, 16), 255, np.uint8)
        labelled = ignored.copy()
        labelled[5, 5] = 1
        with tempfile.TemporaryDirectory() as root:
            _write_maps(root, [ignored, labelled, ignored, ignored])
            found, seen = find_labelled_pixel(_dataset(root))
            self.assertTrue(found)
            self.assertEqual(seen['maps'], 2)
            check_training_masks(_dataset(root))  # no error

    def test_only_ignored_pixels(self):
        with tempfile.TemporaryDirectory() as root:
            _write_maps(root, [np.full((16, 16), 255, np.uint8)] * 4)
            dataset = _dataset(root)
            found, seen = find_labelled_pixel(dataset)
            self.assertIs(found, False)
            self.assertEqual(seen['maps'], 4)
            first = osp.join(root, 'ann_dir', 'train', '0.png')
            split = describe_split('training', dataset)
            self.assertEqual(split, 'the training split (BaseSegDataset, label maps in '
                             f'{osp.join(root, "ann_dir", "train")})')
            with self.assertRaisesRegex(
                    ValueError, f'^{split}'.replace('(', r'\(').replace(')', r'\)') +
                    r' has no labelled pixel: every pixel of its 4 label maps is the ignore '
                    rf'index 255 \(e.g. {first}, '):
                check_training_masks(dataset)

    def test_other_loaders_skip_the_check(self):
        # A pipeline without mmseg's LoadAnnotations (e.g. LoadBiomedicalAnnotation for .nii.gz
        # maps), or a map this check cannot read: unknown, never a refused run.
        from mmseg.datasets import BaseSegDataset
        with tempfile.TemporaryDirectory() as root:
            _write_maps(root, [np.full((16, 16), 255, np.uint8)] * 2)
            biomedical = BaseSegDataset(
                data_root=root,
                data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                img_suffix='.png', seg_map_suffix='.png', metainfo=dict(classes=('a', 'b')),
                pipeline=[dict(type='mmseg.LoadBiomedicalAnnotation')])
            self.assertIsNone(find_labelled_pixel(biomedical)[0])
            check_training_masks(biomedical)  # no error
            for name in os.listdir(osp.join(root, 'ann_dir', 'train')):
                with open(osp.join(root, 'ann_dir', 'train', name), 'wb') as f:
                    f.write(b'not an image')
            self.assertIsNone(find_labelled_pixel(_dataset(root))[0])
            check_training_masks(_dataset(root))  # no error

    def test_zeros_reduced_to_the_ignore_index(self):
        # Maps of 0 ("unlabelled") with reduce_zero_label: every pixel is read as 255.
        with tempfile.TemporaryDirectory() as root:
            _write_maps(root, [np.zeros((16, 16), np.uint8)] * 2)
            check_training_masks(_dataset(root))  # 0 is class 0 without reduce_zero_label
            with self.assertRaisesRegex(ValueError, 'reduce_zero_label is on, so a 0 in a '
                                        'file is read as 255'):
                check_training_masks(_dataset(root, reduce_zero_label=True))

    def test_no_label_maps(self):
        self.assertIsNone(find_labelled_pixel([])[0])


def _log(work_dir: str) -> str:
    (log, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(log) as f:
        return f.read()


@pytest.mark.slow
class TestRunner(TestCase):
    """The stock runner on the tiny DA-VPT segmentor of tests/data/configs/toy_davpt_seg.py."""

    def test_training_set_without_labelled_pixel_is_refused(self):
        cfg = Config.fromfile(SEG)
        cfg.train_dataloader.dataset.all_ignored = True
        with tempfile.TemporaryDirectory() as tmp:
            cfg.work_dir = tmp
            runner = Runner.from_cfg(cfg)
            with self.assertRaisesRegex(
                    ValueError, r'^the training split \(ToySegDataset\) has no labelled pixel: '
                    'every pixel of its 8 label maps is the ignore index 255'):
                runner.train()
            self.assertEqual(runner.iter, 0)
            self.assertEqual(
                sum(isinstance(h, LabelledPixelCheckHook) for h in runner.hooks), 1)

    def test_validation_without_labelled_pixel(self):
        cfg = Config.fromfile(SEG)
        cfg.val_dataloader.dataset.all_ignored = True
        cfg.test_dataloader = cfg.val_dataloader
        # A logger of its own: one made by an earlier runner in the same second would be reused.
        cfg.experiment_name = 'validation_without_labelled_pixel'
        with tempfile.TemporaryDirectory() as tmp:
            cfg.work_dir = tmp
            runner = Runner.from_cfg(cfg)
            runner.train()
            self.assertEqual(runner.iter, 4)  # training went on after both validations
            self.assertEqual(runner.test(), {})
            log = _log(tmp)
        warning = ('the {} split (ToySegDataset) has no labelled pixel: every pixel of its 4 '
                   'label maps is the ignore index 255, so this evaluation reports no IoU '
                   'metric')
        # Both validations report nothing; mmengine's logger shows a repeated warning once.
        self.assertEqual(log.count(warning.format('validation')), 1)
        self.assertEqual(log.count('Iter(val) [2/2]    data_time'), 2)
        self.assertEqual(log.count(warning.format('test')), 1)
        self.assertNotIn('nan', log)
        self.assertNotIn('mIoU:', log)
        self.assertIn('Iter(train) [4/4]', log)

    def test_sound_validation_unchanged(self):
        cfg = Config.fromfile(SEG)
        with tempfile.TemporaryDirectory() as tmp:
            cfg.work_dir = tmp
            runner = Runner.from_cfg(cfg)
            runner.train()
            metrics = runner.test()
        self.assertEqual(set(metrics), {'aAcc', 'mIoU', 'mAcc'})
        self.assertFalse(any(np.isnan(v) for v in metrics.values()))
