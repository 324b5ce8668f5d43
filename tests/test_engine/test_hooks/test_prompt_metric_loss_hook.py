"""Tests of PromptMetricLossHook with stock mmpretrain / mmseg runners."""
import logging
import tempfile
from unittest import TestCase, mock

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.structures import SegDataSample

import mmda_vpt  # noqa: F401
from benchmarks.host_reads import count_host_reads
from mmda_vpt.engine.hooks import ClassPromptMappingHook, PromptMetricLossHook
from mmda_vpt.mapping import ClassPromptMap
from mmda_vpt.mapping.labels import patch_labels
from mmda_vpt.utils.model_access import get_class_prompt_map

from tests.toy_datasets import tiny_classifier_cfg, tiny_segmentor_cfg


def cls_samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def seg_samples(maps):
    samples = []
    for m in maps:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=m[None].long())
        samples.append(sample)
    return samples


def attach(hook, model, num_classes):
    """What before_train does, without a runner."""
    hook.num_classes = num_classes
    hook.ignore_index = 255


def forwarded(cfg: dict, batch: int):
    """A tiny classifier (mmpretrain) or segmentor (mmseg) in training mode after one forward
    of ``batch`` random images, so that its backbone holds the taps."""
    torch.manual_seed(0)
    seg = cfg['type'] == 'EncoderDecoder'
    model = (SEG_MODELS if seg else PRETRAIN_MODELS).build(cfg)
    model.init_weights()
    model.train()
    size = 32 if seg else 16
    model.extract_feat(torch.randn(batch, 3, size, size))
    return model


class TestPromptMetricLossHook(TestCase):

    def test_compute_classification(self):
        torch.manual_seed(0)
        model = PRETRAIN_MODELS.build(tiny_classifier_cfg(bias_tune='kv'))
        model.init_weights()
        model.train()
        hook = PromptMetricLossHook(beta=0.5, lam=0.25)
        attach(hook, model, 10)
        labels = torch.tensor([0, 1, 2, 3, 4, 5])
        model.extract_feat(torch.randn(6, 3, 16, 16))
        losses = hook.compute(model.backbone, cls_samples(labels))
        self.assertEqual(set(losses), {'loss_ml_patch', 'loss_ml_cls'})
        for value in losses.values():
            self.assertTrue(torch.isfinite(value))
            self.assertGreater(value.item(), 0)

        # Gradients reach the prompts and the tuned biases, and nothing frozen.
        sum(losses.values()).backward()
        trainable = dict(model.backbone.named_parameters())
        self.assertGreater(model.backbone.prompts['1'].grad.abs().sum().item(), 0)
        self.assertGreater(model.backbone.prompts['0'].grad.abs().sum().item(), 0)
        self.assertGreater(model.backbone.kv_bias.grad.abs().sum().item(), 0)
        for name, param in trainable.items():
            if not param.requires_grad:
                self.assertIsNone(param.grad, name)

        # beta and lam weight the terms linearly.
        model.extract_feat(torch.randn(6, 3, 16, 16))
        hook_a = PromptMetricLossHook(beta=1.0, lam=1.0)
        hook_b = PromptMetricLossHook(beta=2.0, lam=3.0)
        attach(hook_a, model, 10)
        attach(hook_b, model, 10)
        a = hook_a.compute(model.backbone, cls_samples(labels))
        b = hook_b.compute(model.backbone, cls_samples(labels))
        self.assertAlmostEqual(2 * a['loss_ml_patch'].item(), b['loss_ml_patch'].item(), 5)
        self.assertAlmostEqual(3 * a['loss_ml_cls'].item(), b['loss_ml_cls'].item(), 5)

    def test_options(self):
        model = forwarded(tiny_classifier_cfg(guided_layers=(0, 1)), 4)
        samples = cls_samples([0, 1, 1, 7])
        results = {}
        for prompt_tap in ('query', 'raw'):
            for patch_tap in ('attn', 'input_mean'):
                for topk in (None, 3):
                    hook = PromptMetricLossHook(beta=1, lam=1, prompt_tap=prompt_tap,
                                                patch_tap=patch_tap, patch_topk=topk)
                    attach(hook, model, 10)
                    out = hook.compute(model.backbone, samples)
                    results[(prompt_tap, patch_tap, topk)] = out['loss_ml_patch'].item()
                    self.assertTrue(torch.isfinite(out['loss_ml_cls']))
        self.assertNotEqual(results[('query', 'attn', None)], results[('raw', 'attn', None)])
        self.assertNotEqual(results[('query', 'attn', None)],
                            results[('query', 'input_mean', None)])
        self.assertNotEqual(results[('query', 'attn', None)], results[('query', 'attn', 3)])
        with self.assertRaisesRegex(ValueError, 'prompt_tap must be one of'):
            PromptMetricLossHook(prompt_tap='key')
        with self.assertRaisesRegex(ValueError, 'patch_topk must be None or >= 1'):
            PromptMetricLossHook(patch_topk=0)

    def test_segmentation_labels(self):
        # A 2x2 patch grid over 4x4 pixels; class 3 covers most of patch 0, patch 3 is ignored.
        label = torch.tensor([[3, 3, 1, 1],
                              [3, 0, 1, 2],
                              [0, 0, 255, 255],
                              [0, 2, 255, 2]])
        labels = patch_labels(seg_samples([label]), (2, 2), num_classes=4, ignore_index=255)
        self.assertEqual(labels.tolist(), [[3, 1, 0, -1]])
        with self.assertRaisesRegex(ValueError, r'pixel labels must be in \[0, 4\)'):
            patch_labels(seg_samples([label + 2]), (2, 2), num_classes=4)

    def test_compute_segmentation_all_ignored(self):
        model = forwarded(tiny_segmentor_cfg(), 2)
        hook = PromptMetricLossHook(beta=1.0, lam=1.0)
        attach(hook, model, 4)
        ignored = seg_samples([torch.full((32, 32), 255)] * 2)
        losses = hook.compute(model.backbone, ignored)
        self.assertEqual(losses['loss_ml_patch'].item(), 0.0)
        self.assertEqual(losses['loss_ml_cls'].item(), 0.0)
        sum(losses.values()).backward()  # defined, connected, no NaN
        labelled = seg_samples([torch.randint(0, 4, (32, 32))] * 2)
        model.extract_feat(torch.randn(2, 3, 32, 32))
        losses = hook.compute(model.backbone, labelled)
        self.assertGreater(losses['loss_ml_patch'].item(), 0)

    def test_host_reads_and_map_check(self):
        """One host read of the labels per step (a sync on a GPU) and, with a mapping hook, one
        comparison of its CPU map with the map last checked (no sync: the map lives on the
        host); the map is checked and copied once per map, and a map naming a missing prompt
        is refused."""

        class Mapper:
            class_to_prompt = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])

        torch.manual_seed(0)
        for cfg, samples, classes in (
                (tiny_classifier_cfg(), cls_samples(range(6)), 10),
                (tiny_segmentor_cfg(),
                 seg_samples([torch.randint(0, 4, (32, 32)), torch.full((32, 32), 255)]), 4)):
            model = forwarded(cfg, len(samples))
            hook = PromptMetricLossHook(beta=1.0, lam=1.0)
            attach(hook, model, classes)
            mapper = Mapper() if classes == 10 else None
            hook.compute(model.backbone, samples, mapper)  # checks (and caches) the map
            with count_host_reads() as reads:
                losses = hook.compute(model.backbone, samples, mapper)
                sum(losses.values()).backward()
            expected = {'tolist': 1, 'equal': 1} if classes == 10 else {'tolist': 1}
            self.assertEqual(dict(reads.counts), expected)

        hook = PromptMetricLossHook()
        attach(hook, None, 10)
        mapper = Mapper()
        mapper.class_to_prompt = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
        with self.assertRaisesRegex(ValueError, 'names prompts 0 to 4 but the guided layers '
                                    'have 4 prompts'):
            hook.class_to_prompt(4, torch.device('cpu'), mapper)
        mapper.class_to_prompt = torch.tensor([0, 1, 2])
        with self.assertRaisesRegex(ValueError, 'map has 3 entries for 10 classes'):
            hook.class_to_prompt(4, torch.device('cpu'), mapper)
        # An in-place change of the map is seen too, also through a numpy view.
        mapper.class_to_prompt = torch.zeros(10, dtype=torch.long)
        self.assertEqual(hook.class_to_prompt(4, torch.device('cpu'), mapper).tolist(), [0] * 10)
        mapper.class_to_prompt[3] = 7
        with self.assertRaisesRegex(ValueError, 'names prompts 0 to 7'):
            hook.class_to_prompt(4, torch.device('cpu'), mapper)
        mapper.class_to_prompt = torch.zeros(10, dtype=torch.long)
        hook.class_to_prompt(4, torch.device('cpu'), mapper)
        mapper.class_to_prompt.numpy()[5] = 4
        with self.assertRaisesRegex(ValueError, 'names prompts 0 to 4'):
            hook.class_to_prompt(4, torch.device('cpu'), mapper)
        # So is another number of prompts.
        mapper.class_to_prompt = torch.arange(10) % 3
        self.assertEqual(hook.class_to_prompt(3, torch.device('cpu'), mapper).tolist(),
                         (torch.arange(10) % 3).tolist())
        with self.assertRaisesRegex(ValueError, 'names prompts 0 to 2 but the guided layers '
                                    'have 2 prompts'):
            hook.class_to_prompt(2, torch.device('cpu'), mapper)

    def test_segmentation_patch_labels_once_per_step(self):
        model = forwarded(tiny_segmentor_cfg(guided_layers=(0, 1)), 2)
        self.assertEqual(len(model.backbone.guided_layers), 2)
        hook = PromptMetricLossHook(beta=1.0, lam=1.0)
        attach(hook, model, 4)
        samples = seg_samples([torch.randint(0, 4, (32, 32))] * 2)
        module = 'mmda_vpt.engine.hooks.prompt_metric_loss_hook.patch_labels'
        with mock.patch(module, side_effect=patch_labels) as counted:
            hook.compute(model.backbone, samples)
        self.assertEqual(counted.call_count, 1)

    def _run(self, model, dataset, default_scope, custom_hooks, max_iters, batch_size, seed=0):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        runner = Runner(
            model=model,
            work_dir=tmp.name,
            experiment_name=f'metric_hook_{default_scope}_{id(self)}',
            train_dataloader=dict(dataset=dataset, batch_size=batch_size, num_workers=0,
                                  sampler=dict(type='DefaultSampler', shuffle=True)),
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.01)),
            custom_hooks=custom_hooks,
            default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                               checkpoint=dict(type='CheckpointHook', interval=10**6)),
            default_scope=default_scope,
            randomness=dict(seed=seed),
            log_level='WARNING')
        runner.train()
        return runner

    @pytest.mark.slow
    def test_classifier_end_to_end(self):
        runner = self._run(
            model=tiny_classifier_cfg(),
            dataset=dict(type='DigitsDataset', pipeline=[dict(type='PackInputs')]),
            default_scope='mmpretrain',
            custom_hooks=[dict(type='PromptMetricLossHook', beta=1.0, lam=0.5)],
            max_iters=20,
            batch_size=32)
        hub = runner.message_hub
        patch = hub.get_scalar('train/loss_ml_patch').data[0]
        cls = hub.get_scalar('train/loss_ml_cls').data[0]
        self.assertEqual(len(patch), 20)
        self.assertEqual(len(cls), 20)
        self.assertLess(patch[-5:].mean(), patch[:5].mean())
        # The head's cross-entropy is logged as 'loss_cls', and 'loss' is the optimized total.
        ce = hub.get_scalar('train/loss_cls').data[0]
        self.assertTrue(((ce > 0) & (ce < 5)).all())
        total = hub.get_scalar('train/loss').data[0]
        np.testing.assert_allclose(total, ce + patch + cls, rtol=1e-5)
        # The loss wrapper is removed after training: validation/test see the stock model.
        self.assertNotIn('loss', runner.model.__dict__)

    @pytest.mark.slow
    def test_zero_weights_and_a_fixed_map_are_vpt_deep(self):
        # The control: DA-VPT with beta = lambda = 0 and no map update is VPT-Deep, seed for
        # seed (same data order, same head initialization, the same trained prompts).
        dataset = dict(type='DigitsDataset', pipeline=[dict(type='PackInputs')])
        for seed in (0, 1):
            trained = {}
            for name, backbone, hooks in (
                    ('vpt', dict(guided_layers=()), []),
                    ('davpt', dict(guided_layers=(0, 1)),
                     [dict(type='ClassPromptMappingHook', first_update=None,
                           pipeline=[dict(type='PackInputs')]),
                      dict(type='PromptMetricLossHook', beta=0.0, lam=0.0)])):
                runner = self._run(model=tiny_classifier_cfg(**backbone), dataset=dataset,
                                   default_scope='mmpretrain', custom_hooks=hooks,
                                   max_iters=6, batch_size=16, seed=seed)
                trained[name] = {n: p.detach().clone()
                                 for n, p in runner.model.named_parameters() if p.requires_grad}
            self.assertEqual(set(trained['vpt']), set(trained['davpt']))
            for key, value in trained['vpt'].items():
                self.assertTrue(torch.equal(value, trained['davpt'][key]), (seed, key))
            self.assertGreater(len(trained['vpt']), 2)

    @pytest.mark.slow
    def test_grad_norm_logging(self):
        runner = self._run(
            model=tiny_classifier_cfg(guided_layers=(0, 1)),
            dataset=dict(type='DigitsDataset', pipeline=[dict(type='PackInputs')]),
            default_scope='mmpretrain',
            custom_hooks=[dict(type='PromptMetricLossHook', beta=0.5, lam=0.25,
                               log_grad_norms=2)],
            max_iters=4,
            batch_size=16)
        hub = runner.message_hub
        hook = next(h for h in runner.hooks if isinstance(h, PromptMetricLossHook))
        keys = {f'{term}/layer{layer}' for term in ('ce', 'ml_patch', 'ml_cls')
                for layer in (0, 1)} | {'ce/head'}
        self.assertEqual(set(hook.grad_norms), keys)
        for key in keys:
            values = hub.get_scalar(f'train/grad_norm/{key}').data[0]
            self.assertEqual(len(values), 2, key)  # iterations 2 and 4
            self.assertTrue(np.isfinite(values).all() and (values > 0).all(), key)
        # Oracle: the same gradients by hand on the model as it is after training.
        model = runner.model
        batch = next(iter(runner.train_dataloader))
        data = model.data_preprocessor(batch, True)
        hook.before_train(runner)
        hook._iter = 1
        try:
            losses = model.loss(data['inputs'], data['data_samples'])
        finally:
            hook.after_train(runner)
        for term, loss in (('ml_patch', losses['loss_ml_patch']), ('ce', losses['loss_cls'])):
            grad = torch.autograd.grad(loss, model.backbone.prompts['1'], retain_graph=True)[0]
            self.assertAlmostEqual(hook.grad_norms[f'{term}/layer1'], grad.norm().item(),
                                   places=5)
        with self.assertRaisesRegex(ValueError, 'log_grad_norms must be None or an int >= 1'):
            PromptMetricLossHook(log_grad_norms=0)

    @pytest.mark.slow
    def test_segmentor_end_to_end(self):
        runner = self._run(
            model=tiny_segmentor_cfg(),
            dataset=dict(type='ToySegDataset', pipeline=[dict(type='PackSegInputs')]),
            default_scope='mmseg',
            custom_hooks=[dict(type='PromptMetricLossHook', beta=1.0, lam=1.0)],
            max_iters=5,
            batch_size=2)
        hub = runner.message_hub
        for key in ('train/loss_ml_patch', 'train/loss_ml_cls'):
            values = hub.get_scalar(key).data[0]
            self.assertEqual(len(values), 5)
            self.assertTrue((values > 0).all(), key)

    def test_requires_davpt_backbone(self):
        model = tiny_classifier_cfg()
        model['backbone'] = dict(type='VisionTransformer', arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64), img_size=16,
                                 patch_size=4)
        with self.assertRaisesRegex(TypeError, 'needs a model whose backbone is DAVPTViT, but '
                                    'ImageClassifier has VisionTransformer'):
            self._run(model=model,
                      dataset=dict(type='DigitsDataset', pipeline=[dict(type='PackInputs')]),
                      default_scope='mmpretrain',
                      custom_hooks=[dict(type='PromptMetricLossHook')],
                      max_iters=1,
                      batch_size=4)

    def test_map_reaches_the_loss_through_the_model(self):
        """The mapping hook keeps its map on the model; the metric loss reads it there."""
        torch.manual_seed(0)
        model = PRETRAIN_MODELS.build(tiny_classifier_cfg(num_classes=4, num_guided_prompts=2))
        model.init_weights()
        model.train()
        class_map = ClassPromptMap(4, 2, 32)
        class_map.set_state(torch.tensor([1, 1, 0, 0]), torch.zeros(2, 32), torch.zeros(4, 32),
                            torch.ones(4, dtype=torch.bool))
        mapper, hook = ClassPromptMappingHook(), PromptMetricLossHook()
        mapper.attach(model, class_map)
        hook.attach(model)
        self.assertIs(get_class_prompt_map(model), class_map)
        with mock.patch.object(hook, 'class_to_prompt', wraps=hook.class_to_prompt) as used:
            losses = model.loss(torch.randn(4, 3, 16, 16), cls_samples(range(4)))
        self.assertIs(used.call_args.args[2], class_map)
        self.assertIn('loss_ml_patch', losses)
        mapper.detach(model)
        hook.detach(model)
        self.assertIsNone(get_class_prompt_map(model))
        self.assertNotIn('loss_ml_patch', model.loss(torch.randn(4, 3, 16, 16),
                                                     cls_samples(range(4))))

    def test_fallback_map_warns_once(self):
        hook = PromptMetricLossHook()
        hook.num_classes = 10
        logger = MMLogger.get_current_instance()
        with self.assertLogs(logger, level=logging.WARNING) as logs:
            first = hook.class_to_prompt(4, torch.device('cpu'))
            hook.class_to_prompt(4, torch.device('cpu'))
        self.assertEqual(first.tolist(), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
        self.assertEqual(len(logs.records), 1)
