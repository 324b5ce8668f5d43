"""Evidence: the configs' data pipelines give the pixels of the authors' Dataset/transforms.py.

On one fixed image (not square, so that resizing and cropping matter; a JPEG, decoded by PIL in
both), the configured mmpretrain pipelines and the configs' data preprocessor (BGR to RGB,
ImageNet mean and std) against the authors' torchvision transforms imported from their release
(``../shared/reference/DA-VPT`` or ``$MMDA_VPT_REFERENCE``; skipped without it). The random
crop and flip of FGVC training are drawn once and handed to both.
"""
import os.path as osp
import tempfile
from typing import Tuple
from unittest import TestCase, mock

import numpy as np
import torch
from mmcv.transforms import RandomFlip
from mmengine.dataset import Compose
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import MODELS, TRANSFORMS
from PIL import Image
from torchvision import transforms as T

import mmda_vpt  # noqa: F401  (registration)
from tests.reference_code import reference_module, requires_reference
from tests.test_configs.common import load_config

pytestmark = requires_reference

FGVC = 'configs/da_vpt/fgvc/davpt-plus_vit-b16-in21k_1xb32-100e_cub-224{}.py'
VTAB = 'configs/da_vpt/vtab/davpt-plus_vit-b16-in21k_1xb32-100e_vtab-dtd-224{}.py'
PAPER, AUTHORS = '', '_authors-code'


def write_image(path: str, width: int = 301, height: int = 217) -> None:
    """A smooth colour gradient with texture and noise, saved as a JPEG (quality 95)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([255 * x / width, 255 * y / height,
                    127.5 + 127.5 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=-1)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=95)


class TestTransforms(TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.path = osp.join(cls.tmp.name, 'image.jpg')
        write_image(cls.path)
        cls.theirs = reference_module('Dataset/transforms.py')

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def ours(self, config: str, loader: str) -> torch.Tensor:
        """The configured pipeline and data preprocessor on the image: (3, 224, 224), RGB,
        normalized."""
        cfg = load_config(config)
        pipeline = Compose([TRANSFORMS.build(step) for step in cfg[loader].dataset.pipeline])
        packed = pipeline(dict(img_path=self.path, gt_label=0))
        preprocessor = MODELS.build(cfg.model.data_preprocessor)
        data = preprocessor(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]),
                            training=False)
        return data['inputs'][0]

    def authors(self, transform) -> torch.Tensor:
        """Their transform on the image as their datasets open it."""
        return transform(Image.open(self.path).convert('RGB'))

    def check(self, ours: torch.Tensor, theirs: torch.Tensor) -> None:
        self.assertEqual(tuple(ours.shape), (3, 224, 224))
        # The same pixels; the normalization's float32 rounding differs in the last bits
        # ((x - 255 m) / (255 s) against (x / 255 - m) / s).
        torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-6)

    def test_fgvc_test_pipeline(self):
        """Short side to 256, centre crop 224, PIL bicubic: both families."""
        theirs = self.authors(self.theirs.get_transforms(None, 'test', 224))
        for family in (PAPER, AUTHORS):
            for loader in ('val_dataloader', 'test_dataloader'):
                with self.subTest(family=family or 'paper', loader=loader):
                    self.check(self.ours(FGVC.format(family), loader), theirs)

    def _fgvc_train(self, family: str, box: Tuple[int, int, int, int],
                    flip: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Both training pipelines with the crop box (top, left, height, width) and flip
        drawn once."""
        top, left, height, width = box
        with mock.patch.object(RandomResizedCrop, 'rand_crop_params', return_value=box), \
                mock.patch.object(RandomFlip, '_choose_direction',
                                  return_value='horizontal' if flip else None):
            ours = self.ours(FGVC.format(family), 'train_dataloader')
        transform = self.theirs.get_transforms(None, 'train', 224)
        with mock.patch.object(T.RandomResizedCrop, 'get_params', return_value=box), \
                mock.patch.object(torch, 'rand', return_value=torch.tensor(
                    [0.0 if flip else 1.0])):
            theirs = self.authors(transform)
        return ours, theirs

    def test_fgvc_train_pipeline(self):
        """Random resized crop to 224 and horizontal flip, PIL bicubic: both families."""
        for family in (PAPER, AUTHORS):
            for box, flip in (((13, 40, 150, 201), True), ((0, 0, 217, 301), False),
                              ((100, 7, 60, 33), True)):
                with self.subTest(family=family or 'paper', box=box, flip=flip):
                    ours, theirs = self._fgvc_train(family, box, flip)
                    self.check(ours, theirs)

    def test_fgvc_train_pipeline_draws_like_theirs(self):
        """The crop's scale and aspect ranges are torchvision's defaults."""
        cfg = load_config(FGVC.format(PAPER))
        crop = cfg.train_dataloader.dataset.pipeline[1]
        built = RandomResizedCrop(**{k: v for k, v in crop.items() if k != 'type'})
        reference = T.RandomResizedCrop(224, interpolation=3)
        self.assertEqual(built.crop_ratio_range, reference.scale)
        self.assertEqual(built.aspect_ratio_range, reference.ratio)
        self.assertEqual(built.max_attempts, 10)  # torchvision's get_params tries 10 times

    def test_vtab_authors_pipeline(self):
        """The authors'-code rows: short side to 224, centre crop, PIL bicubic, every split."""
        for split in ('train', 'test'):
            theirs = self.authors(self.theirs.get_vtab_transforms(None, split, 224))
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
                with self.subTest(split=split, loader=loader):
                    self.check(self.ours(VTAB.format(AUTHORS), loader), theirs)

    def test_vtab_paper_pipeline(self):
        """The paper rows: resized directly to 224x224 (the paper), with the authors' PIL
        bicubic and normalization; differs from the authors' short-side crop."""
        direct = T.Compose([T.Resize((224, 224), interpolation=3), T.ToTensor(),
                            T.Normalize(**self.theirs.default_norm_data)])
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            with self.subTest(loader=loader):
                ours = self.ours(VTAB.format(PAPER), loader)
                self.check(ours, self.authors(direct))
                theirs = self.authors(self.theirs.get_vtab_transforms(None, 'test', 224))
                self.assertGreater((ours - theirs).abs().max().item(), 0.1)

    def test_normalization_is_imagenet(self):
        """Every backbone, AugReg's included, gets ImageNet's mean and std (theirs: their
        default_norm_data; they never pass timm's pretrained_cfg)."""
        norm = self.theirs.default_norm_data
        for config in (FGVC.format(PAPER), VTAB.format(AUTHORS)):
            pre = load_config(config).model.data_preprocessor
            torch.testing.assert_close(torch.tensor(pre.mean, dtype=torch.float64),
                                       torch.tensor(norm['mean'], dtype=torch.float64) * 255)
            torch.testing.assert_close(torch.tensor(pre.std, dtype=torch.float64),
                                       torch.tensor(norm['std'], dtype=torch.float64) * 255)
            self.assertTrue(pre.to_rgb)
