"""The eight short-named segmentation configs (``configs/*/setr_pup_vitl_*.py``) and why they stay.

They are the names the project's brief and the README give for the segmentation runs
(``python tools/train.py configs/da_vpt/setr_pup_vitl_ade20k.py``); each is a generated file that
only inherits its long-named config, so a command written with either name trains the same run.
The README's "Short config names" table maps them.
"""
import os.path as osp
import re
from unittest import TestCase

from mmengine.config import Config

from mmda_vpt import paper
from tests.utils import REPO


class TestShortNames(TestCase):

    def test_each_alias_resolves_to_its_long_config(self):
        self.assertEqual(len(paper.ALIASES), 8)
        self.assertIn('configs/da_vpt/setr_pup_vitl_ade20k.py', paper.ALIASES)
        for alias, target in paper.ALIASES.items():
            with self.subTest(alias=alias):
                self.assertRegex(osp.basename(alias), r'^setr_pup_vitl_')
                self.assertEqual(osp.dirname(alias), osp.dirname(target))
                short = Config.fromfile(osp.join(REPO, alias), import_custom_modules=False)
                long = Config.fromfile(osp.join(REPO, target), import_custom_modules=False)
                self.assertEqual(short.to_dict(), long.to_dict())

    def test_alias_file_only_inherits(self):
        for alias, target in paper.ALIASES.items():
            with open(osp.join(REPO, alias), encoding='utf-8') as f:
                code = [line for line in f if line.strip() and not line.startswith('#')]
            self.assertEqual(code, [f"_base_ = './{osp.basename(target)}'\n"], alias)

    def test_readme_table_lists_every_alias(self):
        with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
            readme = f.read()
        section = readme[readme.index('### Short config names'):]
        rows = dict(re.findall(r'^\| `(configs/[^`]+)` \| `(configs/[^`]+)` \|', section, re.M))
        self.assertEqual(rows, paper.ALIASES)
