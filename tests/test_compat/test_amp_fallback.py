"""Tests of mmda_vpt.compat.amp_fallback (AmpOptimWrapper without CUDA) and of gradient clipping
by value through mmengine's OptimWrapper (the authors' ``clip_grad_value_(10)``)."""
import copy
import glob
import os.path as osp
import tempfile
from unittest import TestCase, mock

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.runner import Runner

import mmda_vpt  # noqa: F401  (applies the patch)
from mmda_vpt.compat import amp_fallback
from tests.toy_datasets import (DigitsDataset, digits_train_loader,  # noqa: F401  (registers)
                                tiny_classifier_cfg)

AMP = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic',
           optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
           clip_grad=dict(type='value', clip_value=10.0), accumulative_counts=2)
WARNING = 'optim_wrapper type "AmpOptimWrapper" (dtype float16) is replaced by the fp32'


def without_cuda():
    """As on a machine without CUDA, whatever this one has."""
    return mock.patch.object(amp_fallback, 'amp_unavailable', return_value=True)


def with_cuda():
    """As on a machine with CUDA: the patch steps aside and mmengine's own check passes."""
    return [mock.patch.object(amp_fallback, 'amp_unavailable', return_value=False),
            mock.patch('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                       return_value=True)]


class TestAmpFallback(TestCase):

    def test_fp32_wrapper_without_cuda(self):
        model = torch.nn.Linear(4, 2)
        with without_cuda(), mock.patch.object(amp_fallback, 'print_log') as log:
            wrapper = build_optim_wrapper(model, copy.deepcopy(AMP))
        self.assertIs(type(wrapper), OptimWrapper)
        self.assertIsInstance(wrapper.optimizer, torch.optim.AdamW)
        self.assertIs(wrapper.clip_func, torch.nn.utils.clip_grad_value_)
        self.assertEqual(wrapper.clip_grad_kwargs, dict(clip_value=10.0))
        self.assertEqual(wrapper._accumulative_counts, 2)
        self.assertEqual(log.call_count, 1)
        self.assertIn(WARNING, log.call_args.args[0])

    def test_positional_arguments(self):
        optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        with without_cuda():
            wrapper = AmpOptimWrapper('dynamic', 'float16', optimizer=optimizer)
            self.assertIs(type(wrapper), OptimWrapper)
            self.assertIs(wrapper.optimizer, optimizer)
            with self.assertRaisesRegex(TypeError, 'AmpOptimWrapper takes at most 3 positional'):
                AmpOptimWrapper('dynamic', 'float16', False, optimizer)

    def test_untouched_with_cuda(self):
        model = torch.nn.Linear(4, 2)
        patches = with_cuda()
        with patches[0], patches[1], mock.patch.object(amp_fallback, 'print_log') as log:
            wrapper = build_optim_wrapper(model, copy.deepcopy(AMP))
            self.assertIs(type(wrapper), AmpOptimWrapper)
            self.assertEqual(wrapper.cast_dtype, torch.float16)
            self.assertEqual(wrapper.clip_grad_kwargs, dict(clip_value=10.0))
        log.assert_not_called()
        # copy (and pickle) rebuild the wrapper through __new__ without arguments.
        self.assertIs(type(copy.deepcopy(wrapper)), AmpOptimWrapper)

    def test_subclass_not_replaced(self):

        class CustomAmp(AmpOptimWrapper):
            pass

        optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        with without_cuda(), mock.patch(
                'mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                return_value=False):
            with self.assertRaisesRegex(AssertionError, 'only available training on gpu'):
                CustomAmp(optimizer=optimizer)

    def test_patch_once(self):
        new = AmpOptimWrapper.__new__
        amp_fallback.patch_amp_optim_wrapper()
        mmda_vpt.apply_compat_patches()
        self.assertIs(AmpOptimWrapper.__new__, new)


class TestClipGradValue(TestCase):
    """``clip_grad=dict(type='value', clip_value=10.0)``: torch's clip_grad_value_ per element."""

    def _step(self, cfg: dict) -> torch.Tensor:
        param = torch.nn.Parameter(torch.zeros(6))
        model = torch.nn.Module()
        model.param = param
        wrapper = build_optim_wrapper(model, cfg)
        coeffs = torch.tensor([-30., -10.5, -3., 0., 9.9, 25.])
        wrapper.update_params((param * coeffs).sum())
        return param.detach().clone(), coeffs

    def test_gradients_clipped_to_ten(self):
        cfg = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1.0),
                   clip_grad=dict(type='value', clip_value=10.0))
        after, grads = self._step(copy.deepcopy(cfg))
        expected_param = torch.nn.Parameter(torch.zeros(6))
        expected_param.grad = grads.clone()
        torch.nn.utils.clip_grad_value_([expected_param], clip_value=10.0)
        expected = expected_param.grad
        self.assertEqual(expected.abs().max().item(), 10.0)
        self.assertFalse(torch.equal(expected, grads))
        torch.testing.assert_close(after, -expected)  # SGD with lr 1: the step is -grad
        # The same through an AMP config on a machine without CUDA.
        amp = dict(cfg, type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
        with without_cuda():
            after_amp, _ = self._step(amp)
        torch.testing.assert_close(after_amp, after)


@pytest.mark.slow
class TestAmpRunner(TestCase):

    def test_amp_config_trains_without_cuda(self):
        """A tiny runner.train() with an fp16 AMP config: fp32 OptimWrapper, one log line."""
        with tempfile.TemporaryDirectory() as tmp, without_cuda():
            runner = Runner(
                model=tiny_classifier_cfg(10),
                work_dir=tmp,
                train_dataloader=digits_train_loader(),
                train_cfg=dict(by_epoch=True, max_epochs=1),
                optim_wrapper=copy.deepcopy(AMP),
                default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                                   checkpoint=dict(type='CheckpointHook', interval=1)),
                default_scope='mmpretrain',
                randomness=dict(seed=0))
            before = {name: param.detach().clone()
                      for name, param in runner.model.named_parameters() if param.requires_grad}
            runner.train()
            self.assertIs(type(runner.optim_wrapper), OptimWrapper)
            self.assertEqual(runner.optim_wrapper.clip_grad_kwargs, dict(clip_value=10.0))
            self.assertEqual(runner.iter, 3)
            after = dict(runner.model.named_parameters())
            for name, value in before.items():
                self.assertFalse(torch.equal(after[name].detach(), value), name)
            logs = glob.glob(osp.join(tmp, '*', '*.log'))
            self.assertEqual(len(logs), 1)
            with open(logs[0]) as f:
                self.assertEqual(f.read().count(WARNING), 1)
