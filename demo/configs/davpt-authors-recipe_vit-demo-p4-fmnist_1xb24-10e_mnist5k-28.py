# DA-VPT under the DA-VPT authors' recipe (./_base_/authors_recipe_mnist5k.py) and with their
# class-to-prompt map and sampler: batches of 6 class slots x 4 images (their class sampler, an
# epoch of N // 24 batches); the initial map by random-init cosine k-means (20 iterations) over
# LayerNorm-ed class features of training-augmented images; re-clustered from the end of epoch 2
# on (their dynamic_kmeans: 1) on that epoch's features alone, warm-started from the previous
# centroids, an emptied prompt left empty, an unseen class sent to a random prompt. One learning
# rate for every group (theirs). The guidance is the demo's DA-VPT's (layers 4, 5; M = 5). The
# learning rate and beta = lambda are chosen on the validation split
# (`python -m demo.run_demo --recipe`).
_base_ = './_base_/authors_recipe_mnist5k.py'

model = dict(backbone=dict(num_prompts=5, guided_layers=(4, 5), num_guided_prompts=5,
                           frozen_drop_path_rate=0.0))
optim_wrapper = dict(optimizer=dict(lr=0.3))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler', samples_per_class=4,
                 mode='class_slots', batch_size=24))
custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=10, interval=None, first_update=2,
         feature_window='last_epoch', unseen_classes='random', pipeline='train',
         metric='cosine', feature_norm='layer', init='random', n_init=1, max_iter=20,
         warm_start='centroids', empty_cluster='keep', balanced=False),
    dict(type='PromptMetricLossHook', beta=0.003, lam=0.003, margin=0.1, alpha=32,
         proxy_scale=1.0, pos_reduction='with_positives', prompt_tap='query', patch_tap='attn',
         patch_topk=16, log_grad_norms=40),
]
