# A tiny DA-VPT segmentor for the tests of tools/tune.py: the 2-layer mmseg DAVPTViT with a
# SETR-PUP head of tests/toy_datasets.py on ToySegDataset (32x32 rectangles of 3 classes on a
# background), 4 iterations validated every 2.
_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(imports=['mmda_vpt', 'tests.toy_datasets'], allow_failed_imports=False)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3,
                           size=(32, 32), pad_val=0, seg_pad_val=255),
    backbone=dict(type='DAVPTViT', embed_dims=32, num_layers=2, num_heads=2, mlp_ratio=2,
                  img_size=(32, 32), patch_size=4, out_indices=(1, ), num_prompts=4,
                  guided_layers=(-1, ), final_norm=False, norm_cfg=dict(type='LN', eps=1e-6)),
    decode_head=dict(
        type='SETRUPHead', in_channels=32, channels=16, in_index=0, num_classes=4,
        dropout_ratio=0, norm_cfg=dict(type='BN', requires_grad=True), num_convs=2,
        up_scale=2, kernel_size=3, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

pipeline = [dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ToySegDataset', num_samples=8, pipeline=pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToySegDataset', num_samples=4, pipeline=pipeline))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

custom_hooks = [dict(type='PromptMetricLossHook', beta=0.05, lam=0.05)]
default_hooks = dict(logger=dict(type='LoggerHook', interval=2),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4))
randomness = dict(seed=0)
