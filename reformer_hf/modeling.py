"""Reformer models: the base model and the causal language-modelling head.

Any length, any padding: ``ReformerModel.forward`` moves the real tokens of every row to its front
with a stable sort on the attention mask, so left padding and holes become right padding. It pads
the batch to a multiple of every chunk length, runs the layers, then trims and moves the outputs back.
Because each row then starts with its real tokens, and padding sorts after every real token in LSH
attention, the outputs at real tokens do not depend on how much padding there is or where it sits.
"""

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import HfApi
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput
from transformers.utils import logging

from .chunking import pad_to_multiple
from .configuration import ReformerConfig
from .embeddings import AxialPositionEmbeddings, ReformerEmbeddings, axial_strides
from .incremental import (
    ReformerCache,
    prefill_layer,
    step_attention,
    transformers_padded_length,
    transformers_prefill_stage,
)
from .model_card import write_model_card

logger = logging.get_logger(__name__)
from .reversible import ReformerStack


@dataclass
class ReformerModelOutput(BaseModelOutput):
    """``BaseModelOutput`` plus the generation cache (``use_cache=True``)."""

    cache: ReformerCache | None = None


@dataclass
class ReformerCausalLMOutput(CausalLMOutput):
    """``CausalLMOutput`` plus the generation cache (``use_cache=True``)."""

    cache: ReformerCache | None = None


def project_in_chunks(head: nn.Linear, hidden_states: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Apply ``head`` to ``[b, n, D]`` hidden states ``chunk_size`` positions at a time (0: all at once)."""
    if chunk_size == 0 or chunk_size >= hidden_states.shape[1]:
        return head(hidden_states)
    return torch.cat([head(part) for part in hidden_states.split(chunk_size, dim=1)], dim=1)


class ReformerPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading shared by the Reformer models."""

    config_class = ReformerConfig
    base_model_prefix = "reformer"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["ReformerLayer"]

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        """Save as ``PreTrainedModel.save_pretrained`` does, plus a ``README.md`` model card.

        The card (see ``reformer_hf.model_card``) reads ``self.model_card_info`` when set, and is
        never written over a README that someone else wrote. ``push_to_hub=True`` then uploads the
        folder with ``push_to_hub`` (``repo_id``, ``commit_message``, ``create_pr``, ``private``
        and ``token`` are passed on), so that the card reaches the Hub.
        """
        hub_options = {name: kwargs.pop(name) for name in ("repo_id", "commit_message", "create_pr", "private", "token")
                       if name in kwargs}
        if kwargs.get("is_main_process", True) and not Path(save_directory).is_file():
            Path(save_directory).mkdir(parents=True, exist_ok=True)
            write_model_card(self, save_directory)
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if push_to_hub and kwargs.get("is_main_process", True):
            repo_id = hub_options.pop("repo_id", Path(save_directory).resolve().name)
            self.push_to_hub(repo_id, max_shard_size=kwargs.get("max_shard_size", "50GB"), **hub_options)
        return result

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, commit_description: str | None = None,
                    private: bool | None = None, token: bool | str | None = None, revision: str | None = None,
                    create_pr: bool = False, max_shard_size: int | str | None = "50GB",
                    tags: list[str] | None = None) -> str:
        """Upload the model as ``PushToHubMixin.push_to_hub`` does, with this package's model card.

        transformers would replace the card by the repository's current README or its own template.
        Here the repository's README is kept only when someone else wrote it.
        """
        from transformers.utils.hub import create_and_tag_model_card

        from .model_card import GENERATED_MARKER

        api = HfApi()
        repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        if revision is not None and not revision.startswith("refs/pr"):
            api.create_branch(repo_id, branch=revision, token=token, exist_ok=True)
        if tags:
            info = dict(getattr(self, "model_card_info", None) or {})
            info["tags"] = list(dict.fromkeys(list(info.get("tags", [])) + list(tags)))
            self.model_card_info = info
        has_card = api.file_exists(repo_id, "README.md", revision=revision, token=token)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, max_shard_size=max_shard_size)
            if has_card:
                hub_card = create_and_tag_model_card(repo_id, tags, token=token)
                if GENERATED_MARKER not in hub_card.content:
                    hub_card.save(str(Path(folder) / "README.md"))
            return self._upload_modified_files(
                folder, repo_id, files_timestamps={}, commit_message=commit_message, token=token,
                create_pr=create_pr, revision=revision, commit_description=commit_description,
            )

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, every_n_layers: int = 1,
                                        offload: bool = False) -> None:
        """Log once and change nothing: reversible layers already recompute their activations.

        ``TrainingArguments(gradient_checkpointing=True)`` (or ``activation_checkpointing=True``)
        reaches this method; checkpointing on top of the reversible stack would only recompute
        twice. With ``reversible=False`` the plain stack keeps its activations: switch
        ``reversible`` on to save that memory.
        """
        if self.config.reversible:
            logger.warning_once(
                "Activation checkpointing is a no-op for reformer_hf: its reversible layers already recompute "
                "activations in the backward pass, so memory does not grow with depth."
            )
        else:
            logger.warning_once(
                "Activation checkpointing is not implemented for reversible=False; the layers keep their "
                "activations. Build the config with reversible=True to recompute them instead."
            )

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs) -> None:
        """Alias of ``activation_checkpointing_enable`` (transformers' older name)."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, AxialPositionEmbeddings):
            for weight in module.weights:
                std = self.config.axial_norm_std or self.config.initializer_range
                nn.init.normal_(weight, mean=0.0, std=std)
            # from_pretrained (transformers 5.25) builds the model on the meta device and leaves
            # non-persistent buffers uninitialised, then calls this method to fill them.
            module.strides.copy_(axial_strides(module.axial_pos_shape))


class ReformerModel(ReformerPreTrainedModel):
    """Embeddings, the reversible layer stack and a final layer norm over both streams.

    The final hidden states concatenate the two reversible streams, so they have
    ``2 * config.hidden_size`` features.
    """

    def __init__(self, config: ReformerConfig):
        super().__init__(config)
        self.embeddings = ReformerEmbeddings(config)
        self.encoder = ReformerStack(config)
        self.layer_norm = nn.LayerNorm(2 * config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @property
    def length_multiple(self) -> int:
        """Multiple of every chunk length in the layer schedule, which the padded length must be."""
        multiple = 1
        if "lsh" in self.config.attention_layers:
            multiple = math.lcm(multiple, self.config.lsh_chunk_length)
        if "local" in self.config.attention_layers:
            multiple = math.lcm(multiple, self.config.local_chunk_length)
        return multiple

    def _fits_one_lsh_chunk(self, length: int) -> bool:
        """Return whether transformers' Reformer runs LSH layers on ``length`` tokens as one chunk.

        After its padding (``transformers_padded_length``) it attends without hashing when the
        input is at most one LSH chunk long.
        """
        config = self.config
        if "lsh" not in config.attention_layers:
            return False
        return transformers_padded_length(config, length) <= config.lsh_chunk_length

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        num_hashes: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        cache: ReformerCache | None = None,
    ) -> ReformerModelOutput | tuple:
        """Encode a batch.

        Args:
            input_ids: ``[b, n]`` token ids. Give this or ``inputs_embeds``.
            attention_mask: ``[b, n]``, 1 at real tokens and 0 at padding, on either side or
                anywhere in the row.
            position_ids: ``[b, n]`` or ``[n]`` position ids of the real tokens. By default the
                real tokens of each row get 0, 1, 2, ... in order, whatever padding precedes them.
            inputs_embeds: ``[b, n, hidden_size]`` embeddings in place of ``input_ids``.
            num_hashes: Hash rounds of every LSH layer for this call; ``config.num_hashes`` by
                default. More rounds make LSH attention closer to full attention.
            output_hidden_states: Also return ``[b, n, 2 * hidden_size]`` hidden states after
                the embeddings and after every layer. On the reversible path with gradients
                enabled, the per-layer states are detached from the graph.
            return_dict: Return a ``ReformerModelOutput`` or a tuple. ``None`` follows
                ``config.return_dict`` (true by default), as does ``output_hidden_states`` with
                ``config.output_hidden_states``.
            use_cache: In evaluation mode, also return a ``ReformerCache`` of every layer's keys,
                values and buckets, which a later call continues from (see ``cache``). Ignored in
                training.
            cache: A cache returned by an earlier call. The inputs are then the next tokens only,
                and ``attention_mask``, when given, covers the cached and the new tokens. The cache
                is extended in place and returned.
            output_attentions: Must be false or ``None``: LSH attention never forms a dense
                attention matrix to return.

        Raises:
            ValueError: for a missing or doubled input, ids outside the vocabulary, tensors of the
                wrong shape, or more real tokens than ``max_position_embeddings``.
        """
        if output_attentions:
            raise ValueError(
                "output_attentions=True is not supported: LSH and local attention never form the dense "
                "[length, length] attention matrix. Leave output_attentions unset."
            )
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if return_dict is None:
            return_dict = self.config.return_dict
        if cache is not None and not cache.is_empty:
            return self._continue(cache, input_ids, inputs_embeds, attention_mask, num_hashes, return_dict)
        if cache is not None and not self.config.is_decoder:
            raise ValueError(
                "A generation cache needs a causal model, but the config has is_decoder=False: a bidirectional "
                "model's earlier outputs change with every new token. Run the whole sequence instead."
            )
        # A bidirectional model has nothing to cache: every new token changes every output.
        caching = bool(use_cache or cache is not None) and not self.training and self.config.is_decoder
        real, position_ids = self._validate_inputs(input_ids, attention_mask, position_ids, inputs_embeds, num_hashes)
        length = real.shape[1]
        requested_hashes = num_hashes or self.config.num_hashes

        # Move real tokens to the front of their rows so that every row is right-padded.
        restore_idx = None
        # Compacting a row without padding changes nothing, so a compiled call always compacts
        # rather than branch on the mask's values.
        if self.config.compact_padding and (torch.compiler.is_compiling() or not bool(real.all())):
            order = torch.sort((~real).to(torch.int8), dim=1, stable=True).indices  # [b, n]
            restore_idx = torch.argsort(order, dim=1)
            real = real.gather(1, order)
            if input_ids is not None:
                input_ids = input_ids.gather(1, order)
            else:
                inputs_embeds = inputs_embeds.gather(1, order.unsqueeze(-1).expand_as(inputs_embeds))
            if position_ids is not None:
                position_ids = position_ids.gather(1, order)
        if position_ids is None:
            position_ids = torch.arange(length, device=real.device).expand(real.shape[0], length)
        # Padded slots get a valid position id; their outputs are never used.
        capacity = self.config.max_position_embeddings
        outside = (position_ids < 0) | (position_ids >= capacity)
        position_ids = position_ids.masked_fill(~real & (outside | self.config.compact_padding), 0)

        hidden_states = self.embeddings(position_ids, input_ids=input_ids, inputs_embeds=inputs_embeds)
        all_hidden_states = [] if output_hidden_states else None
        if all_hidden_states is not None:
            all_hidden_states.append(torch.cat([hidden_states, hidden_states], dim=-1))

        if self.config.lsh_transformers_rounding and self._fits_one_lsh_chunk(length):
            # transformers' Reformer attends such a sequence without hashing, in a single round.
            num_hashes = 1
        # Pad to a multiple of every chunk length. The padding is masked as a key everywhere.
        hidden_states = pad_to_multiple(hidden_states, self.length_multiple, dim=1)
        key_padding_mask = pad_to_multiple(real, self.length_multiple, dim=1, value=False)
        record = [] if caching else None
        hidden_states = self.encoder(hidden_states, key_padding_mask, num_hashes, all_hidden_states, record)
        hidden_states = self.dropout(self.layer_norm(hidden_states))
        if caching:
            cache = cache if cache is not None else ReformerCache()
            stage = transformers_prefill_stage(self.config, length, not bool(real.all()))
            for layer, (normalized, buckets, rotations) in zip(self.encoder.layers, record):
                if buckets is not None:
                    buckets = buckets[..., :length]
                cache.layers.append(
                    prefill_layer(layer.attention.self_attention, normalized[:, :length], buckets, stage, rotations)
                )
            cache.key_valid, cache.positions, cache.num_hashes = real, position_ids, requested_hashes

        def restore(states: torch.Tensor) -> torch.Tensor:
            states = states[:, :length]
            if restore_idx is None:
                return states
            return states.gather(1, restore_idx.unsqueeze(-1).expand_as(states))

        hidden_states = restore(hidden_states)
        if all_hidden_states is not None:
            all_hidden_states = tuple(restore(states) for states in all_hidden_states)
        if return_dict is False:
            return tuple(item for item in (hidden_states, all_hidden_states, cache if caching else None) if item is not None)
        return ReformerModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, cache=cache if caching else None
        )

    def _continue(self, cache, input_ids, inputs_embeds, attention_mask, num_hashes, return_dict):
        """Run the next tokens through the layers one at a time, attending to and extending ``cache``."""
        if self.training:
            raise ValueError(
                "A generation cache was passed in training mode. Caches serve evaluation and generation only; "
                "call model.eval() first."
            )
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds with a cache.")

        new = input_ids if input_ids is not None else inputs_embeds
        batch_size, count = new.shape[:2]
        cached = cache.get_seq_length()
        if batch_size != cache.key_valid.shape[0]:
            raise ValueError(
                f"The cache contains {cache.key_valid.shape[0]} rows but the input has {batch_size}. Continue each "
                f"cache with the rows it was built from."
            )
        if input_ids is not None:
            self._validate_inputs(input_ids, None, None, None, None)
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (batch_size, cached + count):
                raise ValueError(
                    f"With a cache of {cached} tokens and {count} new ones, attention_mask must have shape "
                    f"{[batch_size, cached + count]}, got {list(attention_mask.shape)}."
                )
            if not bool(attention_mask[:, cached:].bool().all()):
                raise ValueError("Tokens added to a cache must be real: attention_mask must be 1 at the new tokens.")

        requested = num_hashes or self.config.num_hashes
        if requested != cache.num_hashes:
            raise ValueError(
                f"The cache was built with num_hashes={cache.num_hashes}, but this call asks for {requested}. "
                f"Keep num_hashes the same for the whole generation."
            )

        capacity = self.config.max_position_embeddings
        outputs = []
        for index in range(count):
            positions = cache.next_positions(self.config.compact_padding)  # [b]
            if int(positions.max()) >= capacity:
                raise ValueError(
                    f"The next token would take position {int(positions.max())}, but the model embeds only "
                    f"{capacity} positions (max_position_embeddings). Stop generation at {capacity} tokens."
                )
            cache.key_valid = torch.cat([cache.key_valid, cache.key_valid.new_ones(batch_size, 1)], dim=1)
            cache.positions = torch.cat([cache.positions, positions[:, None]], dim=1)

            token = slice(index, index + 1)
            x1 = x2 = self.embeddings(
                positions[:, None],
                input_ids=input_ids[:, token] if input_ids is not None else None,
                inputs_embeds=inputs_embeds[:, token] if inputs_embeds is not None else None,
            )
            for layer, layer_cache in zip(self.encoder.layers, cache.layers):
                block = layer.attention
                attended = step_attention(
                    block.self_attention, block.layer_norm(x2), layer_cache, cache.key_valid, cache.positions,
                    cache.num_hashes,
                )
                x1 = x1 + block.dropout(block.output(attended))
                x2 = x2 + layer.feed_forward(x1)
            outputs.append(self.dropout(self.layer_norm(torch.cat([x1, x2], dim=-1))))

        hidden_states = torch.cat(outputs, dim=1)
        if return_dict is False:
            return (hidden_states, cache)
        return ReformerModelOutput(last_hidden_state=hidden_states, cache=cache)

    def _validate_inputs(self, input_ids, attention_mask, position_ids, inputs_embeds, num_hashes):
        """Check the inputs before any work; return the boolean mask and ``[b, n]`` position ids."""
        config = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds, got " + (
                "both." if input_ids is not None else "neither."))
        if input_ids is not None:
            if input_ids.dim() != 2 or input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
                raise ValueError(
                    f"input_ids must be an integer tensor of shape [batch_size, length], got dtype "
                    f"{input_ids.dtype} and shape {list(input_ids.shape)}. Add a batch dim with input_ids[None]."
                )
            batch_size, length = input_ids.shape
            device = input_ids.device
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.hidden_size:
                raise ValueError(
                    f"inputs_embeds must have shape [batch_size, length, {config.hidden_size}], "
                    f"got {list(inputs_embeds.shape)}."
                )
            batch_size, length = inputs_embeds.shape[:2]
            device = inputs_embeds.device
        if batch_size == 0 or length == 0:
            raise ValueError(f"The input is empty: batch_size={batch_size}, length={length}. Pass at least one token.")
        # NOTE: checks of tensor values would split a torch.compile graph, so compiled calls skip them.
        # An id outside the vocabulary then fails inside the embedding lookup, without this message.
        check_values = not torch.compiler.is_compiling()
        if input_ids is not None and check_values:
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= config.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(
                    f"input_ids contains id {bad}, outside the vocabulary [0, {config.vocab_size}). "
                    f"Check that the tokenizer matches this model's vocab_size."
                )

        if attention_mask is None:
            real = torch.ones(batch_size, length, dtype=torch.bool, device=device)
        else:
            if tuple(attention_mask.shape) != (batch_size, length):
                raise ValueError(
                    f"attention_mask must have shape [batch_size, length] = {[batch_size, length]}, "
                    f"got {list(attention_mask.shape)}. Pass the mask that the tokenizer returned with the input."
                )
            if check_values and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
                raise ValueError("attention_mask must contain only 0 (padding) and 1 (real token).")
            real = attention_mask.to(device=device, dtype=torch.bool)

        capacity = config.max_position_embeddings
        if position_ids is not None:
            if position_ids.dim() == 1:
                position_ids = position_ids.unsqueeze(0)
            if position_ids.dim() != 2 or position_ids.shape[1] != length or position_ids.shape[0] not in (1, batch_size):
                raise ValueError(
                    f"position_ids must have shape [batch_size, length] = {[batch_size, length]} or [length], "
                    f"got {list(position_ids.shape)}."
                )
            position_ids = position_ids.to(device).expand(batch_size, length)
            real_positions = position_ids[real] if check_values else position_ids[:0]
            if real_positions.numel() and (int(real_positions.min()) < 0 or int(real_positions.max()) >= capacity):
                raise ValueError(
                    f"position_ids must lie in [0, {capacity}) (max_position_embeddings), got values from "
                    f"{int(real_positions.min())} to {int(real_positions.max())}."
                )
        elif not config.compact_padding:
            if length > capacity:
                raise ValueError(
                    f"The input has {length} positions, padding included, more than the {capacity} positions the "
                    f"model embeds (max_position_embeddings); with compact_padding=False padding counts. "
                    f"Truncate or remove padding so that the length is at most {capacity}."
                )
        elif check_values and length > capacity:
            longest = int(real.sum(dim=1).max())
            if longest > capacity:
                raise ValueError(
                    f"The input has {longest} real tokens in a row, more than the {capacity} positions the model "
                    f"embeds (max_position_embeddings). Truncate the input to {capacity} tokens, or train a model "
                    f"with a larger axial_pos_shape."
                )
        if num_hashes is not None and (isinstance(num_hashes, bool) or not isinstance(num_hashes, int) or num_hashes < 1):
            raise ValueError(f"num_hashes must be a positive int or None, got {num_hashes!r}.")
        return real, position_ids


class ReformerForCausalLM(ReformerPreTrainedModel, GenerationMixin):
    """Reformer with a next-token prediction head, for pretraining and generation.

    Requires ``config.is_decoder=True``. The loss is the mean cross-entropy of predicting
    ``labels[:, t + 1]`` from positions up to ``t``; labels of -100 are ignored.
    """

    def __init__(self, config: ReformerConfig):
        if not config.is_decoder:
            raise ValueError(
                "ReformerForCausalLM needs a causal model, but the config has is_decoder=False. "
                "Build the config with is_decoder=True."
            )
        super().__init__(config)
        self.reformer = ReformerModel(config)
        self.lm_head = nn.Linear(2 * config.hidden_size, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        num_hashes: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        cache: ReformerCache | None = None,
    ) -> ReformerCausalLMOutput | tuple:
        """Predict the next token at every position; see ``ReformerModel.forward`` for the inputs.

        Args:
            labels: ``[b, n]`` target ids, usually ``input_ids`` with padding set to -100. The
                model shifts them by one position itself.
        """
        if return_dict is None:
            return_dict = self.config.return_dict
        if labels is not None and cache is not None and not cache.is_empty:
            raise ValueError("labels cannot be combined with a generation cache; compute the loss without one.")
        if labels is not None:
            # Check the inputs, then the labels, so that a bad label raises before the forward pass.
            self.reformer._validate_inputs(input_ids, attention_mask, position_ids, inputs_embeds, num_hashes)
            input_shape = list((input_ids if input_ids is not None else inputs_embeds).shape[:2])
            if list(labels.shape) != input_shape:
                raise ValueError(f"labels must have the input's shape {input_shape}, got {list(labels.shape)}.")
            targets = labels[:, 1:]
            bad = (targets != -100) & ((targets < 0) | (targets >= self.config.vocab_size))
            if not torch.compiler.is_compiling() and bool(bad.any()):
                raise ValueError(
                    f"labels contains id {int(targets[bad][0])}, outside the vocabulary [0, {self.config.vocab_size}) "
                    f"and not the ignore index -100."
                )

        outputs = self.reformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            num_hashes=num_hashes,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            use_cache=use_cache,
            cache=cache,
            return_dict=True,
        )
        logits = project_in_chunks(self.lm_head, outputs.last_hidden_state, self.config.lm_head_chunk_size)

        loss = None
        if labels is not None:
            targets = labels[:, 1:].to(logits.device)
            loss = nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
            )

        if return_dict is False:
            result = (logits,) + tuple(item for item in (outputs.hidden_states, outputs.cache) if item is not None)
            return ((loss,) + result) if loss is not None else result
        return ReformerCausalLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, cache=outputs.cache)

    def generate(self, inputs: torch.Tensor | None = None, generation_config=None, **kwargs):
        """Generate with ``GenerationMixin.generate``, after checking the length fits the positions.

        Raises:
            ValueError: when the prompt plus the requested new tokens exceed
                ``config.max_position_embeddings``, before any token is generated.
        """
        prompt = inputs if inputs is not None else kwargs.get("input_ids")
        if prompt is None and kwargs.get("inputs_embeds") is not None:
            prompt = kwargs["inputs_embeds"]
        if prompt is not None and prompt.dim() >= 2:
            settings = generation_config if generation_config is not None else self.generation_config
            max_new_tokens = kwargs.get("max_new_tokens", settings.max_new_tokens)
            prompt_length = prompt.shape[1]
            total = prompt_length + max_new_tokens if max_new_tokens is not None else kwargs.get(
                "max_length", settings.max_length
            )
            capacity = self.config.max_position_embeddings
            if prompt_length > capacity or (total is not None and total > capacity):
                raise ValueError(
                    f"The prompt has {prompt_length} tokens and generation may run to {max(total or 0, prompt_length)}, "
                    f"but the model embeds only {capacity} positions (max_position_embeddings). Shorten the "
                    f"prompt or lower max_new_tokens so that prompt length plus max_new_tokens is at most {capacity}."
                )
        return super().generate(inputs, generation_config=generation_config, **kwargs)

    def prepare_inputs_for_generation(
        self, input_ids, attention_mask=None, num_hashes=None, cache=None, use_cache=None, **kwargs
    ):
        """Feed the prompt at the first step, then only the tokens the cache has not seen.

        With ``use_cache=False`` every step runs the whole sequence again.
        """
        capacity = self.config.max_position_embeddings
        if input_ids.shape[1] > capacity:
            raise ValueError(
                f"The sequence reached {input_ids.shape[1]} tokens, prompt and generated together, more than the "
                f"{capacity} positions the model embeds (max_position_embeddings). Keep the prompt length plus "
                f"max_new_tokens at or below {capacity}."
            )
        if cache is not None and not cache.is_empty:
            input_ids = input_ids[:, cache.get_seq_length():]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "num_hashes": num_hashes,
            "cache": cache,
            "use_cache": use_cache,
        }
