"""Tests of mmda_vpt.apis.runner and .cli: the command lines of tools/train.py and tools/test.py
merged into a config, and the library chosen by the config's scope (in process, no training)."""
import io
import os.path as osp
from unittest import TestCase, mock

from mmengine.config import Config

import mmda_vpt  # noqa: F401  (registration)
from mmda_vpt.apis import (build_test_parser, build_train_parser, library_of, merge_test_args,
                           merge_train_args, register_library)
from tests.utils import REPO, TOY_CONFIG

SEG_CONFIG = osp.join(REPO, 'configs', 'da_vpt', 'setr_pup_vitl_ade20k.py')


def merged_train(*argv: str, cfg: Config = None) -> Config:
    """The toy config merged with ``tools/train.py TOY_CONFIG *argv``."""
    args = build_train_parser().parse_args([TOY_CONFIG, *argv])
    return merge_train_args(cfg if cfg is not None else Config.fromfile(TOY_CONFIG), args)


def merged_test(config: str, *argv: str) -> Config:
    """``config`` merged with ``tools/test.py config ckpt.pth *argv``."""
    args = build_test_parser().parse_args([config, 'ckpt.pth', *argv])
    return merge_test_args(Config.fromfile(config), args)


class TestMergeTrainArgs(TestCase):

    def test_resume(self):
        cfg = merged_train()
        self.assertFalse(cfg.resume)
        cfg = merged_train('--resume')
        self.assertTrue(cfg.resume)
        self.assertIsNone(cfg.load_from)
        cfg = merged_train('--resume', 'work/epoch_1.pth', '--work-dir', 'work')
        self.assertTrue(cfg.resume)
        self.assertEqual(cfg.load_from, 'work/epoch_1.pth')
        self.assertEqual(cfg.work_dir, 'work')

    def test_amp_and_options(self):
        cfg = merged_train('--amp', '--cfg-options', 'train_cfg.max_epochs=5')
        self.assertEqual(cfg.optim_wrapper.type, 'AmpOptimWrapper')
        self.assertEqual(cfg.optim_wrapper.loss_scale, 'dynamic')
        self.assertEqual(cfg.train_cfg.max_epochs, 5)
        self.assertEqual(cfg.launcher, 'none')
        self.assertEqual(cfg.work_dir, osp.join('./work_dirs', 'toy_cls'))
        cfg = Config.fromfile(TOY_CONFIG)
        cfg.optim_wrapper.type = 'OptimWrapperDict'
        with self.assertRaisesRegex(ValueError, '--amp needs optim_wrapper.type'):
            merged_train('--amp', cfg=cfg)

    def test_auto_scale_lr_needs_the_config_entry(self):
        cfg = Config.fromfile(TOY_CONFIG)
        cfg.pop('auto_scale_lr', None)
        with self.assertRaisesRegex(ValueError, r'--auto-scale-lr needs auto_scale_lr=dict'):
            merged_train('--auto-scale-lr', cfg=cfg)

    def test_dataloader_defaults(self):
        cfg = merged_train('--no-validate')
        self.assertIsNone(cfg.val_dataloader)
        self.assertEqual(cfg.train_dataloader.collate_fn, dict(type='default_collate'))
        self.assertFalse(cfg.train_dataloader.persistent_workers)
        self.assertFalse(cfg.test_dataloader.pin_memory)
        cfg = merged_train('--cfg-options', 'train_dataloader.num_workers=2')
        self.assertFalse(cfg.train_dataloader.persistent_workers)  # the config's own value
        cfg = Config.fromfile(TOY_CONFIG)
        del cfg.train_dataloader['persistent_workers']
        cfg.train_dataloader.num_workers = 2
        self.assertTrue(merged_train(cfg=cfg).train_dataloader.persistent_workers)

    def test_library_by_scope(self):
        import mmpretrain.registry
        import mmseg.registry
        self.assertIs(register_library(Config(dict(default_scope='mmpretrain'))),
                      mmpretrain.registry.RUNNERS)
        self.assertIs(register_library(Config(dict(default_scope='mmseg'))),
                      mmseg.registry.RUNNERS)
        with self.assertRaisesRegex(ValueError, "default_scope is 'mmdet'"):
            library_of(Config(dict(default_scope='mmdet')))
        with self.assertRaisesRegex(ValueError, 'default_scope is None'):
            library_of(Config(dict()))


class TestMergeTestArgs(TestCase):

    def test_checkpoint_and_work_dir(self):
        cfg = merged_test(TOY_CONFIG, '--work-dir', 'w')
        self.assertEqual(cfg.load_from, 'ckpt.pth')
        self.assertEqual(cfg.work_dir, 'w')

    def test_out_item_needs_out(self):
        with self.assertRaisesRegex(ValueError, r'^--out-item needs --out'):
            merged_test(TOY_CONFIG, '--out-item', 'metrics')
        with mock.patch('sys.stderr', io.StringIO()), self.assertRaises(SystemExit):
            build_test_parser().parse_args([TOY_CONFIG, 'ckpt.pth', '--out-item', 'all'])

    def test_seg_out_is_the_prediction_folder(self):
        cfg = merged_test(SEG_CONFIG, '--out', 'maps', '--work-dir', 'wd')
        self.assertEqual(cfg.test_evaluator['output_dir'], 'maps')
        self.assertTrue(cfg.test_evaluator['keep_results'])
        with self.assertRaisesRegex(ValueError, r'^--out-item is for mmpretrain configs'):
            merged_test(SEG_CONFIG, '--out', 'maps', '--out-item', 'metrics')

    def test_tta_wraps_the_model(self):
        cfg = merged_test(SEG_CONFIG, '--tta', '--work-dir', 'wd')
        self.assertEqual(cfg.model.type, 'SegTTAModel')
        self.assertEqual(cfg.model.module.backbone.type, 'DAVPTViT')
        self.assertEqual(cfg.test_dataloader.dataset.pipeline[1].type, 'TestTimeAug')
        self.assertEqual(merged_test(SEG_CONFIG, '--work-dir', 'wd').model.type,
                         'EncoderDecoder')

    def test_tta_without_tta_model(self):
        with self.assertRaisesRegex(ValueError, 'defines no tta_model / tta_pipeline for --tta'):
            merged_test(TOY_CONFIG, '--tta', '--work-dir', 'wd')
