# DA-VPT on your own classification data: one folder per class (mmda_vpt's ClassFolderDataset,
# mmpretrain's CustomDataset labelled by folder name).
#
#   data/custom_cls/
#     train/<class name>/<any name>.jpg   (.png, .bmp, ... any extension mmpretrain reads)
#     val/<class name>/...
#     test/<class name>/...               (no test split? set test_dataloader = val_dataloader)
#
# One class list for the run: `classes` below (names in index order), or when None the sorted
# folder names of train/. Every split labels its images through that list by folder name: a
# val/test folder the list lacks stops the run before training, a split without images of some
# classes trains with one warning naming them, and num_classes must be the list's length.
# Change: data_root, num_classes (and classes, if train/ lacks a class or you want another index
# order) and, for images far from 224x224, crop_size. For another ViT change the backbone block
# below. Before a long run, choose the learning rate, the prompt counts and beta / lambda with
# tools/tune.py (see Choosing hyperparameters in the README); the values below are the
# documented defaults, not a tuned setting.
#
#   python tools/train.py configs/custom/davpt_vit-b16-in21k_1xb32-100e_custom-cls-224.py
#   python tools/test.py configs/custom/davpt_vit-b16-in21k_1xb32-100e_custom-cls-224.py \
#       work_dirs/davpt_vit-b16-in21k_1xb32-100e_custom-cls-224/epoch_100.pth
#
# Checkpoints keep only the trained parameters (TrainableCheckpointHook, about 1 MB besides the
# head); they name the base checkpoint of init_cfg, which every loader reads under them.
_base_ = [
    '../_base_/models/davpt_vit-b16.py',
    '../_base_/schedules/adamw_bs32_100e_warmup10_cosine.py',
    '../_base_/default_runtime_cls.py',
]

# ---------------------------------------------------------------- what you change
data_root = 'data/custom_cls'
num_classes = 10
classes = None  # or ['cat', 'dog', ...]: the class names in index order, given to every split
crop_size = 224

# ---------------------------------------------------------------- the backbone
# ViT-B/16 pre-trained on ImageNet-21k. For another ViT change these five (the head's
# in_channels follow embed_dims, the guided layers are the last two), e.g. ViT-L/16:
# embed_dims = 1024, num_layers = 24, num_heads = 16,
# backbone_checkpoint = 'checkpoints/vit-l16_in21k-augreg.pth'
# (written by tools/model_converters/convert_vit.py; see Pre-trained checkpoints in the README).
# An MAE ViT pools as the MAE configs do: out_type='avg_prompts_patches' in model.backbone.
embed_dims = 768
num_layers = 12
num_heads = 12
patch_size = 16
backbone_checkpoint = 'checkpoints/vit-b16_in21k-augreg.pth'

# ---------------------------------------------------------------- the model
model = dict(
    backbone=dict(
        # A dict replacing the base config's arch='b' needs _delete_=True.
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=num_layers,
            num_heads=num_heads,
            feedforward_channels=4 * embed_dims),
        img_size=crop_size,
        patch_size=patch_size,
        num_prompts=10,
        guided_layers=(num_layers - 2, num_layers - 1),
        num_guided_prompts=10,
        bias_tune=None,  # 'kv' for DA-VPT+
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)),
    data_preprocessor=dict(num_classes=num_classes),
    head=dict(num_classes=num_classes, in_channels=embed_dims))

# ---------------------------------------------------------------- the data
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=crop_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=crop_size * 8 // 7, edge='short'),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    # The authors' class-balanced batches: sampler=dict(type='ClassBalancedSampler',
    # samples_per_class=2) (the batch size must be a multiple of it).
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ClassFolderDataset',
        data_root=data_root,
        data_prefix='train',
        classes=classes,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ClassFolderDataset',
        data_root=data_root,
        data_prefix='val',
        classes=classes,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ClassFolderDataset',
        data_root=data_root,
        data_prefix='test',
        classes=classes,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# ---------------------------------------------------------------- training
# Weight decay on the prompts and the head's weight; none on biases and 1-D parameters.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.01),
    paramwise_cfg=dict(
        bias_decay_mult=0.0,
        norm_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'backbone.prompts': dict(decay_mult=1.0)}))

custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=10, first_update=1),
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
