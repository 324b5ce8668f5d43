# The paper's classification schedule: AdamW, batch 32, 100 epochs, 10 epochs of linear warm-up,
# then cosine decay to 1e-8, as the baselines and the custom configs use it. Each config sets its
# learning rate and weight decay. The DA-VPT configs use the authors' shape of it:
# adamw_fp16_100e_warmup10_timm-cosine.py.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=1e-8,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)
val_cfg = dict()
test_cfg = dict()

# The configs are written for 1 GPU x 32 images; tools/train.py --auto-scale-lr rescales the
# learning rate for another total batch size.
auto_scale_lr = dict(base_batch_size=32)
