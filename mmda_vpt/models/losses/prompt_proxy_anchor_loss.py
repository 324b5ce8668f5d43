"""Proxy-Anchor loss with prompts as the proxies (DA-VPT, Eq. 4)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['PromptProxyAnchorLoss']

POS_REDUCTIONS = ('with_positives', 'all')


class PromptProxyAnchorLoss(nn.Module):
    """Proxy-Anchor loss (Kim et al. 2020) between M prompt proxies and n samples.

    .. math::
        L = \\frac{1}{|P^+|} \\sum_{p \\in P^+} \\log\\Big(1 + \\sum_{x \\in X_p^+}
            e^{-\\alpha (\\cos(x, p) - \\delta)}\\Big)
          + \\frac{1}{|P|} \\sum_{p \\in P} \\log\\Big(1 + \\sum_{x \\in X_p^-}
            e^{\\alpha (\\cos(x, p) + \\delta)}\\Big)

    Computed in float32 (also under autocast) with a stable log(1 + sum exp).

    Args:
        margin (float): The margin delta. Defaults to 0.1.
        alpha (float): The scale alpha = 1 / tau. Defaults to 32.
        pos_reduction (str): ``'with_positives'`` averages the positive term over the prompts
            that have a positive sample in the batch (the paper's Eq. 4 and the original loss);
            ``'all'`` over all M prompts (the authors' released code).
            Defaults to ``'with_positives'``.
        proxy_scale (float): The normalized proxies are multiplied by it before the similarity
            (the authors' ``loss_vpt_scale_ratio``): ``cos`` above becomes ``s * cos``, so the
            effective scale is ``alpha * s`` and the effective margin ``delta / s``.
            Defaults to 1.0 (the paper's Eq. 4).
    """

    def __init__(self, margin: float = 0.1, alpha: float = 32.0,
                 pos_reduction: str = 'with_positives', proxy_scale: float = 1.0) -> None:
        super().__init__()
        if pos_reduction not in POS_REDUCTIONS:
            raise ValueError(f'pos_reduction must be one of {POS_REDUCTIONS}, '
                             f'got {pos_reduction!r}')
        if not proxy_scale > 0:
            raise ValueError(f'proxy_scale must be > 0, got {proxy_scale}')
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.pos_reduction = pos_reduction
        self.proxy_scale = float(proxy_scale)

    @staticmethod
    def _log1p_sum_exp(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log(1 + sum_j mask_ij exp(logits_ij)) per row, stably; 0 for an empty row."""
        logits = logits.masked_fill(~mask, float('-inf'))
        zeros = logits.new_zeros(logits.shape[0], 1)
        return torch.logsumexp(torch.cat([zeros, logits], dim=1), dim=1)

    def forward(self, proxies: torch.Tensor, samples: torch.Tensor, labels: torch.Tensor,
                check_labels: bool = True) -> torch.Tensor:
        """Compute the loss.

        Args:
            proxies: (M, D) prompt proxies.
            samples: (n, D) samples.
            labels: (n,) integers in [0, M): the prompt each sample belongs to; -1 leaves a
                sample out (it is neither a positive nor a negative of any proxy).
            check_labels: Check that the labels are in [-1, M) and raise a clear error
                otherwise. The check reads the labels on the host (a synchronization on an
                accelerator); callers that built the labels from checked ones pass False.
                Defaults to True.

        Returns:
            Tensor: A scalar float32 loss; 0 (still connected to the inputs) without samples.
        """
        if proxies.dim() != 2 or samples.dim() != 2 or proxies.shape[1] != samples.shape[1]:
            raise ValueError(f'expected proxies (M, D) and samples (n, D), got '
                             f'{tuple(proxies.shape)} and {tuple(samples.shape)}')
        labels = labels.reshape(-1).long()
        if labels.numel() != samples.shape[0]:
            raise ValueError(f'{samples.shape[0]} samples but {labels.numel()} labels')
        num_proxies = proxies.shape[0]
        if check_labels and labels.numel():
            low, high = (int(v) for v in torch.stack(torch.aminmax(labels)).tolist())
            if low < -1 or high >= num_proxies:
                raise ValueError(f'labels must be in [0, {num_proxies}) (or -1 to leave a '
                                 f'sample out), got values from {low} to {high}')
        with torch.autocast(device_type=proxies.device.type, enabled=False):
            proxies = F.normalize(proxies.float(), dim=1) * self.proxy_scale
            if samples.shape[0] == 0:
                return (proxies.sum() + samples.float().sum()) * 0.0
            labelled = labels >= 0
            # Left-out samples are zeroed (not masked by multiplication: they may hold NaN).
            samples = F.normalize(torch.where(labelled[:, None], samples.float(), 0.0), dim=1)
            cos = proxies @ samples.t()  # (M, n)
            prompt_ids = torch.arange(num_proxies, device=labels.device)
            positive = labels[None, :] == prompt_ids[:, None]  # (M, n); none for -1
            negative = labelled[None, :] & ~positive
            pos_term = self._log1p_sum_exp(-self.alpha * (cos - self.margin), positive)
            neg_term = self._log1p_sum_exp(self.alpha * (cos + self.margin), negative)
            if self.pos_reduction == 'with_positives':
                has_pos = positive.any(dim=1)
                pos_loss = pos_term.sum() / has_pos.sum().clamp(min=1)
            else:
                pos_loss = pos_term.mean()
            return pos_loss + neg_term.mean()
