from generators.skillmix.parsing import (
    Turn,
    normalise_skill,
    parse_example,
    query_type_items,
    sections,
    skill_items,
)


def test_skill_lists_with_numbers_bullets_markdown_and_a_preamble():
    text = ("Here are five skills:\n1. **Data Analysis**\n2) creative-writing - writing stories\n"
            "- `Python Programming`: writing code\n### 4. time management\n"
            "This sentence is far too long to be the name of any skill at all.\n* public speaking, negotiation\n"
            "1. Data analysis")
    assert skill_items(text) == [
        ("data_analysis", None), ("creative_writing", "writing stories"), ("python_programming", "writing code"),
        ("time_management", None), ("public_speaking", None), ("negotiation", None),
    ]


def test_normalise_skill():
    assert normalise_skill("  **Data-Analysis & Viz** ") == "data_analysis_viz"
    assert normalise_skill("!!!") == ""
    assert normalise_skill("Problem-Solving Skills") == "problem_solving" and normalise_skill("skills") == "skills"


def test_query_type_items_keep_display_names_and_definitions():
    text = "1. **Information-Seeking**: the user wants facts.\n2. Help-Seeking - needs help\n### 3. Planning\nhelp seeking: again"
    assert query_type_items(text) == [
        ("Information-Seeking", "the user wants facts."), ("Help-Seeking", "needs help"), ("Planning", None),
    ]


def test_sections_plain_bold_and_refined_headers():
    assert sections("### Instruction: Q?\n### Response: A.") == {"instruction": "Q?", "response": "A."}
    assert sections("**Instruction:** Q?\n\n**Response:**\nA.\n---") == {"instruction": "Q?", "response": "A."}
    assert sections('## Refined Instruction: "Q?"\n**Improved Response**: A.') == {"instruction": "Q?", "response": "A."}
    assert sections("### Instruction: *Q?*\n### Response: **A** is bold*") == {"instruction": "Q?", "response": "**A** is bold"}
    assert sections("### Task Type: Planning\n### Skills: a, b\n### Query: Q?\n### Answer: A.") == {
        "instruction": "Q?", "response": "A."}


def test_sections_without_headers_or_cut_off():
    assert sections("Just some text with no headers.") == {}
    assert sections("### Instruction: <the query>\n### Response: <the answer>") == {}
    assert sections("### Instruction: Q?\n### Response: The answer was cut of") == {
        "instruction": "Q?", "response": "The answer was cut of"}
    assert sections("### Instruction: Q?\n### Resp") == {"instruction": "Q?"}  # a header cut off mid-word


def test_parse_prefers_the_refined_turn():
    parsed = parse_example([
        Turn("write", "### Instruction: Q1\n### Response: R1", "stop"),
        Turn("critique", "### Instruction: not this\n### Response: nor this", "stop"),
        Turn("refine", "### Instruction: Q2\n### Response: R2", "stop"),
    ])
    assert (parsed.instruction, parsed.response, parsed.error) == ("Q2", "R2", None)


def test_parse_falls_back_to_earlier_turns_when_the_refinement_has_no_headers():
    parsed = parse_example([
        Turn("write", "**Instruction:** Q1\n**Response:** R1", "stop"),
        Turn("critique", "Strengths: ...", "stop"),
        Turn("refine", "Sure! Here is a better version without any headers.", "stop"),
    ])
    assert (parsed.instruction, parsed.response) == ("Q1", "R1")


def test_parse_cut_off_refinement_takes_the_rewrite_as_the_response():
    parsed = parse_example([
        Turn("write", "### Instruction: Q1\n### Response: R1", "stop"),
        Turn("critique", "Weak.", "stop"),
        Turn("refine", "### Instruction: Q2\n### Response: R2 is long and cut o", "length"),
        Turn("rewrite", "R2, complete and shorter.", "stop"),
    ])
    assert (parsed.instruction, parsed.response, parsed.response_turn.label) == ("Q2", "R2, complete and shorter.", "rewrite")
    assert parsed.response_turn.finish_reason == "stop"


def test_parse_refinement_cut_off_before_its_response_uses_the_earlier_response():
    parsed = parse_example([
        Turn("write", "### Instruction: Q1\n### Response: R1 cut", "length"),
        Turn("continue", "R1 rewritten in full.", "stop"),
        Turn("critique", "Weak.", "stop"),
        Turn("refine", "### Instruction: Q2 is a long question that got cut", "length"),
    ])
    assert (parsed.instruction, parsed.response) == ("Q2 is a long question that got cut", "R1 rewritten in full.")


def test_an_echoed_placeholder_is_not_a_response():
    parsed = parse_example([
        Turn("write", "### Instruction: Q1\n### Response: R1", "length"),
        Turn("continue", "<the answer>", "stop"),
    ])
    assert parsed.response == "R1"


def test_parse_failure_names_what_is_missing():
    parsed = parse_example([Turn("write", "no structure", "stop"), Turn("refine", "still none", "stop")])
    assert parsed.instruction is None and parsed.error == "could not parse 'Instruction:' or 'Response:' from any turn"
    only_instruction = parse_example([Turn("write", "### Instruction: Q", "stop")])
    assert only_instruction.error == "could not parse 'Response:' from any turn"
