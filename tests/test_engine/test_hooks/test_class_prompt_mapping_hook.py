"""Tests of ClassPromptMappingHook: unit checks and real runner.train() runs on tiny models."""
import itertools
import logging
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
from types import SimpleNamespace
from unittest import TestCase, mock

import pytest
import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS as PRETRAIN_DATASETS
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample

import mmda_vpt  # noqa: F401
from benchmarks.host_reads import count_host_reads
from mmda_vpt.engine.hooks import ClassPromptMappingHook
from mmda_vpt.mapping.initial_pass_loader import select_per_class
from mmda_vpt.engine.hooks.class_prompt_mapping_hook import CHECKPOINT_KEY, guided_prompt_count
from mmda_vpt.models.backbones.prompted_vit_mixin import PromptTaps
from mmda_vpt.mapping.class_kmeans import update_class_map
from mmda_vpt.mapping.kmeans import normalize_rows
from mmda_vpt.mapping.class_prompt_map import ClassPromptMap

from tests.toy_datasets import DigitsDataset, tiny_classifier_cfg, tiny_segmentor_cfg
from tests.utils import REPO

PACK = [dict(type='PackInputs')]


@HOOKS.register_module(force=True)
class MappingRecorderHook(Hook):
    """Keeps a copy of the mapping hook's state after before_train and after every epoch."""

    priority = 'LOW'  # after ClassPromptMappingHook (NORMAL)

    def before_train(self, runner):
        self.mapping = next(h for h in runner.hooks if isinstance(h, ClassPromptMappingHook))
        self.states = {0: self._state()}

    def after_train_epoch(self, runner):
        self.states[runner.epoch + 1] = self._state()

    def _state(self):
        hook = self.mapping
        return dict(class_to_prompt=hook.class_to_prompt.clone(),
                    centroids=hook.centroids.clone(),
                    class_features=hook.class_features.clone(),
                    has_feature=hook.has_feature.clone(),
                    last_update=dict(hook.last_update))


@PRETRAIN_DATASETS.register_module(force=True)
class LabelledDigitsDataset(DigitsDataset):
    """The digits, telling their labels (for ClassBalancedSampler)."""

    def get_cat_ids(self, idx):
        return [self.get_data_info(idx)['gt_label']]


def digits(indices=(0, 200), classes=10, pipeline=None, dataset_type='DigitsDataset'):
    return dict(type=dataset_type, indices=indices, classes=classes,
                pipeline=pipeline or PACK)


_names = itertools.count()


def make_runner(work_dir, model, dataset, max_epochs=2, hook=None, checkpoint_interval=10**6,
                resume_from=None, with_test=False, name='map', batch_size=16, sampler=None):
    hook = dict(type='ClassPromptMappingHook', **(hook or {}))
    extra = {}
    if with_test:
        extra = dict(test_dataloader=dict(dataset=digits(), batch_size=16, num_workers=0,
                                          sampler=dict(type='DefaultSampler', shuffle=False)),
                     test_cfg=dict(), test_evaluator=dict(type='Accuracy'))
    return Runner(
        model=model,
        work_dir=work_dir,
        experiment_name=f'{name}_{next(_names)}',
        train_dataloader=dict(dataset=dataset, batch_size=batch_size, num_workers=0,
                              sampler=sampler or dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3)),
        custom_hooks=[hook, dict(type='PromptMetricLossHook'),
                      dict(type='MappingRecorderHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=checkpoint_interval)),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING',
        **extra)


def recorder(runner):
    return next(h for h in runner.hooks if isinstance(h, MappingRecorderHook))


def mapping_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, ClassPromptMappingHook))


def taps_of(cls_final):
    return PromptTaps(guided_layers=(1, ), cls_final=cls_final,
                      patch_final=cls_final[:, None].repeat(1, 4, 1), patch_resolution=(2, 2))


class TestClassPromptMappingHook(TestCase):

    def test_init_errors(self):
        with self.assertRaisesRegex(ValueError, 'samples_per_class must be None or an int >= 1'):
            ClassPromptMappingHook(samples_per_class=0)
        with self.assertRaisesRegex(ValueError, 'interval must be None or an int >= 1'):
            ClassPromptMappingHook(interval=1.5)
        with self.assertRaisesRegex(ValueError, 'metric must be one of'):
            ClassPromptMappingHook(metric='l1')
        with self.assertRaisesRegex(ValueError, 'n_init and max_iter must be >= 1'):
            ClassPromptMappingHook(n_init=0)
        with self.assertRaisesRegex(ValueError, r"feature_window must be one of "
                                    r"\('since_update', 'last_epoch'\), got 'epoch'"):
            ClassPromptMappingHook(feature_window='epoch')
        with self.assertRaisesRegex(ValueError, r"unseen_classes must be one of "
                                    r"\('keep', 'random'\), got 'drop'"):
            ClassPromptMappingHook(unseen_classes='drop')
        with self.assertRaisesRegex(ValueError, "pipeline must be None, a list of transforms "
                                    "or 'train', got 'test'"):
            ClassPromptMappingHook(pipeline='test')
        with self.assertRaisesRegex(ValueError, 'feature_norm must be one of'):
            ClassPromptMappingHook(feature_norm='batch')
        with self.assertRaisesRegex(ValueError, 'init must be one of'):
            ClassPromptMappingHook(init='kmeans')
        hook = ClassPromptMappingHook(feature_norm='layer', init='random', pipeline='train')
        self.assertEqual((hook.map_options.feature_norm, hook.map_options.init, hook.pipeline),
                         ('layer', 'random', 'train'))

    def test_pretrained_view_is_the_plain_vit(self):
        torch.manual_seed(0)
        model = PRETRAIN_MODELS.build(tiny_classifier_cfg(num_prompts=3, num_guided_prompts=5))
        model.init_weights()
        backbone = model.backbone
        self.assertEqual(guided_prompt_count(backbone), 5)
        plain = PRETRAIN_MODELS.build(dict(
            type='VisionTransformer', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                                feedforward_channels=64),
            img_size=16, patch_size=4, norm_cfg=dict(type='LN', eps=1e-6)))
        missing, unexpected = plain.load_state_dict(backbone.state_dict(), strict=False)
        self.assertEqual(missing, [])
        self.assertEqual(sorted(unexpected), ['prompts.0', 'prompts.1'])
        plain.eval()
        model.eval()
        images = torch.randn(3, 3, 16, 16)
        with torch.no_grad():
            expected = plain(images)[-1]
            with backbone.prompts_disabled():
                backbone(images)
                cls_final = backbone.taps.cls_final
            prompted = backbone(images)[-1]
        assert torch.allclose(cls_final, expected, atol=1e-5)
        self.assertFalse(torch.allclose(prompted, expected, atol=1e-3))
        # Everything is restored.
        self.assertEqual(backbone.prompt_counts, (3, 5))
        self.assertFalse(backbone.training)
        self.assertIsNone(backbone.taps)

    def test_padded_samples_counted_once(self):
        hook = ClassPromptMappingHook()
        hook.num_classes = 3
        hook.map = ClassPromptMap(3, 2, 2)
        hook.map.reset_window()
        # 5 samples on 2 ranks, batches of 2: DefaultSampler pads the stream to 6 positions;
        # rank 1 holds positions 1, 3 and 5, and 5 (>= 5) repeats a sample of rank 0.
        hook._dedupe, hook._rank, hook._world_size = True, 1, 2
        hook._dataset_len, hook._loader_batch, hook._loader_len = 5, 2, 2
        model = SimpleNamespace(backbone=SimpleNamespace())

        def step(batch_idx, feats, labels):
            hook.before_train_iter(None, batch_idx)
            model.backbone.taps = taps_of(torch.tensor(feats))
            hook._accumulate(model, None, [DataSample().set_gt_label(x) for x in labels], {})

        step(0, [[1., 0.], [0., 1.]], [0, 1])
        step(1, [[2., 0.]], [0])  # the padded position
        self.assertEqual(hook.map.counts.tolist(), [1.0, 1.0, 0.0])
        assert torch.allclose(hook.map.sums[0], torch.tensor([1.0, 0.0], dtype=torch.float64))
        step(3, [[2., 0.]], [0])  # iteration-based loop, second pass: padded again
        self.assertEqual(hook.map.counts.tolist(), [1.0, 1.0, 0.0])
        hook._rank = 0  # rank 0 holds positions 0, 2, 4: all real
        step(1, [[5., 5.]], [2])
        self.assertEqual(hook.map.counts.tolist(), [1.0, 1.0, 1.0])

    def test_unseen_class_keeps_prompt_and_feature(self):
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(2, 8)) * 3
        features = normalize_rows(np.concatenate([centres[[0, 0, 0]], centres[[1, 1, 1]]]))
        hook = ClassPromptMappingHook()
        hook.num_classes, hook.num_prompts = 6, 2
        hook.map = ClassPromptMap(6, 2, 8)
        hook.map.set_state(torch.tensor([0, 0, 0, 1, 1, 1]),
                           torch.from_numpy(normalize_rows(centres)).float(),
                           torch.from_numpy(features).float(), torch.ones(6, dtype=torch.bool))
        hook.map.reset_window()
        # Classes 0, 1, 3, 4 are seen; class 0 now looks like group 1; 2 and 5 are not seen.
        seen = {0: centres[1], 1: centres[0], 3: centres[1], 4: centres[1]}
        for cls, feat in seen.items():
            hook.map.add(torch.tensor(feat)[None] * 2, torch.tensor([cls]))
        logger = MMLogger.get_current_instance()
        with self.assertLogs(logger, level=logging.INFO) as logs:
            hook._update('epoch 1')
        self.assertEqual(hook.class_to_prompt.tolist(), [1, 0, 0, 1, 1, 1])
        assert torch.allclose(hook.class_features[2], torch.from_numpy(features[2]).float())
        self.assertEqual(hook.last_update['changed'], 1)
        self.assertEqual(hook.last_update['unseen'], 2)
        self.assertEqual(hook.last_update['cluster_sizes'], [2, 4])
        self.assertRegex('\n'.join(logs.output), r'\[epoch 1\]: k-means [0-9.]+ ms, 1 of 6 '
                         r'classes changed prompt, 2 classes without a sample in the window; '
                         r'classes per prompt \[2, 4\]')
        self.assertEqual(hook.map.counts.sum().item(), 0)  # the window starts again

    def test_unseen_classes_random(self):
        """'random': an unseen class takes no part and gets a random prompt at every update."""
        rng = np.random.default_rng(0)
        features = rng.normal(size=(12, 8))
        later = features + 0.3 * rng.normal(size=features.shape)
        seen = np.arange(12) < 9  # classes 9, 10 and 11 are not seen

        def run(unseen_classes, updates=8):
            hook = ClassPromptMappingHook(unseen_classes=unseen_classes, seed=5)
            hook.num_classes, hook.num_prompts = 12, 3
            hook.map = ClassPromptMap(12, 3, 8, seed=5)
            hook.map.initialize(torch.from_numpy(features), torch.ones(12, dtype=torch.float64))
            hook.map.reset_window()
            maps = []
            for _ in range(updates):
                previous = (hook.class_to_prompt.numpy().copy(), hook.centroids.double().numpy())
                hook.map.add(torch.from_numpy(later[seen]), torch.arange(9))
                hook._update('epoch')
                maps.append((previous, hook.class_to_prompt.numpy().copy()))
            return hook, maps

        hook, maps = run('random')
        for (previous, centroids), mapping in maps:
            # The seen classes are clustered on their own, the unseen ones left out.
            expected = update_class_map(normalize_rows(later), previous, centroids, valid=seen)
            self.assertEqual(mapping[seen].tolist(), expected.class_to_prompt[seen].tolist())
            self.assertTrue(((mapping >= 0) & (mapping < 3)).all())
        drawn = {tuple(mapping[~seen]) for _, mapping in maps}
        self.assertGreater(len(drawn), 1)  # a new draw at every update
        self.assertEqual(hook.last_update['unseen'], 3)
        # Seeded by the seed and the number of maps: the same draws again (and on resume).
        _, again = run('random')
        self.assertEqual([m.tolist() for _, m in again], [m.tolist() for _, m in maps])
        # 'keep' (the default): they keep their prompt.
        _, kept = run('keep')
        initial = kept[0][0][0]
        self.assertEqual({tuple(m[~seen]) for _, m in kept}, {tuple(initial[~seen])})

    def test_feature_window(self):
        for window, kept in (('since_update', True), ('last_epoch', False)):
            with self.subTest(window=window):
                hook = ClassPromptMappingHook(feature_window=window)
                hook.map = ClassPromptMap(4, 2, 8)
                hook.map.reset_window()
                hook.map.add(torch.ones(2, 8), torch.tensor([0, 1]))
                hook.before_train_epoch(None)
                self.assertEqual(hook.map.counts.sum().item(), 2.0 if kept else 0.0)
                self.assertEqual(hook._epoch_start[1].sum().item(), 2.0 if kept else 0.0)
                # Iteration-based loops: the window restarts with every pass over the data.
                hook._by_epoch, hook._rank_epoch_len = False, 4
                hook.map.add(torch.ones(1, 8), torch.tensor([2]))
                before = hook.map.counts.sum().item()
                hook.before_train_iter(SimpleNamespace(iter=5), 1)
                self.assertEqual(hook.map.counts.sum().item(), before)
                hook.before_train_iter(SimpleNamespace(iter=8), 0)
                self.assertEqual(hook.map.counts.sum().item(), before if kept else 0.0)

    def test_iteration_epoch_is_this_ranks_share(self):
        # An InfiniteSampler's length is the whole dataset's; one epoch of a rank is its share.
        from mmengine.runner import IterBasedTrainLoop
        from torch.utils.data import DataLoader
        data = list(range(20))
        # Length 10 on every rank: the whole dataset's, as with an InfiniteSampler (not built
        # here: it draws a seed from the global random state, which later tests would see).
        loader = DataLoader(data, batch_size=2)
        runner = SimpleNamespace(train_dataloader=loader,
                                 train_loop=IterBasedTrainLoop.__new__(IterBasedTrainLoop))
        for world, epoch in ((1, 10), (2, 5), (4, 3)):
            with self.subTest(world=world):
                hook = ClassPromptMappingHook(feature_window='last_epoch')
                hook._world_size = world
                with mock.patch(f'{ClassPromptMappingHook.__module__}.print_log'):
                    hook._setup_loop(runner)  # no logger of its own outlives this test
                self.assertEqual((hook._rank_epoch_len, hook._every), (epoch, epoch))

    def test_add_leaves_unlabelled_rows_out(self):
        sums = torch.zeros(3, 2, dtype=torch.float64)
        counts = torch.zeros(3, dtype=torch.float64)
        feats = torch.tensor([[1.0, 2.0], [float('nan'), 5.0], [3.0, 4.0], [1.0, 1.0]])
        with count_host_reads() as reads:
            ClassPromptMap.add_to(sums, counts, feats, torch.tensor([0, -1, 0, 2]))
        self.assertEqual(reads.total, 0)
        self.assertEqual(sums.tolist(), [[4.0, 6.0], [0.0, 0.0], [1.0, 1.0]])
        self.assertEqual(counts.tolist(), [2.0, 0.0, 1.0])

    @pytest.mark.slow
    def test_initial_map_is_the_plain_vit_on_the_test_pipeline(self):
        """Initial features: frozen ViT, prompts off, final-norm CLS, test pipeline, k per class."""
        flip = [dict(type='RandomFlip', prob=1.0, direction='horizontal'), dict(type='PackInputs')]
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(tmp, tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3),
                                 digits(pipeline=flip), max_epochs=1,
                                 hook=dict(samples_per_class=4), with_test=True)
            runner.train()
            initial = recorder(runner).states[0]
            hook = mapping_hook(runner)
        self.assertEqual(initial['last_update']['class_counts'].tolist(), [4.0] * 10)
        self.assertEqual(hook.initial_pass['images'], 40)
        self.assertEqual(hook.initial_pass['images_per_class'].tolist(), [4] * 10)
        # Oracle: mmpretrain's own ViT with the frozen weights on the un-flipped images that
        # the hook's seeded choice picks.
        backbone = runner.model.backbone
        plain = PRETRAIN_MODELS.build(dict(
            type='VisionTransformer', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                                feedforward_channels=64),
            img_size=16, patch_size=4, norm_cfg=dict(type='LN', eps=1e-6)))
        plain.load_state_dict(backbone.state_dict(), strict=False)
        plain.eval()
        dataset = runner.train_dataloader.dataset
        labels = np.array([info['gt_label'] for info in dataset.data_list])
        chosen = select_per_class(labels, 10, 4, seed=0)
        images = torch.stack([torch.from_numpy(dataset.data_list[i]['img']).permute(2, 0, 1)
                              for i in chosen]).float()
        with torch.no_grad():
            feats = plain((images - 127.5) / 127.5)[-1].double().numpy()
        means = np.stack([feats[labels[chosen] == c].mean(0) for c in range(10)])
        assert torch.allclose(initial['class_features'],
                              torch.from_numpy(normalize_rows(means)).float(), atol=1e-5)
        self.assertEqual(tuple(initial['centroids'].shape), (3, 32))
        self.assertEqual(initial['class_to_prompt'].dtype, torch.long)
        self.assertEqual(hook.num_updates, 2)
        self.assertEqual(hook.last_update['when'], 'epoch 1')
        self.assertEqual(sum(hook.last_update['cluster_sizes']), 10)

    @pytest.mark.slow
    def test_resume_gives_the_uninterrupted_map(self):
        model = tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3)
        with tempfile.TemporaryDirectory() as tmp:
            full = make_runner(osp.join(tmp, 'full'), model, digits(), max_epochs=2,
                               checkpoint_interval=1, hook=dict(pipeline=PACK), name='full')
            full.train()
            states = recorder(full).states
            ckpt = torch.load(osp.join(tmp, 'full', 'epoch_1.pth'), map_location='cpu',
                              weights_only=True)
            saved = ckpt[CHECKPOINT_KEY]
            self.assertTrue(torch.equal(saved['class_to_prompt'], states[1]['class_to_prompt']))
            self.assertTrue(torch.equal(saved['centroids'], states[1]['centroids']))

            resumed = make_runner(osp.join(tmp, 'resumed'), model, digits(), max_epochs=2,
                                  hook=dict(pipeline=PACK),
                                  resume_from=osp.join(tmp, 'full', 'epoch_1.pth'),
                                  name='resumed')
            resumed.train()
            after = recorder(resumed).states
            # No initial pass on resume: the restored map is the epoch-1 map.
            self.assertTrue(torch.equal(after[0]['class_to_prompt'], states[1]['class_to_prompt']))
            self.assertTrue(torch.equal(after[2]['class_to_prompt'], states[2]['class_to_prompt']))
            self.assertTrue(torch.equal(after[2]['centroids'], states[2]['centroids']))
            self.assertTrue(torch.equal(after[2]['class_features'], states[2]['class_features']))
            # The map did move during training (the check above is not about a frozen map).
            self.assertFalse(torch.equal(states[2]['centroids'], states[1]['centroids']))

            # Testing a checkpoint needs neither hook.
            tester = Runner(model=model, work_dir=osp.join(tmp, 'test'),
                            test_dataloader=dict(dataset=digits(), batch_size=16, num_workers=0,
                                                 sampler=dict(type='DefaultSampler',
                                                              shuffle=False)),
                            test_cfg=dict(), test_evaluator=dict(type='Accuracy'),
                            load_from=osp.join(tmp, 'full', 'epoch_2.pth'),
                            default_scope='mmpretrain', log_level='WARNING')
            metrics = tester.test()
            self.assertIn('accuracy/top1', metrics)

    def test_resume_with_other_class_count_fails(self):
        hook = ClassPromptMappingHook()
        model = PRETRAIN_MODELS.build(tiny_classifier_cfg(num_classes=10, num_guided_prompts=3))
        state = dict(class_to_prompt=torch.zeros(7, dtype=torch.long),
                     centroids=torch.zeros(3, 32), class_features=torch.zeros(7, 32),
                     has_feature=torch.ones(7, dtype=torch.bool), num_updates=2)
        runner = SimpleNamespace(model=model, _resume=True)
        with self.assertRaisesRegex(ValueError, 'the checkpoint maps 7 classes to 3 prompts '
                                    'of dimension 32, but the model has 10 classes and 3 guided '
                                    'prompts of dimension 32; resume with the same model'):
            hook.after_load_checkpoint(runner, {CHECKPOINT_KEY: state})
        runner._resume = False  # load_from: the map is recomputed instead
        hook.after_load_checkpoint(runner, {CHECKPOINT_KEY: state})
        self.assertIsNone(hook.class_to_prompt)

    def test_checkpoint_keeps_the_window(self):
        model = PRETRAIN_MODELS.build(tiny_classifier_cfg(num_classes=4, num_guided_prompts=2))
        hook = ClassPromptMappingHook()
        hook.num_classes, hook.num_prompts = 4, 2
        hook.map = ClassPromptMap(4, 2, 32)
        hook.map.set_state(torch.tensor([0, 1, 0, 1]), torch.randn(2, 32), torch.randn(4, 32),
                           torch.ones(4, dtype=torch.bool))
        hook.map.reset_window()
        hook.map.add(torch.ones(2, 32), torch.tensor([1, 3]))
        # Iteration-based: the running window is saved and comes back on rank 0 at resume.
        hook._by_epoch = False
        checkpoint = {}
        hook.before_save_checkpoint(None, checkpoint)
        state = checkpoint[CHECKPOINT_KEY]
        self.assertEqual(state['window_counts'].tolist(), [0.0, 1.0, 0.0, 1.0])
        restored = ClassPromptMappingHook()
        restored.after_load_checkpoint(SimpleNamespace(model=model, _resume=True), checkpoint)
        self.assertTrue(torch.equal(restored.class_to_prompt, hook.class_to_prompt))
        self.assertTrue(torch.equal(restored.centroids, hook.centroids))
        self.assertEqual(restored._pending_window[1].tolist(), [0.0, 1.0, 0.0, 1.0])
        # Epoch-based, saved inside an epoch: the epoch is re-run on resume, so the window is
        # saved as it was when the epoch began.
        hook._by_epoch = True
        hook.before_train_epoch(None)
        hook.map.add(torch.ones(1, 32), torch.tensor([0]))
        checkpoint = {}
        hook.before_save_checkpoint(None, checkpoint)
        self.assertEqual(checkpoint[CHECKPOINT_KEY]['window_counts'].tolist(),
                         [0.0, 1.0, 0.0, 1.0])

    @pytest.mark.slow
    def test_fewer_classes_than_prompts(self):
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(tmp, tiny_classifier_cfg(num_classes=2, num_prompts=2,
                                                          num_guided_prompts=3),
                                 digits(indices=(0, 100), classes=2), max_epochs=2,
                                 hook=dict(pipeline=PACK, samples_per_class=None))
            with self.assertLogs(runner.logger, level=logging.WARNING) as logs:
                runner.train()
        states = recorder(runner).states
        sizes = np.bincount([d['gt_label'] for d in runner.train_dataloader.dataset.data_list])
        # samples_per_class=None: the initial pass sees the whole training set.
        self.assertEqual(states[0]['last_update']['class_counts'].tolist(), sizes.tolist())
        for epoch in range(3):
            self.assertEqual(states[epoch]['class_to_prompt'].tolist(), [0, 1])
        self.assertEqual(states[2]['last_update']['cluster_sizes'], [1, 1, 0])
        assert torch.allclose(states[2]['centroids'][:2], states[2]['class_features'])
        warnings = [r for r in logs.output if '2 classes for 3 prompts' in r]
        self.assertEqual(len(warnings), 1)

    @pytest.mark.slow
    def test_missing_class_and_small_classes(self):
        """Class 9 never occurs; every other class has fewer samples than samples_per_class."""
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(tmp, tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3),
                                 digits(indices=(0, 60), classes=9), max_epochs=2,
                                 hook=dict(samples_per_class=10, pipeline=PACK))
            with self.assertLogs(runner.logger, level=logging.WARNING) as logs:
                runner.train()
        sizes = np.bincount(np.array([d['gt_label'] for d in
                                      runner.train_dataloader.dataset.data_list]), minlength=10)
        self.assertTrue((sizes[:9] < 10).all() and sizes[9] == 0)
        states = recorder(runner).states
        self.assertEqual(states[0]['last_update']['class_counts'].tolist(),
                         sizes.astype(float).tolist())
        self.assertFalse(bool(states[2]['has_feature'][9]))
        self.assertEqual({int(states[e]['class_to_prompt'][9]) for e in range(3)}, {9 % 3})
        self.assertEqual(states[2]['last_update']['unseen'], 1)
        self.assertTrue(any('classes [9] have no sample in the training set' in r
                            for r in logs.output))

    @pytest.mark.slow
    def test_first_update(self):
        model = tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3)
        for first_update, updated in ((1, [1, 2, 3]), (2, [2, 3]), (None, [])):
            with self.subTest(first_update=first_update), tempfile.TemporaryDirectory() as tmp:
                runner = make_runner(tmp, model, digits(indices=(0, 64)), max_epochs=3,
                                     hook=dict(pipeline=PACK, first_update=first_update))
                runner.train()
                hook = mapping_hook(runner)
                self.assertEqual(hook.num_updates, 1 + len(updated))
                states = recorder(runner).states
                whens = {e: states[e]['last_update']['when'] for e in range(4)}
                self.assertEqual(sorted({w for w in whens.values() if w != 'initial'}),
                                 [f'epoch {e}' for e in updated])
                if first_update is None:
                    self.assertTrue(torch.equal(states[3]['class_to_prompt'],
                                                states[0]['class_to_prompt']))
                    self.assertTrue(torch.equal(states[3]['centroids'], states[0]['centroids']))
        with self.assertRaisesRegex(ValueError, 'first_update must be None or an int >= 1'):
            ClassPromptMappingHook(first_update=0)
        with self.assertRaisesRegex(ValueError, 'empty_cluster must be one of'):
            ClassPromptMappingHook(empty_cluster='drop')
        with self.assertRaisesRegex(ValueError, 'warm_start must be one of'):
            ClassPromptMappingHook(warm_start='cold')
        # The map options are stated once (MapOptions): a misspelt one is named.
        with self.assertRaisesRegex(TypeError, r"ClassPromptMappingHook got unknown "
                                    r"argument\(s\) \['emptycluster'\]"):
            ClassPromptMappingHook(emptycluster='keep')
        with self.assertRaisesRegex(ValueError, 'n_init and max_iter must be >= 1'):
            ClassPromptMappingHook(n_init=0)
        hook = ClassPromptMappingHook(balanced=1, seed='3', warm_start='centroids')
        self.assertEqual((hook.map_options.balanced, hook.seed, hook.map_options.warm_start),
                         (True, 3, 'centroids'))

    @pytest.mark.slow
    def test_authors_timing_clusters_the_last_epoch(self):
        """first_update=2 + 'last_epoch' (the authors' dynamic_kmeans: 1) against the default."""
        model = tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3)
        dataset = digits(indices=(0, 64))
        # (hook options, {epoch of an update: epochs of features in its window})
        cases = ((dict(first_update=2, feature_window='last_epoch'), {2: 1, 3: 1}),
                 (dict(first_update=2), {2: 2, 3: 1}),
                 (dict(), {1: 1, 2: 1, 3: 1}))
        for options, windows in cases:
            with self.subTest(**options), tempfile.TemporaryDirectory() as tmp:
                runner = make_runner(tmp, model, dataset, max_epochs=3,
                                     hook=dict(pipeline=PACK, **options))
                runner.train()
                sizes = np.bincount([d['gt_label'] for d in
                                     runner.train_dataloader.dataset.data_list], minlength=10)
                states = recorder(runner).states
                for epoch in (1, 2, 3):
                    update = states[epoch]['last_update']
                    if epoch not in windows:
                        self.assertEqual(update['when'], 'initial')
                        continue
                    self.assertEqual(update['when'], f'epoch {epoch}')
                    # Every epoch sees each sample once: the window holds that many epochs.
                    self.assertEqual(update['class_counts'].tolist(),
                                     (sizes * windows[epoch]).astype(float).tolist())

    @pytest.mark.slow
    def test_resume_with_the_authors_map_and_class_slots(self):
        """The authors' map options and batches: a resumed run ends with the same map."""
        model = tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3)
        hook = dict(pipeline='train', first_update=2, feature_window='last_epoch',
                    unseen_classes='random', feature_norm='layer', init='random', n_init=1,
                    max_iter=20, metric='cosine', empty_cluster='keep', warm_start='centroids')
        sampler = dict(type='ClassBalancedSampler', samples_per_class=2, mode='class_slots',
                       batch_size=8)
        dataset = digits(indices=(0, 32), dataset_type='LabelledDigitsDataset')
        with tempfile.TemporaryDirectory() as tmp:
            full = make_runner(osp.join(tmp, 'full'), model, dataset, max_epochs=4,
                               checkpoint_interval=1, hook=hook, batch_size=8, sampler=sampler,
                               name='full')
            full.train()
            states = recorder(full).states
            # 32 // 8 = 4 batches of 4 classes: some classes go unseen in an epoch.
            self.assertEqual(len(full.train_dataloader), 4)
            self.assertGreater(max(states[e]['last_update']['unseen'] for e in (2, 3, 4)), 0)
            self.assertFalse(torch.equal(states[4]['centroids'], states[2]['centroids']))
            for start in (1, 2):
                resumed = make_runner(osp.join(tmp, f'resumed{start}'), model, dataset,
                                      max_epochs=4, hook=hook, batch_size=8, sampler=sampler,
                                      resume_from=osp.join(tmp, 'full', f'epoch_{start}.pth'),
                                      name=f'resumed{start}')
                resumed.train()
                after = recorder(resumed).states
                for key in ('class_to_prompt', 'centroids', 'class_features', 'has_feature'):
                    self.assertTrue(torch.equal(after[4][key], states[4][key]), (start, key))

    @pytest.mark.slow
    def test_no_empty_prompt_in_training(self):
        # Real training with the default update: after every update every prompt holds a class.
        model = tiny_classifier_cfg(num_prompts=2, num_guided_prompts=4)
        for balanced in (False, True):
            with self.subTest(balanced=balanced), tempfile.TemporaryDirectory() as tmp:
                runner = make_runner(tmp, model, digits(indices=(0, 96)), max_epochs=3,
                                     hook=dict(pipeline=PACK, balanced=balanced))
                runner.train()
                for epoch, state in recorder(runner).states.items():
                    sizes = state['last_update']['cluster_sizes']
                    self.assertGreater(min(sizes), 0, (epoch, sizes))
                    if balanced:
                        self.assertEqual(sorted(sizes), [2, 2, 3, 3])

    @pytest.mark.slow
    def test_labels_outside_class_range(self):
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(tmp, tiny_classifier_cfg(num_classes=8), digits(indices=(0, 40)),
                                 max_epochs=1, hook=dict(pipeline=PACK))
            with self.assertRaisesRegex(ValueError, r'training-set labels must be in \[0, 8\), '
                                        'got values from 0 to 9'):
                runner.train()

    @pytest.mark.slow
    def test_segmentation_iteration_based(self):
        seg_set = dict(type='ToySegDataset', num_samples=8,
                       pipeline=[dict(type='PackSegInputs')])
        with tempfile.TemporaryDirectory() as tmp:
            runner = Runner(
                model=tiny_segmentor_cfg(num_classes=4, num_prompts=2, num_guided_prompts=2),
                work_dir=tmp,
                train_dataloader=dict(dataset=seg_set, batch_size=2, num_workers=0,
                                      sampler=dict(type='InfiniteSampler', shuffle=True)),
                train_cfg=dict(type='IterBasedTrainLoop', max_iters=4),
                optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3)),
                custom_hooks=[dict(type='ClassPromptMappingHook', samples_per_class=2,
                                   interval=2, pipeline=[dict(type='PackSegInputs')]),
                              dict(type='PromptMetricLossHook')],
                default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10**6)),
                default_scope='mmseg', randomness=dict(seed=0), log_level='WARNING')
            with self.assertLogs(runner.logger, level=logging.INFO) as logs:
                runner.train()
        hook = mapping_hook(runner)
        self.assertEqual(hook.num_updates, 3)  # initial, iter 2, iter 4
        self.assertEqual(hook.last_update['when'], 'iter 4')
        self.assertEqual(tuple(hook.class_to_prompt.shape), (4, ))
        self.assertEqual(tuple(hook.centroids.shape), (2, 32))
        self.assertEqual(hook.last_update['unseen'], 0)
        # An image counts for the classes it holds until each has had 2; then the pass stops.
        self.assertEqual(hook.initial_pass['images_per_class'].tolist(), [2] * 4)
        used = hook.initial_pass['images']
        self.assertLess(used, 8)
        self.assertTrue(any(f'initial pass used {used} of 8 images' in r for r in logs.output))

    @pytest.mark.slow
    def test_two_processes_match_one_on_the_union(self):
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
            proc = subprocess.run(
                [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                 '--master_port', str(port),
                 osp.join(REPO, 'tests', 'data', 'mapping', 'dist_mapping.py'), tmp],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            ranks = [torch.load(osp.join(tmp, f'rank{r}.pth'), weights_only=True)
                     for r in range(2)]
        for epoch in range(3):
            for key in ('class_to_prompt', 'centroids', 'class_features', 'has_feature'):
                self.assertTrue(torch.equal(ranks[0][epoch][key], ranks[1][epoch][key]),
                                f'{key} differs between ranks after epoch {epoch}')
        for epoch in (1, 2):
            before, states = ranks[0][epoch - 1], [r[epoch] for r in ranks]
            sample_idx = torch.cat([s['sample_idx'] for s in states])
            feats = torch.cat([s['feats'] for s in states]).double()
            labels = torch.cat([s['labels'] for s in states])
            # 101 samples on 2 ranks: the sampler pads one, seen twice but counted once.
            self.assertEqual(len(sample_idx), 102)
            _, first = np.unique(sample_idx.numpy(), return_index=True)
            self.assertEqual(len(first), 101)
            feats, labels = feats[first], labels[first]
            counts = torch.bincount(labels, minlength=10).double()
            self.assertEqual(states[0]['class_counts'].tolist(), counts.tolist())
            seen = counts > 0
            features = before['class_features'].double().clone()
            means = torch.stack([feats[labels == c].mean(0) for c in range(10)])
            features[seen] = torch.from_numpy(normalize_rows(means[seen].numpy()))
            expected = update_class_map(features.numpy(), before['class_to_prompt'].numpy(),
                                        before['centroids'].double().numpy(),
                                        valid=(before['has_feature'] | seen).numpy(),
                                        keep=(~seen).numpy())
            self.assertEqual(states[0]['class_to_prompt'].tolist(),
                             expected.class_to_prompt.tolist())
            assert torch.allclose(states[0]['centroids'],
                                  torch.from_numpy(expected.centroids).float(), atol=1e-5)
