"""Planning the shared-context forward passes: pure Python, no torch.

A causal LM scores continuation tokens c_1..c_m of a request from the logits at the last context
token and at c_1..c_{m-1}. So each request splits into
- a *prefix*: the (truncated) context without its last token, whose keys and values are all the
  scored positions need, and which is identical for every choice of a multiple-choice doc;
- a *tail*: the last context token followed by c_1..c_{m-1}, exactly the positions that are scored.
Requests with the same prefix share one run of it. Prefixes that start alike (the task description
and the first instruction block of every few-shot prompt) share a *header*, run once per group.
Generation (`plan_generation`) groups its contexts by the same rule (`shared_runs`), the prefix being
the context without its last token.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class Context:
    """One distinct prefix and the requests scored from it."""

    prefix: tuple[int, ...]
    rows: list[int] = field(default_factory=list)  # indices into the request list

    @property
    def length(self) -> int:
        return len(self.prefix)


@dataclass
class Group:
    """Contexts whose prefixes share their first `header_len` tokens (0: nothing shared)."""

    header_len: int
    contexts: list[Context]

    @property
    def header(self) -> tuple[int, ...]:
        return self.contexts[0].prefix[: self.header_len]


@dataclass
class Request:
    """One (context, continuation) request reduced to what the scorer needs."""

    prefix: tuple[int, ...]
    tail: list[int]  # last context token + continuation[:-1]; len == len(targets)
    targets: list[int]  # the continuation tokens


def split_request(context_enc: Sequence[int], continuation_enc: Sequence[int], max_length: int) -> Request:
    """Split like HFLM: the model sees (context+continuation)[-(max_length+1):][:-1]."""
    if len(context_enc) == 0 or len(continuation_enc) == 0:
        raise ValueError(
            "a loglikelihood request needs a non-empty context and continuation after tokenization"
        )
    if len(continuation_enc) > max_length:
        raise ValueError(
            f"the continuation has {len(continuation_enc)} tokens, more than max_length={max_length}; "
            "raise max_length in --model_args or shorten the continuation"
        )
    full = (list(context_enc) + list(continuation_enc))[-(max_length + 1) :]
    n = len(continuation_enc)
    return Request(
        prefix=tuple(full[: len(full) - n - 1]), tail=full[len(full) - n - 1 : -1], targets=full[-n:]
    )


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    return len(os.path.commonprefix([a, b]))


def shared_runs(
    prefixes: Iterable[tuple[int, ...]], share_prefix: bool = True, min_shared: int = 16
) -> list[tuple[int, list[tuple[int, ...]]]]:
    """Distinct prefixes in runs that share a header of at least `min_shared` tokens.

    Returns (header length, member prefixes) per run; the header is 0 for a run of one prefix (or
    with `share_prefix` off, when every prefix is its own run)."""
    runs: list[tuple[int, list[tuple[int, ...]]]] = []
    for prefix in sorted(prefixes):  # lexicographic: prefixes with a common start become neighbours
        if runs and share_prefix:
            shared = _common_prefix_len(runs[-1][1][-1], prefix)
            if shared >= min_shared:
                header, members = runs[-1]
                runs[-1] = (min(header, shared) if len(members) > 1 else shared, members + [prefix])
                continue
        runs.append((0, [prefix]))
    return [(header if len(members) > 1 else 0, members) for header, members in runs]


def plan_groups(
    requests: Sequence[Request],
    share_prefix: bool = True,
    min_shared: int = 16,
    window: int | None = None,
) -> list[Group]:
    """Group requests by prefix, and prefixes by a shared header of at least `min_shared` tokens.

    `window`: the model's smallest sliding-attention window, if any. A header is only shared when every
    row of the group fits in it, because the padding between header and rest would otherwise shift
    which tokens a sliding window covers.
    """
    by_prefix: dict[tuple[int, ...], Context] = {}
    for i, req in enumerate(requests):
        by_prefix.setdefault(req.prefix, Context(req.prefix)).rows.append(i)
    if not by_prefix:
        return []
    tails = {ctx.prefix: sum(len(requests[r].tail) for r in ctx.rows) for ctx in by_prefix.values()}

    groups = []
    for header, members in shared_runs(by_prefix, share_prefix, min_shared):
        if window is not None and header and max(len(p) + tails[p] for p in members) > window:
            header = 0
        contexts = [by_prefix[p] for p in members]
        # Longest first inside a group (prefix plus all its tails, as a packed row): batches of similar
        # length pad little, and memory peaks early.
        contexts.sort(key=lambda c: (-(c.length + tails[c.prefix]), -c.length, c.prefix))
        groups.append(Group(header_len=header, contexts=contexts))
    groups.sort(key=lambda g: -max(c.length for c in g.contexts))
    return groups


@dataclass
class TailTree:
    """The tails of one context's requests merged where they start alike: each distinct tail start is
    one node, placed after its parent (so a node's ancestors are always to its left)."""

    tokens: list[int]  # the token of each node
    parents: list[int]  # the parent node of each node, -1 for a first token
    paths: list[list[int]]  # per request (in the order given), the node of each of its tail tokens

    @property
    def depths(self) -> list[int]:
        depth: list[int] = []
        for parent in self.parents:
            depth.append(0 if parent < 0 else depth[parent] + 1)
        return depth


def tail_tree(tails: Sequence[Sequence[int]]) -> TailTree:
    """Merge tails that start alike (all of a context's tails share its last token; choices often share
    more, such as a newline before the label word)."""
    node_of: dict[tuple[int, ...], int] = {}
    tree = TailTree([], [], [])
    for tail in tails:
        path = []
        for k in range(len(tail)):
            key = tuple(tail[: k + 1])
            if key not in node_of:
                node_of[key] = len(tree.tokens)
                tree.tokens.append(tail[k])
                tree.parents.append(path[-1] if path else -1)
            path.append(node_of[key])
        tree.paths.append(path)
    return tree


def batches(group: Group, contexts_per_batch: int) -> list[list[Context]]:
    """Consecutive slices of a group's contexts; all requests of a context stay in its batch."""
    n = max(1, int(contexts_per_batch))
    return [group.contexts[i : i + n] for i in range(0, len(group.contexts), n)]


def minimum_tokens(requests: Sequence[Request]) -> int:
    """The floor without header sharing: each distinct context once, then per context each distinct
    start of its continuations (choices that begin alike, such as a newline token and then the label
    word, share those tokens; the last continuation token is never fed): what the packed rows' tail
    trees feed."""
    tails: dict[tuple[int, ...], list[list[int]]] = {}
    for req in requests:
        tails.setdefault(req.prefix, []).append(req.tail)
    return sum(len(prefix) + len(tail_tree(group).tokens) for prefix, group in tails.items())


@dataclass
class GenerationGroup:
    """Generation requests whose contexts share their first `header_len` tokens (0: run in full)."""

    header_len: int
    rows: list[int]  # indices into the request list, longest context first


def plan_generation(
    contexts: Sequence[Sequence[int]],
    max_new_tokens: Sequence[int],
    share_prefix: bool = True,
    min_shared: int = 16,
    window: int | None = None,
) -> list[GenerationGroup]:
    """Group generation contexts by a shared header; every request not in such a group joins one
    header-less group at the end.

    The header is taken from the contexts without their last token, so that each row keeps at least
    one token outside it: the logits at a row's last context position choose its first new token.
    `window`: the model's smallest sliding-attention window, if any; a group shares its header only
    when header + longest rest + largest `max_new_tokens` fit in it, because the padding between header
    and rest would otherwise shift which tokens the window covers.
    """
    by_prefix: dict[tuple[int, ...], list[int]] = {}
    for i, context in enumerate(contexts):
        by_prefix.setdefault(tuple(context[:-1]), []).append(i)

    def longest_first(rows: Iterable[int]) -> list[int]:
        # Stable on the request order, as the header-less path has always batched.
        return sorted(rows, key=lambda i: -len(contexts[i]))

    groups, plain = [], []
    for header, members in shared_runs(by_prefix, share_prefix, min_shared):
        rows = [i for prefix in members for i in by_prefix[prefix]]
        if header and window is not None:
            longest = max(len(contexts[i]) for i in rows)  # header + longest rest
            if longest + max(max_new_tokens[i] for i in rows) > window:
                header = 0
        if header:
            groups.append(GenerationGroup(header, longest_first(rows)))
        else:
            plain.extend(rows)
    groups.sort(key=lambda g: -len(contexts[g.rows[0]]))
    if plain:
        groups.append(GenerationGroup(0, longest_first(sorted(plain))))
    return groups
