"""`jinstruct generate` on the tiny models: template, greedy decoding, the paper's penalties, streaming, markdown."""

from __future__ import annotations

import pytest

from jinstruct import generate
from jinstruct.leaderboard.config import ModelSpec
from jinstruct.prompts import instruction_prompt


def test_default_prompts_are_the_papers_five_inputs_in_japanese():
    assert generate.DEFAULT_PROMPTS[0] == "あなたは誰ですか？" and len(generate.DEFAULT_PROMPTS) == 5
    assert all(any("\u3040" <= ch <= "\u30ff" for ch in p) for p in generate.DEFAULT_PROMPTS)
    assert [generate.PAPER_PROMPTS[p] for p in generate.DEFAULT_PROMPTS] == [
        "Who are you?",
        "Please tell me how to get to Osaka from Tokyo.",
        "Where is the University of Tokyo?",
        "The phone is ringing. What should I do?",
        "What are the three major festivals in Kyoto?",
    ]


def test_markdown_shows_the_papers_english_beside_each_default_prompt():
    gens = [generate.Generation("m", p, "答え", 1.0, 1, 0.1) for p in generate.DEFAULT_PROMPTS[:2]]
    md = generate.to_markdown(gens)
    assert "| Prompt | The paper's input (English) | m |" in md
    assert "| あなたは誰ですか？ | Who are you? | 答え |" in md
    # Other prompts: no English column.
    assert "English" not in generate.to_markdown([generate.Generation("m", "猫？", "x", 1.0, 1, 0.1)])


def test_paper_repetition_penalty_by_architecture():
    assert generate.repetition_penalty_for("gpt_neox") == 1.05  # CALM-based
    assert generate.repetition_penalty_for("llama") == 1.0  # LLaMA-based
    assert generate.repetition_penalty_for("llama", override=1.2) == 1.2


def test_generation_is_greedy_on_the_training_template(tiny_lm, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = ModelSpec(name="neox", base_model=str(tiny_lm))
    gens = generate.run([spec], ["猫は何色ですか？"], max_new_tokens=6, stream=True)
    (g,) = gens
    assert g.repetition_penalty == 1.05 and 0 < g.new_tokens <= 6
    # The same output as a direct greedy decode of the training template.
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    ids = tok(
        instruction_prompt("猫は何色ですか？", None, "ja"), return_tensors="pt", add_special_tokens=False
    )
    with torch.no_grad():
        out = model.generate(
            **ids,
            do_sample=False,
            max_new_tokens=6,
            repetition_penalty=1.05,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    expected = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert g.output == expected
    printed = capsys.readouterr().out
    assert "### 猫は何色ですか？" in printed and expected in printed.replace(
        "\n", ""
    )  # streamed to the terminal


def test_side_by_side_markdown_for_base_and_tuned(tiny_lm, tiny_llama, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"
    torch.manual_seed(0)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(adapter)
    specs = [
        ModelSpec(name="llama-base", base_model=str(tiny_llama), vqa_language="en"),
        ModelSpec(name="llama-tuned", base_model=str(tiny_llama), adapter=str(adapter), vqa_language="en"),
    ]
    prompts = ["What is | this?", "二つ目の質問です。"]
    gens = generate.run(specs, prompts, max_new_tokens=4, stream=False)
    assert [g.repetition_penalty for g in gens] == [1.0] * 4  # LLaMA-based
    paths = generate.write(gens, tmp_path / "gen.md", note="smoke")
    md = paths[0].read_text(encoding="utf-8")
    assert "| Prompt | llama-base | llama-tuned |" in md
    assert "What is \\| this?" in md  # a pipe in a prompt does not break the table
    assert len([line for line in md.splitlines() if line.startswith("| ") and "Prompt" not in line]) == 2
    assert len(paths[1].read_text(encoding="utf-8").splitlines()) == 4


def test_cli_errors(tmp_path, capsys):
    assert generate.main([]) == 2
    empty = tmp_path / "p.txt"
    empty.write_text("\n\n")
    assert generate.main(["--model", "x", "--prompts", str(empty)]) == 2
    assert "no prompts" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["a|b\nc", ""])
def test_cells_escape(text):
    cell = generate._cell(text)
    assert "\n" not in cell and ("|" not in cell.replace("\\|", ""))
