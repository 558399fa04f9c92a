"""Reversible residual layers (Gomez et al., 2017, as used by the Reformer).

Each layer maps two streams ``x1, x2`` to ``y1 = x1 + f(x2)`` and ``y2 = x2 + g(y1)``, where ``f`` is
the attention block and ``g`` the feed-forward block. The inputs follow from the outputs,
``x2 = y2 - g(y1)`` and ``x1 = y1 - f(x2)``, so the backward pass rebuilds them layer by layer
instead of storing every layer's activations: only one layer's activations exist at a time,
whatever the depth.

The recomputation must match the forward pass exactly. Before each block the forward pass records
torch's random number generator state, which the backward pass restores so that dropout draws the
same masks. It also keeps each LSH layer's buckets. The backward pass reuses them instead of
hashing the rebuilt inputs, which differ from the originals by rounding.

All parameters are explicit inputs of the autograd function. Their gradients are returned to
autograd instead of being accumulated by hand. So the parameters get gradients even when the input
embeddings do not require any, and parameter gradient hooks, which DistributedDataParallel uses,
fire once per backward pass.

Layers sharded with FSDP2's ``fully_shard`` are the exception. FSDP gathers a layer's parameters
in hooks around the layer's own call and reduces their gradients in hooks of the backward pass
through that call, so such a layer is always called as a whole: in the forward pass without
gradients, and in the backward pass once more with gradients after its inputs have been rebuilt.
That costs one extra forward pass per sharded layer. Its parameters are then left out of the
function's inputs, and FSDP stores their sharded gradients itself.
"""

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

try:
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # torch built without distributed support
    FSDPModule = None

from .configuration import ReformerConfig
from .feed_forward import ChunkedFeedForward
from .local_attention import FullSelfAttention, LocalSelfAttention
from .lsh_attention import LSHSelfAttention

_ATTENTION_CLASSES = {"lsh": LSHSelfAttention, "local": LocalSelfAttention, "full": FullSelfAttention}


class AttentionBlock(nn.Module):
    """Layer norm, self-attention of the layer's kind, output projection and dropout: the ``f`` block."""

    def __init__(self, config: ReformerConfig, layer_idx: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attention = _ATTENTION_CLASSES[config.attention_layers[layer_idx]](config, layer_idx)
        all_head_size = config.num_attention_heads * config.attention_head_size
        self.output = nn.Linear(all_head_size, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        num_hashes: int | None = None,
        buckets: torch.Tensor | None = None,
        record: list | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the block's output and the buckets used.

        ``record`` receives ``(normalized inputs, buckets, rotations)``, with ``None`` for the last
        two in local and full attention.
        """
        normalized = self.layer_norm(hidden_states)
        rotations = [] if record is not None and isinstance(self.self_attention, LSHSelfAttention) else None
        kwargs = {} if rotations is None else {"rotations_out": rotations}
        attention_outputs, buckets = self.self_attention(
            normalized, key_padding_mask, num_hashes=num_hashes, buckets=buckets, **kwargs
        )
        if record is not None:
            record.append((normalized, buckets, rotations[0] if rotations else None))
        return self.dropout(self.output(attention_outputs)), buckets


class ReformerLayer(nn.Module):
    """One layer: ``y1 = x1 + f(x2)``, ``y2 = x2 + g(y1)``."""

    def __init__(self, config: ReformerConfig, layer_idx: int):
        super().__init__()
        self.attention = AttentionBlock(config, layer_idx)
        self.feed_forward = ChunkedFeedForward(config)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        key_padding_mask: torch.Tensor,
        num_hashes: int | None = None,
        record: list | None = None,
        replay: "_LayerRecord | None" = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the layer with ordinary autograd, storing activations: the irreversible path.

        ``replay`` is used by the reversible stack for FSDP-sharded layers. Its buckets, when
        set, are reused instead of hashing; otherwise they and the random state before the
        feed-forward block are stored in it.
        """
        buckets = None if replay is None else replay.buckets
        attention_outputs, buckets = self.attention(
            x2, key_padding_mask, num_hashes=num_hashes, buckets=buckets, record=record
        )
        y1 = x1 + attention_outputs
        if replay is not None and replay.feed_forward_rng is None:
            replay.buckets = buckets
            replay.feed_forward_rng = _RngState.capture(y1.device)
        y2 = x2 + self.feed_forward(y1)
        return y1, y2


@dataclass
class _RngState:
    """State of torch's default generators for the CPU and, if used, one CUDA device."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None
    device: torch.device

    @classmethod
    def capture(cls, device: torch.device) -> "_RngState":
        cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda_state, device)

    @contextlib.contextmanager
    def replay(self):
        """Run the body from this state and restore the outer state afterwards."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield


@dataclass
class _LayerRecord:
    attention_rng: _RngState
    feed_forward_rng: _RngState | None
    buckets: torch.Tensor | None


def is_sharded(layer: nn.Module) -> bool:
    """Tell whether FSDP2's ``fully_shard`` was applied to ``layer`` itself."""
    return FSDPModule is not None and isinstance(layer, FSDPModule)


def _autocast(state: tuple[str, torch.dtype, bool]) -> torch.autocast:
    device_type, dtype, enabled = state
    return torch.autocast(device_type, dtype=dtype, enabled=enabled)


class _ReversibleStackFunction(torch.autograd.Function):
    """Forward through all layers without storing activations; rebuild them in the backward pass."""

    @staticmethod
    def forward(ctx, x1, x2, key_padding_mask, layers, num_hashes, hidden_states_out, *params):
        records = []
        with torch.no_grad():
            for layer in layers:
                attention_rng = _RngState.capture(x2.device)
                if is_sharded(layer):
                    record = _LayerRecord(attention_rng, None, None)
                    y1, y2 = layer(x1, x2, key_padding_mask, num_hashes=num_hashes, replay=record)
                    records.append(record)
                else:
                    attention_outputs, buckets = layer.attention(x2, key_padding_mask, num_hashes=num_hashes)
                    y1 = x1 + attention_outputs
                    feed_forward_rng = _RngState.capture(x2.device)
                    y2 = x2 + layer.feed_forward(y1)
                    records.append(_LayerRecord(attention_rng, feed_forward_rng, buckets))
                if hidden_states_out is not None:
                    hidden_states_out.append(torch.cat([y1, y2], dim=-1))
                x1, x2 = y1, y2

        ctx.layers = layers
        ctx.records = records
        # The backward pass runs outside any autocast region, so it re-enters the forward pass's own.
        device_type = x2.device.type
        ctx.autocast = (device_type, torch.get_autocast_dtype(device_type), torch.is_autocast_enabled(device_type))
        ctx.num_hashes = num_hashes
        ctx.params = params
        ctx.save_for_backward(y1, y2, key_padding_mask)
        return y1, y2

    @staticmethod
    def backward(ctx, dy1, dy2):
        y1, y2, key_padding_mask = ctx.saved_tensors
        param_index = {id(param): index for index, param in enumerate(ctx.params)}
        param_grads = [None] * len(ctx.params)

        def accumulate(params, grads):
            for param, grad in zip(params, grads):
                if grad is None:
                    continue
                index = param_index[id(param)]
                param_grads[index] = grad if param_grads[index] is None else param_grads[index] + grad

        # The rebuilt inputs and their gradients overwrite the outputs and gradients in place, layer
        # after layer, once the first layer has copied the tensors it was handed. The saved outputs
        # stay intact, so that a graph kept with retain_graph=True can run backward again.
        own = False
        for layer, record in zip(reversed(ctx.layers), reversed(ctx.records)):
            if is_sharded(layer):
                y1, y2, dy1, dy2 = _sharded_layer_backward(ctx, layer, record, y1, y2, dy1, dy2)
                own = False
                continue
            # Feed-forward block, one slice of positions at a time: x2 = y2 - g(y1).
            x2, dy1 = (y2, dy1) if own else (y2.clone(), dy1.clone())
            feed_forward_params = [p for p in layer.feed_forward.parameters() if p.requires_grad]
            with record.feed_forward_rng.replay(), torch.enable_grad(), _autocast(ctx.autocast):
                for part in layer.feed_forward.chunk_slices(y1.shape[1]):
                    y1_part = y1[:, part].detach().requires_grad_(True)
                    g_part = layer.feed_forward.forward_chunk(y1_part)
                    grads = torch.autograd.grad(
                        g_part, [y1_part, *feed_forward_params], dy2[:, part], allow_unused=True
                    )
                    dy1[:, part] += grads[0]
                    accumulate(feed_forward_params, grads[1:])
                    x2[:, part] -= g_part.detach()
                    del g_part, grads

            # Attention block with the recorded buckets: x1 = y1 - f(x2).
            attention_params = [p for p in layer.attention.parameters() if p.requires_grad]
            with record.attention_rng.replay(), torch.enable_grad(), _autocast(ctx.autocast):
                x2_leaf = x2.detach().requires_grad_(True)
                attention_outputs, _ = layer.attention(
                    x2_leaf, key_padding_mask, num_hashes=ctx.num_hashes, buckets=record.buckets
                )
                grads = torch.autograd.grad(attention_outputs, [x2_leaf, *attention_params], dy1, allow_unused=True)
            accumulate(attention_params, grads[1:])
            x1, dy2 = (y1, dy2) if own else (y1.clone(), dy2.clone())
            x1 -= attention_outputs.detach()
            dy2 += grads[0]
            del attention_outputs, grads, x2_leaf
            own = True
            y1, y2 = x1, x2

        return (dy1, dy2, None, None, None, None, *param_grads)


def _sharded_layer_backward(ctx, layer, record, y1, y2, dy1, dy2):
    """Rebuild an FSDP-sharded layer's inputs, then backpropagate through a call of the whole layer.

    The call runs FSDP's hooks: they gather the parameters again for the backward pass and
    reduce-scatter their gradients into the sharded ``.grad``. Returns the inputs and their
    gradients.
    """
    key_padding_mask = ctx.saved_tensors[2]
    layer.unshard()
    with torch.no_grad(), _autocast(ctx.autocast):
        with record.feed_forward_rng.replay():
            x2 = y2 - layer.feed_forward(y1)
        with record.attention_rng.replay():
            attention_outputs, _ = layer.attention(x2, key_padding_mask, num_hashes=ctx.num_hashes, buckets=record.buckets)
            x1 = y1 - attention_outputs
    x1_leaf, x2_leaf = x1.detach().requires_grad_(True), x2.detach().requires_grad_(True)
    with record.attention_rng.replay(), torch.enable_grad(), _autocast(ctx.autocast):
        y1_again, y2_again = layer(x1_leaf, x2_leaf, key_padding_mask, num_hashes=ctx.num_hashes, replay=record)
    torch.autograd.backward((y1_again, y2_again), (dy1, dy2))
    return x1, x2, x1_leaf.grad, x2_leaf.grad


@torch.compiler.disable
def _run_reversible(x1, x2, key_padding_mask, layers, num_hashes, hidden_states_out, params):
    """Run the reversible function eagerly, also inside a torch.compile graph.

    Its backward pass restores torch's random state to replay dropout, which compiled kernels do
    not follow, and it saves Python records between the passes.
    """
    return _ReversibleStackFunction.apply(x1, x2, key_padding_mask, layers, num_hashes, hidden_states_out, *params)


class ReformerStack(nn.Module):
    """The layers of the model, run reversibly or with ordinary autograd as ``config.reversible`` selects."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.reversible = config.reversible
        self.irreversible_max_tokens = config.irreversible_max_tokens
        self.layers = nn.ModuleList(ReformerLayer(config, index) for index in range(config.num_hidden_layers))

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        num_hashes: int | None = None,
        hidden_states_out: list | None = None,
        record: list | None = None,
    ) -> torch.Tensor:
        """Run both streams from ``hidden_states`` ``[b, n, D]`` and return ``[y1; y2]`` ``[b, n, 2D]``.

        ``hidden_states_out``, when given, receives ``[y1; y2]`` after every layer. On the
        reversible path with gradients enabled these copies are detached from the graph.
        ``record``, when given, receives each layer's normalized attention inputs and buckets, for
        the generation cache; the layers then run on the plain path.
        """
        x1, x2 = hidden_states, hidden_states
        needs_grad = record is None and torch.is_grad_enabled() and (
            hidden_states.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        short = hidden_states.shape[0] * hidden_states.shape[1] <= self.irreversible_max_tokens
        if self.reversible and needs_grad and not short:
            # FSDP reduces the gradients of a sharded layer's parameters itself (see the module docstring).
            params = [
                p for layer in self.layers if not is_sharded(layer) for p in layer.parameters() if p.requires_grad
            ]
            y1, y2 = _run_reversible(x1, x2, key_padding_mask, self.layers, num_hashes, hidden_states_out, params)
            return torch.cat([y1, y2], dim=-1)

        for layer in self.layers:
            x1, x2 = layer(x1, x2, key_padding_mask, num_hashes=num_hashes, record=record)
            if hidden_states_out is not None:
                hidden_states_out.append(torch.cat([x1, x2], dim=-1))
        return torch.cat([x1, x2], dim=-1)
