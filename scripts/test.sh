#!/usr/bin/env bash
# Install reformer_hf with its test dependencies and run the test suite.
# torch is pinned first because an unpinned torch resolves to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test]"
python3 -m pytest tests -q -p no:cacheprovider "$@"
