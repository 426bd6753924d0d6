"""The JP Eval generation metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from jinstruct.harness_tasks.jp_eval.metrics import (
    INVALID_ANSWER,
    extract_mgsm_answer,
    normalize_answer,
    rouge2_bootstrap,
    rouge2_mecab,
    squad_scores,
)


def test_normalisation():
    # full-width letters/digits and half-width kana folded (neologdn), emoji removed, spaces between
    # Japanese characters removed by neologdn, remaining runs collapsed and trimmed
    assert normalize_answer("  ＡＢＣ　東京 タワー😀 ") == "ABC東京タワー"
    assert normalize_answer("１２３ ｱｲｳ") == "123アイウ"
    assert normalize_answer("New   York") == "New York"


def test_exact_match_and_f1_hand_computed():
    # 東京の大学 -> 東京|の|大学, 東京大学 -> 東京|大学: 2 common, P=2/3, R=1, F1=0.8
    assert squad_scores("東京の大学", ["東京大学", "京都"]) == {"exact_match": 0.0, "f1": pytest.approx(80.0)}
    # best over the gold answers; EM after normalisation only
    assert squad_scores("ＡＢＣ😀", ["xyz", "ABC"]) == {"exact_match": 100.0, "f1": 100.0}
    # punctuation words are dropped for F1 but count for exact match
    assert squad_scores("東京。", ["東京"]) == {"exact_match": 0.0, "f1": 100.0}
    assert squad_scores("", ["東京"]) == {"exact_match": 0.0, "f1": 0.0}


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("合計は5+6=11個です。答えは11です。", 11),  # the last number wins
        ("答えは1,234です。", 1234),  # thousands commas removed
        ("答えは8.", 8),  # trailing dot stripped
        ("-3度です", -3),
        ("18.0", 18),
        ("3.5個", INVALID_ANSWER),  # not an integer
        ("1.2.3", INVALID_ANSWER),  # not a number
        ("わかりません", INVALID_ANSWER),
    ],
)
def test_mgsm_extraction(completion, expected):
    assert extract_mgsm_answer(completion) == expected


class Chars:
    """A stand-in for a model tokenizer: every character is a piece."""

    def tokenize(self, text):
        return list(text)


def test_rouge2_over_model_pieces_single_doc():
    # ref あいうえ -> bigrams あい いう うえ; pred あいうお -> あい いう うお: 2 common, P=R=2/3
    assert rouge2_bootstrap(["あいうお"], ["あいうえ"], Chars()) == pytest.approx(200 / 3)


def test_rouge2_bootstrap_median_of_two_docs():
    # per-doc F: doc1 2/3 (as above), doc2 0. Bootstrap means over 2 docs are 2/3 (p=.25), 1/3 (p=.5)
    # or 0 (p=.25); the median of 1,000 of them is 1/3.
    value = rouge2_bootstrap(["あいうお", "かき"], ["あいうえ", "さし"], Chars())
    assert value == pytest.approx(100 / 3)


def test_bootstrap_is_seeded_and_leaves_numpy_alone():
    preds = ["あいうお", "かき", "さしすせ", "たちつ", "なにぬね"]
    refs = ["あいうえ", "さし", "さしすそ", "たちつて", "なにぬの"]
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    a = rouge2_bootstrap(preds, refs, Chars())
    assert (np.random.get_state()[1] == before).all()
    np.random.seed(99)
    assert rouge2_bootstrap(preds, refs, Chars()) == a  # seeded with 1234 whatever the caller's state


def test_rouge2_mecab_uses_words_not_pieces():
    # words: 東京|大学|に|行く vs 東京|大学|へ|行く -> bigrams share only 東京大学: P=R=1/3
    assert rouge2_mecab([("東京大学へ行く", "東京大学に行く")]) == pytest.approx(100 / 3)
