"""Tests of mmda_vpt.tune (hyperparameter search with Optuna), its TrialReportHook and the
command-line wiring of tools/tune.py.

The searches train the tiny DA-VPT classifier of tests/data/configs/toy_davpt_digits.py (2
epochs of 10 iterations per trial) and the tiny segmentor of toy_davpt_seg.py (4 iterations);
the input checks and the presets run on the paper's configs without training.
"""
import os
import os.path as osp
import pickle
import shlex
import subprocess
import sys
import tempfile
from types import SimpleNamespace
from unittest import TestCase, mock

import optuna
import pytest
import torch
from mmengine.config import Config
from optuna.trial import TrialState

from mmda_vpt import tune
from mmda_vpt.apis import build_runner, merge_train_args
from mmda_vpt.apis.cli import build_train_parser
from mmda_vpt.tune._report_hook import TrialReportHook
from mmda_vpt.tune.spec import spec_from_plain, spec_to_plain
from tests.utils import REPO, SUBPROCESS_TIMEOUT

TOOL = osp.join(REPO, 'tools', 'tune.py')
DIGITS = osp.join(REPO, 'tests', 'data', 'configs', 'toy_davpt_digits.py')
SEG = osp.join(REPO, 'tests', 'data', 'configs', 'toy_davpt_seg.py')
TOY_CLS = osp.join(REPO, 'tests', 'data', 'configs', 'toy_cls.py')
CUB = osp.join(REPO, 'configs', 'da_vpt', 'fgvc', 'davpt_vit-b16-in21k_1xb32-100e_cub-224.py')
CUB_LINEAR = osp.join(REPO, 'configs', 'baselines', 'fgvc',
                      'linear_vit-b16-in21k_1xb32-100e_cub-224.py')
VTAB = osp.join(REPO, 'configs', 'da_vpt', 'vtab', 'davpt_vit-b16-in21k_1xb32-100e_vtab-dtd-224.py')
#: The search's validation split carved from the training digits 0-299.
CARVE = {'train_dataloader.dataset.indices': (0, 240),
         'val_dataloader.dataset.indices': (240, 300)}


def _run_dirs(trial_dir: str) -> list:
    """The timestamped run folders mmengine left in a trial's work dir (one per run)."""
    return sorted(d for d in os.listdir(trial_dir) if osp.isdir(osp.join(trial_dir, d))
                  and d[:8].isdigit())


class TestSpace(TestCase):

    def test_lists_and_ranges(self):
        space = tune.parse_space(['lr=1e-4:1e-2:log', 'weight_decay=0,1e-4,1e-3',
                                  'num_prompts=1:20', 'beta+lam=0:1:0.25', 'bias_tune=None,kv',
                                  'proxy_scale=5'])
        self.assertEqual(space['lr'], tune.Range(1e-4, 1e-2, log=True))
        self.assertEqual(space['weight_decay'], [0, 1e-4, 1e-3])
        self.assertTrue(space['num_prompts'].integer)
        self.assertEqual(space['beta+lam'], tune.Range(0, 1, step=0.25))
        self.assertFalse(space['beta+lam'].integer)
        self.assertEqual(space['bias_tune'], [None, 'kv'])
        self.assertEqual(space['proxy_scale'], [5])
        mapping = tune.parse_space({'lr': (0.1, 0.2), 'lam': tune.Range(0.0, 1.0), 'beta': 0.5})
        self.assertEqual(mapping, {'lr': [0.1, 0.2], 'lam': tune.Range(0.0, 1.0), 'beta': [0.5]})

    def test_bad_items(self):
        with self.assertRaisesRegex(ValueError, "^lr: the range's low 0.01 is above its high "
                                    "0.0001$"):
            tune.parse_space(['lr=1e-2:1e-4'])
        with self.assertRaisesRegex(ValueError, 'lr: a log range needs low > 0, got 0'):
            tune.parse_space(['lr=0:1e-2:log'])
        with self.assertRaisesRegex(ValueError, "--space item 'lr' is not KEY=VALUES"):
            tune.parse_space(['lr'])
        with self.assertRaisesRegex(ValueError, 'lr: given twice'):
            tune.parse_space(['lr=1', 'lr=2'])
        with self.assertRaisesRegex(ValueError, 'lr: a value is listed twice'):
            tune.parse_space(['lr=0.1,0.1'])
        with self.assertRaisesRegex(ValueError, "the range's high 'x' is not a number"):
            tune.parse_space(['lr=0:x'])


class TestConfigKeys(TestCase):
    """Short names, config paths, presets and metrics on the paper's configs (no training)."""

    def _search(self, config=CUB, **kwargs):
        return tune.Search(tune.make_spec(config, work_dir=tempfile.mkdtemp(), **kwargs))

    def test_short_names_and_paths(self):
        cfg = Config.fromfile(CUB)
        hook = next(i for i, h in enumerate(cfg.custom_hooks)
                    if h.type == 'PromptMetricLossHook')
        search = self._search(space=[
            'lr=1e-3,1e-2', 'beta+lam=0.01,0.1', 'num_prompts=5,10',
            'custom_hooks.PromptMetricLossHook.margin=0.1,0.2',
            'optim_wrapper.paramwise_cfg.custom_keys.head.fc.weight.decay_mult=1,10',
            'custom_hooks.0.samples_per_class=5,10'])
        paths = {p.name: p.paths for p in search.params}
        self.assertEqual(paths['lr'], [('optim_wrapper', 'optimizer', 'lr')])
        self.assertEqual(paths['beta+lam'], [('custom_hooks', hook, 'beta'),
                                             ('custom_hooks', hook, 'lam')])
        self.assertEqual(paths['num_prompts'], [('model', 'backbone', 'num_prompts')])
        self.assertEqual(paths['custom_hooks.PromptMetricLossHook.margin'],
                         [('custom_hooks', hook, 'margin')])
        self.assertEqual(
            paths['optim_wrapper.paramwise_cfg.custom_keys.head.fc.weight.decay_mult'],
            [('optim_wrapper', 'paramwise_cfg', 'custom_keys', 'head.fc.weight', 'decay_mult')])
        self.assertEqual(paths['custom_hooks.0.samples_per_class'],
                         [('custom_hooks', 0, 'samples_per_class')])
        self.assertEqual(search.grid_size, 64)
        self.assertEqual(search.sampler_name, 'grid')
        # A trial's config sets every path; best.py writes the hook list whole (a child
        # config replaces lists) and the dicts down to the changed keys.
        values = {p.name: (p.values[1]) for p in search.params}
        cfg = search.trial_config(values, tempfile.mkdtemp(), 'trial_0000')
        self.assertEqual(cfg.custom_hooks[hook].beta, 0.1)
        self.assertEqual(cfg.custom_hooks[hook].lam, 0.1)
        self.assertEqual(cfg.custom_hooks[hook].margin, 0.2)
        self.assertEqual(cfg.custom_hooks[0].samples_per_class, 10)
        self.assertEqual(cfg.optim_wrapper.paramwise_cfg.custom_keys['head.fc.weight'].decay_mult,
                         10)
        self.assertIsNone(cfg.default_hooks.checkpoint)  # no checkpoints in trials
        tree = tune.best_overrides(search, values)
        self.assertEqual(tree['optim_wrapper'], dict(
            optimizer=dict(lr=1e-2),
            paramwise_cfg=dict(custom_keys={'head.fc.weight': dict(decay_mult=10)})))
        self.assertEqual(tree['model'], dict(backbone=dict(num_prompts=10)))
        self.assertEqual([h['type'] for h in tree['custom_hooks']],
                         [h.type for h in cfg.custom_hooks])
        self.assertEqual(tree['custom_hooks'][hook]['margin'], 0.2)

    def test_batch_size_sets_the_class_slots_sampler(self):
        # CUB's paper row draws class-slot batches: the sampler's batch_size follows the
        # dataloader's, for the short name and for the config path alike.
        self.assertEqual(Config.fromfile(CUB).train_dataloader.sampler.mode, 'class_slots')
        tied = [('train_dataloader', 'batch_size'), ('train_dataloader', 'sampler', 'batch_size')]
        for key in ('batch_size', 'train_dataloader.batch_size'):
            with self.subTest(key=key):
                search = self._search(space=[f'{key}=16,64'])
                self.assertEqual(search.params[0].paths, tied)
                cfg = search.trial_config({key: 64}, tempfile.mkdtemp(), 'trial_0000')
                self.assertEqual(cfg.train_dataloader.batch_size, 64)
                self.assertEqual(cfg.train_dataloader.sampler.batch_size, 64)
                self.assertEqual(tune.best_overrides(search, {key: 16})['train_dataloader'],
                                 dict(batch_size=16, sampler=dict(batch_size=16)))
        # Other samplers draw no batches of their own: the dataloader's batch size only.
        for sampler in (dict(mode='rounds', batch_size=None), dict(type='DefaultSampler')):
            with self.subTest(sampler=sampler):
                options = {f'train_dataloader.sampler.{k}': v for k, v in sampler.items()}
                search = self._search(space=['batch_size=16,64'], cfg_options=options)
                self.assertEqual(search.params[0].paths, tied[:1])
                cfg = search.trial_config({'batch_size': 64}, tempfile.mkdtemp(), 'trial_0000')
                self.assertEqual(cfg.train_dataloader.batch_size, 64)

    def test_unknown_keys(self):
        with self.assertRaisesRegex(ValueError, "^unknown key 'foo': not a short name \\(lr, "):
            self._search(space=['foo=1,2'])
        with self.assertRaisesRegex(ValueError, "^unknown key 'model.backbone.num_promts': no "
                                    "'num_promts' in model.backbone of "):
            self._search(space=['model.backbone.num_promts=1,2'])
        with self.assertRaisesRegex(ValueError, r'^beta \(custom_hooks.PromptMetricLossHook.beta'
                                    r'\): no PromptMetricLossHook in custom_hooks of .*linear_'):
            self._search(CUB_LINEAR, space=['beta=0.1,0.2'])

    def test_metric(self):
        self.assertEqual(self._search(space=['lr=1,2']).metric, 'accuracy/top1')
        with self.assertRaisesRegex(ValueError, "^--metric 'accuracy/top5': the validation "
                                    'evaluator of .* produces accuracy/top1$'):
            self._search(space=['lr=1,2'], metric='accuracy/top5')
        search = self._search(space=['lr=1,2'], metric='accuracy/top5',
                              cfg_options={'val_evaluator.topk': (1, 5)})
        self.assertEqual(search.metric, 'accuracy/top5')
        self.assertEqual(tune.evaluator_metrics(Config.fromfile(SEG)), ['mIoU', 'aAcc', 'mAcc'])
        seg = Config(dict(val_evaluator=dict(type='IoUMetric', iou_metrics=['mDice', 'mIoU'])))
        self.assertEqual(tune.evaluator_metrics(seg), ['mDice', 'aAcc', 'mIoU', 'mAcc'])
        other = Config(dict(val_evaluator=[dict(type='Accuracy'), dict(type='MyMetric')]))
        self.assertIsNone(tune.evaluator_metrics(other))

    def test_validation_split(self):
        with self.assertRaisesRegex(ValueError, r'has no validation split \(val_dataloader not '
                                    r'set\); give the config one or carve one'):
            self._search(space=['lr=1,2'], cfg_options={'val_dataloader': None})
        # VTAB's training split train800val200 holds val200: carve train800 to search.
        with self.assertRaisesRegex(ValueError, '^the training split train800val200 holds the '
                                    'validation split val200; search with --val-cfg-options '
                                    'train_dataloader.dataset.split=train800$'):
            self._search(VTAB, space=['lr=1,2'])
        search = self._search(VTAB, space=['lr=1,2'],
                              val_cfg_options={'train_dataloader.dataset.split': 'train800'})
        self.assertEqual(search.cfg.train_dataloader.dataset.split, 'train800')
        # The carve is not part of the setting best.py keeps.
        tree = tune.best_overrides(search, {'lr': 1})
        self.assertNotIn('train_dataloader', tree)

    def test_vpt_presets(self):
        search = self._search(preset='vpt-prompt')
        self.assertEqual(search.cfg.optim_wrapper.optimizer,
                         dict(type='SGD', lr=0.0005, momentum=0.9, weight_decay=0.05))
        params = {p.name: p.values for p in search.params}
        # VPT's base learning rates x batch 32 / 256.
        self.assertEqual(params['lr'], [6.25, 3.125, 1.25, 0.625, 0.3125, 0.125, 0.0625,
                                        0.03125, 0.0125])
        self.assertEqual(params['weight_decay'], [0.01, 0.001, 0.0001, 0.0])
        self.assertEqual((search.grid_size, search.sampler_name), (36, 'grid'))
        self.assertTrue(any('becomes SGD with momentum 0.9' in m for m, _ in search._pending))
        tree = tune.best_overrides(search, {'lr': 6.25, 'weight_decay': 0.01})
        self.assertEqual(tree['optim_wrapper']['optimizer'], dict(
            _delete_=True, type='SGD', lr=6.25, momentum=0.9, weight_decay=0.01))
        with tempfile.TemporaryDirectory() as tmp:
            best = osp.join(tmp, 'best.py')
            tune.write_best_config(search, dict(number=3, value=50.0, finished=36,
                                                params={'lr': 6.25, 'weight_decay': 0.01}), best)
            cfg = Config.fromfile(best)
        self.assertEqual(cfg.optim_wrapper.optimizer,
                         dict(type='SGD', lr=6.25, momentum=0.9, weight_decay=0.01))
        self.assertEqual(cfg.optim_wrapper.paramwise_cfg,
                         Config.fromfile(CUB).optim_wrapper.paramwise_cfg)
        linear = self._search(CUB_LINEAR, preset='vpt-linear')
        self.assertEqual(len(linear.params[0].values), 10)
        self.assertEqual(linear.params[0].values[-1], 0.05 * 32 / 256)

    def test_davpt_preset(self):
        search = self._search(preset='davpt')
        self.assertEqual(search.cfg.optim_wrapper.optimizer.type, 'AdamW')
        params = {p.name: p for p in search.params}
        self.assertEqual(params['lr'].values, [1e-4, 5e-4, 1e-3, 5e-3, 1e-2])
        self.assertEqual(params['weight_decay'].values, [0.0, 1e-4, 1e-2, 0.05])
        self.assertEqual(params['beta+lam'].values, [0.01, 0.05, 0.1])
        self.assertEqual(params['beta+lam'].keys, ['beta', 'lam'])
        self.assertEqual(search.grid_size, 60)
        self.assertEqual(search.trials, 60)
        # --space adds to the preset and overrides its keys; --trials samples the grid.
        search = self._search(preset='davpt', space=['lr=1e-3'], trials=5)
        self.assertEqual((search.grid_size, search.trials), (12, 5))
        self.assertEqual(self._search(space=['lr=1e-4:1e-2:log']).sampler_name, 'tpe')
        with self.assertRaisesRegex(ValueError, '^unknown preset'):
            self._search(preset='vpt')

    def test_pruner_options(self):
        with self.assertRaisesRegex(ValueError, '^--pruner median --pruner-options '):
            self._search(space=['lr=1,2'], pruner='median', pruner_options={'n_startup': 1})
        self.assertIsInstance(
            self._search(space=['lr=1,2'], pruner='halving').make_pruner(),
            optuna.pruners.SuccessiveHalvingPruner)


class TestTrialReportHook(TestCase):

    def test_records_and_reports(self):
        calls = []
        hook = TrialReportHook(report=lambda step, value, metrics: calls.append((step, value)))
        runner = SimpleNamespace(epoch=1, iter=10, train_loop=object())
        hook.before_train(runner)
        hook.after_val_epoch(runner, {'accuracy/top1': 50.0, 'accuracy/top5': 90.0})
        self.assertEqual(hook.metric, 'accuracy/top1')  # the first one
        runner.epoch = 2
        hook.after_val_epoch(runner, {'accuracy/top1': 75.0, 'accuracy/top5': 95.0})
        self.assertEqual(calls, [(1, 50.0), (2, 75.0)])
        self.assertEqual((hook.unit, hook.last_step), ('epoch', 2))
        with self.assertRaisesRegex(KeyError, "the evaluator produced no metric 'mIoU'; it "
                                    'produced aAcc, mAcc'):
            TrialReportHook('mIoU').after_val_epoch(runner, {'aAcc': 1.0, 'mAcc': 2.0})


@pytest.mark.slow
class TestSearch(TestCase):
    """A 4-trial grid on the tiny DA-VPT classifier, on a validation split carved from the
    training digits, and what it leaves."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.work_dir = osp.join(cls._tmp.name, 'search')
        cls.result = tune.run_search(DIGITS, ['lr=1e-3,3e-2', 'beta+lam=0,0.1'],
                                     work_dir=cls.work_dir, val_cfg_options=CARVE,
                                     keep_checkpoints=True)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_table_and_best(self):
        result = self.result
        self.assertEqual(len(result.rows), 4)
        self.assertEqual({(r['params']['lr'], r['params']['beta+lam']) for r in result.rows},
                         {(1e-3, 0), (1e-3, 0.1), (3e-2, 0), (3e-2, 0.1)})
        for row in result.rows:
            self.assertEqual((row['state'], row['pruned'], row['run'], row['unit']),
                             ('complete', False, 2, 'epoch'))
        values = [r['metric'] for r in result.rows]
        self.assertEqual(result.best['value'], max(values))
        with open(result.files['table_md']) as f:
            table = f.read()
        self.assertIn('| trial | lr | beta+lam | accuracy/top1 | epochs run | pruned | state |',
                      table)
        self.assertEqual(table.count('| complete |'), 4)
        self.assertIn(f'| **{result.best["number"]}** |', table)
        self.assertTrue(osp.getsize(result.files['picture']) > 0)
        cfg = Config.fromfile(result.files['best_config'])
        hook = next(h for h in cfg.custom_hooks if h.type == 'PromptMetricLossHook')
        self.assertEqual(cfg.optim_wrapper.optimizer.lr, result.best['params']['lr'])
        self.assertEqual((hook.beta, hook.lam), (result.best['params']['beta+lam'],) * 2)
        # best.py trains on the full training split: the carve is left out.
        self.assertEqual(cfg.train_dataloader.dataset.indices, (0, 300))
        self.assertEqual(cfg.val_dataloader.dataset.indices, (300, 450))

    def test_best_reproduces_best_trial(self):
        best = self.result.files['best_config']
        with open(best) as f:
            header = next(line for line in f if 'add: --cfg-options ' in line)
        # The header's options, read as tools/train.py reads them.
        args = build_train_parser().parse_args(
            [best, '--work-dir', osp.join(self._tmp.name, 'retrain'), '--cfg-options',
             *shlex.split(header.split('add: --cfg-options ', 1)[1])])
        cfg = merge_train_args(Config.fromfile(best), args)
        self.assertEqual(cfg.train_dataloader.dataset.indices, (0, 240))
        runner = build_runner(cfg)
        hook = TrialReportHook('accuracy/top1')
        runner.register_hook(hook)
        runner.train()
        self.assertEqual(hook.history[-1]['value'], self.result.best['value'])
        number = self.result.best['number']
        trial = torch.load(osp.join(self.work_dir, 'trials', f'trial_{number:04d}',
                                    'epoch_2.pth'), weights_only=False)['state_dict']
        again = torch.load(osp.join(self._tmp.name, 'retrain', 'epoch_2.pth'),
                           weights_only=False)['state_dict']
        self.assertEqual(set(trial), set(again))
        for name, weight in trial.items():
            assert torch.equal(weight, again[name]), name
        # Not trivially equal: the trials differ.
        self.assertGreater(len({r['metric'] for r in self.result.rows}), 1)

    def test_finished_search_resumes_to_nothing(self):
        again = tune.run_search(DIGITS, ['lr=1e-3,3e-2', 'beta+lam=0,0.1'],
                                work_dir=self.work_dir, val_cfg_options=CARVE)
        self.assertEqual(again.rows, self.result.rows)
        for number in range(4):
            self.assertEqual(len(_run_dirs(osp.join(self.work_dir, 'trials',
                                                    f'trial_{number:04d}'))), 1)
        with self.assertRaisesRegex(ValueError, "^study 'toy_davpt_digits' in .* is a search "
                                    'with another space; resume it unchanged'):
            tune.run_search(DIGITS, ['lr=1e-3,1e-2'], work_dir=self.work_dir)


class TestInputErrors(TestCase):
    """Each bad input stops the search with one line before anything is trained or written."""

    def test_errors_before_training(self):
        cases = [
            (dict(space=['foo=1,2']), "unknown key 'foo'"),
            (dict(space=['lr=1e-2:1e-4']), "lr: the range's low 0.01 is above its high 0.0001"),
            (dict(space=['lr=1e-3,1e-2'], metric='mIoU'),
             "--metric 'mIoU': the validation evaluator of .* produces accuracy/top1"),
            (dict(space=['lr=1e-3,1e-2'], cfg_options={'val_evaluator': None}),
             'has no validation split'),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            for index, (kwargs, message) in enumerate(cases):
                work_dir = osp.join(tmp, str(index))
                with self.subTest(message), self.assertRaisesRegex(ValueError, message):
                    tune.run_search(DIGITS, work_dir=work_dir, **kwargs)
                self.assertFalse(osp.exists(work_dir))

    @pytest.mark.slow
    def test_command_line_prints_one_line(self):
        # tools/tune.py's wiring: its options reach run_search, a bad input is one line.
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, TOOL, DIGITS, '--space', 'lr=1e-3,1e-2', '--metric',
                 'accuracy/top5', '--work-dir', osp.join(tmp, 'w')], cwd=REPO,
                env=dict(os.environ, PYTHONPATH=REPO),  # the config imports tests.toy_datasets
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                timeout=SUBPROCESS_TIMEOUT)
            self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
            self.assertRegex(proc.stderr, "(^|\n)tune.py: error: --metric 'accuracy/top5': "
                             'the validation evaluator of .* produces accuracy/top1\n$')
            self.assertFalse(osp.exists(osp.join(tmp, 'w')))


@pytest.mark.slow
class TestPruningAndSegmentation(TestCase):

    def test_pruned_trial_is_recorded(self):
        with tempfile.TemporaryDirectory() as tmp:
            # A threshold above any accuracy prunes the trial at its first validation.
            result = tune.run_search(DIGITS, ['lr=1e-2'], work_dir=tmp, pruner='threshold',
                                     pruner_options=dict(lower=101.0))
            (row, ) = result.rows
            self.assertEqual((row['state'], row['pruned'], row['run']), ('pruned', True, 1))
            self.assertIsNotNone(row['metric'])
            self.assertNotIn('best_config', result.files)
            self.assertFalse(osp.exists(osp.join(tmp, 'best.py')))
            with open(result.files['table_md']) as f:
                self.assertIn(' | 1 | yes | pruned |', f.read())
            (run, ) = _run_dirs(osp.join(tmp, 'trials', 'trial_0000'))
            with open(osp.join(tmp, 'trials', 'trial_0000', run, f'{run}.log')) as f:
                log = f.read()
            self.assertIn('Epoch(val) [1]', log)
            self.assertNotIn('Epoch(train) [2]', log)

    def test_segmentation_by_iterations(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = tune.run_search(SEG, ['lr=1e-3:1e-1:log'], trials=2, work_dir=tmp)
            self.assertEqual(result.metric, 'mIoU')
            self.assertEqual(len(result.rows), 2)
            for row in result.rows:
                self.assertEqual((row['state'], row['unit'], row['run']), ('complete', 'iter', 4))
                self.assertTrue(1e-3 <= row['params']['lr'] <= 1e-1)
            study = optuna.load_study(study_name='toy_davpt_seg',
                                      storage=f'sqlite:///{tmp}/study.db')
            self.assertEqual(sorted(study.trials[0].intermediate_values), [2, 4])
            cfg = Config.fromfile(result.files['best_config'])
            self.assertEqual(cfg.optim_wrapper.optimizer.lr, result.best['params']['lr'])
            with open(result.files['table_md']) as f:
                self.assertIn('| trial | lr | mIoU | iters run | pruned | state |', f.read())


@pytest.mark.slow
class TestTrainSeeds(TestCase):
    """``train_seeds``: every trial trains once per seed and scores the mean; the pruner sees
    the first seed's run."""

    def test_mean_over_seeds(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = tune.run_search(DIGITS, ['lr=1e-2'], work_dir=osp.join(tmp, 'seeds'),
                                     val_cfg_options=CARVE, train_seeds=[3, 4])
            (row, ) = result.rows
            self.assertEqual(row['train_seeds'], [3, 4])
            self.assertEqual(len(row['values']), 2)
            self.assertAlmostEqual(row['metric'], sum(row['values']) / 2)
            self.assertEqual((row['state'], row['run']), ('complete', 4))  # 2 epochs x 2 seeds
            # Oracle: each seed's value is what a one-seed search with that seed scores.
            for seed, value in zip((3, 4), row['values']):
                alone = tune.run_search(
                    DIGITS, ['lr=1e-2'], work_dir=osp.join(tmp, f'alone{seed}'),
                    val_cfg_options=CARVE, cfg_options={'randomness.seed': seed})
                self.assertEqual(alone.rows[0]['metric'], value)
            with open(result.files['table_md']) as f:
                table = f.read()
            self.assertIn('| trial | lr | accuracy/top1 (mean over seeds 3, 4) | per seed | '
                          'epochs run | pruned | state |', table)
            with open(result.files['best_config']) as f:
                self.assertIn('mean over training seeds [3, 4]', f.read())
            # A resumed search must score with the same seeds.
            with self.assertRaisesRegex(ValueError, 'is a search with another train_seeds'):
                tune.run_search(DIGITS, ['lr=1e-2'], work_dir=osp.join(tmp, 'seeds'),
                                val_cfg_options=CARVE, train_seeds=[3])

    def test_pruned_in_the_first_seed(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = tune.run_search(DIGITS, ['lr=1e-2'], work_dir=tmp, pruner='threshold',
                                     pruner_options=dict(lower=101.0), train_seeds=[0, 1])
            (row, ) = result.rows
            self.assertEqual((row['state'], row['run']), ('pruned', 1))
            trial = osp.join(tmp, 'trials', 'trial_0000')
            self.assertEqual(sorted(os.listdir(trial)), ['seed0'])

    def test_bad_seeds(self):
        for seeds in ([], [1, 1]):
            with self.subTest(seeds), self.assertRaisesRegex(
                    ValueError, '^--train-seeds must be distinct seeds'):
                tune.make_spec(DIGITS, ['lr=1e-2'], train_seeds=seeds)


@pytest.mark.slow
class TestResumedSampler(TestCase):

    def test_resumed_search_proposes_new_values(self):
        # A sampled search resumed twice (each time with one more trial): the seeded sampler
        # continues instead of proposing trial 0's values again.
        with tempfile.TemporaryDirectory() as tmp:
            for trials in (1, 2, 3):
                result = tune.run_search(
                    DIGITS, ['lr=1e-4:1e-1:log'], trials=trials, work_dir=tmp,
                    cfg_options={'train_cfg.max_epochs': 1,
                                 'train_dataloader.dataset.indices': (0, 100)})
                self.assertEqual(len(result.rows), trials)
            trials = optuna.load_study(study_name='toy_davpt_digits',
                                       storage=f'sqlite:///{tmp}/study.db').trials
            self.assertEqual([t.state for t in trials], [TrialState.COMPLETE] * 3)
            values = [t.params['lr'] for t in trials]
            self.assertEqual(len(set(values)), 3, values)

            # Every worker seeds its sampler from the count taken once when the search
            # (re)started, not from what it sees when it opens the study: a trial another worker
            # has just started must not change it.
            study = optuna.load_study(study_name='toy_davpt_digits',
                                      storage=f'sqlite:///{tmp}/study.db')
            self.assertEqual(study.user_attrs['sampler_start'], 2)
            study.ask()  # another worker's trial, running
            search = tune.Search(tune.make_spec(
                DIGITS, ['lr=1e-4:1e-1:log'], trials=4, work_dir=tmp, sampler='random'))
            first = [search.open_study(1).sampler.sample_independent(
                study, None, 'lr', optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True))
                     for _ in range(2)]
            expected = search.make_sampler(1, 2).sample_independent(
                study, None, 'lr', optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True))
            self.assertEqual(first, [expected, expected])


KILLED_SEARCH = '''
import os, signal
from mmengine.hooks import Hook
from mmda_vpt import tune
from mmda_vpt.tune import search
build = search.build_runner


class Kill(Hook):
    def after_train_epoch(self, runner):
        os.kill(os.getpid(), signal.SIGKILL)


def build_and_kill_trial_2(cfg):
    runner = build(cfg)
    if cfg.experiment_name == 'trial_0002':
        runner.register_hook(Kill())
    return runner


search.build_runner = build_and_kill_trial_2
tune.run_search({config!r}, {space!r}, work_dir={work_dir!r})
'''


@pytest.mark.slow
class TestKilledSearch(TestCase):

    def test_resume_after_kill(self):
        space = ['lr=1e-3,3e-3,1e-2,3e-2']
        with tempfile.TemporaryDirectory() as tmp:
            script = KILLED_SEARCH.format(config=DIGITS, space=space, work_dir=tmp)
            env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
                       PYTHONPATH=os.pathsep.join(filter(None, [REPO,
                                                                os.environ.get('PYTHONPATH')])))
            killed = subprocess.run([sys.executable, '-c', script], cwd=tmp, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    timeout=SUBPROCESS_TIMEOUT)
            self.assertEqual(killed.returncode, -9, killed.stdout[-3000:])
            storage = f'sqlite:///{tmp}/study.db'
            before = optuna.load_study(study_name='toy_davpt_digits', storage=storage).trials
            self.assertEqual([t.state for t in before],
                             [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING])

            result = tune.run_search(DIGITS, space, work_dir=tmp)
            after = optuna.load_study(study_name='toy_davpt_digits', storage=storage).trials
            # The finished trials are kept as they were, not run again.
            for old in before[:2]:
                self.assertEqual(after[old.number].datetime_complete, old.datetime_complete)
                self.assertEqual(len(_run_dirs(osp.join(tmp, 'trials',
                                                        f'trial_{old.number:04d}'))), 1)
            # The killed trial failed and ran again with its values; then the last grid point.
            self.assertEqual(after[2].state, TrialState.FAIL)
            self.assertEqual(after[3].params, before[2].params)
            self.assertEqual(after[3].user_attrs['retry_of'], 2)
            complete = [t for t in after if t.state == TrialState.COMPLETE]
            self.assertEqual(len(complete), 4)
            self.assertEqual(sorted(t.params['lr'] for t in complete), [1e-3, 3e-3, 1e-2, 3e-2])
            self.assertEqual([r['state'] for r in result.rows],
                             ['complete', 'complete', 'fail', 'complete', 'complete'])
            self.assertIn('best_config', result.files)


class _FakeProcess:
    started = []

    def __init__(self, command, env, stdout, stderr):
        self.started.append((command, env))

    def wait(self):
        return 0


@pytest.mark.slow
class TestWorkers(TestCase):

    def test_one_device_per_worker(self):
        envs = tune.worker_envs(['0', '3'], base={'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '0,1'})
        self.assertEqual(envs, [{'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '0'},
                                {'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '3'}])
        _FakeProcess.started = []
        with tempfile.TemporaryDirectory() as tmp, \
                mock.patch('mmda_vpt.tune.workers.subprocess.Popen', _FakeProcess):
            codes = tune.launch_workers(osp.join(tmp, 'spec.pkl'), ['2', '5', '7'], tmp)
            self.assertEqual(sorted(os.listdir(tmp)),
                             ['worker_2.log', 'worker_5.log', 'worker_7.log'])
        self.assertEqual(codes, [0, 0, 0])
        self.assertEqual([env['CUDA_VISIBLE_DEVICES'] for _, env in _FakeProcess.started],
                         ['2', '5', '7'])
        for index, (command, env) in enumerate(_FakeProcess.started):
            self.assertEqual(command[1:], ['-m', 'mmda_vpt.tune._worker',
                                           osp.join(tmp, 'spec.pkl'), '--index', str(index)])
            self.assertEqual(env['PATH'], os.environ['PATH'])

    def test_spec_travels_as_plain_data(self):
        spec = tune.make_spec(DIGITS, ['lr=1e-4:1e-2:log', 'beta=0,0.1'], work_dir='w')
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'spec.pkl')
            with open(path, 'wb') as f:
                pickle.dump(spec_to_plain(spec), f)
            # Built-in types only: no class of the package is pickled.
            with open(path, 'rb') as f:
                self.assertNotIn(b'mmda_vpt.tune', f.read())
            with open(path, 'rb') as f:
                self.assertEqual(spec_from_plain(pickle.load(f)), spec)

    def test_worker_process_runs_trials(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = {'PYTHONPATH': os.pathsep.join(filter(None, [REPO,
                                                               os.environ.get('PYTHONPATH')]))}
            with mock.patch.dict(os.environ, env):
                result = tune.run_search(DIGITS, ['lr=1e-2'], work_dir=tmp, gpus=['0'])
            (row, ) = result.rows
            self.assertEqual((row['state'], row['device']), ('complete', '0'))
            self.assertTrue(osp.exists(osp.join(tmp, 'worker_0.log')))
