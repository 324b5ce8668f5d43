# DA-VPT with SETR-PUP on your own segmentation data: mmseg's BaseSegDataset.
#
#   data/custom_seg/
#     img_dir/train/<name>.jpg    ann_dir/train/<name>.png    (same <name>, one label map each)
#     img_dir/val/<name>.jpg      ann_dir/val/<name>.png
#
# A label map is a single-channel PNG whose pixel values are class indices 0..num_classes-1;
# 255 marks pixels to ignore. Any other value stops training before its first step, naming the
# file and the value (the class-to-prompt map's initial pass checks the maps it reads).
# Change: data_root, classes and palette (one name and one RGB colour per class index, in index
# order), the suffixes if your files differ, and crop_size; for another ViT the backbone block
# below.
# If 0 means "unlabelled" in your maps, set reduce_zero_label=True in the three datasets.
# Before a long run, choose the learning rate, the prompt counts and beta / lambda with
# tools/tune.py (see Choosing hyperparameters in the README); the values below are the
# documented defaults, not a tuned setting.
#
#   bash tools/dist_train.sh configs/custom/davpt_setr-pup-vit-l16-in21k_8xb2-80k_custom-seg-512x512.py 8
#
# Checkpoints keep only the trained parameters (TrainableCheckpointHook, besides the heads);
# they name the base checkpoint of init_cfg, which every loader reads under them.
_base_ = [
    'mmseg::_base_/models/setr_pup.py',
    '../_base_/schedules/setr_sgd_80k.py',
    '../_base_/default_runtime_seg.py',
]

# ---------------------------------------------------------------- what you change
data_root = 'data/custom_seg'
classes = ('background', 'object')
palette = [[0, 0, 0], [220, 20, 60]]
img_suffix = '.jpg'
seg_map_suffix = '.png'
crop_size = (512, 512)
num_classes = len(classes)

# ---------------------------------------------------------------- the backbone
# SETR's ViT-L/16 (ImageNet-21k, fine-tuned on ImageNet-1k at 384 px), converted for mmseg (see
# Pre-trained checkpoints in the README). For another ViT change these five: the decode and
# auxiliary heads' in_channels follow embed_dims, the tapped layers (SETR's 9, 12, 18 and 24 of
# 24) and the guided layers (the last two) follow num_layers. E.g. ViT-B/16: embed_dims = 768,
# num_layers = 12, num_heads = 12,
# backbone_checkpoint = 'checkpoints/vit-b16_in21k-augreg_mmseg.pth' (tools/model_converters/
# convert_vit.py model.safetensors ... --src-format safetensors --dst mmseg --drop-final-norm).
embed_dims = 1024
num_layers = 24
num_heads = 16
patch_size = 16
backbone_checkpoint = 'checkpoints/vit-l16_jx384_mmseg.pth'
out_indices = (num_layers * 3 // 8 - 1, num_layers // 2 - 1, num_layers * 3 // 4 - 1,
               num_layers - 1)

# ---------------------------------------------------------------- the model
norm_cfg = dict(type='SyncBN', requires_grad=True)
aux_head = dict(
    type='SETRUPHead',
    in_channels=embed_dims,
    channels=256,
    num_classes=num_classes,
    dropout_ratio=0,
    norm_cfg=norm_cfg,
    act_cfg=dict(type='ReLU'),
    num_convs=2,
    kernel_size=3,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        type='DAVPTViT',
        embed_dims=embed_dims,
        num_layers=num_layers,
        num_heads=num_heads,
        patch_size=patch_size,
        img_size=crop_size,
        out_indices=out_indices,
        with_cls_token=True,
        final_norm=False,
        patch_bias=True,  # Google / timm ViTs have a patch-embedding bias
        interpolate_mode='bilinear',
        drop_rate=0.0,
        num_prompts=10,
        guided_layers=(num_layers - 2, num_layers - 1),
        num_guided_prompts=10,
        bias_tune=None,  # 'kv' for DA-VPT+
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)),
    decode_head=dict(in_channels=embed_dims, num_classes=num_classes, in_index=3),
    auxiliary_head=[dict(aux_head, in_index=i) for i in range(3)],
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(crop_size[0] * 2 // 3,
                                                             crop_size[1] * 2 // 3)))

# ---------------------------------------------------------------- the data
scale = (crop_size[0] * 4, crop_size[1])  # images are resized around this (short side)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        dataset,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        dataset,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# ---------------------------------------------------------------- training
# The class-to-prompt map is re-clustered once per pass over the training set.
custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=10),
    dict(type='PromptMetricLossHook', beta=0.05, lam=0.05),
    dict(type='TrainableCheckpointHook'),
    # The class-to-prompt map and the attention of the CLS token and of the prompts on 4
    # validation images, at the start and after every validation, with the map updates'
    # numbers: to the visualizer's backends (work_dirs/<run>/<time>/vis_data/).
    dict(type='PromptVisualizationHook', num_images=4),
]
# To watch them in TensorBoard (pip install tensorboard; tensorboard --logdir work_dirs):
# visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
#                                 dict(type='TensorboardVisBackend')])
