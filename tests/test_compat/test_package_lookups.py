"""Tests of mmda_vpt.compat.package_lookups: mmengine's `mmpretrain::` / `mmseg::` config paths,
with or without pkg_resources."""
import os.path as osp
import tempfile
from unittest import TestCase

from mmengine.config import Config

import mmda_vpt  # noqa: F401  (applies the compatibility patches)


class TestPackageLookups(TestCase):
    """mmengine's `mmpretrain::` / `mmseg::` config paths, with or without pkg_resources."""

    def test_installed_path(self):
        import mmpretrain
        from mmengine.config import config as config_module
        self.assertTrue(config_module.is_installed('mmpretrain'))
        self.assertFalse(config_module.is_installed('mmda_vpt_no_such_package'))
        self.assertEqual(
            osp.realpath(config_module.get_installed_path('mmpretrain')),
            osp.realpath(osp.dirname(mmpretrain.__file__)))

    def test_scoped_base_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'seg.py')
            with open(path, 'w') as f:
                f.write("_base_ = 'mmseg::_base_/default_runtime.py'\n")
            cfg = Config.fromfile(path)
        self.assertEqual(cfg.default_scope, 'mmseg')
