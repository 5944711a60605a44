"""AttentionCore: the shared attention model, and ``rollout`` of K glimpse sequences.

The K samples of each example are folded into the batch (rows r = b * K + k) for every
network call; the only Python loop is over the N glimpses.
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ram_lightning.errors import UserError

from .glimpse import GlimpseNetwork, GlimpseSensor
from .policy import AttentionDistribution, AttentionHead, scale_factors, where_features
from .recurrent import ContextNetwork, PredictionNetwork

# A proposal maps (top hidden state [B*K, H], glimpse index n) to q(a_n | y, a_<n, I).
Proposal = Callable[[Tensor, int], AttentionDistribution]
# Where the policy's gradient stops (AttentionCore's detach_policy_input): nowhere, the policy's input, the top LSTM's input.
DetachPoint = Union[bool, Literal["top_input"]]


@dataclass
class Rollout:
    """K sampled glimpse sequences per example.

    Attributes:
        hidden: [B, K, H] bottom-layer state after the last glimpse (the task head reads it).
        log_prior: [B, K] log p(a^k | I), summed over glimpses (differentiable).
        log_proposal: [B, K] log q(a^k | y, I) when sampled from a proposal, else None.
        entropy: [B, K] entropy of p summed over glimpses.
        locations: [B, K, N, 2] the glimpse locations used.
        scales: [B, K, N] scale indices used, or None without scale choice.
        context: [B, H] the context network's output (an input for baselines b(I)).
        top_states: [B, K, N, H] the top state each glimpse was chosen from (detached), when
            the rollout was asked to record them (to score the sequences under q afterwards).
        glimpse_log_prior: [B, K, N] log p(a_n | a_<n, I) of each glimpse (detached; for
            diagnostics such as the per-glimpse KL(q || p)).
        glimpse_log_proposal: [B, K, N] log q(a_n | y, a_<n, I) (detached), or None.
    """

    hidden: Tensor
    log_prior: Tensor
    log_proposal: Optional[Tensor]
    entropy: Tensor
    locations: Tensor
    scales: Optional[Tensor]
    context: Tensor
    top_states: Optional[Tensor] = None
    glimpse_log_prior: Optional[Tensor] = None
    glimpse_log_proposal: Optional[Tensor] = None


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(size)
    if len(size) != 2:
        raise UserError(f"image size must be an int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


class AttentionCore(nn.Module):
    """Glimpse sensor + glimpse network + two-layer LSTM + glimpse policy.

    Args:
        image_shape: (C, H, W) of the input images.
        glimpse_size: g, side in pixels of each retina patch.
        num_patches: P, concentric patches per glimpse (each twice as wide).
        num_glimpses: N, glimpses per image.
        scales: width factors the policy chooses among (the scale action), or None for none.
        hidden_size: LSTM state size.
        glimpse_hidden: size of the what/where branches of the glimpse network.
        glimpse_features: size of the glimpse network's output.
        context_size: side of the low-resolution copy the context network reads.
        location_std: std of the location policy (fixed, or initial when learned).
        learn_std: learn a state-dependent std.
        scale_epsilon: epsilon-uniform mixing of the scale policy in training.
        detach_policy_input: where the estimator's score-function term (and a pathwise
            location gradient) stops on its way back from the policy. False (default): nowhere,
            the exact gradient. True: at the policy's input, a detached copy of the top state, so
            it trains only the policy head (the choice of most RAM re-implementations); the top
            LSTM and the context network, which feed nothing else, then get no gradient at all.
            ``top_input``: at the top LSTM's input, a detached copy of the bottom state, so it
            trains the head, the top LSTM and the context network and stays out of the bottom
            LSTM and the glimpse network. For a score-function estimator, true and ``top_input``
            give the undetached gradient exactly for the parameters they let the term reach; a
            pathwise gradient also loses its path through the states that later glimpses read.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 60, 60),
        glimpse_size: int = 12,
        num_patches: int = 3,
        num_glimpses: int = 6,
        scales: Optional[Sequence[float]] = None,
        hidden_size: int = 256,
        glimpse_hidden: int = 128,
        glimpse_features: int = 256,
        context_size: int = 12,
        location_std: float = 0.1,
        learn_std: bool = False,
        scale_epsilon: float = 0.0,
        detach_policy_input: DetachPoint = False,
    ) -> None:
        super().__init__()
        if len(tuple(image_shape)) != 3:
            raise UserError(f"image_shape must be (channels, height, width), got {tuple(image_shape)!r}")
        channels, height, width = (int(v) for v in image_shape)
        for name, value in (("channels", channels), ("height", height), ("width", width), ("glimpse_size", glimpse_size),
                            ("num_patches", num_patches), ("num_glimpses", num_glimpses), ("hidden_size", hidden_size)):
            if value < 1:
                raise UserError(f"AttentionCore: {name} must be >= 1, got {value}")
        if scales is not None and (len(scales) == 0 or any(s <= 0 for s in scales)):
            raise UserError(f"AttentionCore: scales must be a non-empty list of positive factors, got {scales!r}")
        if not location_std > 0:
            raise UserError(f"AttentionCore: location_std must be > 0 (the std of the Gaussian location policy), got {location_std}")
        if not (isinstance(detach_policy_input, bool) or detach_policy_input == "top_input"):
            raise UserError(f"AttentionCore: detach_policy_input must be false, true or top_input, got {detach_policy_input!r}")
        if not 0 <= scale_epsilon <= 1:
            raise UserError(f"AttentionCore: scale_epsilon must be in [0, 1], got {scale_epsilon}")
        smallest = glimpse_size * 2 ** (num_patches - 1) * min(scales or [1.0])
        if smallest > max(height, width):
            warnings.warn(
                f"AttentionCore: every glimpse is wider than the {height}x{width} image (the widest patch is "
                f"glimpse_size {glimpse_size} x 2^(num_patches-1) x smallest scale = {smallest:g} px); "
                f"most of it will read zeros beyond the edges",
                UserWarning, stacklevel=2,
            )
        self.image_shape = (channels, height, width)
        self.num_glimpses = num_glimpses
        self.hidden_size = hidden_size
        num_scales = len(scales) if scales is not None and len(scales) > 1 else 0
        self.num_scales = num_scales
        self.register_buffer("scale_values", torch.tensor(list(scales), dtype=torch.float32) if num_scales else None, persistent=False)
        self.sensor = GlimpseSensor(glimpse_size, num_patches)
        self.glimpse = GlimpseNetwork(self.sensor.output_size * channels, 2 + num_scales, glimpse_hidden, glimpse_hidden, glimpse_features)
        self.context = ContextNetwork(channels, hidden_size, context_size)
        self.recurrent = PredictionNetwork(glimpse_features, hidden_size)
        self.policy = AttentionHead(hidden_size, num_scales, location_std, learn_std, scale_epsilon=scale_epsilon)
        self.detach_policy_input = detach_policy_input

    def check_images(self, images: Tensor) -> None:
        """Raise a UserError unless ``images`` is a float [B, C, H, W] batch of ``image_shape``."""
        if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise UserError(f"expected images of shape [B, {', '.join(map(str, self.image_shape))}] (model.image_shape), got {shape}")
        if not images.is_floating_point():
            raise UserError(f"expected floating-point images (e.g. in [0, 1]), got dtype {images.dtype}")

    def rollout(
        self, images: Tensor, num_samples: int = 1, proposal: Optional[Proposal] = None, record_states: bool = False,
        generator: Optional[torch.Generator] = None, reparameterize: bool = False,
    ) -> Rollout:
        """Sample ``num_samples`` glimpse sequences per image.

        Args:
            images: [B, C, H, W].
            num_samples: K.
            proposal: if given, actions are drawn from it instead of the policy, and
                ``log_proposal`` holds their log q; ``log_prior`` always scores the same actions.
            record_states: also return the (detached) top states the glimpses were chosen from.
            generator: the random stream the actions are drawn from (None: torch's global one).
            reparameterize: draw the policy's locations as mean + std * eps (``rsample``: pathwise
                gradients through the sensor; their log-density enters ``log_prior`` without gradient).
        """
        self.check_images(images)
        batch, samples = images.shape[0], num_samples
        context = self.context(images)  # [B, H]
        bottom, top = self.recurrent.initial_state(context.repeat_interleave(samples, dim=0))  # rows b*K + k
        log_prior = images.new_zeros(batch * samples)
        log_proposal = images.new_zeros(batch * samples) if proposal is not None else None
        entropy = images.new_zeros(batch * samples)
        locations, scales, top_states, step_prior, step_proposal = [], [], [], [], []
        pyramid = self.sensor.pyramid(images)  # built once, read by every glimpse
        for step in range(self.num_glimpses):
            prior = self.policy(top[0].detach() if self.detach_policy_input is True else top[0])
            if record_states:
                top_states.append(top[0].detach())
            if proposal is not None:
                sampler = proposal(top[0], step)
                action = sampler.sample(generator)
                step_proposal.append(sampler.log_prob(action))
                log_proposal = log_proposal + step_proposal[-1]
            else:
                action = prior.rsample(generator) if reparameterize else prior.sample(generator)
            step_prior.append(prior.log_prob(action))
            log_prior = log_prior + step_prior[-1]
            entropy = entropy + prior.entropy()
            factor = scale_factors(action, self.scale_values)
            patches = self.sensor.extract(
                pyramid, images.shape[-2:], action.location.view(batch, samples, 2),
                None if factor is None else factor.view(batch, samples),
            )  # [B, K, P, C, g, g]
            features = self.glimpse(patches.reshape(batch * samples, -1), where_features(action, self.num_scales))
            last = step == self.num_glimpses - 1  # the top layer's last update would emit nothing
            bottom, top = self.recurrent(features, bottom, top, update_top=not last,
                                         detach_top_input=self.detach_policy_input == "top_input")
            locations.append(action.location)
            if action.scale is not None:
                scales.append(action.scale)
        return Rollout(
            hidden=bottom[0].view(batch, samples, -1),
            log_prior=log_prior.view(batch, samples),
            log_proposal=None if log_proposal is None else log_proposal.view(batch, samples),
            entropy=entropy.view(batch, samples),
            locations=torch.stack(locations, 1).view(batch, samples, self.num_glimpses, 2),
            scales=torch.stack(scales, 1).view(batch, samples, self.num_glimpses) if scales else None,
            context=context,
            top_states=torch.stack(top_states, 1).view(batch, samples, self.num_glimpses, -1) if record_states else None,
            glimpse_log_prior=torch.stack(step_prior, 1).detach().view(batch, samples, self.num_glimpses),
            glimpse_log_proposal=(torch.stack(step_proposal, 1).detach().view(batch, samples, self.num_glimpses)
                                  if step_proposal else None),
        )
