"""Per-cell peak memory: the resident high-water mark can be reset, so that a worker serving
several cells reports each cell's own peak."""

from __future__ import annotations

import numpy as np
import pytest

from seqbench import memory


@pytest.mark.skipif(not memory.resettable(), reason="needs Linux /proc/self/clear_refs")
def test_the_peak_is_reset_after_a_big_allocation_is_freed() -> None:
    memory.release_free_memory()
    memory.reset_peak()
    before = memory.peak_rss_mib()
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    assert memory.peak_rss_mib() > before + 250
    del block
    memory.release_free_memory()
    assert memory.peak_rss_mib() > before + 250  # a high-water mark remembers …
    assert memory.reset_peak()
    assert memory.peak_rss_mib() < before + 100  # … until it is reset
    current = memory.current_rss_mib()
    assert current is not None and current <= memory.peak_rss_mib() + 1
