"""The tutor on a scripted tiny llama: calculator decoding, hints, answer checks, the tab.

The scripted model is a real one-layer `LlamaForCausalLM` run by the real decoding loop; only
its weights are set by hand so that it is a *bigram machine*: attention and MLP outputs are
zero, each scripted character has its own embedding direction, and the LM head maps that
direction to the next character. After any prompt ending in a newline (every chat prompt does)
it writes `Why? 7*8=54.` and stops: a fixed wrong product, as the issue asks. Because each
character decides the next, text the calculator forces in (` 56`) is continued by the same
rules (`6` -> `.`), so calculator decoding visibly turns the slip into `Why? 7*8= 56.`.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import gradio as gr
import pytest

from mathtutor import hints, tutor, verdicts
from mathtutor.generate import GenerationSettings
from mathtutor.hints import FALLBACK_HINTS, next_hint
from mathtutor.tutor import (
    NO_NUMBERS,
    NOT_MATH,
    prepare_problem,
    self_consistency,
    solve,
)
from mathtutor.verdicts import check_answer, read_student_answer

SCRIPT = "Why? 7*8=54."
PROBLEM = "What is 7 times 8?"


def make_scripted_model(path: Path, tokenizer_dir: Path, successors: dict, strength=40.0) -> Path:
    """A llama whose next token depends only on the current character (see module doc).

    ``successors[char] = {next_char_or_None: logit bonus}``; None is end of turn; characters
    not listed end the turn too.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    def token(text: str) -> int:
        (token_id,) = tokenizer.encode(text, add_special_tokens=False)  # byte-level: one each
        return token_id

    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    scale = config.hidden_size**0.5  # RMSNorm turns a unit basis vector into sqrt(64) * it
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embedding, head = model.model.embed_tokens.weight, model.lm_head.weight
        embedding.zero_()
        head.zero_()
        embedding[:, 0] = 1.0  # direction 0: every unscripted token, followed by end of turn
        head[eos, 0] = strength / scale
        for direction, (char, following) in enumerate(successors.items(), start=1):
            embedding[token(char)] = 0.0
            embedding[token(char), direction] = 1.0
            for next_char, bonus in following.items():
                target = eos if next_char is None else token(next_char)
                head[target, direction] = (strength + bonus) / scale
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def chain(text: str) -> dict:
    """Successors that spell ``text`` after a newline; every character must be distinct."""
    successors = {"\n": {text[0]: 0.0}}
    for char, next_char in itertools.pairwise(text):
        assert char not in successors, f"{char!r} repeats in {text!r}"
        successors[char] = {next_char: 0.0}
    successors[text[-1]] = {None: 0.0}
    successors["6"] = {".": 0.0}  # continues the calculator's " 56"
    return successors


@pytest.fixture(scope="module")
def scripted_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return make_scripted_model(tmp_path_factory.mktemp("scripted"), tiny_model_dir, chain(SCRIPT))


@pytest.fixture(scope="module")
def branching_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """Like the scripted model, but after '=' it writes '5' (p ~ 0.6) or '6' (answer 6)."""
    successors = chain(SCRIPT)
    successors["="] = {"5": 0.0, "6": -0.3}
    return make_scripted_model(tmp_path_factory.mktemp("branching"), tiny_model_dir, successors)


@pytest.fixture()
def scripted(scripted_dir):
    from mathtutor.models import load_model

    return load_model(str(scripted_dir), device="cpu")


# --------------------------------------------------------------------------- solutions
def test_calculator_decoding_replaces_the_wrong_product(scripted):
    plain = solve(scripted, PROBLEM, calculator=False)
    assert plain.text == SCRIPT and plain.answer == "54" and plain.calculator_calls == 0
    (slip,) = plain.wrong_steps
    assert (slip.expression, slip.claimed, slip.actual) == ("7*8", "54", 56)

    fixed = solve(scripted, PROBLEM, calculator=True)
    assert fixed.text == "Why? 7*8= 56." and fixed.answer == "56"
    assert fixed.calculator_calls == 1 and fixed.wrong_steps == ()
    assert [s.is_correct for s in fixed.steps] == [True]


def test_solution_streams_and_the_tab_marks_the_slip(scripted_dir):
    from mathtutor.ui.tutor import show_solution

    request = gr.Request(session_hash="solution")
    frames = list(show_solution(str(scripted_dir), "base", PROBLEM, False, request=request))
    assert frames[0][0].endswith("▌")
    assert "tokens" in frames[0][2] and "Stop" in frames[0][2]  # the progress line streams
    # at most one update per UPDATE_EVERY_S (and the last): 12 fast tokens, far fewer frames
    assert 2 <= len(frames) < 12 and frames[-1][0] != frames[0][0]
    final, notice, progress = frames[-1]
    assert '<mark class="slip">7\\*8=54</mark>' in final and "should be **56**" in final
    assert "final answer: 54 (not verified)" in final and notice == ""
    assert progress.startswith("Done: ")
    final, *_ = list(show_solution(str(scripted_dir), "base", PROBLEM, True, request=request))[-1]
    assert "slip" not in final and "1 of 1 steps compute correctly" in final
    assert "checks the sums only" in final and "✅" not in final  # no tick for the model's answer
    assert "calculator wrote 1" in final
    known = {"problem": PROBLEM, "reference": "56", "solution": "7*8=<<7*8=56>>56\n#### 56"}
    (shown,) = show_solution(str(scripted_dir), "base", PROBLEM, True, known, request=request)
    assert "Worked solution from the problem's source" in shown[0] and "✅" in shown[0]
    limited = list(show_solution(str(scripted_dir), "base", PROBLEM, False, None, 3, request))
    assert "stopped at the length limit" in limited[-1][0]


def test_stop_ends_a_streaming_solution_at_its_next_step(scripted_dir):
    """Stop (`ui.stops`) ends the Tutor's stream in its own thread and says so; the partial
    solution stays on screen (the handler yields nothing over it)."""
    from mathtutor.ui import stops
    from mathtutor.ui.tutor import STOPPED, show_solution

    request = gr.Request(session_hash="stopping")
    run = show_solution(str(scripted_dir), "base", PROBLEM, False, request=request,
                        run_token="tutorstoptoken01")  # fmt: skip
    first = next(run)
    assert first[0].endswith("▌")
    stops.request_stop("tutorstoptoken01")
    rest = list(run)
    assert rest[-1] == (gr.skip(), gr.skip(), STOPPED)
    assert len(rest) <= 2, "the solution went on streaming after Stop"
    # the model is free again: a new run (another token) streams to its end
    frames = list(show_solution(str(scripted_dir), "base", PROBLEM, False, request=request,
                                run_token="tutornextrun0001"))  # fmt: skip
    assert frames[-1][2].startswith("Done: ")


# --------------------------------------------------------------------------- self-consistency
def test_self_consistency_counts_votes_from_one_batched_call(branching_dir):
    from mathtutor.models import load_model

    loaded = load_model(str(branching_dir), device="cpu")
    settings = GenerationSettings(max_new_tokens=40, temperature=0.7, seed=3)
    consensus = self_consistency(loaded, PROBLEM, k=8, settings=settings)
    assert consensus.k == 8 and set(consensus.answers) == {"54", "6"}
    assert consensus.count == consensus.answers.count(consensus.answer)
    assert consensus.count == max(consensus.answers.count(a) for a in ("54", "6"))
    assert consensus.share == consensus.count / 8
    with pytest.raises(ValueError, match="k"):
        self_consistency(loaded, PROBLEM, k=0)
    # disagreeing samples: below the threshold the tutor says it can't verify, and offers more
    stream = list(
        verdicts.check_answer_stream(loaded, PROBLEM, "54", k=8, threshold=0.9, calculator=False)
    )
    progress, verdict = stream[:-1], stream[-1]
    assert progress and all(isinstance(p, tutor.Progress) for p in progress)
    assert progress[-1].num_tokens > progress[0].num_tokens and progress[0].budget_tokens == 8 * 256
    assert verdict.status == "unverified" and verdict.is_correct is None
    assert "can't verify" in verdict.message and "won't say right or wrong" in verdict.message
    assert "at least 90% of my samples agree" in verdict.message  # the stated threshold
    assert "What I checked:" in verdict.message and "✅" not in verdict.message
    assert verdict.deeper_k == 16 and verdict.deeper_seconds > 0
    assert f"A deeper check with 16 samples would take about {verdict.deeper_seconds:.0f} s" in (
        verdict.message
    )
    revealed = check_answer(
        loaded, PROBLEM, "", k=8, threshold=0.9, reveal=True, cached=verdict.expected
    )
    assert "I can't give you an answer I trust" in revealed.message
    assert "guess" not in revealed.message


def test_check_against_self_consistency_is_likely_never_verified(scripted):
    right = check_answer(scripted, PROBLEM, "fifty-six", k=3)
    assert right.status == "likely-correct" and right.expected.source == "self-consistency"
    assert right.is_correct is None  # likely is not verified
    assert right.expected.confidence == 1.0 and "3 of 3 (100%)" in right.message
    assert "✅" not in right.message and "not verified" in right.message
    wrong = check_answer(scripted, PROBLEM, "54 apples", k=3, cached=right.expected)
    assert wrong.status == "likely-incorrect" and wrong.expected is right.expected  # reused
    assert "56" not in wrong.message and "54" in wrong.message
    shown = check_answer(scripted, PROBLEM, "54", k=3, reveal=True, cached=right.expected)
    assert shown.revealed and "most common answer is **56**" in shown.message
    assert "not verified" in shown.message


def test_a_reference_that_is_not_a_number_is_an_error_naming_the_field(scripted):
    with pytest.raises(ValueError, match="reference: 'banana' is not a number"):
        check_answer(scripted, "Tom has 3 eggs. How many?", "4", "banana")
    with pytest.raises(ValueError, match="reference"):
        next_hint(scripted, "Tom has 3 eggs. How many?", [], reference=tutor.check_reference("x"))


# --------------------------------------------------------------------------- hints
def test_a_wrong_step_in_a_model_hint_is_never_shown(scripted):
    # the model's hint is "Why? 7*8=54.": the wrong product is replaced by a question
    problem = "Tom has 7 bags with 8 apples in each. How many apples does Tom have?"
    stream = list(hints.hint_stream(scripted, problem, []))
    hint = stream[-1]
    assert all(isinstance(p, tutor.Progress) for p in stream[:-1]) and len(stream) > 2
    assert stream[0].budget_seconds == hints.HINT_SECONDS  # the budget is known up front
    assert (hint.text, hint.source) == ("Why? 7*8 = ?", "model") and "54" not in hint.text
    # with the answer known, a sentence stating it is cut; what is left is not about the problem
    cut = next_hint(scripted, problem, [], reference="54")
    assert cut.source == "fallback" and cut.text == FALLBACK_HINTS[0]
    # asked already: the next fallback question, never a repeat
    again = next_hint(scripted, problem, [hint.text])
    assert again.source == "fallback" and again.text == FALLBACK_HINTS[0]
    assert next_hint(scripted, problem, [hint.text, FALLBACK_HINTS[0]]).text == FALLBACK_HINTS[1]


def test_an_off_topic_model_hint_is_replaced(scripted):
    # the same "Why? 7*8=54." on a problem without 7 or 8 is about another problem
    janet = (
        "Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with "
        "four. She sells the rest for $2 each. How much does she make every day?"
    )
    hint = next_hint(scripted, janet, [])
    assert hint.source == "fallback" and "7" not in hint.text and "54" not in hint.text


def test_model_hint_checker_rules():
    janet = "Janet's ducks lay 16 eggs. She eats 3 and bakes with 4. She sells each for $2."
    check = hints.check_model_hint
    assert check("How many eggs are left after 16 - 3 - 4 = 9 eggs?", janet, []) == (
        "How many eggs are left after 16 - 3 - 4 = ? eggs?"
    )
    assert check("Janet has 24 / 3 = 7 cupcakes left.", janet, []) is None  # not this problem
    assert check("Here is a guiding question to cove", janet, []) is None  # no sentence end
    assert check("A friend of the entertainer asks a question.", janet, []) is None  # off topic
    assert check("She makes 18 dollars.", janet, []) is None  # a number the problem lacks
    assert check("#### 18", janet, []) is None
    assert check("How many eggs does Janet sell? And then some", janet, []) == (
        "How many eggs does Janet sell?"
    )
    assert (
        check("Half of 16 eggs is 16 / 2 = 8 eggs.", janet, [])
        == "Half of 16 eggs is 16 / 2 = ? eggs."
    )


def test_grounded_hints_come_from_the_solution_instantly(scripted):
    solution = "How many apples in all? ** 7*8=<<7*8=56>>56 apples\n#### 56"
    problem = "Tom has 7 bags with 8 apples in each. How many apples?"
    first = next_hint(None, problem, [], solution=solution)  # no model needed
    assert (first.text, first.source) == ("How many apples in all? Use 7 and 8.", "grounded")
    assert first.step.value == 56 and first.seconds == 0.0
    # a model rewording that changes a number ("Why? 7*8=54.") is dropped
    kept = next_hint(scripted, problem, [], solution=solution, rephrase=True)
    assert (kept.text, kept.source) == (first.text, "grounded")
    done = next_hint(None, problem, [first.text], solution=solution)
    assert done.source == "done" and "56" not in done.text


def test_reveal_rule():
    assert hints.reveals_answer("Is it 1,000 dollars?", "1000", "a problem with 5 apples")
    assert hints.reveals_answer("So there are twelve left.", "12", "Tom had 20 eggs")
    assert not hints.reveals_answer("How many did Tom buy?", "12", "Tom had 20 eggs")
    assert not hints.reveals_answer("Start from the 12 eggs.", "12", "Tom had 12 eggs")
    assert hints.reveals_answer("#### 3", "12", "")


# --------------------------------------------------------------------------- answers
@pytest.mark.parametrize(
    ("student", "reference", "status"),
    [
        ("twelve", "12", "correct"),
        ("12 cm", "12", "correct"),
        ("I think it is 12 apples.", "#### 12", "correct"),
        ("3/4", "0.75", "correct"),
        ("25%", "25", "correct"),
        ("25%", "0.25", "correct"),
        ("$1,200", "1200", "correct"),
        ("thirteen", "12", "incorrect"),
        ("", "12", "unreadable"),
        ("lots and lots", "12", "unreadable"),
        ("9**9**9", "12", "unreadable"),
        pytest.param("1" * 10_000, "12", "unreadable", id="10000-digits"),
    ],
)
def test_student_answers_in_words_units_fractions_percent(scripted, student, reference, status):
    verdict = check_answer(scripted, "Tom has 5 eggs and buys 7. How many?", student, reference)
    assert verdict.status == status
    if status == "unreadable":
        assert "`12`, `3/4`, `25%` or `twelve`" in verdict.message
    if status == "incorrect":
        assert "12" not in verdict.message and verdict.is_correct is False


def test_read_student_answer():
    assert [read_student_answer(t) for t in ("a dozen", "-7", "1 1/2", "0.5", "1.76")] == [
        "12",
        "-7",
        "3/2",
        "0.5",  # a decimal is shown as the student wrote it, not as 1/2
        "1.76",
    ]
    assert read_student_answer("3 apples and 4 pears") is None


def test_calculator_blowups_in_working_are_bounded(scripted):
    working = "\n".join(
        [
            "9**9**9 = 5",
            "(" * 500 + "1" + ")" * 500 + " = 1",
            "5 / 0 = 1",
            "7 * 8 = 54",
            "1" * 10_000 + " * 2 = 3",
            "2 * 50 = 101",
        ]
    )
    started = time.perf_counter()
    verdict = check_answer(scripted, "What is 7 times 8, and then?", "99", "100", working)
    assert time.perf_counter() - started < 10
    assert verdict.status == "incorrect"
    assert "`7 * 8 = 54` should be **56**" in verdict.message
    # the 10,000-digit line pushes "2 * 50 = 101" past the 5,000-character limit: cut, noticed
    assert "I checked the first 5,000" in verdict.message and "101" not in verdict.message
    assert verdict.message.count("In your working") == 1
    # a slip whose true value is the hidden answer is pointed out without the value
    hidden = check_answer(scripted, "Tom has 50 pairs", "99", "100", "2 * 50 = 99")
    assert "`2 * 50 = 99` is not right: redo it" in hidden.message and "100" not in hidden.message


def test_extremely_long_working_and_problem(scripted):
    working = "We add 3 + 4 = 8 then keep going. " * 30_000  # about a megabyte
    started = time.perf_counter()
    verdict = check_answer(scripted, "Tom has 3 apples and buys 4. How many?", "7", "7", working)
    assert time.perf_counter() - started < 10
    assert verdict.status == "correct" and "first 5,000" in verdict.message
    assert "`3 + 4 = 8` is not right: redo it" in verdict.message  # 7 is the hidden answer
    problem, notices = prepare_problem("How many? " + "7" * 100_000)
    assert len(problem) == tutor.MAX_PROBLEM_CHARS and "first 2,000" in notices[0]


def test_no_numbers_and_non_math_questions_get_polite_answers(scripted, scripted_dir):
    _, notices = prepare_problem("Tom has some apples and eats some. How many are left?")
    assert notices == (NO_NUMBERS,)
    _, notices = prepare_problem("What is the capital of France?")
    assert notices == (NOT_MATH,)
    solution = solve(scripted, "What is the capital of France?")
    assert solution.done and solution.notices == (NOT_MATH,)
    verdict = check_answer(scripted, "What is the capital of France?", "Paris")
    assert verdict.status == "unreadable"
    from mathtutor.ui.tutor import show_solution

    *_, (_, notice, _) = show_solution(
        str(scripted_dir), "base", "Tell me a joke", True, request=gr.Request(session_hash="joke")
    )
    assert "I can help with math word problems" in notice
    with pytest.raises(gr.Error, match="empty"):
        list(
            show_solution(
                str(scripted_dir), "base", "  ", True, request=gr.Request(session_hash="e")
            )
        )


# --------------------------------------------------------------------------- the tab
def last(frames):
    """The final frame a streaming handler yields."""
    return list(frames)[-1]


JANET = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market "
    "daily for $2 per fresh duck egg. How much in dollars does she make every day at the "
    "farmers' market?"
)
JANET_SOLUTION = (
    "How many eggs does Janet sell? ** Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "How much does Janet make at the farmers' market? ** She makes 9 * 2 = $<<9*2=18>>18 every "
    "day at the farmer’s market.\n#### 18"
)


def test_student_flow_through_the_tab_handlers(scripted_dir, mathtutor_home):
    from mathtutor.ui import tutor as tab

    spec, request = str(scripted_dir), gr.Request(session_hash="student")
    problem, known, *cleared = tab.pick_generated("easy")
    assert known["problem"] == problem and known["reference"] and cleared[0] == ""
    assert known["solution"].endswith(f"#### {known['reference']}")
    reference = known["reference"]
    frames = list(tab.give_hint(spec, "base", problem, known, [], None, True, 3, request=request))
    assert frames[0][-1] == "Instant: from the known solution."  # the budget, up front
    hints_md, hints, expected, *_, progress = frames[-1]
    assert "Hint 1" in hints_md and progress.startswith("From the known solution")
    hints_md, hints, expected, hint_button, next_button, *_ = last(
        tab.give_hint(spec, "base", problem, known, hints, expected, True, 3, request=request)
    )
    assert len(hints) == 2 and "Hint 2" in hints_md and "Earlier hints" in hints_md
    assert next_button.visible and not hint_button.visible
    args = (spec, "base", problem, known)
    wrong = str(int(float(reference)) + 1)
    verdict, expected, status, deeper = last(
        tab.check(*args, wrong, "", expected, True, 3, request=request)
    )
    assert "Not yet" in verdict and reference not in verdict.replace(wrong, "")
    assert "known answer" in status and not deeper.visible
    verdict, *_ = last(tab.check(*args, reference, "", expected, True, 3, request=request))
    assert "✅ Correct" in verdict
    verdict, *_ = last(tab.reveal_answer(*args, "", "", expected, True, 3, request=request))
    assert f"The answer is **{reference}**" in verdict and "Not yet" not in verdict
    # an edited problem no longer uses the picked problem's answer
    assert tab._reference(known, problem + " Then double it.") is None
    assert tab._solution(known, problem + " Then double it.") is None

    saves = mathtutor_home / "tutor_saves.jsonl"
    assert not saves.exists()  # nothing stored until the student asks
    message = tab.save(problem, "base", "", hints, reference, verdict)
    assert "Saved" in message
    (line,) = saves.read_text().splitlines()
    assert json.loads(line)["problem"] == problem and len(json.loads(line)["hints"]) == 2


def test_first_wrong_step_through_the_tab(scripted_dir):
    from mathtutor.ui import tutor as tab

    request = gr.Request(session_hash="working")
    known = {"problem": JANET, "reference": "18", "solution": JANET_SOLUTION}
    args = (str(scripted_dir), "base", JANET, known)
    working = "16 - 3 - 4 = 9\n9 * 3 = 27"
    verdict, *_ = last(tab.check(*args, "27", working, None, True, 3, request=request))
    assert "Not yet" in verdict and "**step 2** of 2" in verdict and "`9 * 3 = 27`" in verdict
    assert "How much does Janet make" in verdict and "18" not in verdict
    verdict, *_ = last(
        tab.check(*args, "", "16 - 3 - 4 = 9\n9 * 2 = 18", None, True, 3, request=request)
    )
    assert "✅ Correct" in verdict and "matches all 2 steps" in verdict  # answer read from working


def test_a_pasted_problem_never_gets_a_green_tick(scripted_dir):
    from mathtutor.ui import tutor as tab

    request = gr.Request(session_hash="pasted")
    args = (str(scripted_dir), "base", PROBLEM, None)
    frames = list(tab.check(*args, "56", "7 * 8 = 56", None, True, 2, request=request))
    assert any("tokens" in frame[2] for frame in frames[:-1])  # sampling progress streamed
    verdict, _, status, deeper = frames[-1]
    assert "✅" not in verdict and "Likely right, not verified" in verdict
    assert "What I checked: the arithmetic of 1 step(s)" in verdict and "not verified" in status
    assert not deeper.visible  # likely: no deeper check offered
    final, *_ = last(tab.show_solution(*args[:3], True, None, request=request))
    assert "✅" not in final and "(not verified)" in final
    with pytest.raises(gr.Error, match="reference: 'banana' is not a number"):
        known = {"problem": PROBLEM, "reference": "banana"}
        last(tab.check(*args[:3], known, "4", "", None, True, 2, request=request))


def test_rate_limit_per_client_not_per_session(scripted_dir, monkeypatch):
    """On a Space the allowance is per IP (or signed-in user): a new session gets none back."""
    from mathtutor import access
    from mathtutor.ui import tutor as tab

    monkeypatch.setenv("SPACE_ID", "alice/mathtutor")
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "alice")
    monkeypatch.setitem(access.LIMITERS, "tutor", access.RateLimiter("the tutor", 3, 60))
    known = {"problem": "Tom has 5 eggs and buys 7. How many?", "reference": "12"}
    args = (str(scripted_dir), "base", known["problem"], known, "12", "", None, True, 3)

    def request(session: str, host: str = "203.0.113.5") -> gr.Request:
        return gr.Request(session_hash=session, client={"host": host}, headers={})

    for session in ("first", "second", "third"):
        assert "Correct" in last(tab.check(*args, request=request(session)))[0]
    with pytest.raises(gr.Error, match="going fast"):
        last(tab.check(*args, request=request("a-fresh-session")))
    with pytest.raises(gr.Error, match="going fast"):  # saving writes to disk: counted too
        tab.save(known["problem"], "base", "", [], "12", "", request("saver"))
    assert "Correct" in last(tab.check(*args, request=request("busy", host="198.51.100.9")))[0]
    owner = gr.OAuthProfile(
        {"name": "A", "preferred_username": "alice", "profile": "", "picture": ""}
    )
    # owners are not limited
    assert "Correct" in last(tab.check(*args, request=request("first"), profile=owner))[0]
    with pytest.raises(gr.Error, match="k: visitors may use at most 10"):
        last(tab.check(*args[:-1], 16, request=request("k", host="192.0.2.1")))


def test_tab_builds_with_its_element_ids(scripted_dir):
    from mathtutor.ui import tutor as tab
    from mathtutor.ui.common import AppContext

    with gr.Blocks() as demo:
        spec = gr.Dropdown([str(scripted_dir)], value=str(scripted_dir))
        with gr.Tabs() as tabs, gr.Tab("Tutor", id="tutor") as tutor_tab:
            tab.build(AppContext(model_spec=spec, tabs=tabs), tutor_tab)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    expected = {
        "tutor-problem",
        "tutor-new-problem",
        "tutor-difficulty",
        "tutor-gsm8k",
        "tutor-mode",
        "tutor-solve",
        "tutor-hint",
        "tutor-next-hint",
        "tutor-hints",
        "tutor-answer",
        "tutor-working",
        "tutor-check",
        "tutor-verdict",
        "tutor-reveal",
        "tutor-solution",
        "tutor-system",
        "tutor-calculator",
        "tutor-stop",
        "tutor-progress",
        "tutor-max-tokens",
        "tutor-deeper",
    }
    assert expected <= ids
    visible = [c.visible for c in tab.switch_mode(tab.MODES[1])]
    assert visible == [False, True, False]


def test_model_picker_defaults_to_the_newest_adapter(scripted_dir, tmp_path):
    from mathtutor import store
    from mathtutor.ui.tutor import refresh_systems
    from tests.conftest import make_adapter

    assert refresh_systems(str(scripted_dir)).value == "base"
    adapter = make_adapter(scripted_dir, tmp_path / "tutor-lora", seed=2)
    store.register_adapter("tutor-lora", adapter, str(scripted_dir), "test")
    try:
        assert refresh_systems(str(scripted_dir)).value == "tutor-lora"
        assert refresh_systems(str(scripted_dir), "base").value == "base"  # a pick is kept
    finally:
        store.remove_adapter("tutor-lora")


def test_random_gsm8k_problem_keeps_its_answer_server_side(gsm8k_dir):
    from mathtutor.ui.tutor import pick_gsm8k

    problem, known, solution, *_ = pick_gsm8k()
    questions = [json.loads(line)["question"] for line in (gsm8k_dir / "test.jsonl").open()]
    assert problem in questions and known["problem"] == problem and solution == ""
    assert known["reference"] and "####" not in known["reference"]
