"""The generated ``metafile.yml`` of each config family and the root ``model-index.yml``."""
import glob
import os.path as osp
from unittest import TestCase

import yaml

from mmda_vpt import paper
from tests.utils import REPO


def _load(path: str) -> dict:
    with open(osp.join(REPO, path), encoding='utf-8') as f:
        return yaml.safe_load(f)


class TestMetafiles(TestCase):

    def test_model_index_imports_each_family(self):
        index = _load(paper.MODEL_INDEX)
        self.assertEqual(index['Import'],
                         ['configs/baselines/metafile.yml', 'configs/da_vpt/metafile.yml'])
        for path in index['Import']:
            self.assertTrue(osp.isfile(osp.join(REPO, path)), path)

    def test_every_long_named_config_is_one_model(self):
        for folder in ('da_vpt', 'baselines'):
            meta = _load(f'configs/{folder}/metafile.yml')
            collections = {c['Name'] for c in meta['Collections']}
            configs = [m['Config'] for m in meta['Models']]
            self.assertEqual(len(configs), len(set(configs)))
            on_disk = {osp.relpath(p, REPO) for p in glob.glob(
                osp.join(REPO, 'configs', folder, '**', '*.py'), recursive=True)}
            self.assertEqual(set(configs), on_disk - set(paper.ALIASES), folder)
            for model in meta['Models']:
                self.assertEqual(model['Name'], osp.basename(model['Config'])[:-3])
                self.assertIn(model['In Collection'], collections)

    def test_paper_numbers(self):
        models = {m['Name']: m for m in _load('configs/da_vpt/metafile.yml')['Models']}
        cub = models['davpt-plus_vit-b16-in21k_1xb32-100e_cub-224']
        self.assertEqual(cub['Results'][0]['Metrics'], {'Top 1 Accuracy': 90.8})
        self.assertNotIn('Results', models['davpt-plus_vit-b16-in21k_1xb32-100e_cub-224'
                                            '_authors-code'])
        ade = models['davpt-plus_setr-pup-vit-l16-in21k_8xb2-160k_ade20k-512x512']
        self.assertEqual(ade['Results'][0]['Metrics'], {'mIoU': 46.47, 'mIoU(ms+flip)': 47.21})
        with_results = sum('Results' in m for m in models.values())
        self.assertEqual(with_results, 2 * 5 + 2 * 2)  # in21k FGVC of both methods, segmentation
