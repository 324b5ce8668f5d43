"""The user's path after training, on the two own-data configs of ``configs/custom/``.

Each config is shrunk to a tiny ViT (its base weights written to a file, as a converted
pre-trained checkpoint would be) and trained a few iterations by the stock runner on a tiny
folder tree written to a temporary directory, with the config's ``TrainableCheckpointHook``;
a full checkpoint of the same run is saved next to the trainable-only one. Then every stock
loading path must restore exactly the weights of the full checkpoint, the stock inferencers must
predict the same from both, :func:`mmda_vpt.apis.export_checkpoint` must write a file that loads
strictly without ``init_cfg``, and bad inputs must fail with their one-line errors.
"""
import copy
import glob
import logging
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional
from unittest import TestCase, mock

import pytest
import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner, load_checkpoint

import mmda_vpt  # noqa: F401
from mmda_vpt.apis import (attention_maps, build_model, build_test_parser, draw_attention_maps,
                           export_checkpoint, load_model, merge_test_args, run_test)
from mmda_vpt.checkpoints.base_weights import PRETRAINED_DIR_ENV, is_base_weights_key
from mmda_vpt.engine.hooks import TrainableCheckpointHook
from tests.utils import REPO, attention_figure_shape, run_tool

pytestmark = pytest.mark.slow  # runners and subprocesses

CLS_CONFIG = osp.join(REPO, 'configs', 'custom', 'davpt_vit-b16-in21k_1xb32-100e_custom-cls-224.py')
SEG_CONFIG = osp.join(REPO, 'configs', 'custom',
                      'davpt_setr-pup-vit-l16-in21k_8xb2-80k_custom-seg-512x512.py')
CLS_CLASSES = ('ant', 'bee', 'cat')
SEG_CLASSES = ('background', 'road', 'tree')
CLS_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
SEG_VIT = dict(embed_dims=32, num_layers=4, num_heads=2, mlp_ratio=2, img_size=(32, 32),
               patch_size=8, out_indices=(0, 1, 2, 3))
CROP = 32


# ----------------------------------------------------------------------------- tiny trees
def write_cls_tree(root: str) -> Dict[str, List[str]]:
    """mmpretrain's CustomDataset layout: {train,val,test}/<class>/<n>.png, 40x40 images."""
    rng = np.random.default_rng(0)
    files: Dict[str, List[str]] = {}
    for split, count in (('train', 4), ('val', 2), ('test', 2)):
        for label, name in enumerate(CLS_CLASSES):
            folder = osp.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                image = rng.integers(0, 80, (40, 40, 3)).astype(np.uint8)
                image[:, :, label] += 150
                path = osp.join(folder, f'{index}.png')
                cv2.imwrite(path, image)
                files.setdefault(split, []).append(path)
    return files


def write_seg_tree(root: str, bad_value: Optional[int] = None) -> Dict[str, List[str]]:
    """mmseg's BaseSegDataset layout: img_dir/{train,val}/<n>.jpg, ann_dir/{train,val}/<n>.png.

    Label maps hold bands of the three classes and an ignored (255) top row; with
    ``bad_value``, the second training map holds that value in one band.
    """
    rng = np.random.default_rng(1)
    files: Dict[str, List[str]] = {}
    for split, count in (('train', 4), ('val', 2)):
        os.makedirs(osp.join(root, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(root, 'ann_dir', split), exist_ok=True)
        for index in range(count):
            label = np.zeros((40, 48), dtype=np.uint8)
            cut = 12 + 4 * index
            label[:, cut:cut + 16] = 1
            label[:, cut + 16:] = 2
            label[:2] = 255
            if bad_value is not None and split == 'train' and index == 1:
                label[:, cut + 16:] = bad_value
            colours = np.array([[30, 30, 30], [120, 120, 120], [40, 200, 40]])
            image = colours[np.minimum(label, 2)] + rng.integers(0, 30, (40, 48, 3))
            path = osp.join(root, 'img_dir', split, f'{index}.jpg')
            cv2.imwrite(path, image.astype(np.uint8))
            cv2.imwrite(osp.join(root, 'ann_dir', split, f'{index}.png'), label)
            files.setdefault(split, []).append(path)
    return files


def write_base_weights(host: str, path: str) -> None:
    """A tiny host ViT's weights, as tools/model_converters/convert_vit.py would write them."""
    torch.manual_seed(2)
    if host == 'cls':
        from mmpretrain.models.backbones import VisionTransformer
        vit = VisionTransformer(arch=CLS_ARCH, img_size=CROP, patch_size=8,
                                out_type='cls_token', final_norm=True)
    else:
        from mmseg.models.backbones import VisionTransformer
        vit = VisionTransformer(**SEG_VIT, with_cls_token=True, final_norm=False,
                                patch_bias=True, norm_cfg=dict(type='LN', eps=1e-6))
    vit.init_weights()
    with torch.no_grad():  # non-trivial biases and norms
        for param in vit.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    torch.save(vit.state_dict(), path)


def shrunk_config(host: str, data_root: str, base: str, work_dir: str) -> Config:
    """The custom config of ``host``, its backbone a tiny ViT loading ``base``, a few steps."""
    cfg = Config.fromfile(CLS_CONFIG if host == 'cls' else SEG_CONFIG)
    init = dict(type='Pretrained', checkpoint=base)
    if host == 'cls':
        options = {
            'model.backbone.img_size': CROP,
            'model.backbone.patch_size': 8,
            'model.backbone.num_prompts': 2,
            'model.backbone.guided_layers': (1, ),
            'model.backbone.num_guided_prompts': 2,
            'model.backbone.init_cfg': init,
            'model.head.num_classes': len(CLS_CLASSES),
            'model.head.in_channels': 32,
            'model.data_preprocessor.num_classes': len(CLS_CLASSES),
            'train_dataloader.dataset.pipeline.1.scale': CROP,
            'val_dataloader.dataset.pipeline.1.scale': CROP * 8 // 7,
            'val_dataloader.dataset.pipeline.2.crop_size': CROP,
            'test_dataloader.dataset.pipeline.1.scale': CROP * 8 // 7,
            'test_dataloader.dataset.pipeline.2.crop_size': CROP,
            'train_dataloader.batch_size': 4,
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'default_hooks.checkpoint.interval': 1,
        }
    else:
        head = dict(in_channels=32, channels=16, num_classes=len(SEG_CLASSES))
        options = {f'model.backbone.{k}': v for k, v in SEG_VIT.items()}
        options.update({
            'model.backbone.num_prompts': 2,
            'model.backbone.guided_layers': (2, 3),
            'model.backbone.num_guided_prompts': 2,
            'model.backbone.init_cfg': init,
            'model.data_preprocessor.size': (CROP, CROP),
            'model.decode_head.in_channels': 32,
            'model.decode_head.channels': 16,
            'model.decode_head.num_classes': len(SEG_CLASSES),
            'model.test_cfg.crop_size': (CROP, CROP),
            'model.test_cfg.stride': (21, 21),
            'train_dataloader.dataset.pipeline.2.scale': (128, CROP),
            'train_dataloader.dataset.pipeline.3.crop_size': (CROP, CROP),
            'val_dataloader.dataset.pipeline.1.scale': (128, CROP),
            'train_cfg.max_iters': 3,
            'train_cfg.val_interval': 3,
            'default_hooks.checkpoint.interval': 3,
        })
        for i in range(3):
            options.update({f'model.auxiliary_head.{i}.{k}': v for k, v in head.items()})
        metainfo = dict(classes=SEG_CLASSES, palette=[[0, 0, 0], [128, 64, 128], [0, 128, 0]])
        options['train_dataloader.dataset.metainfo'] = metainfo
        options['val_dataloader.dataset.metainfo'] = copy.deepcopy(metainfo)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options.update({f'{loader}.dataset.data_root': data_root, f'{loader}.num_workers': 0,
                        f'{loader}.persistent_workers': False})
    options.update({'default_hooks.logger.interval': 1, 'work_dir': work_dir})
    cfg.merge_from_dict(options)
    if host == 'cls':
        cfg.model.backbone.arch = dict(CLS_ARCH)  # a dict replacing the config's 'b'
    else:
        cfg.test_dataloader = cfg.val_dataloader
    return cfg


class _Run:
    """One shrunk config trained by the stock runner: both checkpoints and the test metrics."""

    def __init__(self, host: str, root: str) -> None:
        self.host = host
        self.root = osp.join(root, host)
        self.data_root = osp.join(self.root, 'data')
        self.files = (write_cls_tree if host == 'cls' else write_seg_tree)(self.data_root)
        self.base = osp.join(self.root, 'checkpoints', 'base.pth')
        os.makedirs(osp.dirname(self.base))
        write_base_weights(host, self.base)
        self.work_dir = osp.join(self.root, 'work')
        self.cfg = shrunk_config(host, self.data_root, self.base, self.work_dir)
        self.config_file = osp.join(self.root, 'config.py')
        self.cfg.dump(self.config_file)
        runner = Runner.from_cfg(copy.deepcopy(self.cfg))
        runner.train()
        self.iters = runner.iter
        self.trainable = osp.join(self.work_dir, 'epoch_1.pth' if host == 'cls' else 'iter_3.pth')
        # The full checkpoint of the same run: the same runner, without the trainable-only hook.
        runner._hooks = [h for h in runner._hooks if not isinstance(h, TrainableCheckpointHook)]
        runner.save_checkpoint(self.work_dir, 'full.pth', by_epoch=host == 'cls')
        self.full = osp.join(self.work_dir, 'full.pth')
        self.test_metrics = runner.test()
        self.trained = {k: v.detach().clone() for k, v in runner.model.state_dict().items()
                        if not is_base_weights_key(k)}

    def config(self, arch: dict = None, **options) -> Config:
        cfg = copy.deepcopy(self.cfg)
        cfg.merge_from_dict(options)
        if arch is not None:
            cfg.model.backbone.arch = arch
        return cfg

    def build(self, arch: dict = None, **options) -> torch.nn.Module:
        """The model of the config as stock code builds it: no ``init_weights``."""
        cfg = self.config(arch, **options)
        if self.host == 'cls':
            from mmpretrain.apis import get_model
            return get_model(cfg, device='cpu')
        from mmseg.apis import init_model
        return init_model(cfg, device='cpu')

    def images(self) -> List[str]:
        return self.files['val']


_RUNS: Dict[str, _Run] = {}
_TMP = None


def setUpModule():
    global _TMP
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    _TMP = tempfile.TemporaryDirectory()
    for host in ('cls', 'seg'):
        _RUNS[host] = _Run(host, _TMP.name)


def tearDownModule():
    _TMP.cleanup()


def _weights(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not is_base_weights_key(k)}


def _predictions(host: str, config: Config, checkpoint: str, images: List[str]) -> torch.Tensor:
    """What the stock inferencer of ``host`` predicts (scores or logits), stacked."""
    if host == 'cls':
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(copy.deepcopy(config), pretrained=checkpoint,
                                                   device='cpu')
        return torch.stack([torch.from_numpy(r['pred_scores']) for r in inferencer(images)])
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(copy.deepcopy(config), weights=checkpoint, device='cpu')
    results = inferencer(images, return_datasamples=True)
    assert len(results) == len(images)
    return torch.stack([r.seg_logits.data for r in results])


class TestCustomConfigs(TestCase):
    """The two starting configs train, test and infer on a tiny tree of their layout."""

    def test_train_test_infer(self):
        for host, metric in (('cls', 'accuracy/top1'), ('seg', 'mIoU')):
            with self.subTest(host=host):
                run = _RUNS[host]
                self.assertEqual(run.iters, 3)
                self.assertIn(metric, run.test_metrics)
                # The config's TrainableCheckpointHook kept the trained part and the pointer.
                state = torch.load(run.trainable)['state_dict']
                self.assertIn('backbone._base_weights', state)
                self.assertIn('backbone.prompts.0', state)
                self.assertNotIn('backbone.layers.0.ln1.weight', state)
                self.assertNotIn('backbone.layers.0.norm1.weight', state)
                if host == 'cls':
                    from mmpretrain.apis import ImageClassificationInferencer
                    inferencer = ImageClassificationInferencer(
                        copy.deepcopy(run.cfg), pretrained=run.trainable, device='cpu')
                    (result, ) = inferencer(run.images()[:1])
                    self.assertIn(result['pred_class'], CLS_CLASSES)
                else:
                    from mmseg.apis import MMSegInferencer
                    inferencer = MMSegInferencer(copy.deepcopy(run.cfg), weights=run.trainable,
                                                 device='cpu')
                    sample = inferencer(run.images()[0], return_datasamples=True)
                    self.assertEqual(tuple(sample.pred_sem_seg.data.shape), (1, 40, 48))
                    self.assertEqual(inferencer.model.dataset_meta['classes'], SEG_CLASSES)

    def test_pictures_through_tools_train(self):
        # The README's lines: the config plus TensorBoard beside the local files.
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        for host, indices in (('cls', [0, 2, 3, 5]), ('seg', [0, 1])):
            with self.subTest(host=host):
                run = _RUNS[host]
                config = osp.join(run.root, 'with_tensorboard.py')
                with open(config, 'w') as f:
                    f.write("_base_ = ['config.py']\n"
                            "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),\n"
                            "                                dict(type='TensorboardVisBackend')])\n")
                work_dir = osp.join(run.root, 'tools_train')
                result = run_tool('train.py', [config, '--work-dir', work_dir], cwd=run.root)
                self.assertEqual(result.returncode, 0, result.stdout[-6000:])
                vis_data, = glob.glob(osp.join(work_dir, '*', 'vis_data'))
                # 4 of the validation images spread (cls: 6, seg: 2), before training and
                # after the validation at iteration 3.
                names = ['class_to_prompt_map'] + [f'prompt_attention_{i}' for i in indices]
                expected = sorted(f'{n}_{step}.png' for n in names for step in (0, 3))
                self.assertEqual(sorted(os.listdir(osp.join(vis_data, 'vis_image'))), expected)
                events = EventAccumulator(vis_data, size_guidance={'images': 0})
                events.Reload()
                self.assertEqual(sorted(events.Tags()['images']), sorted(names))
                for name in names:
                    self.assertEqual([e.step for e in events.Images(name)], [0, 3])
                self.assertIn('prompt_map/classes_moved', events.Tags()['scalars'])

    def test_label_value_beyond_the_classes(self):
        with tempfile.TemporaryDirectory() as tmp:
            write_seg_tree(tmp, bad_value=7)
            cfg = _RUNS['seg'].config(work_dir=osp.join(tmp, 'work'))
            for loader in ('train_dataloader', 'val_dataloader'):
                cfg[loader].dataset.data_root = tmp
            runner = Runner.from_cfg(cfg)
            bad = osp.join(tmp, 'ann_dir', 'train', '1.png')
            with self.assertRaisesRegex(ValueError, rf'^label map {bad} holds the value 7 '
                                        r'.*neither a class index in \[0, 3\) nor the ignore '
                                        r'index 255'):
                runner.train()
            self.assertEqual(runner.iter, 0)  # before the first training step


class TestTrainableCheckpoints(TestCase):
    """Trainable-only checkpoints load in every stock path, or fail in one line."""

    def test_inferencer_trainable_equals_full(self):
        for host in ('cls', 'seg'):
            with self.subTest(host=host):
                run = _RUNS[host]
                full = _predictions(host, run.cfg, run.full, run.images())
                trainable = _predictions(host, run.cfg, run.trainable, run.images())
                assert torch.equal(trainable, full)

    def test_stock_loading_paths(self):
        for host in ('cls', 'seg'):
            run = _RUNS[host]
            with self.subTest(host=host, path='get_model / init_model'):
                if host == 'cls':
                    from mmpretrain.apis import get_model
                    model = get_model(run.config(), pretrained=run.trainable, device='cpu')
                else:
                    from mmseg.apis import init_model, inference_model
                    model = init_model(run.config(), run.trainable, device='cpu')
                    full = init_model(run.config(), run.full, device='cpu')
                    ours = inference_model(model, run.images()[0])
                    theirs = inference_model(full, run.images()[0])
                    assert torch.equal(ours.seg_logits.data, theirs.seg_logits.data)
                self._assert_trained(model, run)
            with self.subTest(host=host, path='load_checkpoint'):
                model = run.build()
                load_checkpoint(model, run.trainable, map_location='cpu', strict=True)
                self._assert_trained(model, run)
            with self.subTest(host=host, path='tools/test.py (runner load_from)'):
                cfg = run.config(load_from=run.trainable,
                                 work_dir=osp.join(run.root, f'test_{host}'))
                runner = Runner.from_cfg(cfg)
                metrics = runner.test()
                self.assertEqual(metrics, run.test_metrics)
                self._assert_trained(runner.model, run)
            with self.subTest(host=host, path='tools/test.py (mmda_vpt.apis.run_test)'):
                args = build_test_parser().parse_args([
                    run.config_file, run.trainable, '--work-dir',
                    osp.join(run.root, f'test_tool_{host}')])
                metrics = run_test(merge_test_args(Config.fromfile(run.config_file), args))
                self.assertEqual(metrics, run.test_metrics)

    def test_resume_from_trainable_checkpoint(self):
        run = _RUNS['cls']
        work_dir = osp.join(run.root, 'resumed')
        cfg = run.config(resume=True, load_from=run.trainable, work_dir=work_dir)
        cfg.train_cfg.max_epochs = 2
        runner = Runner.from_cfg(cfg)
        runner.train()
        self.assertEqual(runner.epoch, 2)
        self.assertEqual(runner.iter, 6)
        base = torch.load(run.base)
        backbone = runner.model.backbone.state_dict()
        for name, value in base.items():
            assert torch.equal(backbone[name], value), name
        moved = [n for n, p in runner.model.named_parameters()
                 if p.requires_grad and not torch.equal(p, run.trained[n])]
        self.assertIn('backbone.prompts.0', moved)

    def test_export(self):
        for host in ('cls', 'seg'):
            with self.subTest(host=host):
                run = _RUNS[host]
                out = osp.join(run.root, 'exported', 'model.pth')
                export_checkpoint(run.config_file, run.trainable, out)
                exported = torch.load(out)
                self.assertEqual(set(exported), {'meta', 'state_dict'})
                self.assertFalse(any(is_base_weights_key(k) for k in exported['state_dict']))
                self.assertIn('dataset_meta', exported['meta'])
                # Strictly, into a model built with no init_cfg at all and no base file around.
                bare = build_model(Config.fromfile(run.config_file), init_cfg=False)
                shutil.move(run.base, run.base + '.away')
                try:
                    load_checkpoint(bare, out, map_location='cpu', strict=True)
                    predicted = _predictions(host, run.cfg, out, run.images())
                finally:
                    shutil.move(run.base + '.away', run.base)
                self._assert_trained(bare, run)
                assert torch.equal(predicted, _predictions(host, run.cfg, run.full, run.images()))

    def test_moved_base_weights(self):
        run = _RUNS['cls']
        with tempfile.TemporaryDirectory() as tmp:
            # The checkpoint moved to another machine, its base weights beside it.
            beside = osp.join(tmp, 'beside')
            os.makedirs(beside)
            checkpoint = osp.join(beside, 'epoch_1.pth')
            shutil.copy(run.trainable, checkpoint)
            shutil.move(run.base, osp.join(beside, 'base.pth'))
            elsewhere = osp.join(tmp, 'pretrained')
            try:
                model = run.build()
                load_checkpoint(model, checkpoint, map_location='cpu')
                self._assert_trained(model, run)
                # ... or in the folder named by the environment variable.
                os.makedirs(elsewhere)
                shutil.move(osp.join(beside, 'base.pth'), osp.join(elsewhere, 'base.pth'))
                with mock.patch.dict(os.environ, {PRETRAINED_DIR_ENV: elsewhere}):
                    model = run.build()
                    load_checkpoint(model, checkpoint, map_location='cpu')
                    self._assert_trained(model, run)
                # Nowhere: one line naming the places looked at.
                env = {k: v for k, v in os.environ.items() if k != PRETRAINED_DIR_ENV}
                with mock.patch.dict(os.environ, env, clear=True):
                    with self.assertRaises(FileNotFoundError) as caught:
                        load_checkpoint(run.build(), checkpoint, map_location='cpu')
            finally:
                found = [p for p in (osp.join(beside, 'base.pth'), osp.join(elsewhere, 'base.pth'))
                         if osp.exists(p)]
                shutil.move(found[0], run.base)
        message = str(caught.exception)
        self.assertNotIn('\n', message)
        self.assertRegex(message, rf"^the base weights '{run.base}' of this DA-VPT checkpoint")
        self.assertIn(f'looked at: {run.base} (no file), {osp.join(beside, "base.pth")} '
                      f'(no file) ({PRETRAINED_DIR_ENV} is not set', message)

    def test_checkpoint_of_another_model(self):
        run = _RUNS['cls']
        with self.assertRaisesRegex(
                ValueError, r'^trainable-only checkpoint does not fit DAVPTViT .*shape '
                r'mismatches: backbone\.prompts\.0 \(2, 32\) in the checkpoint, \(3, 32\) in the '
                r'model; backbone\.prompts\.1 \(2, 32\) in the checkpoint, \(3, 32\) in the '
                r'model; missing keys: none; unexpected keys: none$'):
            load_checkpoint(run.build(**{'model.backbone.num_prompts': 3,
                                         'model.backbone.num_guided_prompts': 3}),
                            run.trainable, map_location='cpu')
        deeper = dict(CLS_ARCH, num_layers=3)
        with self.assertRaisesRegex(ValueError, r"missing keys: \['backbone\.prompts\.2'\]"):
            load_checkpoint(run.build(arch=deeper), run.trainable,
                            map_location='cpu')
        seg = _RUNS['seg']
        with self.assertRaisesRegex(ValueError, r'does not fit DAVPTViTSeg .*backbone\.prompts'
                                    r'\.3 \(2, 32\) in the checkpoint, \(4, 32\) in the model'):
            load_checkpoint(seg.build(**{'model.backbone.num_guided_prompts': 4}),
                            seg.trainable, map_location='cpu')

    def test_trainable_checkpoint_without_base_weights(self):
        run = _RUNS['cls']
        state = torch.load(run.trainable)
        del state['state_dict']['backbone._base_weights']
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'old.pth')
            torch.save(state, path)
            with self.assertRaisesRegex(RuntimeError, r'^this state dict holds 2 of the \d+ '
                                        r'tensors of DAVPTViT \(backbone\.\) and names no base '
                                        r'weights'):
                load_checkpoint(run.build(), path, map_location='cpu')

    def test_show_attention(self):
        for host, guided in (('cls', [1]), ('seg', [2, 3])):
            with self.subTest(host=host):
                run = _RUNS[host]
                model = load_model(run.config_file, run.trainable)
                self._assert_trained(model, run)
                captured = attention_maps(model, run.images()[0])
                self.assertEqual(captured['layers'].tolist(), guided)
                # cls: a 32x32 centre crop; seg: resized to 32x38, padded to 5 patches of 8.
                grid = (4, 4) if host == 'cls' else (4, 5)
                for layer in guided:
                    maps = captured[f'maps_{layer}']
                    self.assertEqual(maps.shape, (1 + 2, *grid))  # CLS and the two prompts
                    self.assertTrue(np.all(maps >= 0) and np.all(maps.sum(axis=(1, 2)) <= 1))
                self.assertEqual(captured['image'].shape, (grid[0] * 8, grid[1] * 8, 3))
                out = osp.join(run.root, 'attention', f'{host}.png')
                draw_attention_maps(captured, out, prompts=1)
                # One row: the input, then per layer the CLS token's map and one prompt's
                # (seg: a 32x40 input, 96 x 77 pixels a panel).
                self.assertEqual(cv2.imread(out).shape,
                                 attention_figure_shape(1 + 2 * len(guided),
                                                        (96 if host == 'cls' else 77, )))

    def test_show_attention_tool(self):
        run = _RUNS['cls']
        out = osp.join(run.root, 'attention', 'tool.png')
        result = run_tool('analysis/show_attention.py',
                          [run.config_file, run.trainable, run.images()[0], out, '--layers', '0',
                           '-1', '--prompts', '2'], cwd=run.root)
        self.assertEqual(result.returncode, 0, result.stdout[-6000:])
        self.assertIn(f'attention maps of layers [0, 1] written to {out}', result.stdout)
        self.assertEqual(cv2.imread(out).shape, attention_figure_shape(1 + 2 * 3))  # 2 layers

    def _assert_trained(self, model: torch.nn.Module, run: _Run) -> None:
        """Every weight of ``model`` is the trained model's (head, prompts and frozen base)."""
        weights = _weights(model)
        self.assertEqual(set(weights), set(run.trained))
        for name, value in run.trained.items():
            assert torch.equal(weights[name].cpu(), value.cpu()), name
