"""Tests of WarmupCosineLR: timm's CosineLRScheduler as the DA-VPT authors build it."""
import argparse
import glob
import os.path as osp
import sys
import tempfile
from typing import List, Optional
from unittest import TestCase, mock

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, PARAM_SCHEDULERS
from mmengine.runner import Runner
from timm.scheduler import CosineLRScheduler
from timm.scheduler.scheduler_factory import create_scheduler

import mmda_vpt  # noqa: F401  (registers WarmupCosineLR)
from mmda_vpt.engine.schedulers import WarmupCosineLR
from tests.toy_datasets import (DigitsDataset, digits_train_loader,  # noqa: F401  (registers)
                                tiny_classifier_cfg)
from tests.reference_code import reference_module
from tests.utils import reference_dir

# The authors' CUB row (configs/fgvc/vitb_cub200.yaml): peak lr, epochs, warm-up epochs, the
# warm-up's start and the minimum.
CUB = dict(lr=5e-4, epochs=100, warmup_epochs=10, warmup_lr=1e-8, min_lr=1e-9)


def sgd(*lrs: float) -> torch.optim.Optimizer:
    """An optimizer with one parameter group per learning rate."""
    return torch.optim.SGD([dict(params=[torch.nn.Parameter(torch.zeros(1))], lr=lr)
                            for lr in lrs])


def build_ours(optimizer, epochs, warmup_epochs, warmup_lr, min_lr,
               epoch_length: Optional[int] = None) -> WarmupCosineLR:
    """WarmupCosineLR from an epoch-based config, per iteration when ``epoch_length`` is set."""
    cfg = dict(type='WarmupCosineLR', T_max=epochs, warmup_epochs=warmup_epochs,
               warmup_start_lr=warmup_lr, eta_min=min_lr, by_epoch=True, begin=0, end=epochs)
    if epoch_length is not None:
        cfg.update(convert_to_iter_based=True, epoch_length=epoch_length)
    return PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer))


def ours_lrs(optimizer, scheduler, epochs: int, epoch_length: int) -> List[List[float]]:
    """The learning rates each update uses, stepping as mmengine's ParamSchedulerHook does."""
    lrs = []
    for _ in range(epochs):
        for _ in range(epoch_length):
            lrs.append([group['lr'] for group in optimizer.param_groups])
            optimizer.step()
            if not scheduler.by_epoch:
                scheduler.step()
        if scheduler.by_epoch:
            scheduler.step()
    return lrs


def authors_lrs(args: argparse.Namespace, epoch_length: int, *lrs: float) -> List[List[float]]:
    """The learning rates each update uses in the authors' train.py.

    Their scheduler is ``timm.scheduler.create_scheduler(args, optimizer, updates_per_epoch)``,
    stepped with ``step_update(num_updates)`` after every update and ``step(epoch + 1)`` after
    every epoch (train_one_epoch and train in train.py).
    """
    optimizer = sgd(*(lrs or (args.lr, )))
    scheduler, _ = create_scheduler(args, optimizer, updates_per_epoch=epoch_length)
    used, num_updates = [], 0
    for epoch in range(args.epochs):
        for _ in range(epoch_length):
            used.append([group['lr'] for group in optimizer.param_groups])
            optimizer.step()
            num_updates += 1
            scheduler.step_update(num_updates=num_updates, metric=0.)
        scheduler.step(epoch + 1, 0.)
    return used


def cub_args(**changes) -> argparse.Namespace:
    """The scheduler arguments of the authors' CUB row as their params.py holds them."""
    values = dict(sched='cosine', seed=0, sched_on_updates=True, **CUB)
    values.update(changes)
    return argparse.Namespace(**values)


def assert_lrs_equal(actual, expected) -> None:
    torch.testing.assert_close(torch.tensor(actual, dtype=torch.float64),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


class TestWarmupCosineLR(TestCase):

    def test_per_epoch_matches_timm(self):
        """lr at epochs 0, 5, 10, 50, 99 (and every other) as timm's CosineLRScheduler."""
        timm_opt, opt = sgd(5e-4, 5e-3), sgd(5e-4, 5e-3)
        timm_sched = CosineLRScheduler(
            timm_opt, t_initial=100, lr_min=1e-9, cycle_limit=1, warmup_t=10,
            warmup_lr_init=1e-8, warmup_prefix=False, t_in_epochs=True)
        expected = []
        for epoch in range(100):
            if epoch:
                timm_sched.step(epoch)
            expected.append([group['lr'] for group in timm_opt.param_groups])
        lrs = ours_lrs(opt, build_ours(opt, 100, 10, 1e-8, 1e-9), 100, 1)
        assert_lrs_equal(lrs, expected)
        for epoch in (0, 5, 10, 50, 99):
            assert_lrs_equal(lrs[epoch], expected[epoch])
        self.assertEqual(lrs[0], [1e-8, 1e-8])  # an absolute start for every group
        # The fractions of the peak: 0.976 when the warm-up ends, one half at epoch 50.
        self.assertEqual(round(lrs[10][0] / 5e-4, 3), 0.976)
        self.assertEqual(round(lrs[50][0] / 5e-4, 3), 0.5)
        self.assertEqual(round(lrs[50][1] / 5e-3, 3), 0.5)

    def test_per_iteration_matches_authors(self):
        """convert_to_iter_based: every update's lr as the authors' per-update timm schedule."""
        opt = sgd(CUB['lr'])
        ours = ours_lrs(opt, build_ours(opt, 100, 10, 1e-8, 1e-9, epoch_length=3), 100, 3)
        expected = authors_lrs(cub_args(), 3)
        self.assertEqual(len(ours), 300)
        assert_lrs_equal(ours, expected)
        # At an epoch's first iteration, the per-epoch value; inside the epoch it moves on.
        per_epoch = authors_lrs(cub_args(sched_on_updates=False), 3)
        assert_lrs_equal(ours[::3], per_epoch[::3])
        self.assertNotEqual(ours[4], per_epoch[4])

    def test_resume(self):
        opt = sgd(1e-3)
        scheduler = build_ours(opt, 10, 2, 1e-8, 1e-9, epoch_length=5)
        full = ours_lrs(opt, scheduler, 10, 5)

        opt = sgd(1e-3)
        scheduler = build_ours(opt, 10, 2, 1e-8, 1e-9, epoch_length=5)
        first = ours_lrs(opt, scheduler, 4, 5)
        opt_state, sched_state = opt.state_dict(), scheduler.state_dict()
        # The runner's order: build the optimizer and the scheduler, then load their states.
        opt = sgd(1e-3)
        resumed = build_ours(opt, 10, 2, 1e-8, 1e-9, epoch_length=5)
        opt.load_state_dict(opt_state)
        resumed.load_state_dict(sched_state)
        assert_lrs_equal(first + ours_lrs(opt, resumed, 6, 5), full)

    def test_begin_and_end(self):
        opt = sgd(1e-3)
        scheduler = WarmupCosineLR(opt, T_max=4, warmup_epochs=1, warmup_start_lr=1e-6,
                                   eta_min=1e-5, begin=2, end=8)
        lrs = [lr for lr, in ours_lrs(opt, scheduler, 9, 1)]
        self.assertEqual(lrs[:2], [1e-3, 1e-3])  # untouched before begin
        self.assertEqual(lrs[2], 1e-6)  # step 0 of the schedule at begin
        self.assertEqual(lrs[3], scheduler.lr_at(1, 1e-3))
        self.assertAlmostEqual(lrs[4], 1e-5 + 0.5 * (1e-3 - 1e-5), places=15)
        self.assertEqual(lrs[6:], [1e-5] * 3)  # eta_min from T_max on, kept after end

    def test_t_max_from_end_and_no_warmup(self):
        opt = sgd(1e-3)
        scheduler = WarmupCosineLR(opt, warmup_epochs=0, eta_min=0., end=4)
        self.assertEqual(scheduler.T_max, 4)
        lrs = [lr for lr, in ours_lrs(opt, scheduler, 3, 1)]
        self.assertEqual(lrs[0], 1e-3)
        self.assertAlmostEqual(lrs[2], 0.5e-3, places=15)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, 'needs T_max'):
            WarmupCosineLR(sgd(1e-3))
        with self.assertRaisesRegex(ValueError, 'T_max must be positive'):
            WarmupCosineLR(sgd(1e-3), T_max=0, end=3)
        with self.assertRaisesRegex(ValueError, r'warmup_epochs must be in \[0, T_max\)'):
            WarmupCosineLR(sgd(1e-3), T_max=10, warmup_epochs=10)
        with self.assertRaisesRegex(ValueError, 'eta_min must be >= 0'):
            WarmupCosineLR(sgd(1e-3), T_max=20, eta_min=-1.)
        with self.assertRaisesRegex(ValueError, 'epoch_length must be a positive integer'):
            build_ours(sgd(1e-3), 10, 1, 0., 0., epoch_length=0)


@pytest.mark.skipif(reference_dir() is None, reason='the authors\' DA-VPT code is not here')
class TestAuthorsRows(TestCase):
    """Every released YAML row, parsed by the authors' params.py, scheduled as their train.py."""

    def test_every_row_matches(self):
        root = reference_dir()
        params = reference_module('params.py')
        rows = sorted(glob.glob(osp.join(root, 'configs', '*', '*.yaml')))
        self.assertEqual(len(rows), 61)
        per_update = 0
        for row in rows:
            with mock.patch.object(sys, 'argv', ['train.py', '--config', row]), \
                    mock.patch('builtins.print'):
                args = params.parse_args()
            with self.subTest(row=osp.relpath(row, root)):
                self.assertEqual(args.sched, 'cosine')
                epoch_length = 2 if args.sched_on_updates else 1
                per_update += bool(args.sched_on_updates)
                opt = sgd(args.lr)
                scheduler = build_ours(
                    opt, args.epochs, args.warmup_epochs, args.warmup_lr, args.min_lr,
                    epoch_length=epoch_length if args.sched_on_updates else None)
                assert_lrs_equal(ours_lrs(opt, scheduler, args.epochs, epoch_length),
                                 authors_lrs(args, epoch_length))
        self.assertEqual(per_update, 61)  # sched_on_updates: true in every row


@HOOKS.register_module(force=True)
class LrRecorderHook(Hook):
    """Records the learning rate each training iteration runs with."""

    def __init__(self) -> None:
        self.lrs = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs[runner.iter] = runner.optim_wrapper.get_lr()['lr'][0]


def _runner(work_dir: str, name: str, resume_from: Optional[str] = None) -> Runner:
    return Runner(
        model=tiny_classifier_cfg(10),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=digits_train_loader(),
        train_cfg=dict(by_epoch=True, max_epochs=4),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.05)),
        param_scheduler=dict(type='WarmupCosineLR', T_max=4, warmup_epochs=1,
                             warmup_start_lr=1e-8, eta_min=1e-9, by_epoch=True, begin=0, end=4,
                             convert_to_iter_based=True),
        custom_hooks=[dict(type='LrRecorderHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook', interval=1)),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')


@pytest.mark.slow
class TestWarmupCosineLRRunner(TestCase):

    def test_lr_at_each_step_and_resume(self):
        """runner.train(): the lr at step k as the authors' schedule, also after a resume."""
        expected = [lr for lr, in authors_lrs(
            cub_args(lr=5e-3, epochs=4, warmup_epochs=1, min_lr=1e-9), 3)]
        with tempfile.TemporaryDirectory() as tmp:
            runner = _runner(tmp, 'full')
            runner.train()
            recorder = next(h for h in runner.hooks if isinstance(h, LrRecorderHook))
            self.assertEqual(sorted(recorder.lrs), list(range(12)))
            assert_lrs_equal([recorder.lrs[k] for k in range(12)], expected)

            resumed = _runner(tmp, 'resumed', resume_from=osp.join(tmp, 'epoch_2.pth'))
            resumed.train()
            recorder = next(h for h in resumed.hooks if isinstance(h, LrRecorderHook))
            self.assertEqual(sorted(recorder.lrs), list(range(6, 12)))
            assert_lrs_equal([recorder.lrs[k] for k in range(6, 12)], expected[6:])
