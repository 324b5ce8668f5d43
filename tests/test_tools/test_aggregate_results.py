"""Tests of mmda_vpt.paper.aggregate on work directories laid out as mmengine leaves them, and of
the CLI tools/aggregate_results.py over it (in a subprocess).

``tests/test_configs/test_configs.py`` also feeds it the work directories of real (shrunk)
training and test runs.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys
import tempfile
from unittest import TestCase

from mmda_vpt import paper
from tests.utils import REPO, SUBPROCESS_TIMEOUT

SEG_TEST_CONFIG = "model = dict(type='EncoderDecoder')\ntta_model = dict(type='SegTTAModel')\n"
SEG_TTA_CONFIG = ("model = dict(type='SegTTAModel', module=dict(type='EncoderDecoder'))\n"
                  "tta_model = dict(type='SegTTAModel')\n")


def cls_name(method: str, backbone: str, task: str, family: str = 'paper') -> str:
    methods = {m.key: m for m in paper.CLS_METHODS}
    backbones = {b.key: b for b in paper.BACKBONES}
    tasks = {t.key: t for t in paper.TASKS}
    path = paper.cls_config_path(methods[method], backbones[backbone], tasks[task], family)
    return osp.basename(path)[:-3]


def make_run(root: str, config: str, seed: int, tests=(), val=None) -> str:
    """A work directory: the dumped config and one timestamp folder per test result.

    Args:
        tests: ``(metrics dict, vis_data/config.py text or None)`` per test run, oldest first.
        val: Validation values written to a training run's ``vis_data/scalars.json``.
    """
    run = osp.join(root, config, f'seed{seed}')
    os.makedirs(run, exist_ok=True)
    with open(osp.join(run, f'{config}.py'), 'w') as f:
        f.write('# dumped config\n')
    second = 0
    if val is not None:
        stamp = f'20250101_0000{second:02d}'
        os.makedirs(osp.join(run, stamp, 'vis_data'))
        with open(osp.join(run, stamp, 'vis_data', 'scalars.json'), 'w') as f:
            for step, value in enumerate(val, start=1):
                f.write(json.dumps({'loss': 1.0, 'step': step}) + '\n')
                f.write(json.dumps({next(iter(value)): value[next(iter(value))],
                                    'step': step}) + '\n')
        second += 1
    for metrics, config_text in tests:
        stamp = f'20250101_0000{second:02d}'
        os.makedirs(osp.join(run, stamp, 'vis_data'))
        with open(osp.join(run, stamp, f'{stamp}.json'), 'w') as f:
            json.dump(dict(metrics, data_time=0.1, time=0.2), f)
        if config_text is not None:
            with open(osp.join(run, stamp, 'vis_data', 'config.py'), 'w') as f:
                f.write(config_text)
        second += 1
    return run


class TestAggregateResults(TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def rows(self, use_val=False):
        return paper.summarize(paper.collect([self.root], use_val=use_val), use_val)

    def test_config_index(self):
        index = paper.config_index()
        # 5 methods' paper rows, 2 methods' authors'-code rows, 2 x 4 segmentation rows, aliases.
        self.assertEqual(len(index), 24 * 3 * 5 + 24 * 3 * 2 + 2 * 4 + 8)
        self.assertEqual(index['davpt_vit-b16-in21k_1xb32-100e_cub-224'],
                         paper.ConfigInfo('cls', 'davpt', 'in21k', 'cub'))
        self.assertEqual(index['davpt-plus_vit-b16-in21k_1xb64-100e_dogs-224_authors-code'],
                         paper.ConfigInfo('cls', 'davpt-plus', 'in21k', 'dogs', 'authors'))
        self.assertEqual(sum(info.family == 'authors' for info in index.values()), 24 * 3 * 2)
        self.assertEqual(index['setr_pup_vitl_pascal_context_plus'],
                         paper.ConfigInfo('seg', 'davpt-plus', 'in21k', 'pascal-context-60'))

    def test_fgvc_seeds_and_mean(self):
        values = {'cub': [90.0, 91.0, 92.0], 'nabirds': [87.0, 87.0], 'flowers': [99.5],
                  'dogs': [89.0], 'cars': [90.5]}
        for task, seeds in values.items():
            for seed, value in enumerate(seeds):
                make_run(self.root, cls_name('davpt', 'in21k', task), seed,
                         tests=[({'accuracy/top1': value}, None)])
        tables = self.rows()
        cub = next(r for r in tables['tasks'] if r.what[2] == 'CUB-200-2011')
        self.assertEqual(cub.what[:2], ('supervised IN-21k', 'DA-VPT'))
        self.assertEqual(cub.n, '3')
        self.assertAlmostEqual(cub.mean, 91.0)
        self.assertAlmostEqual(cub.std, 1.0)
        self.assertEqual(cub.paper, 90.2)
        self.assertAlmostEqual(cub.diff, 0.8)
        nabirds = next(r for r in tables['tasks'] if r.what[2] == 'NABirds')
        self.assertEqual(nabirds.std, 0.0)
        dogs = next(r for r in tables['tasks'] if r.what[2] == 'Stanford Dogs')
        self.assertIsNone(dogs.std)
        fgvc = next(r for r in tables['groups'] if r.what[2] == 'FGVC')
        self.assertEqual(fgvc.n, '5/5')
        self.assertAlmostEqual(fgvc.mean, (91.0 + 87.0 + 99.5 + 89.0 + 90.5) / 5)
        self.assertEqual(fgvc.paper, 91.22)
        self.assertAlmostEqual(fgvc.diff, fgvc.mean - 91.22)
        natural = next(r for r in tables['groups'] if r.what[2] == 'Natural')
        self.assertEqual((natural.n, natural.mean, natural.paper), ('0/7', None, 80.25))
        text = paper.format_tables(tables)
        self.assertIn('| supervised IN-21k | DA-VPT | CUB-200-2011 | 3 | 91.00 | 1.00 | 90.20 | '
                      '+0.80 |', text)

    def test_vtab_groups_and_overall(self):
        expected = {}
        for i, task in enumerate(paper.VTAB_TASKS):
            value = 50.0 + i
            expected[task.key] = value
            make_run(self.root, cls_name('davpt-plus', 'mae', task.key), 0,
                     tests=[({'accuracy/top1': value - 10}, None),
                            ({'accuracy/top1': value}, None)])  # the newer result counts
        groups = {r.what[2]: r for r in self.rows()['groups']}
        means = {}
        for group in paper.VTAB_GROUPS:
            keys = [t.key for t in paper.VTAB_TASKS if t.group == group]
            means[group] = sum(expected[k] for k in keys) / len(keys)
            self.assertAlmostEqual(groups[group].mean, means[group])
        self.assertEqual(groups['Natural'].paper, 66.59)
        overall = groups['VTAB-1k overall']
        self.assertEqual(overall.n, '3/3')
        self.assertAlmostEqual(overall.mean, sum(means.values()) / 3)
        self.assertAlmostEqual(overall.paper, (66.59 + 82.96 + 59.28) / 3)
        self.assertEqual(groups['FGVC'].n, '0/5')
        self.assertIsNone(groups['FGVC'].mean)

    def test_authors_code_rows(self):
        # An authors'-code run is a method of its own, beside the paper row of the same task,
        # with the paper's number; its group means take only authors'-code runs.
        make_run(self.root, cls_name('davpt', 'in21k', 'cub'), 0,
                 tests=[({'accuracy/top1': 90.0}, None)])
        for seed, value in enumerate((88.0, 89.0)):
            make_run(self.root, cls_name('davpt', 'in21k', 'cub', 'authors'), seed,
                     tests=[({'accuracy/top1': value}, None)])
        for task, value in (('nabirds', 80.0), ('flowers', 99.0), ('dogs', 85.0),
                            ('cars', 87.0)):
            make_run(self.root, cls_name('davpt', 'in21k', task, 'authors'), 0,
                     tests=[({'accuracy/top1': value}, None)])
        tables = self.rows()
        cub = [r for r in tables['tasks'] if r.what[2] == 'CUB-200-2011']
        self.assertEqual([r.what[1] for r in cub], ['DA-VPT', "DA-VPT (authors' code)"])
        self.assertEqual([(r.n, r.mean, r.paper) for r in cub], [('1', 90.0, 90.2),
                                                                 ('2', 88.5, 90.2)])
        fgvc = {r.what[1]: r for r in tables['groups'] if r.what[2] == 'FGVC'}
        self.assertEqual(fgvc['DA-VPT'].n, '1/5')
        self.assertIsNone(fgvc['DA-VPT'].mean)
        self.assertEqual(fgvc["DA-VPT (authors' code)"].n, '5/5')
        self.assertAlmostEqual(fgvc["DA-VPT (authors' code)"].mean,
                               (88.5 + 80.0 + 99.0 + 85.0 + 87.0) / 5)
        self.assertEqual(fgvc["DA-VPT (authors' code)"].paper, 91.22)
        self.assertIn("| supervised IN-21k | DA-VPT (authors' code) | CUB-200-2011 | 2 | 88.50 | "
                      '0.71 | 90.20 | -1.70 |', paper.format_tables(tables))

    def test_incomplete_group(self):
        make_run(self.root, cls_name('vpt-deep', 'mocov3', 'vtab-dtd'), 0,
                 tests=[({'accuracy/top1': 60.0}, None)])
        groups = {r.what[2]: r for r in self.rows()['groups']}
        self.assertEqual(groups['Natural'].n, '1/7')
        self.assertIsNone(groups['Natural'].mean)
        self.assertEqual(groups['VTAB-1k overall'].n, '0/3')
        self.assertEqual(groups['Natural'].paper, 70.27)
        self.assertIn('| MoCo v3 | VPT-Deep | Natural | 1/7 | - | - | 70.27 | - |',
                      paper.format_tables(self.rows()))

    def test_segmentation_single_and_multi_scale(self):
        for seed, (ss, ms) in enumerate([(45.0, 47.0), (46.0, 48.0)]):
            make_run(self.root, 'setr_pup_vitl_ade20k', seed,
                     tests=[({'mIoU': ss, 'aAcc': 80.0}, SEG_TEST_CONFIG),
                            ({'mIoU': ms}, SEG_TTA_CONFIG)])
        long_name = osp.basename(paper.seg_config_path(paper.SEG_METHODS[3],
                                                       paper.SEG_TASKS[1]))[:-3]
        make_run(self.root, long_name, 0, tests=[({'mIoU': 54.0}, SEG_TEST_CONFIG)])
        rows = self.rows()['segmentation']
        self.assertEqual([r.what for r in rows], [
            ('ADE20K', 'DA-VPT', 'mIoU single-scale'),
            ('ADE20K', 'DA-VPT', 'mIoU multi-scale'),
            ('PASCAL Context', 'Full fine-tuning', 'mIoU single-scale'),
        ])
        self.assertAlmostEqual(rows[0].mean, 45.5)
        self.assertAlmostEqual(rows[0].std, math.sqrt(0.5))
        self.assertEqual(rows[0].paper, 45.10)
        self.assertAlmostEqual(rows[1].mean, 47.5)
        self.assertEqual(rows[1].paper, 47.07)
        self.assertAlmostEqual(rows[2].diff, 54.0 - 53.69)

    def test_validation_fallback(self):
        config = cls_name('linear', 'in21k', 'vtab-svhn')
        make_run(self.root, config, 0, val=[{'accuracy/top1': 30.0}, {'accuracy/top1': 35.0}])
        self.assertEqual(self.rows()['tasks'], [])
        rows = self.rows(use_val=True)['tasks']
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0].mean, rows[0].source), (35.0, 'val'))
        self.assertIn('35.00 (val)', paper.format_tables(self.rows(use_val=True)))

    def test_unknown_and_ambiguous_dirs(self):
        make_run(self.root, 'my_experiment', 0, tests=[({'accuracy/top1': 1.0}, None)])
        self.assertEqual(paper.collect([self.root]), [])
        run = make_run(self.root, cls_name('davpt', 'in21k', 'cub'), 0)
        with open(osp.join(run, cls_name('davpt', 'in21k', 'cars') + '.py'), 'w') as f:
            f.write('\n')
        with self.assertRaisesRegex(ValueError, 'holds the configs of several experiments'):
            paper.collect([self.root])
        with self.assertRaisesRegex(FileNotFoundError, 'is not a directory'):
            paper.collect([osp.join(self.root, 'nope')])

    def run_tool(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, 'tools/aggregate_results.py', *args], cwd=REPO,
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)

    def test_cli(self):
        missing = self.run_tool(osp.join(self.root, 'nope'))
        self.assertEqual(missing.returncode, 2)
        self.assertIn('not a directory', missing.stderr)
        empty = self.run_tool(self.root)
        self.assertEqual(empty.returncode, 1)
        self.assertIn('no runs found', empty.stderr)
        make_run(self.root, cls_name('davpt', 'in21k', 'cub'), 0,
                 tests=[({'accuracy/top1': 90.0}, None)])
        make_run(self.root, cls_name('davpt', 'in21k', 'dogs'), 0)
        out_file = osp.join(self.root, 'tables.md')
        done = self.run_tool(self.root, '--out', out_file)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn('| supervised IN-21k | DA-VPT | CUB-200-2011 | 1 | 90.00 | - | 90.20 | '
                      '-0.20 |', done.stdout)
        self.assertIn('no test result in', done.stderr)
        self.assertIn('dogs', done.stderr)
        with open(out_file) as f:
            self.assertEqual(f.read().strip(), done.stdout.strip())
