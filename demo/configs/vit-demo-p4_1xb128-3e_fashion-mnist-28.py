# Pre-training of the demo's small ViT on Fashion-MNIST (Debian's dataset-fashion-mnist,
# decompressed by demo/data.py): a stock mmpretrain ImageClassifier with a stock
# VisionTransformer, trained from scratch, 3 epochs of 469 iterations x 128 images. A short
# schedule wants little regularization: random crops only (no flips, drop-path or label
# smoothing).
_base_ = ['mmpretrain::_base_/default_runtime.py', './_base_/vit-demo-p4_fashion-mnist.py']

model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='VisionTransformer',
        arch={{_base_.vit_arch}},
        img_size=28,
        patch_size=4,
        in_channels=1,
        out_type='cls_token',
        final_norm=True,
        drop_rate=0.0,
        drop_path_rate=0.0),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

data_root = 'data/demo/fashion_mnist'
train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(type='FashionMNIST', data_root=data_root, split='train', download=False,
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
# mmpretrain's MNIST datasets pick their files by test_mode (split alone is not enough).
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    dataset=dict(type='FashionMNIST', data_root=data_root, split='test', test_mode=True,
                 download=False, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 3
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       custom_keys={'.pos_embed': dict(decay_mult=0.0),
                                    '.cls_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # The demo keeps the weights itself (a plain state dict in its cache folder).
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False))
randomness = dict(seed=0, deterministic=False)
