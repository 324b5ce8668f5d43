# DA-VPT+: DA-VPT with the K and V biases of attention tuned as well (bias_tune='kv'); its own
# learning rate, chosen on the validation split (`python demo/run_demo.py --tune`).
_base_ = './davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py'

model = dict(backbone=dict(bias_tune='kv'))
optim_wrapper = dict(optimizer=dict(lr=0.1))
