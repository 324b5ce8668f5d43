"""PromptVisualizationHook is on where a user watches a run (own-data configs, the demo) and off
in the paper's configs, whose runs reproduce a table."""
import glob
import os.path as osp
from unittest import TestCase

from mmengine.config import Config

from tests.utils import REPO

HOOK = 'PromptVisualizationHook'
WATCHED = [
    'configs/custom/davpt_vit-b16-in21k_1xb32-100e_custom-cls-224.py',
    'configs/custom/davpt_setr-pup-vit-l16-in21k_8xb2-80k_custom-seg-512x512.py',
    'demo/configs/davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py',
    'demo/configs/davpt-plus_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py',
    'demo/configs/vpt-deep_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py',
    'demo/configs/davpt_setr-pup-vit-demo-p4-fmnist_1xb8-500i_demo-seg-48x48.py',
]


class TestVisualizationInConfigs(TestCase):

    def test_on_where_a_run_is_watched(self):
        for path in WATCHED:
            with self.subTest(path=path):
                cfg = Config.fromfile(osp.join(REPO, path))
                self.assertEqual([h['type'] for h in cfg.custom_hooks].count(HOOK), 1)
                if path.startswith('demo'):  # the demo writes TensorBoard events
                    self.assertIn('TensorboardVisBackend',
                                  [b['type'] for b in cfg.visualizer.vis_backends])

    def test_off_in_the_paper_configs(self):
        paper = [path for folder in ('da_vpt', 'baselines', '_base_')
                 for path in glob.glob(osp.join(REPO, 'configs', folder, '**', '*.py'),
                                       recursive=True)]
        self.assertGreater(len(paper), 500)
        for path in paper:
            with open(path) as f:
                self.assertNotIn(HOOK, f.read(), path)
