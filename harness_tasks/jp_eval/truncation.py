"""XLSum's over-length handling in the reference (`XLSumJa.preprocess_ctx`), reproduced as is.

When the prompt is longer than `max_length` model tokens, it is cut at the article marker into the
description and one piece per example (the query included). Each piece gets an equal token budget,
`max_length // pieces`, and keeps the leading `。`-sentences of its text part (everything before the
summary marker, marker included) while they fit, closing the last kept sentence with `。` + the stop
string. A first sentence that alone is too long is cut at the budget in tokens and decoded. The
summary marker and the example's summary (with its trailing separator) follow unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class TruncationError(ValueError):
    """The prompt does not have the shape the reference's truncation assumes."""


def truncate_articles(
    ctx: str,
    max_length: int,
    *,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    article_prompt: str,
    summary_prompt: str,
    stop: str,
    replace: Mapping[str, str] | None = None,
) -> str:
    out = (
        ctx
        if len(encode(ctx)) <= max_length
        else _truncate(ctx, max_length, encode, decode, article_prompt, summary_prompt, stop)
    )
    # The reference's 0.4/0.5 apply this clean-up to every context, truncated or not.
    for old, new in (replace or {}).items():
        out = out.replace(old, new)
    return out


def _truncate(ctx, max_length, encode, decode, article_prompt, summary_prompt, stop) -> str:
    pieces = [article_prompt + piece for piece in ctx.split(article_prompt)]
    description = ""
    if summary_prompt not in pieces[0]:
        description = pieces[0].replace(article_prompt, "")
        pieces = pieces[1:]
    budget = max_length // len(pieces)
    out = description
    for piece in pieces:
        parts = piece.split(summary_prompt)
        if len(parts) != 2:
            raise TruncationError(
                f"an example holds the summary marker {summary_prompt!r} {len(parts) - 1} times (expected once); "
                "the reference's truncation cannot split it"
            )
        text, summary = parts
        kept: list[str] = []
        for sentence in text.split("。"):
            if len(encode("。".join([*kept, sentence]))) > budget:
                if kept:
                    kept[-1] += "。" + stop
                else:
                    kept.append(decode(encode(sentence)[:budget]) + stop)
                break
            kept.append(sentence)
        out += "。".join(kept) + summary_prompt + summary
    return out
