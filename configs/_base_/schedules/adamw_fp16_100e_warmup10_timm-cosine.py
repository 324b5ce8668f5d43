# The DA-VPT / DA-VPT+ classification schedule: AdamW, 100 epochs, 10 warm-up epochs, and
# where the paper is silent the authors' code (their train.py, timm's CosineLRScheduler with
# sched_on_updates): fp16 mixed precision with a dynamic loss scale (on a machine without CUDA,
# mmda_vpt falls back to fp32 with one log line), gradient clipping by value 10 after
# unscaling, and a per-iteration cosine from the peak lr over all 100 epochs counted from 0, the
# linear warm-up from warmup_start_lr included. Each config sets its lr, weight decays,
# warm-up start and floor (paper rows: 1e-8; authors'-code rows: their file's min_lr), as
# dict(_base_.param_scheduler[0], warmup_start_lr=..., eta_min=...).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(type='value', clip_value=10.0),
    # No weight decay on biases (every parameter named *bias*, tuned bias parts included),
    # norms and other 1-D parameters, as the authors' code; the prompts and the CLS token decay
    # at the base rate (a config whose prompts decay otherwise restates their keys), and each
    # config adds its head weight's key (dicts merge key by key).
    paramwise_cfg=dict(
        bias_decay_mult=0.0,
        norm_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'bias': dict(decay_mult=0.0),
            'backbone.prompts': dict(decay_mult=1.0),
            'backbone.cls_token': dict(decay_mult=1.0),
        }))

param_scheduler = [
    dict(
        type='WarmupCosineLR',
        T_max=100,
        warmup_epochs=10,
        warmup_start_lr=1e-8,
        eta_min=1e-8,
        by_epoch=True,
        begin=0,
        end=100,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)
val_cfg = dict()
test_cfg = dict()

# The configs name their batch size (1 GPU); tools/train.py --auto-scale-lr rescales the
# learning rate for another total batch size.
auto_scale_lr = dict(base_batch_size=32)
