"""The request planner of hf-fast (pure Python, no model)."""

from __future__ import annotations

import pytest

from jinstruct.scoring.plan import (
    batches,
    minimum_tokens,
    plan_generation,
    plan_groups,
    split_request,
    tail_tree,
)

HEADER = list(range(100, 120))  # 20 tokens every prompt starts with


def test_split_matches_hflm_window():
    # HFLM feeds (ctx + cont)[-(max_length+1):][:-1] and scores the last len(cont) positions.
    req = split_request([1, 2, 3, 4], [5, 6], max_length=100)
    assert req.prefix == (1, 2, 3) and req.tail == [4, 5] and req.targets == [5, 6]
    short = split_request([1, 2, 3, 4], [5, 6], max_length=4)  # window of 5 tokens: [2, 3, 4, 5, 6]
    assert short.prefix == (2, 3) and short.tail == [4, 5] and short.targets == [5, 6]
    one = split_request([9], [5], max_length=100)
    assert one.prefix == () and one.tail == [9] and one.targets == [5]


def test_split_rejects_what_hflm_rejects():
    with pytest.raises(ValueError, match="non-empty"):
        split_request([1], [], max_length=10)
    with pytest.raises(ValueError, match="max_length"):
        split_request([1], list(range(11)), max_length=10)


def _doc(i: int, body_len: int, choices=((7, 8), (9,))):
    context = HEADER + [1000 + i] * body_len
    return [split_request(context, list(c), max_length=1000) for c in choices]


def test_choices_share_one_context_and_docs_share_the_header():
    requests = [r for i in range(5) for r in _doc(i, body_len=3 + i)]
    (group,) = plan_groups(requests, min_shared=16)
    assert group.header_len == len(HEADER) and list(group.header) == HEADER
    assert len(group.contexts) == 5
    assert all(len(c.rows) == 2 for c in group.contexts)
    assert sorted(r for c in group.contexts for r in c.rows) == list(range(10))
    lengths = [c.length for c in group.contexts]
    assert lengths == sorted(lengths, reverse=True)  # longest first: similar lengths batch together


def test_header_needs_min_shared_tokens_and_can_be_switched_off():
    requests = [r for i in range(3) for r in _doc(i, body_len=4)]
    assert all(g.header_len == 0 for g in plan_groups(requests, min_shared=21))
    assert all(g.header_len == 0 for g in plan_groups(requests, share_prefix=False))
    assert sum(len(g.contexts) for g in plan_groups(requests, share_prefix=False)) == 3


def test_unrelated_prompts_form_separate_groups():
    other = [split_request([5] * 30 + [2000 + i] * 3, [7], max_length=1000) for i in range(2)]
    requests = [r for i in range(3) for r in _doc(i, body_len=4)] + other
    groups = plan_groups(requests, min_shared=16)
    assert sorted(g.header_len for g in groups) == [20, 30]  # the two `other` prompts share 30 tokens
    assert sum(len(c.rows) for g in groups for c in g.contexts) == len(requests)


def test_sliding_window_disables_header_when_rows_do_not_fit():
    requests = [r for i in range(3) for r in _doc(i, body_len=40)]  # rows of ~62 tokens
    assert plan_groups(requests, window=512)[0].header_len == 20
    assert plan_groups(requests, window=32)[0].header_len == 0


def test_batches_keep_contexts_whole():
    requests = [r for i in range(7) for r in _doc(i, body_len=2)]
    (group,) = plan_groups(requests)
    parts = batches(group, 3)
    assert [len(b) for b in parts] == [3, 3, 1]
    assert [c for b in parts for c in b] == group.contexts


def test_minimum_tokens_counts_shared_continuation_starts_once():
    # Three choices after one context, each "newline + label word": the newline is fed once.
    requests = [split_request([1, 2, 3], [9, label], 100) for label in (20, 21, 22)]
    assert minimum_tokens(requests) == 3 + 1
    requests.append(split_request([1, 2, 3], [8, 20], 100))  # another first token: one more
    assert minimum_tokens(requests) == 3 + 2


def test_minimum_tokens_counts_each_context_once():
    requests = _doc(0, body_len=5)  # context of 25 tokens, continuations of 2 and 1 tokens
    # context once (25) + the continuation tokens the model is fed (all but the last of each: 1 + 0)
    assert minimum_tokens(requests) == 25 + 1


def test_tail_tree_merges_tails_that_start_alike():
    tree = tail_tree([[5, 9, 20], [5, 9, 21], [5, 8], [5, 9, 20]])
    assert tree.tokens == [5, 9, 20, 21, 8]
    assert tree.parents == [-1, 0, 1, 1, 0]
    assert tree.depths == [0, 1, 2, 2, 1]
    assert tree.paths == [[0, 1, 2], [0, 1, 3], [0, 4], [0, 1, 2]]


# -- generation ----------------------------------------------------------------------------------------
def test_generation_groups_by_header_and_keeps_a_token_outside_it():
    contexts = [HEADER + [1000 + i] * (2 + i) for i in range(4)] + [HEADER, [5, 6, 7]]
    budgets = [8] * len(contexts)
    header_group, plain = plan_generation(contexts, budgets, min_shared=16)
    # The bare header is a context too: the shared part stops one token before its end.
    assert header_group.header_len == len(HEADER) - 1
    assert sorted(header_group.rows) == [0, 1, 2, 3, 4]
    assert [len(contexts[i]) for i in header_group.rows] == sorted(
        (len(contexts[i]) for i in header_group.rows), reverse=True
    )
    assert (plain.header_len, plain.rows) == (0, [5])
    (whole,) = plan_generation(contexts[:4], budgets[:4], min_shared=16)
    assert whole.header_len == len(HEADER)


def test_generation_without_sharing_is_one_length_sorted_group():
    contexts = [HEADER + [1000 + i] * (2 + i % 3) for i in range(6)]
    (group,) = plan_generation(contexts, [4] * 6, share_prefix=False)
    assert group.header_len == 0
    assert group.rows == sorted(range(6), key=lambda i: -len(contexts[i]))  # stable, longest first
    (group,) = plan_generation(contexts[:1] * 3, [4] * 3)  # one distinct context: nothing to share
    assert (group.header_len, group.rows) == (0, [0, 1, 2])


def test_generation_header_needs_rows_and_new_tokens_inside_the_window():
    contexts = [HEADER + [1000 + i] * 4 for i in range(3)]  # 24 tokens each
    assert plan_generation(contexts, [8, 8, 8], window=32)[0].header_len == 20  # 24 + 8 fits
    assert plan_generation(contexts, [8, 9, 8], window=32)[0].header_len == 0  # one row's budget does not
