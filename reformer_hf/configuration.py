"""Configuration of a Reformer model (Kitaev, Kaiser and Levskaya, "Reformer: The Efficient
Transformer", ICLR 2020; "the paper" below).

Every rule on the fields is checked once, in ``ReformerConfig.validate``, when the config is built or
loaded. The model never writes into its config at run time: values that depend on the input (the
padded length, the number of hash rounds of one call) are computed where they are used.
"""

import math
from collections.abc import Sequence

from transformers import PretrainedConfig

ATTENTION_KINDS = ("lsh", "local", "full")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
POSITION_EMBEDDING_TYPES = ("axial", "learned")
HASH_SEED_MODES = ("per_layer", "transformers")


class ReformerConfig(PretrainedConfig):
    """Configuration of ``ReformerModel``, ``ReformerForCausalLM`` and the task heads.

    The defaults describe a small byte-level causal model: 259 ids (3 special tokens and 256 bytes,
    the mapping of ``ReformerByteTokenizer``), 6 layers alternating local and LSH attention, and
    axial positions for sequences of up to 16,384 tokens.

    Args:
        vocab_size: Number of token ids.
        hidden_size: Width of each of the two reversible streams. The model's final hidden states
            concatenate both streams and so have ``2 * hidden_size`` features.
        num_attention_heads: Number of attention heads.
        attention_head_size: Size of one head's query, key and value vectors.
        feed_forward_size: Inner width of the feed-forward layers.
        hidden_act: Feed-forward activation: ``"relu"``, ``"gelu"``, ``"gelu_tanh"`` or ``"silu"``.
        attention_layers: Attention kind of each layer, in order: ``"lsh"``, ``"local"`` or
            ``"full"`` (plain attention over the whole sequence, as a baseline). Its length is the
            number of layers.
        lsh_chunk_length: Length of the chunks that the bucket-sorted sequence is split into.
        lsh_num_chunks_before: Number of earlier chunks each LSH chunk attends to (look-back).
        lsh_num_chunks_after: Number of later chunks each LSH chunk attends to (look-ahead). Must be
            0 when ``is_decoder`` is true, because later chunks hold no earlier positions.
        num_buckets: Number of hash buckets, in one of three forms. An even int. A pair
            ``[u1, u2]`` of even ints, which hashes twice and combines the buckets as
            ``b1 + u1 * b2`` so that the rotations stay small. Or ``None``, which derives it from
            the position capacity as the paper does: the power of two nearest to
            ``2 * max_position_embeddings / lsh_chunk_length``, at least 2.
        num_hashes: Number of hash rounds. A forward call can ask for more with ``num_hashes=``.
        hash_seed: Seed of the random rotations in evaluation mode. With a seed, evaluation is
            deterministic. Training always draws fresh rotations from torch's default generator,
            which ``transformers.set_seed`` makes reproducible.
        lsh_same_bucket_only: Attend only to keys in the query's own bucket, not to every key in the
            neighbouring chunks (the paper's exact formulation).
        lsh_strictly_causal: With ``is_decoder``, let each query attend only to earlier keys in its
            own bucket, at most ``lsh_num_chunks_before * lsh_chunk_length`` sorted slots back.
            Then no output depends on a later token. With ``False`` a query attends to its whole
            chunk window as in the paper's implementation, but which keys share a chunk depends on
            the buckets of later tokens, so outputs at a position can change when later tokens
            change.
        lsh_duplicate_correction: With several hash rounds, subtract the log of the number of
            rounds in which a query attends a key, so that a pair found in several rounds is
            counted once (the paper's appendix).
        lsh_transformers_rounding: Reproduce two float32 details of transformers' LSH attention:
            masked logits are replaced by the mask value instead of shifted by it, and hash rounds
            are combined with ``exp(lse - logsumexp(lse))``. A query that can attend only to itself
            (the first token of a causal sequence) then gets its own value scaled by up to 0.4%
            instead of exactly. Local and full attention also replace masked logits, and a query
            whose keys are all masked (at a padded position) gets the result transformers computes
            for it instead of zeros. Converted transformers checkpoints switch it on.
        local_chunk_length: Chunk length of local attention.
        local_num_chunks_before: Number of earlier chunks each local chunk attends to.
        local_num_chunks_after: Number of later chunks each local chunk attends to. Must be 0 when
            ``is_decoder`` is true.
        chunk_window_wraps: Let chunk windows wrap around, as transformers' Reformer does. The
            first chunk looks back to the last one. LSH chunks run over all hash rounds laid end to
            end, so the first chunk of a round looks back to the last chunk of the round before.
            Off by default, because in bidirectional attention it lets the end of a sequence, or
            its padding, reach the first tokens. Converted transformers checkpoints switch it on.
        hash_seed_mode: How ``hash_seed`` draws the LSH rotations. ``"per_layer"`` (the default)
            seeds only evaluation, with ``hash_seed + layer index``, and draws the rounds one after
            another, so that asking for more rounds keeps the first ones. ``"transformers"`` draws
            them as transformers' Reformer does: with ``hash_seed`` itself in every layer, in
            training and in evaluation, as one ``[heads, head_size, rounds, buckets / 2]`` tensor.
        compact_padding: Move the real tokens of each row to its front before the layers and give
            them positions 0, 1, 2, ..., so that padding on either side changes nothing at real
            tokens. ``False`` keeps padding in place and counts it in the positions, as
            transformers' Reformer does.
        hidden_dropout_prob: Dropout on embeddings, attention outputs and feed-forward layers.
        attention_probs_dropout_prob: Dropout on attention probabilities.
        lsh_attention_probs_dropout_prob, local_attention_probs_dropout_prob: Dropout on the
            attention probabilities of LSH layers and of local and full layers; ``None`` uses
            ``attention_probs_dropout_prob``.
        classifier_dropout: Dropout in the classification heads; ``None`` uses
            ``hidden_dropout_prob``.
        classifier_pooling: How sequence classification pools a row: ``"mean"`` over its real
            tokens, or ``"first"``, its first real token (transformers' Reformer).
        lm_head_chunk_size: Number of positions the language-modelling heads project at once; 0
            projects the whole sequence at once. The logits agree up to float rounding.
        position_embedding_type: ``"axial"`` (factorised positions, see ``axial_pos_shape``) or
            ``"learned"`` (one learned vector per position).
        axial_pos_shape: Factorisation of the position capacity, for example ``[128, 128]`` for
            16,384 positions. Position ``p`` has the mixed-radix digits of ``p`` in this shape.
        axial_pos_embds_dim: Width of each axis' embedding. The widths must sum to ``hidden_size``.
        max_position_embeddings: Position capacity. With axial positions it must equal the product
            of ``axial_pos_shape`` and is derived from it when left as ``None``.
        feed_forward_chunk_size: Number of positions the feed-forward layers process at once, in the
            forward pass and in the backward recomputation; 0 processes the whole sequence at once.
        attention_group_length: Positions (per head and hash round) whose chunk windows attention
            processes at once. A longer sequence is attended in groups of whole chunks, so that its
            key and value windows, masks and probabilities, several times larger than the inputs,
            exist for one group at a time. In training each group is recomputed in its backward
            pass. On one CPU thread at 16,384 tokens that left the step time unchanged and cut the
            peak of live tensors by a fifth. 0 attends the whole sequence at once. Results equal
            those without groups up to float rounding, except that dropout on attention
            probabilities draws its masks group by group.
        reversible: Use reversible residual layers, which recompute activations in the backward
            pass instead of storing them. ``False`` runs the same weights as a plain residual stack.
        irreversible_max_tokens: With ``reversible``, a training batch of at most this many
            positions (batch size times the length padded to the chunk lengths) runs as a plain
            residual stack instead. That skips the recomputation, about a quarter of a training
            step, and stores each layer's activations, which is cheap for short batches. 0 (the
            default) makes every batch reversible.
        layer_norm_eps: Epsilon of the layer norms.
        initializer_range: Standard deviation of the normal weight initialisation.
        axial_norm_std: Standard deviation of the initial axial position weights; ``None`` uses
            ``initializer_range``.
        is_decoder: Causal attention. ``ReformerForCausalLM`` requires it.
        pad_token_id, bos_token_id, eos_token_id: Special token ids, inside the vocabulary.

    Raises:
        ValueError: when a field breaks a rule. The message names the field, the value and the fix.
    """

    model_type = "reformer_hf"

    def __init__(
        self,
        *,
        vocab_size: int = 259,
        hidden_size: int = 256,
        num_attention_heads: int = 4,
        attention_head_size: int = 64,
        feed_forward_size: int = 512,
        hidden_act: str = "relu",
        attention_layers: Sequence[str] = ("local", "lsh", "local", "lsh", "local", "lsh"),
        lsh_chunk_length: int = 64,
        lsh_num_chunks_before: int = 1,
        lsh_num_chunks_after: int = 0,
        num_buckets: int | Sequence[int] | None = None,
        num_hashes: int = 1,
        hash_seed: int | None = None,
        lsh_same_bucket_only: bool = False,
        lsh_strictly_causal: bool = True,
        lsh_duplicate_correction: bool = False,
        lsh_transformers_rounding: bool = False,
        local_chunk_length: int = 64,
        local_num_chunks_before: int = 1,
        local_num_chunks_after: int = 0,
        chunk_window_wraps: bool = False,
        hash_seed_mode: str = "per_layer",
        compact_padding: bool = True,
        hidden_dropout_prob: float = 0.05,
        attention_probs_dropout_prob: float = 0.0,
        lsh_attention_probs_dropout_prob: float | None = None,
        local_attention_probs_dropout_prob: float | None = None,
        classifier_dropout: float | None = None,
        classifier_pooling: str = "mean",
        lm_head_chunk_size: int = 0,
        position_embedding_type: str = "axial",
        axial_pos_shape: Sequence[int] = (128, 128),
        axial_pos_embds_dim: Sequence[int] = (64, 192),
        max_position_embeddings: int | None = None,
        feed_forward_chunk_size: int = 0,
        attention_group_length: int = 4096,
        reversible: bool = True,
        irreversible_max_tokens: int = 0,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        axial_norm_std: float | None = None,
        is_decoder: bool = True,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.attention_head_size = attention_head_size
        self.feed_forward_size = feed_forward_size
        self.hidden_act = hidden_act
        if isinstance(attention_layers, str):
            raise ValueError(
                f"attention_layers must be a list of attention kinds, one per layer, got the string "
                f"{attention_layers!r}. Pass a list such as [{attention_layers!r}]."
            )
        self.attention_layers = list(attention_layers)
        self.lsh_chunk_length = lsh_chunk_length
        self.lsh_num_chunks_before = lsh_num_chunks_before
        self.lsh_num_chunks_after = lsh_num_chunks_after
        self.num_buckets = list(num_buckets) if isinstance(num_buckets, Sequence) else num_buckets
        self.num_hashes = num_hashes
        self.hash_seed = hash_seed
        self.lsh_same_bucket_only = lsh_same_bucket_only
        self.lsh_strictly_causal = lsh_strictly_causal
        self.lsh_duplicate_correction = lsh_duplicate_correction
        self.lsh_transformers_rounding = lsh_transformers_rounding
        self.local_chunk_length = local_chunk_length
        self.local_num_chunks_before = local_num_chunks_before
        self.local_num_chunks_after = local_num_chunks_after
        self.chunk_window_wraps = chunk_window_wraps
        self.hash_seed_mode = hash_seed_mode
        self.compact_padding = compact_padding
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.lsh_attention_probs_dropout_prob = lsh_attention_probs_dropout_prob
        self.local_attention_probs_dropout_prob = local_attention_probs_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.classifier_pooling = classifier_pooling
        self.lm_head_chunk_size = lm_head_chunk_size
        self.position_embedding_type = position_embedding_type
        self.axial_pos_shape = list(axial_pos_shape)
        self.axial_pos_embds_dim = list(axial_pos_embds_dim)
        if max_position_embeddings is None and position_embedding_type == "axial":
            max_position_embeddings = math.prod(self.axial_pos_shape)
        self.max_position_embeddings = max_position_embeddings
        self.feed_forward_chunk_size = feed_forward_chunk_size
        self.attention_group_length = attention_group_length
        self.reversible = reversible
        self.irreversible_max_tokens = irreversible_max_tokens
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.axial_norm_std = axial_norm_std
        super().__init__(
            is_decoder=is_decoder,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self.validate()

    @property
    def num_hidden_layers(self) -> int:
        return len(self.attention_layers)

    def attention_dropout(self, kind: str) -> float:
        """Dropout on the attention probabilities of a layer of ``kind``."""
        specific = self.lsh_attention_probs_dropout_prob if kind == "lsh" else self.local_attention_probs_dropout_prob
        return self.attention_probs_dropout_prob if specific is None else specific

    @property
    def resolved_num_buckets(self) -> int | list[int]:
        """Number of buckets, derived from the position capacity when ``num_buckets`` is ``None``."""
        if self.num_buckets is not None:
            return self.num_buckets
        target = 2 * self.max_position_embeddings / self.lsh_chunk_length
        return max(2, 2 ** round(math.log2(max(target, 1))))

    def validate(self) -> None:
        """Raise ``ValueError`` for the first field that breaks a rule."""
        for name in ("vocab_size", "hidden_size", "num_attention_heads", "attention_head_size", "feed_forward_size",
                     "lsh_chunk_length", "num_hashes", "local_chunk_length"):
            _check_positive_int(name, getattr(self, name))
        for name in ("lsh_num_chunks_before", "lsh_num_chunks_after", "local_num_chunks_before",
                     "local_num_chunks_after", "feed_forward_chunk_size", "lm_head_chunk_size",
                     "attention_group_length", "irreversible_max_tokens"):
            _check_non_negative_int(name, getattr(self, name))
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "lsh_attention_probs_dropout_prob",
                     "local_attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is None and name not in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}.")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}.")
        self._validate_attention_layers()
        self._validate_buckets()
        self._validate_positions()
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 0 <= value < self.vocab_size):
                raise ValueError(
                    f"{name} must be an id inside the vocabulary [0, {self.vocab_size}), got {value!r}. "
                    f"Raise vocab_size or choose another id."
                )
        if self.hash_seed is not None and (isinstance(self.hash_seed, bool) or not isinstance(self.hash_seed, int)):
            raise ValueError(f"hash_seed must be an int or None, got {self.hash_seed!r}.")
        for name in ("chunk_window_wraps", "compact_padding", "reversible", "lsh_same_bucket_only",
                     "lsh_strictly_causal", "lsh_duplicate_correction", "lsh_transformers_rounding"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        if self.classifier_pooling not in ("mean", "first"):
            raise ValueError(f"classifier_pooling must be 'mean' or 'first', got {self.classifier_pooling!r}.")
        if self.hash_seed_mode not in HASH_SEED_MODES:
            raise ValueError(
                f"hash_seed_mode must be one of {', '.join(repr(m) for m in HASH_SEED_MODES)}, "
                f"got {self.hash_seed_mode!r}."
            )
        if self.axial_norm_std is not None and (
            isinstance(self.axial_norm_std, bool) or not isinstance(self.axial_norm_std, (int, float))
            or self.axial_norm_std <= 0
        ):
            raise ValueError(f"axial_norm_std must be a positive number or None, got {self.axial_norm_std!r}.")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        if self.tie_word_embeddings:
            raise ValueError(
                "tie_word_embeddings=True is not supported: the output layer reads both reversible streams "
                f"(2 * hidden_size = {2 * self.hidden_size} features) while the token embeddings have "
                f"hidden_size = {self.hidden_size}. Set tie_word_embeddings=False."
            )

    def _validate_attention_layers(self) -> None:
        if not self.attention_layers:
            raise ValueError("attention_layers must name at least one layer, got an empty list.")
        for index, kind in enumerate(self.attention_layers):
            if kind not in ATTENTION_KINDS:
                raise ValueError(
                    f"attention_layers[{index}] is {kind!r}, an unknown attention kind. "
                    f"Use one of {', '.join(repr(k) for k in ATTENTION_KINDS)}."
                )
        if self.is_decoder:
            for name in ("lsh_num_chunks_after", "local_num_chunks_after"):
                if getattr(self, name) != 0:
                    raise ValueError(
                        f"{name} must be 0 when is_decoder=True, got {getattr(self, name)}: causal attention "
                        f"never looks at later chunks. Set {name}=0 or is_decoder=False."
                    )

        if self.is_decoder and self.lsh_strictly_causal and "lsh" in self.attention_layers:
            if self.lsh_num_chunks_before == 0:
                raise ValueError(
                    "lsh_num_chunks_before must be at least 1 when is_decoder=True and lsh_strictly_causal=True, "
                    "got 0: a query's earlier bucket-mates can sit in the chunk before it. "
                    "Set lsh_num_chunks_before=1 or lsh_strictly_causal=False."
                )

        if self.chunk_window_wraps and self.lsh_duplicate_correction and "lsh" in self.attention_layers:
            raise ValueError(
                "lsh_duplicate_correction=True cannot be combined with chunk_window_wraps=True: the correction "
                "counts shared windows round by round, and wrapped windows cross rounds. Switch one of them off."
            )

    def _validate_buckets(self) -> None:
        num_buckets = self.num_buckets
        if num_buckets is None:
            return
        factors = num_buckets if isinstance(num_buckets, list) else [num_buckets]
        if isinstance(num_buckets, list) and len(num_buckets) != 2:
            raise ValueError(
                f"num_buckets as a list must be a pair [u1, u2], got {num_buckets!r}. "
                f"Pass an int, a pair or None."
            )
        for factor in factors:
            if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2 or factor % 2:
                raise ValueError(
                    f"num_buckets must be an even int of at least 2, or a pair of them, got {num_buckets!r}: "
                    f"each random rotation yields two buckets, for +xR and -xR. Use an even count such as 2, "
                    f"64 or [8, 8], or None to derive it from max_position_embeddings."
                )

    def _validate_positions(self) -> None:
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be 'axial' or 'learned', got {self.position_embedding_type!r}."
            )
        if self.position_embedding_type == "axial":
            shape, dims = self.axial_pos_shape, self.axial_pos_embds_dim
            if len(shape) < 2:
                raise ValueError(f"axial_pos_shape needs at least two axes, got {shape!r}.")
            if len(dims) != len(shape):
                raise ValueError(
                    f"axial_pos_embds_dim has {len(dims)} widths but axial_pos_shape has {len(shape)} axes "
                    f"({dims!r} vs {shape!r}). Give one width per axis."
                )
            for name, values in (("axial_pos_shape", shape), ("axial_pos_embds_dim", dims)):
                for value in values:
                    _check_positive_int(name, value)
            if sum(dims) != self.hidden_size:
                raise ValueError(
                    f"axial_pos_embds_dim {dims!r} sums to {sum(dims)}, but it must sum to hidden_size = "
                    f"{self.hidden_size}. Change the widths or hidden_size."
                )
            capacity = math.prod(shape)
            if self.max_position_embeddings != capacity:
                raise ValueError(
                    f"max_position_embeddings is {self.max_position_embeddings} but axial_pos_shape {shape!r} "
                    f"holds {capacity} positions. Leave max_position_embeddings unset or set it to {capacity}."
                )
        else:
            _check_positive_int("max_position_embeddings", self.max_position_embeddings)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _check_non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}.")
