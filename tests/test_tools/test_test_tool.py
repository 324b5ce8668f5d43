"""Tests of tools/test.py's multi-scale (--tta) switch on the SETR configs."""
import os.path as osp
from unittest import TestCase

from mmengine.config import Config

from tests.utils import REPO, load_tool

SEG_CONFIG = osp.join(REPO, 'configs', 'da_vpt', 'setr_pup_vitl_ade20k.py')
CLS_CONFIG = osp.join(REPO, 'tests', 'data', 'configs', 'toy_cls.py')


class TestTestTool(TestCase):

    def setUp(self):
        self.tool = load_tool('test', 'mmda_vpt_test_tool')

    def test_tta_wraps_the_model(self):
        args = self.tool.parse_args([SEG_CONFIG, 'ckpt.pth', '--tta', '--work-dir', 'wd'])
        cfg = self.tool.merge_args(Config.fromfile(SEG_CONFIG), args)
        self.assertEqual(cfg.model.type, 'SegTTAModel')
        self.assertEqual(cfg.model.module.backbone.type, 'DAVPTViT')
        self.assertEqual(cfg.test_dataloader.dataset.pipeline[1].type, 'TestTimeAug')
        args = self.tool.parse_args([SEG_CONFIG, 'ckpt.pth', '--work-dir', 'wd'])
        cfg = self.tool.merge_args(Config.fromfile(SEG_CONFIG), args)
        self.assertEqual(cfg.model.type, 'EncoderDecoder')

    def test_tta_without_tta_model(self):
        args = self.tool.parse_args([CLS_CONFIG, 'ckpt.pth', '--tta', '--work-dir', 'wd'])
        with self.assertRaisesRegex(ValueError, 'defines no tta_model / tta_pipeline for --tta'):
            self.tool.merge_args(Config.fromfile(CLS_CONFIG), args)
