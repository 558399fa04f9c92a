"""Shared fixtures: a tiny model configuration and a fixed torch seed for every test."""

import sys
from pathlib import Path

import pytest
import torch

# Let `pytest` run from a checkout without installing the package.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from reformer_hf.configuration import ReformerConfig  # noqa: E402

# The test tensors are tiny, so intra-op threads only add overhead, and when other jobs share the
# cores, torch's waiting worker threads can make a test many times slower.
torch.set_num_threads(1)

# Small enough for a CPU test to build and run a model in milliseconds: 2 heads of size 8, chunks of
# 4 positions, 64 positions (axial shape 8 x 8). Dropout is off and hashing is seeded, so evaluation
# is deterministic. Tests that need dropout or fresh rotations override those fields.
TINY_CONFIG_KWARGS = dict(
    vocab_size=32,
    hidden_size=32,
    num_attention_heads=2,
    attention_head_size=8,
    feed_forward_size=64,
    attention_layers=("lsh", "local"),
    lsh_chunk_length=4,
    local_chunk_length=4,
    num_buckets=4,
    axial_pos_shape=(8, 8),
    axial_pos_embds_dim=(16, 16),
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    hash_seed=0,
)


@pytest.fixture
def tiny_config():
    """Factory of tiny ``ReformerConfig``s: ``tiny_config(num_hashes=2)`` overrides single fields."""

    def make(**overrides) -> ReformerConfig:
        return ReformerConfig(**{**TINY_CONFIG_KWARGS, **overrides})

    return make


@pytest.fixture(autouse=True)
def seed_torch():
    """Seed torch's default generator so that random weights and inputs repeat between runs."""
    torch.manual_seed(0)
