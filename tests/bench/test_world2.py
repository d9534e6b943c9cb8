"""World 2: the checker's voices, the task split and counts, the chat hindsight, the records and the committed model.

Pure Python and fast, except where marked; the model tests use the committed tiny model and skip when it is absent.
"""

from __future__ import annotations

import json
import random

import pytest

from bench.world2 import check, make_repos, render_feedback
from bench.world2.api import CHANGE_KINDS, KINDS, Change
from bench.world2.checker import check as check_code
from bench.world2.hindsight import FEEDBACK_TURNS, REPROMPT_FEEDBACK, REPROMPT_SOLVE, teacher_messages
from bench.world2.pretrain import MODEL_DIR, corpus, verify
from bench.world2.tasks import Task, all_structures, make_task

HAS_MODEL = verify(MODEL_DIR)


def _task(*structure: str, **lit: object) -> Task:
    task = make_task(tuple(structure), "t", random.Random(0))
    return Task("t", task.structure, tuple(sorted({**task.lit, **lit}.items())))


def _conv(*changes: tuple[str, str, str]) -> dict[str, Change]:
    return {step: Change(step, kind, value) for step, kind, value in changes}


def _findings(task: Task, conv: dict[str, Change], code: str | None = None) -> list[tuple[str, str, str]]:
    code = task.solution({}) if code is None else code
    return [(f.kind, f.source, f.message) for f in check_code(task, conv, code).findings]


@pytest.fixture(scope="module")
def repos():
    return make_repos(3, seed=0)


def test_reference_solutions_pass_and_default_code_fails_only_on_changed_steps(repos) -> None:
    for repo in repos:
        for task in repo.train_tasks[:50] + repo.heldout_tasks[:64] + repo.unchanged_tasks[:64]:
            assert check(repo, task, repo.solution(task)).passed, task
        for task in repo.unchanged_tasks[:64]:
            assert check(repo, task, task.solution({})).passed, task
        for task in repo.heldout_tasks[:64]:
            assert not check(repo, task, task.solution({})).passed, task


def test_task_counts_and_distinct_tasks(repos) -> None:
    for repo in repos:
        assert (len(repo.train_tasks), len(repo.heldout_tasks), len(repo.unchanged_tasks)) == (512, 128, 128)
        every = repo.train_tasks + repo.heldout_tasks + repo.unchanged_tasks
        assert len({t.prompt for t in every}) == len(every)
        assert len({t.id for t in every}) == len(every)
    assert len(all_structures()) == 360


def test_split_heldout_structures_are_new_and_cover_every_changed_step() -> None:
    for repo in make_repos(4, seed=1):
        train = {t.structure for t in repo.train_tasks}
        held = {t.structure for t in repo.heldout_tasks}
        assert not train & held
        for step in repo.changed:
            assert any(step in s for s in train) and any(step in s for s in held), step
        assert all(not repo.changed & set(t.structure) for t in repo.unchanged_tasks)
        assert all(repo.changed & set(t.structure) for t in repo.heldout_tasks)
        plain = sum(not repo.changed & set(t.structure) for t in repo.train_tasks)
        assert plain == len(repo.train_tasks) // 4


def test_repos_are_seeded_and_use_many_kinds() -> None:
    a, b = make_repos(2, seed=3), make_repos(2, seed=3)
    assert [r.conventions for r in a] == [r.conventions for r in b]
    assert [t.prompt for t in a[0].heldout_tasks] == [t.prompt for t in b[0].heldout_tasks]
    assert a[0].conventions != a[1].conventions
    kinds = {ch.kind for r in make_repos(12, seed=0) for ch in r.conventions.values()}
    assert kinds == set(CHANGE_KINDS)
    assert all(len(r.conventions) == 5 for r in a)


def test_prompt_and_default_code() -> None:
    task = _task("route", "read", "clean", "slug", "save", "cache", "log", "return",
                 noun="order", method="post", field="email", ttl=30)
    assert task.prompt == ("Write `handle_order` for the POST /orders route: take the `email` field of a record, "
                           "normalise it, slugify it, save it, cache it for 30 s, log it, return both.")
    assert task.messages == [{"role": "user", "content": task.prompt}]
    assert task.solution({}) == (
        'import text\n\n\n@app.post("/orders")\ndef handle_order(record):\n    value = record.get("email")\n'
        '    if value is None:\n        return None\n    value = value.strip().lower()\n'
        '    slug = text.slugify(value)\n    db.insert("orders", {"email": value, "slug": slug})\n'
        '    cache.set(slug, value, ttl=30)\n    print(f"order {slug}")\n    return value, slug')


def test_test_failure_voices() -> None:
    task = _task("read", "save", "cache", "return", noun="order", field="email", ttl=30)
    conv = _conv(("read", "param_name", "event"), ("cache", "units", "ms"), ("save", "context", "atomic"),
                 ("return", "return_shape", "dict"))
    assert _findings(task, conv) == [
        ("test_failure", "pytest", "TypeError: handle_order() got an unexpected keyword argument 'event'"),
        ("test_failure", "pytest", "AssertionError: insert into 'orders' ran outside `with db.atomic():`"),
        ("test_failure", "pytest", "AssertionError: assert 30 == 30000"),
        ("test_failure", "pytest", "AssertionError: assert ' Ada@Example.com ' == {'email': ' Ada@Example.com '}"),
    ]
    task = _task("read", "return", noun="order", field="email")
    (f,) = check_code(task, _conv(("read", "errors", "MissingField")), task.solution({})).findings
    assert (f.message, f.detail) == ("Failed: DID NOT RAISE <class 'errors.MissingField'>",
                                     ">   with pytest.raises(MissingField):")
    assert f.rule == "tests/test_handlers.py::test_handle_order_missing_field"


def test_units_detail_names_the_call() -> None:
    task = _task("fetch", "return", noun="order", timeout=5)
    (f,) = check_code(task, _conv(("fetch", "units", "ms")), task.solution({})).findings
    assert (f.message, f.detail) == ("AssertionError: assert 5 == 5000",
                                     "+  where 5 = fetch.call_args.kwargs['timeout']")


def test_lint_type_and_review_voices() -> None:
    task = _task("route", "fetch", "clean", "slug", "log", "return", noun="order", method="get")
    conv = _conv(("fetch", "import_path", "core"), ("slug", "import_path", "core"), ("log", "forbidden", "log.info"),
                 ("clean", "helper", "normalize"), ("route", "decorator", "requires_auth"),
                 ("return", "return_shape", "Result"))
    assert sorted(_findings(task, conv)) == sorted([
        ("diagnostic", "ruff", "`http` is banned: use `from core.net import fetch`"),
        ("diagnostic", "ruff", "`text` is banned: use `from core.text import slugify`"),
        ("diagnostic", "ruff", "`print` found: this repo logs with `log.info`"),
        ("diagnostic", "mypy", 'Incompatible return value type (got "tuple[str, str]", expected "Result")'),
        ("review", "reviewer", "use `normalize(body)` instead of `body.strip().lower()`: this repo normalises text "
                               "with one helper"),
        ("review", "reviewer", "add `@requires_auth` below the route decorator: every route in this repo needs it"),
    ])
    task = _task("route", "arg", "log", noun="order", method="get", field="tag")
    assert _findings(task, _conv(("route", "first_stmt", "trace"))) == [
        ("diagnostic", "ruff", 'a route handler must start with `trace("handle_order")`')]
    rules = {f.rule for f in check_code(task, _conv(("route", "first_stmt", "trace")), task.solution({})).findings}
    assert rules == {"RL101"}


def test_over_applying_a_convention_fails_in_a_default_repo() -> None:
    task = _task("arg", "clean", "log", noun="order", field="tag")
    code = task.solution(_conv(("clean", "helper", "normalize"), ("log", "forbidden", "log.info")))
    assert _findings(task, {}, code) == [("test_failure", "pytest", "NameError: name 'normalize' is not defined")]


def test_one_run_names_every_problem() -> None:
    task = _task("read", "slug", "cache", "log", noun="order", field="email", ttl=30)
    conv = _conv(("read", "errors", "BadRequest"), ("slug", "import_path", "lib"), ("cache", "units", "ms"),
                 ("log", "forbidden", "logger.info"))
    messages = [m for _, _, m in _findings(task, conv)]
    assert len(messages) == 4
    assert any("DID NOT RAISE" in m for m in messages) and any("30000" in m for m in messages)
    assert any("TID251" not in m and "banned" in m for m in messages) and any("print" in m for m in messages)


def test_wrong_behaviour_is_a_test_failure() -> None:
    task = _task("arg", "clean", "return", noun="order", field="tag")
    assert _findings(task, {}, "def handle_order(value):\n    return value") == [
        ("test_failure", "pytest", "AssertionError: assert ' Python ' == 'python'")]
    assert _findings(task, {}, "def handle_other(value):\n    return value") == [
        ("test_failure", "pytest", "AttributeError: module 'handlers' has no attribute 'handle_order'")]
    task = _task("arg", "cache", noun="order", field="tag", ttl=30)
    assert _findings(task, {}, "def handle_order(value):\n    return value") == [
        ("test_failure", "pytest", "AssertionError: Expected 'set' to have been called once. Called 0 times."),
        ("test_failure", "pytest", "AssertionError: assert ' Python ' == None")]


def test_sandbox_refuses_anything_but_plain_statements() -> None:
    task = _task("arg", "return", noun="order", field="tag")
    for code in ("import os\ndef handle_order(tag):\n    return os.getcwd()",
                 "def handle_order(tag):\n    return tag.__class__",
                 "def handle_order(tag):\n    for x in tag:\n        pass",
                 "def handle_order(tag):\n    return f'{tag:>1000000}'",
                 "def handle_order(tag):\n    return tag.format(1)",
                 "def handle_order(tag):\n    return tag + tag"):
        ((kind, source, message),) = _findings(task, {}, code)
        assert (kind, source) == ("review", "reviewer") and message.startswith("keep handlers"), code
    assert _findings(task, {}, "import os\ndef handle_order(tag):\n    return tag") == [
        ("test_failure", "pytest", "ModuleNotFoundError: No module named 'os'")]
    assert _findings(task, {}, "def handle_order(tag:\n")[0][2].startswith("SyntaxError")


def test_feedback_layout_is_the_trainers(repos) -> None:
    """`render_feedback` lays findings out as the trainer's `aggregate` does on the records' feedback."""
    from bench.world2.records import feedback_of
    from redline.records import Generation, Message, ModelRef, Prompt
    from redline.trainer.feedback_text import aggregate

    repo = repos[0]
    for task in repo.heldout_tasks[:20]:
        code = task.solution({})
        result = check(repo, task, code)
        gen = Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", task.prompt)]),
                         completion=code, model=ModelRef(id="m"))
        assert aggregate(feedback_of(result, gen)) == render_feedback(result.findings)


def test_reprompt_wording_is_the_trainers_and_the_chat_is_its_teacher_context(tmp_path) -> None:
    contexts = pytest.importorskip("redline.trainer.contexts")
    assert (contexts.REPROMPT_FEEDBACK, contexts.REPROMPT_SOLVE) == (REPROMPT_FEEDBACK, REPROMPT_SOLVE)
    assert FEEDBACK_TURNS[0] == (REPROMPT_FEEDBACK + "\n\n", "\n\n" + REPROMPT_SOLVE)
    if not (MODEL_DIR / "tokenizer.json").exists():
        pytest.skip("no committed tokenizer")
    from transformers import AutoTokenizer

    from redline.records import Generation, Message, ModelRef, Prompt
    from redline.trainer.config import TrainConfig

    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    gen = Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", "Write `handle_order`.")]),
                     completion="x", model=ModelRef(id="m"))
    text, _ = contexts.render_teacher(tok, gen, "- test failed: boom", TrainConfig())
    mine = tok.apply_chat_template(teacher_messages("Write `handle_order`.", "- test failed: boom"), tokenize=False,
                                   add_generation_prompt=True)
    assert text == mine


def test_pretraining_corpus_is_chat_with_varied_feedback_turns() -> None:
    docs = corpus(seed=0, n_docs=400, hindsight_fraction=0.5)
    hind = [(m, code) for m, code in docs if len(m) > 1]
    assert 120 < len(hind) < 220
    assert all(m[0]["role"] == "user" and m[-1]["role"] == "user" for m, _ in docs)
    shown = [m for m, _ in hind if m[1]["role"] == "assistant"]
    assert 0.3 < len(shown) / len(hind) < 0.7
    redline = sum(m[-1]["content"].startswith(REPROMPT_FEEDBACK) for m, _ in hind)
    assert 0.2 < redline / len(hind) < 0.5
    assert len({m[-1]["content"].split("\n")[0] for m, _ in hind}) > 8


def test_shared_tail_head_is_exact_after_folding() -> None:
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.world2.pretrain import SharedTailHead

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=500, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))
    used = list(range(0, 500, 7))
    head = SharedTailHead(model, used)
    with torch.no_grad():
        head.other.normal_()
    ids = torch.tensor([used[:12]])
    labels = ids.clone()
    labels[0, :4] = -100
    mask = torch.ones_like(ids)
    compact = head.loss(ids, mask, labels)
    head.fold()
    full = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(compact, full, atol=1e-5)


def test_every_step_kind_is_declared() -> None:
    assert {k for kinds in KINDS.values() for k in kinds} == set(CHANGE_KINDS)
    assert len(CHANGE_KINDS) >= 5


@pytest.mark.skipif(not HAS_MODEL, reason="no committed tiny model at bench/world2/model")
def test_committed_model_matches_its_checksum_and_record() -> None:
    meta = json.loads((MODEL_DIR / "pretrain.json").read_text())
    sums = (MODEL_DIR / "SHA256SUMS").read_text().split()
    assert meta["sha256"] == sums[0] and sums[1] == "model.safetensors"
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 25 * 2**20
    tok = json.loads((MODEL_DIR / "tokenizer_config.json").read_text())
    assert (tok["eos_token"], tok["pad_token"]) == ("<|im_end|>", "<|endoftext|>")
    assert (MODEL_DIR / "chat_template.jinja").exists() or "chat_template" in tok
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["vocab_size"] == 49152 and config["tie_word_embeddings"]


@pytest.mark.skipif(not HAS_MODEL, reason="no committed tiny model at bench/world2/model")
def test_records_round_trip_through_the_import_format(tmp_path, repos) -> None:
    pytest.importorskip("torch")
    from bench.world2.records import make_records, read_jsonl, write_jsonl
    from redline.records import Generation

    records = make_records(MODEL_DIR, repos[0], 4, seed=0)
    path = write_jsonl(records, tmp_path / "records.jsonl")
    back = read_jsonl(path)
    assert [g.to_dict() for g, _ in back] == [g.to_dict() for g, _ in records]
    for gen, feedback in back:
        assert Generation.from_dict(gen.to_dict()).to_dict() == gen.to_dict()
        assert gen.prompt_format == "chat" and [m.role for m in gen.prompt.messages] == ["user"]
        assert gen.origin == "bench" and gen.meta["task_id"]
        assert feedback and all(f.generation_id == gen.id for f in feedback)


@pytest.mark.slow
def test_pretrain_stages_chain_and_write_a_checked_model(tmp_path) -> None:
    pytest.importorskip("torch")
    if not (MODEL_DIR / "tokenizer.json").exists():
        pytest.skip("needs the committed tokenizer (no downloads in tests)")
    from bench.world2.pretrain import pretrain_stages

    small = {"docs": 60, "max_steps": 2, "warmup": 1, "hidden_size": 16, "intermediate_size": 32, "layers": 1,
             "heads": 2, "time_budget_s": 60}
    out = pretrain_stages(tmp_path / "m", [{**small, "seed": 0}, {**small, "seed": 1, "hindsight_fraction": 0.9}])
    assert verify(out)
    meta = json.loads((out / "pretrain.json").read_text())
    assert meta["config"]["seed"] == 1 and meta["config"]["init"] and len(meta["stages"]) == 2


def test_recheck_recipe_redraws_the_checkers_red_lines(repos) -> None:
    """The records' recipe (the checker as a command on stdin) is what the probe and the gate rerun on an answer."""
    from bench.world2.recheck import findings, recipe
    from bench.world2.records import feedback_of
    from redline.evidence import Judge, recheck_of
    from redline.records import Generation, Message, ModelRef, Prompt

    repo = repos[1]
    task = repo.heldout_tasks[0]
    default, fixed = task.solution({}), repo.solution(task)
    assert [r["code"] for r in findings(repo.id, task.id, default)] == [
        f.rule or f.kind for f in check(repo, task, default).findings]
    assert findings(repo.id, task.id, fixed) == []
    gen = Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", task.prompt)]),
                     completion=default, model=ModelRef(id="m"))
    feedback = feedback_of(check(repo, task, default), gen, recipe(repo, task))
    assert feedback and all(recheck_of(f) == recipe(repo, task) for f in feedback)
    half = "\n".join(line for line in default.splitlines() if "print" not in line)
    with Judge(None) as judge:
        clean = judge.verdict(gen, feedback, fixed)
        back = judge.verdict(gen, feedback, half) if half != default else None
    assert clean.clean is True and "world2 checker rerun" in clean.how
    assert back is None or back.clean is False
