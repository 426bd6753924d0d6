"""The bundled demo data, as the templates and word lists that produce it.

Every sentence under `jinstruct/demo_data/` comes from the phrases below, written for this project
(no sentence is taken from JGLUE, ja-vg-vqa, llm-japanese-dataset or any other corpus). The files
are committed; `python -m jinstruct.demo_texts --check` rebuilds them in memory and compares, so
what is bundled is always what this module makes.

Design (why the demo's tuned model can beat its base on vqa_ppl): the base model is pretrained on
plain descriptive prose (`corpus.txt`) that never shows a question followed by a short answer and an
end of text. The instruction sample teaches, with the training template, short Visual-Genome-style
answers ("赤", "公園", "二人") to short questions, ended by EOS. The VQA sample asks the same kinds of
questions (different question/answer pairs) with the VQA prompt, so what instruction tuning adds is
the answering style, which is what the paper's vqa_ppl measures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "demo_data"

# ---------------------------------------------------------------- shared vocabulary (scenes)
PEOPLE = {  # subject -> hypernym used in entailed hypotheses
    "男性": "人",
    "女性": "人",
    "少年": "子供",
    "少女": "子供",
    "老人": "人",
    "学生": "人",
    "若い女性": "女性",
    "背の高い男性": "男性",
}
PLACES = [
    "公園",
    "駅前",
    "海辺",
    "台所",
    "教室",
    "川沿いの道",
    "市場",
    "図書館",
    "山道",
    "庭",
    "橋の上",
    "商店街",
]
ACTIONS = {  # action -> (entailed paraphrase, incompatible action)
    "ギターを弾いています": ("楽器を演奏しています", "眠っています"),
    "サッカーをしています": ("スポーツをしています", "椅子に座って休んでいます"),
    "パンを食べています": ("何かを食べています", "何も口にしていません"),
    "本を読んでいます": ("読書をしています", "走っています"),
    "自転車に乗っています": ("乗り物に乗っています", "歩いています"),
    "犬と散歩しています": ("動物と一緒にいます", "一人で座っています"),
    "写真を撮っています": ("カメラを使っています", "目を閉じて眠っています"),
    "傘をさして歩いています": ("傘を持っています", "家の中で寝ています"),
    "ベンチに座っています": ("座っています", "全力で走っています"),
    "野菜を切っています": ("料理の準備をしています", "泳いでいます"),
}
NEUTRAL_EXTRAS = [
    "友人を待っています",
    "とても楽しそうです",
    "少し疲れています",
    "休日を過ごしています",
    "誰かと話しています",
    "急いでいます",
    "音楽が好きです",
    "朝から外出しています",
]
OBJECTS = [
    "車",
    "傘",
    "帽子",
    "自転車",
    "シャツ",
    "バス",
    "花",
    "壁",
    "椅子",
    "かばん",
    "ドア",
    "ボール",
    "看板",
    "屋根",
]
COLORS = ["赤", "白", "青", "黒", "黄色", "緑", "茶色", "灰色", "ピンク", "オレンジ"]
COLOR_ADJ = {  # attributive form for the prose
    "赤": "赤い",
    "白": "白い",
    "青": "青い",
    "黒": "黒い",
    "黄色": "黄色い",
    "緑": "緑色の",
    "茶色": "茶色の",
    "灰色": "灰色の",
    "ピンク": "ピンク色の",
    "オレンジ": "オレンジ色の",
}
ANIMALS = ["犬", "猫", "鳥", "馬", "牛", "鳩"]
COUNTERS = {"犬": "匹", "猫": "匹", "馬": "頭", "牛": "頭", "鳥": "羽", "鳩": "羽"}
NUMBERS = ["一", "二", "三", "四", "五"]
HELD_ITEMS = ["傘", "かばん", "スマートフォン", "コーヒー", "本", "花束", "ボール", "カメラ", "帽子", "地図"]
DOINGS = [
    "歩いている",
    "座っている",
    "走っている",
    "話している",
    "食べている",
    "立っている",
    "笑っている",
    "写真を撮っている",
]
WEATHERS = ["晴れ", "曇り", "雨", "雪"]
TIMES = ["昼間", "夜", "朝", "夕方"]
SURFACES = ["地面", "テーブル", "芝生", "道路", "砂浜", "床"]
ON_SURFACE = ["皿", "石", "葉っぱ", "ボール", "箱", "コップ", "新聞"]

# ---------------------------------------------------------------- product reviews (MARC-ja style)
PRODUCTS = [
    "このイヤホン",
    "この鍋",
    "この靴",
    "このかばん",
    "この本",
    "この掃除機",
    "このマグカップ",
    "この傘",
    "このキーボード",
    "この枕",
    "このシャツ",
    "この電気ケトル",
    "このおもちゃ",
    "この腕時計",
]
POSITIVE = [
    "とても使いやすく、毎日使っています",
    "値段の割に丈夫で長持ちしています",
    "デザインがおしゃれで気に入りました",
    "届くのが早く、品質も期待以上でした",
    "軽くて持ち運びが楽です",
    "家族みんなが喜んでいます",
    "説明どおりの品で、安心して使えます",
]
POSITIVE_TAILS = [
    "また買いたいと思います。",
    "友人にも勧めました。",
    "大満足です。",
    "買ってよかったです。",
    "",
]
NEGATIVE = [
    "一週間で壊れてしまいました",
    "説明書が分かりにくく、使いにくいです",
    "届いた時から傷がありました",
    "写真と色が全然違いました",
    "すぐに電池が切れて困っています",
    "においが強くて使う気になれません",
    "サイズが合わず、交換にも応じてもらえませんでした",
]
NEGATIVE_TAILS = ["返品を考えています。", "二度と買いません。", "残念です。", "お金の無駄でした。", ""]

# ---------------------------------------------------------------- general knowledge rows (instructions)
KNOWLEDGE = [
    ("日本の首都はどこですか？", "東京です。"),
    ("一年は何か月ありますか？", "十二か月です。"),
    ("水が凍ると何になりますか？", "氷になります。"),
    ("一週間は何日ですか？", "七日です。"),
    ("空が青く見えるのはいつですか？", "晴れた昼間です。"),
    ("春に咲く代表的な花は何ですか？", "桜です。"),
    ("朝ごはんに食べるものを一つ挙げてください。", "パンです。"),
    ("雨の日に使う道具は何ですか？", "傘です。"),
    ("本を借りられる場所はどこですか？", "図書館です。"),
    ("電車に乗る場所はどこですか？", "駅です。"),
    ("料理をする部屋はどこですか？", "台所です。"),
    ("泳ぐことができる場所を一つ挙げてください。", "海です。"),
]


# ---------------------------------------------------------------- generators
def _scene_qa(rng: random.Random) -> tuple[str, str]:
    """One Visual-Genome-style question with a short answer."""
    kind = rng.randrange(8)
    if kind == 0:
        obj = rng.choice(OBJECTS)
        return f"{obj}は何色ですか？", rng.choice(COLORS)
    if kind == 1:
        return rng.choice(
            ["写真はどこで撮られましたか？", "ここはどこですか？", "人々はどこにいますか？"]
        ), rng.choice(PLACES)
    if kind == 2:
        animal = rng.choice(ANIMALS)
        return f"{animal}は何{COUNTERS[animal]}いますか？", rng.choice(NUMBERS[:3]) + COUNTERS[animal]
    if kind == 3:
        who = rng.choice(["男性", "女性", "少年", "少女"])
        return f"{who}は何を持っていますか？", rng.choice(HELD_ITEMS)
    if kind == 4:
        who = rng.choice(["男性", "女性", "子供", "人々"])
        return f"{who}は何をしていますか？", rng.choice(DOINGS)
    if kind == 5:
        return rng.choice(["天気はどうですか？", "空の様子はどうですか？"]), rng.choice(WEATHERS)
    if kind == 6:
        return rng.choice(["いつ撮影されましたか？", "時間帯はいつですか？"]), rng.choice(TIMES)
    surface = rng.choice(SURFACES)
    return f"{surface}の上に何がありますか？", rng.choice(ON_SURFACE)


def _scene_sentence(rng: random.Random) -> str:
    """One sentence of plain descriptive prose for the base model's pretraining corpus."""
    kind = rng.randrange(6)
    if kind == 0:
        subj = rng.choice(list(PEOPLE))
        return f"{rng.choice(PLACES)}で{subj}が{rng.choice(list(ACTIONS))}。"
    if kind == 1:
        return f"{COLOR_ADJ[rng.choice(COLORS)]}{rng.choice(OBJECTS)}が{rng.choice(PLACES)}にあります。"
    if kind == 2:
        animal = rng.choice(ANIMALS)
        return f"{rng.choice(PLACES)}に{animal}が{rng.choice(NUMBERS)}{COUNTERS[animal]}います。"
    if kind == 3:
        return f"{rng.choice(TIMES)}の{rng.choice(PLACES)}は{rng.choice(WEATHERS)}で、人々が{rng.choice(DOINGS)}。"
    if kind == 4:
        who = rng.choice(list(PEOPLE))
        return f"{who}が{rng.choice(HELD_ITEMS)}を持って{rng.choice(DOINGS)}。"
    return f"{rng.choice(SURFACES)}の上に{rng.choice(ON_SURFACE)}が置いてあります。"


def _review(rng: random.Random, positive: bool) -> str:
    product = rng.choice(PRODUCTS)
    body = rng.choice(POSITIVE if positive else NEGATIVE)
    tail = rng.choice(POSITIVE_TAILS if positive else NEGATIVE_TAILS)
    return f"{product}は{body}。{tail}"


def _nli_pair(rng: random.Random, label: str) -> tuple[str, str]:
    subj = rng.choice(list(PEOPLE))
    place = rng.choice(PLACES)
    action = rng.choice(list(ACTIONS))
    paraphrase, incompatible = ACTIONS[action]
    premise = f"{subj}が{place}で{action}。"
    if label == "entailment":
        hyp = rng.choice([f"{PEOPLE[subj]}が{paraphrase}。", f"{PEOPLE[subj]}が{place}にいます。"])
    elif label == "contradiction":
        hyp = rng.choice([f"{subj}が{place}で{incompatible}。", f"{place}には誰もいません。"])
    else:
        hyp = f"{subj}は{rng.choice(NEUTRAL_EXTRAS)}。"
    return premise, hyp


def _unique(rng: random.Random, make, n: int, seen: set) -> list:
    out = []
    for _ in range(n * 200):
        item = make(rng)
        if item in seen:
            continue
        seen.add(item)
        out.append(item)
        if len(out) == n:
            return out
    raise RuntimeError(f"could not draw {n} distinct items; enlarge the word lists in {__file__}")


def _fresh(draw, seen: set):
    """One draw not in `seen` (after 200 tries, the last one even so), added to `seen`."""
    for _ in range(200):
        item = draw()
        if item not in seen:
            break
    seen.add(item)
    return item


def build(seed: int = 20230907) -> dict[str, str]:
    """Every bundled file, as {relative path: text}."""
    rng = random.Random(seed)
    files: dict[str, str] = {}

    # Pretraining corpus for the base model: descriptive prose and reviews, no questions, no template.
    corpus = _unique(rng, _scene_sentence, 1400, set())
    corpus += [_review(rng, positive=i % 2 == 0) for i in range(400)]
    corpus += [f"{q.rstrip('？')}といえば、{a.rstrip('。')}。" for q, a in KNOWLEDGE]
    rng.shuffle(corpus)
    files["corpus.txt"] = "\n".join(corpus) + "\n"

    # VQA sample (Visual Genome layout) and instruction Q/A drawn without any shared (question, answer) pair.
    vqa_pairs = _unique(rng, _scene_qa, 72, set())
    held_out = set(vqa_pairs)
    inst_pairs = []  # repeats allowed, as in real instruction sets; never a VQA pair
    while len(inst_pairs) < 320:
        pair = _scene_qa(rng)
        if pair not in held_out:
            inst_pairs.append(pair)
    images = []
    for i in range(0, len(vqa_pairs), 3):
        image_id = 1000 + i // 3
        qas = [
            {"qa_id": 5000 + i + j, "image_id": image_id, "question": q, "answer": a}
            for j, (q, a) in enumerate(vqa_pairs[i : i + 3])
        ]
        images.append({"id": image_id, "qas": qas})
    files["ja-vg-vqa/question_answers.json"] = json.dumps(images, ensure_ascii=False, indent=1) + "\n"

    rows = [{"instruction": q, "input": "", "output": a} for q, a in inst_pairs]
    rows += [{"instruction": q, "input": "", "output": a} for q, a in KNOWLEDGE]
    for i in range(40):
        positive = i % 2 == 0
        rows.append(
            {
                "instruction": "次の製品レビューの感情をポジティブかネガティブで答えてください。",
                "input": _review(rng, positive),
                "output": "ポジティブ" if positive else "ネガティブ",
            }
        )
    rng.shuffle(rows)
    files["instructions.jsonl"] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    # JGLUE mini copy in the GitHub layout (one JSON object per line).
    labels = ["entailment", "contradiction", "neutral"]
    nli_seen: set = set()
    for split, n, offset in (("train", 60, 0), ("valid", 40, 100000)):
        lines = []
        for i in range(n):
            label = labels[rng.randrange(3)] if i >= 3 else labels[i]
            pair = _fresh(lambda: _nli_pair(rng, label), nli_seen)  # noqa: B023 (called here, at once)
            row = {
                "sentence_pair_id": str(offset + i),
                "yjcaptions_id": f"{offset + i}-{offset + i + 1}",
                "sentence1": pair[0],
                "sentence2": pair[1],
                "label": label,
            }
            lines.append(json.dumps(row, ensure_ascii=False))
        files[f"JGLUE/datasets/jnli-v1.1/{split}-v1.1.json"] = "\n".join(lines) + "\n"

    review_seen: set = set()
    for split, n, offset in (("train", 60, 0), ("valid", 40, 50000)):
        lines = []
        for i in range(n):
            positive = rng.random() < 0.6
            text = _fresh(lambda: _review(rng, positive), review_seen)  # noqa: B023 (called here, at once)
            row = {
                "review_id": f"R{offset + i:06d}",
                "sentence": text,
                "label": "positive" if positive else "negative",
            }
            lines.append(json.dumps(row, ensure_ascii=False))
        files[f"JGLUE/datasets/marc_ja-v1.1/{split}-v1.1.json"] = "\n".join(lines) + "\n"

    return files


def write(out_dir: Path = DATA_DIR) -> list[Path]:
    written = []
    for rel, text in build().items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(out_dir: Path = DATA_DIR) -> list[str]:
    """Paths whose bundled content differs from what `build()` makes (empty when all match)."""
    bad = []
    for rel, text in build().items():
        path = out_dir / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            bad.append(rel)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jinstruct.demo_texts", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="compare the bundled files with a rebuild")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    if args.check:
        bad = check(args.out)
        for rel in bad:
            print(f"differs: {args.out / rel}", file=sys.stderr)
        return 1 if bad else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
