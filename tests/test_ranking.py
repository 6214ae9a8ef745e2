"""The fusion formula, with numbers (store adapters that rank in SQL reproduce these)."""

from __future__ import annotations

import math

import pytest

from mcp_memory.ranking import GOOD_COSINE, MIN_COSINE, TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse, relative, similarities


def test_text_scores_are_shares_of_the_best() -> None:
    assert relative({"a": 8.0, "b": 2.0, "c": 0.0}) == {"a": 1.0, "b": 0.25}
    assert relative({}) == {}


def test_a_weak_best_text_hit_is_a_share_of_the_query_ceiling() -> None:
    # Best BM25 2.0 where the query's ceiling is 20: the floor 0.2 * 20 = 4.0 is the scale, so the best stays 0.5.
    assert relative({"a": 2.0, "b": 1.0}, ceiling=20.0, good=0.2) == {"a": 0.5, "b": 0.25}
    # A best hit above the floor is 1.0 as before; no known ceiling (0) changes nothing.
    assert relative({"a": 8.0, "b": 2.0}, ceiling=20.0, good=0.2) == {"a": 1.0, "b": 0.25}
    assert relative({"a": 2.0}, ceiling=0.0) == {"a": 1.0}


def test_vector_scores_are_shares_of_the_best_cosine_or_of_a_good_one() -> None:
    # A good best match scores 1.0, like the best full-text hit.
    assert similarities({"a": 0.8, "b": 0.4, "noise": MIN_COSINE / 2}) == {"a": 1.0, "b": 0.5}
    # The best of weak matches stays weak: shares of GOOD_COSINE.
    weak = similarities({"a": 0.3, "b": 0.2})
    assert weak == pytest.approx({"a": 0.3 / GOOD_COSINE, "b": 0.2 / GOOD_COSINE})
    assert similarities({"x": 0.1}) == {}


def test_fusion_weighs_vectors_three_to_one() -> None:
    assert (TEXT_WEIGHT, VECTOR_WEIGHT) == (0.25, 0.75)
    fused = fuse([{"a": 1.0, "b": 0.5}, {"b": 1.0, "c": 0.8}], [TEXT_WEIGHT, VECTOR_WEIGHT])
    assert fused == pytest.approx({"a": 0.25, "b": 0.125 + 0.75, "c": 0.6})
    # A retriever that found nothing has no say: the other's scores stand alone.
    assert fuse([{}, {"c": 0.8}], [TEXT_WEIGHT, VECTOR_WEIGHT]) == pytest.approx({"c": 0.8})
    assert fuse([{"a": 0.4}, {}], [TEXT_WEIGHT, VECTOR_WEIGHT]) == pytest.approx({"a": 0.4})
    # No weights: a plain average.
    assert fuse([{"a": 1.0}, {"a": 0.5}]) == pytest.approx({"a": 0.75})
    with pytest.raises(ValueError, match="one weight per score list"):
        fuse([{"a": 1.0}], [0.5, 0.5])


def test_blend_lifts_relevance_by_at_most_a_quarter() -> None:
    now = 1_750_000_000.0
    assert blend(0.8, 1.0, now, now) == pytest.approx(0.8 * 1.25)
    assert blend(0.8, 0.0, now - 30 * 86400, now) == pytest.approx(0.8 * 1.05)
    assert math.isclose(blend(0.0, 1.0, now, now), 0.0)
