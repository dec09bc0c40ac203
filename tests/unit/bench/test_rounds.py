"""Interleaved rounds: a count split in near-equal chunks, the order reversed every other round."""

from __future__ import annotations

from rpcframe.bench.rounds import in_turn, shares


def test_a_count_is_split_into_shares_that_differ_by_one_at_most():
    assert shares(10, 3) == [4, 3, 3]


def test_a_count_smaller_than_the_parts_leaves_some_shares_empty():
    assert shares(2, 4) == [1, 1, 0, 0]


def test_even_rounds_keep_the_order_and_odd_ones_reverse_it():
    assert [list(in_turn("abc", number)) for number in range(3)] == [
        ["a", "b", "c"],
        ["c", "b", "a"],
        ["a", "b", "c"],
    ]
