"""The synthetic world: the checker's voices, the task split, the hindsight format and the record export.

Pure Python and fast; the model tests use the committed tiny model and skip when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.world import HINDSIGHT_TEMPLATE, check, make_repos
from bench.world.api import APIS, Change
from bench.world.checker import check as check_code
from bench.world.pretrain import MODEL_DIR, corpus, verify
from bench.world.repos import expected_effects
from bench.world.tasks import RETURN, Task, all_structures, make_task


def _task(*structure: str) -> Task:
    return make_task(tuple(structure), "t")


def _findings(conv: dict[str, Change], task: Task, code: str | None = None) -> list[tuple[str, str, str]]:
    code = task.solution({}) if code is None else code
    result = check_code(conv, code, expected_effects(task, conv), task.params)
    return [(f.kind, f.source, f.message) for f in result.findings]


def test_reference_solutions_pass_and_default_code_fails_only_on_changed_apis() -> None:
    for repo in make_repos(3, seed=0):
        for task in repo.train_tasks[:100] + repo.heldout_tasks[:50] + repo.unchanged_tasks[:50]:
            assert check(repo, task, repo.solution(task)).passed, task
        for task in repo.unchanged_tasks:
            assert check(repo, task, task.solution({})).passed, task
        for task in repo.heldout_tasks:
            assert not check(repo, task, task.solution({})).passed, task


def test_rename_is_a_name_error_with_did_you_mean() -> None:
    task = _task("read_file", RETURN)
    assert _findings({"read_file": Change("read_file", "rename", "load_file")}, task) == [
        ("test_failure", "pytest", "NameError: name 'read_file' is not defined. Did you mean: 'load_file'?")]


def test_unknown_name_is_a_real_name_error_and_stops_the_run() -> None:
    task = _task("read_file", "write_file")
    code = "    a = raed_file(src)\n    write_file(dest, a)"
    assert _findings({}, task, code) == [
        ("test_failure", "pytest", "NameError: name 'raed_file' is not defined. Did you mean: 'read_file'?")]


def test_swapped_arguments_are_a_type_error() -> None:
    task = _task("connect", "query", RETURN)
    assert _findings({"query": Change("query", "swap")}, task) == [
        ("test_failure", "pytest", "TypeError: query() argument 1 must be str, not Conn")]


def test_dropped_argument_is_an_arity_error() -> None:
    task = _task("read_file", "log")
    assert _findings({"log": Change("log", "arity")}, task) == [
        ("test_failure", "pytest", "TypeError: log() takes 1 positional argument but 2 were given")]


def test_changed_constant_is_an_assertion_diff() -> None:
    task = _task("read_file", "log")
    conv = {"log": Change("log", "literal", '"notice"')}
    result = check_code(conv, task.solution({}), expected_effects(task, conv), task.params)
    (f,) = result.findings
    assert (f.kind, f.message, f.detail) == ("test_failure", "AssertionError: assert 'info' == 'notice'",
                                             "- notice\n+ info")


def test_lint_and_review_voices() -> None:
    task = _task("fetch", "parse_json", "send")
    conv = {"fetch": Change("fetch", "banned", "http_get"), "send": Change("send", "kwarg", "timeout=10")}
    assert _findings(conv, task) == [
        ("diagnostic", "ruff", "`fetch` is banned: use `http_get`"),
        ("review", "reviewer", "always call `send` with `timeout=10` in this repo")]
    task = _task("connect", "query", "sort_rows", RETURN)
    conv = {"query": Change("query", "wrapper", "retry"), "sort_rows": Change("sort_rows", "keyword")}
    assert sorted(_findings(conv, task)) == [
        ("diagnostic", "ruff", "pass `key` to `sort_rows` by keyword"),
        ("review", "reviewer", "wrap every `query(...)` call in `retry(...)`")]


def test_one_run_names_every_problem() -> None:
    task = _task("read_file", "parse_json", "send")
    conv = {"read_file": Change("read_file", "rename", "open_file"), "send": Change("send", "swap")}
    kinds = [m.split(":")[0] for _, _, m in _findings(conv, task)]
    assert kinds == ["NameError", "TypeError"]


def test_sandbox_refuses_anything_but_plain_calls() -> None:
    task = _task("read_file", RETURN)
    code = "    import os\n    return os.listdir('.')"
    assert _findings({}, task, code) == [("review", "reviewer", "keep the task body to plain calls and assignments")]
    assert _findings({}, task, "    a = (")[0][2].startswith("SyntaxError")


def test_split_heldout_structures_are_new_and_cover_every_changed_api() -> None:
    for repo in make_repos(4, seed=1):
        train = {t.structure for t in repo.train_tasks}
        held = {t.structure for t in repo.heldout_tasks}
        assert not train & held
        for api in repo.changed:
            assert any(api in s for s in train) and any(api in s for s in held), api
        assert all(not repo.changed & set(t.apis) for t in repo.unchanged_tasks)
        assert all(repo.changed & set(t.apis) for t in repo.heldout_tasks)


def test_repos_are_seeded() -> None:
    a, b = make_repos(2, seed=3), make_repos(2, seed=3)
    assert [r.conventions for r in a] == [r.conventions for r in b]
    assert [t.prompt for t in a[0].heldout_tasks] == [t.prompt for t in b[0].heldout_tasks]
    assert a[0].conventions != a[1].conventions


def test_task_arguments_are_parameters() -> None:
    task = _task("read_file", "parse_json", "send")
    assert task.prompt == "# read src, parse it, send it to target\ndef task(src, target):\n"
    assert task.solution({}) == "    a = read_file(src)\n    b = parse_json(a)\n    send(target, b)"
    wrong = "    a = read_file(target)\n    b = parse_json(a)\n    send(src, b)"
    assert _findings({}, task, wrong) == [
        ("test_failure", "pytest", "AssertionError: assert 'src' == 'target'")]


def test_structures_are_type_correct_chains() -> None:
    for s in all_structures():
        assert s[0] in APIS and APIS[s[0]].value_param is None
        assert s[-1] == RETURN or APIS[s[-1]].returns is None


def test_hindsight_template_restates_the_prompt_last() -> None:
    text = HINDSIGHT_TEMPLATE.format(prompt="P\n", completion="C", feedback="F")
    assert text.endswith("P\n") and "C" in text and "F" in text


def test_pretraining_corpus_uses_the_template() -> None:
    docs = corpus(seed=0, n_docs=200, hindsight_fraction=0.5)
    hind = [(c, code) for c, code in docs if "# Corrected attempt:" in c]
    assert 50 < len(hind) < 150
    for context, code in hind:
        prompt = context[context.rindex("# Corrected attempt:\n") + len("# Corrected attempt:\n"):]
        assert context.startswith("# Previous attempt:\n" + prompt) and code.startswith("    ")


@pytest.mark.slow
@pytest.mark.skipif(not verify(MODEL_DIR), reason="no committed tiny model at bench/world/model")
def test_records_round_trip_through_the_import_format(tmp_path: Path) -> None:
    from bench.world.records import make_records, read_jsonl, write_jsonl

    repo = make_repos(1, seed=0)[0]
    records = make_records(MODEL_DIR, repo, 8, seed=0)
    path = write_jsonl(records, tmp_path / "records.jsonl")
    back = read_jsonl(path)
    assert [g.to_dict() for g, _ in back] == [g.to_dict() for g, _ in records]
    for gen, feedback in back:
        assert gen.prompt_format == "raw" and gen.origin == "bench" and gen.meta["task_id"]
        assert feedback and all(f.generation_id == gen.id for f in feedback)
    line = json.loads(path.read_text().splitlines()[0])
    assert set(line) == {"generation", "feedback"}


@pytest.mark.slow
@pytest.mark.skipif(not verify(MODEL_DIR), reason="no committed tiny model at bench/world/model")
def test_kept_code_is_added_as_accepts_on_other_train_tasks_without_changing_the_records() -> None:
    from bench.world.records import make_records

    repo = make_repos(1, seed=0)[0]
    plain = make_records(MODEL_DIR, repo, 8, seed=0)
    with_kept = make_records(MODEL_DIR, repo, 8, seed=0, kept=5)
    assert [g.meta["task_id"] for g, _ in with_kept[:8]] == [g.meta["task_id"] for g, _ in plain]
    kept = with_kept[8:]
    assert len(kept) == 5 and all(g.meta["kept"] for g, _ in kept)
    assert not {g.meta["task_id"] for g, _ in kept} & {g.meta["task_id"] for g, _ in plain}
    for gen, feedback in kept:
        assert [(f.kind, f.source) for f in feedback] == [("accept", "lsp.kept")]
        assert check(repo, next(t for t in repo.train_tasks if t.id == gen.meta["task_id"]), gen.completion).passed


@pytest.mark.slow
def test_pretrain_stages_chain_and_write_a_checked_model(tmp_path) -> None:
    pytest.importorskip("torch")
    from bench.world.pretrain import pretrain_stages

    small = {"docs": 200, "max_steps": 2, "warmup": 1, "vocab_size": 300, "hidden_size": 32,
             "intermediate_size": 64, "layers": 1, "heads": 2, "time_budget_s": 60}
    out = pretrain_stages(tmp_path / "m", [{**small, "seed": 0}, {**small, "seed": 1, "hindsight_fraction": 0.9}])
    assert verify(out)
    meta = json.loads((out / "pretrain.json").read_text())
    assert meta["config"]["seed"] == 1 and meta["config"]["init"]  # the last stage continued from the first
