# Transfer of the demo's Fashion-MNIST ViT (frozen) to MNIST-5k: the shared part of the linear
# probe, VPT-Deep, DA-VPT and DA-VPT+ configs. Same budget for all: 1000 training images
# (100 per class), batch 25, 10 epochs (400 iterations); AdamW with 1 epoch of warm-up and
# cosine decay. The validation split (1000 images) chose the learning rates and DA-VPT's loss
# weights (`python -m demo.run_demo --tune`); the test split (3000 images) is tested once per
# run.
_base_ = ['mmpretrain::_base_/default_runtime.py', './vit-demo-p4_fashion-mnist.py']

custom_imports = dict(imports=['mmda_vpt'], allow_failed_imports=False)

# The pre-trained ViT shipped with the project (relative to the repository root; demo/run_demo.py
# passes the checkpoint it uses, shipped or pre-trained with --pretrain).
pretrained = 'demo/weights/vit-demo-p4_fashion-mnist.pth'

model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='DAVPTViT',
        arch={{_base_.vit_arch}},
        img_size=28,
        patch_size=4,
        in_channels=1,
        out_type='cls_token',
        final_norm=True,
        drop_rate=0.0,
        drop_path_rate=0.0,
        num_prompts=0,
        guided_layers=(),
        prompt_init='uniform',
        bias_tune=None,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

data_root = 'data/demo/mnist5k'
classes = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=25,
    num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, ann_file='train.txt',
                 data_prefix='', classes=classes, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, ann_file='val.txt',
                 data_prefix='', classes=classes, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=250,
    num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, ann_file='test.txt',
                 data_prefix='', classes=classes, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = val_evaluator

max_epochs = 10
# Each method's config sets its learning rate.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.1, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
# Validation once, at the end.
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False))
randomness = dict(seed=0, deterministic=False)

# Scalars and pictures (PromptVisualizationHook's, in the configs that add it) go to
# vis_data/ as files and as TensorBoard events (`tensorboard --logdir work_dirs/demo`).
visualizer = dict(
    type='UniversalVisualizer',
    vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
