"""The realistic repository world: its linter, its unit tests, the task split, the records and the renderings.

Fast and model-free except the last tests, which use the cached SmolLM2 build (`python -m bench.smollm2 --build`)
and skip when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.realrepo import RULES, Names, Repo, Task, check, make_repos, render_feedback
from bench.realrepo.generate import cut, function_end
from bench.realrepo.hindsight import RENDERINGS, comment_block, hint_context, render
from bench.realrepo.records import record_of
from bench.realrepo.rules import lint
from bench.smollm2 import BUILD_COMMAND, ModelMissing, build_or_load, default_dir, is_built
from redline.records import Feedback, Generation, ModelRef

REPO = make_repos(1)[0]
MODEL = ModelRef(id="SmolLM2-135M-Instruct")


def _task(name: str) -> Task:
    return next(t for t in (*REPO.train_tasks, *REPO.heldout_tasks, *REPO.unchanged_tasks) if t.spec.name == name)


def _sample(repo: Repo) -> list[Task]:
    """One task of each family and a few pure ones: the unit tests' breadth at a tenth of the cost."""
    seen, out = set(), []
    for t in (*repo.train_tasks, *repo.heldout_tasks):
        if t.spec.family not in seen:
            seen.add(t.spec.family)
            out.append(t)
    return out + repo.unchanged_tasks[:6]


def test_every_reference_solution_is_lint_clean_in_every_variant() -> None:
    for repo in make_repos(3):
        for t in (*repo.train_tasks, *repo.heldout_tasks, *repo.unchanged_tasks):
            assert lint(t.module_source(t.solution()), repo.names, repo.rules) == [], t.id


@pytest.mark.parametrize("index", [0, 1])
def test_reference_solutions_pass_the_unit_tests(index: int) -> None:
    repo = make_repos(2)[index]
    for t in _sample(repo):
        result = check(repo, t, repo.solution(t))
        assert result.passed, (t.id, result.findings)


@pytest.mark.slow
def test_every_reference_solution_passes_every_check() -> None:
    for repo in make_repos(3):
        for t in (*repo.train_tasks, *repo.heldout_tasks, *repo.unchanged_tasks):
            assert check(repo, t, repo.solution(t)).passed, t.id


NAIVE = [
    ("RL101", "count_orders", "\n    with open(path) as f:\n        return len(json.load(f))", True),
    ("RL101", "count_orders", "\n    return len(json.loads(open(path).read()))", True),
    ("RL102", "save_product", "\n    with open(path, 'w') as f:\n        json.dump({'name': name, 'price': price}, f)",
     True),
    ("RL103", "report_total_prices", "\n    total = sum(prices)\n    print('total', total)\n    return total", True),
    ("RL104", "cache_path", "\n    return os.path.join(root, name + '.json')", True),
    ("RL105", "stamp_order", "\n    return {**record, 'created_at': datetime.now().isoformat()}", True),
    ("RL105", "token_expired", "\n    return datetime.fromisoformat(expires_at) < datetime.now()", False),
    ("RL106", "request_timeout", "\n    return int(os.environ.get('APP_TIMEOUT', 30))", True),
    ("RL106", "api_url", "\n    return os.getenv('API_URL', 'https://api.example.com')", True),
    ("RL107", "prepare_export_dir", "\n    os.makedirs(path, exist_ok=True)\n    return path", True),
    ("RL108", "first_line", "\n    with open(path) as f:\n        return f.readline().rstrip('\\n')", True),
]


@pytest.mark.parametrize(("code", "name", "attempt", "tests_pass"), NAIVE)
def test_the_idiom_each_rule_bans_is_flagged_with_its_code(code: str, name: str, attempt: str,
                                                          tests_pass: bool) -> None:
    task = _task(name)
    result = check(REPO, task, attempt)
    assert result.lint_codes == (code,)
    assert result.tests_passed is tests_pass
    finding = next(f for f in result.findings if f.kind == "diagnostic")
    assert finding.message == RULES[code].render(REPO.names)
    assert finding.path == task.path and finding.line >= 2  # line 1 of a completion is the docstring's line
    assert RULES[code].name and attempt.split("\n")[finding.line - 1].strip()


def test_a_naive_comparison_with_aware_time_fails_its_test_like_pytest() -> None:
    result = check(REPO, _task("token_expired"), NAIVE[6][2])
    test = next(f for f in result.findings if f.kind == "test_failure")
    assert test.message == "TypeError: can't compare offset-naive and offset-aware datetimes"
    assert test.rule == "tests/test_events.py::test_token_expired"
    assert test.line == 2 and "datetime.now()" in (test.detail or "")


def test_a_wrong_value_is_an_assertion_with_the_call() -> None:
    result = check(REPO, _task("slugify"), "\n    return text.lower().replace(' ', '-')")
    (test,) = result.findings
    assert test.message == "assert 'hello,-world!' == 'hello-world'"
    assert test.detail == "+  where 'hello,-world!' = slugify('Hello, World!')"


def test_a_file_not_written_and_a_syntax_error_and_a_hang_are_test_failures() -> None:
    wrong_file = check(REPO, _task("save_city"), "\n    write_json(name + '.json', {'name': name})")
    assert wrong_file.findings[0].message == "AssertionError: 'out.json' was not written"
    broken = check(REPO, _task("slugify"), "\n    return text.lower(")
    assert broken.findings[0].message.startswith("ERROR collecting tests/test_text.py: SyntaxError:")
    assert broken.findings[0].line == 2


def test_renamed_helpers_are_what_the_rules_and_references_name() -> None:
    repo = next(r for r in make_repos(3) if r.names != Names())
    for t in repo.train_tasks:
        if "RL101" in t.rules:
            assert repo.names.read_json in t.solution() and repo.names.read_json in t.prompt
            break
    assert all(repo.names.as_dict()[k] in repo.conventions[c] for c, k in (("RL104", "join_path"),)
               if c in repo.rules)


def test_ruff_json_parses_with_redlines_ingester(tmp_path: Path) -> None:
    from redline.ci_hook.ingest.detect import detect
    from redline.ci_hook.ingest.ruff_json import parse

    result = check(REPO, _task("make_output_dir"), "\n    path = os.path.join(root, 'out')\n    os.makedirs(path)\n"
                   "    print(path)\n    return path")
    rows = [{**r, "filename": str(tmp_path / r["filename"])} for r in result.ruff]
    report = tmp_path / "ruff.json"
    report.write_text(json.dumps(rows))
    assert detect(report) == "ruff"
    feedback = parse(report, tmp_path)
    assert [f.rule for f in feedback] == ["RL104", "RL107", "RL103"]
    assert {f.path for f in feedback} == {"app/storage.py"}
    assert feedback[0].range.start_line == result.findings[-3].row - 1  # 0-based, as LSP
    assert feedback[0].message == RULES["RL104"].render(REPO.names)


def test_splits_are_disjoint_large_enough_and_cover_every_rule() -> None:
    for repo in make_repos(3):
        train, held, unchanged = ({t.spec.name for t in ts} for ts in
                                  (repo.train_tasks, repo.heldout_tasks, repo.unchanged_tasks))
        assert len(train) == len(repo.train_tasks) and not (train & held or train & unchanged or held & unchanged)
        assert len([t for t in repo.train_tasks if t.rules]) >= 64 and len(repo.heldout_tasks) >= 32
        assert len(repo.unchanged_tasks) >= 32
        assert not {t.spec.family for t in repo.train_tasks if t.rules} & {t.spec.family for t in repo.heldout_tasks}
        for code in repo.rules:
            assert any(code in t.rules for t in repo.train_tasks) and any(code in t.rules for t in repo.heldout_tasks)
        assert all(not t.rules for t in repo.unchanged_tasks) and all(t.rules for t in repo.heldout_tasks)


def test_prompts_are_file_prefixes_ending_at_the_docstring() -> None:
    for t in REPO.train_tasks[:20]:
        assert t.prompt.startswith('"""') and t.prompt.endswith('"""')
        assert t.prompt.rsplit("\n", 2)[-2].startswith(f"def {t.spec.name}(")
        assert t.solution().startswith("\n    ")


def test_a_completion_ends_at_the_first_line_back_at_column_zero() -> None:
    assert function_end("\n    return x\n\n\ndef other():") == 15
    assert cut("\n    return x\n\n\ndef other():") == "\n    return x"
    assert cut("\n\ndef stub():\n    pass") == ""
    assert cut("\n    if x:\n        return 1\n    return 2") == "\n    if x:\n        return 1\n    return 2"
    assert cut("\n    return 1\n```") == "\n    return 1"


@pytest.mark.parametrize("corrections", [False, True])
def test_records_validate_and_carry_the_correction_as_the_language_server_does(corrections: bool) -> None:
    from redline.trainer.feedback_text import aggregate, correction_of, is_accepted

    task = _task("config_name")
    gen, feedback = record_of(REPO, task, "\n    with open(path) as f:\n        return json.load(f)['name']",
                              model=MODEL, corrections=corrections)
    assert Generation.from_dict(json.loads(json.dumps(gen.to_dict()))) == gen
    assert [Feedback.from_dict(f.to_dict()) for f in feedback] == feedback
    assert gen.prompt.text == task.prompt and gen.insertion.path == "app/inventory.py"
    assert [f.kind for f in feedback] == ["diagnostic", *(["edit"] if corrections else [])]
    assert feedback[0].rule == "RL101" and feedback[0].meta["span_line"] == 2
    if corrections:
        edit = feedback[-1]
        assert (edit.source, edit.trust, edit.generation_id) == ("lsp.edit", "high", gen.id)
        assert correction_of(feedback) == task.solution()
        assert aggregate(feedback).startswith("The reviewer changed it to:\n" + task.solution())
    else:
        assert correction_of(feedback) is None
    passed = record_of(REPO, task, task.solution(), model=MODEL, corrections=corrections)[1]
    assert is_accepted(passed)


def test_every_finding_carries_the_repositorys_checks_as_a_recipe_that_judges_a_new_answer() -> None:
    from redline.evidence import Judge, recheck_of

    task = _task("config_name")
    naive = "\n    with open(path) as f:\n        return json.load(f)['name']"
    gen, feedback = record_of(REPO, task, naive, model=MODEL, corrections=True)
    recipes = {recheck_of(f) for f in feedback if f.kind != "edit"}
    assert len(recipes) == 1 and None not in recipes
    (recipe,) = recipes
    assert recipe.stdin and recipe.reads == "ruff-json" and recipe.argv[-2:] == (REPO.id, task.id)
    assert recheck_of(feedback[-1]) is None  # the correction is judged against its own text
    _, accepted = record_of(REPO, task, task.solution(), model=MODEL)
    assert recheck_of(accepted[0]) == recipe
    with Judge(None) as judge:
        back = judge.verdict(gen, feedback, "\n    data = json.loads(open(path).read())\n    return data['name']")
        assert back.clean is False and "RL101" in back.back and back.how == "realrepo checks rerun"
        assert judge.verdict(gen, feedback, task.solution()).clean is True
        wrong = judge.verdict(gen, feedback, "\n    return read_json(path)['title']")
        assert wrong.clean is False and wrong.back == (task.test_id,)  # rule followed, test failed


def test_the_recheck_command_prints_ruff_json_located_in_the_file() -> None:
    import subprocess
    import sys

    from bench.realrepo import recheck

    task = _task("make_output_dir")
    attempt = "\n    path = os.path.join(root, 'out')\n    os.mkdir(path)\n    return path"
    done = subprocess.run([sys.executable, str(recheck.HERE), REPO.id, task.id], input=task.prompt + attempt,
                          capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)
    lint_rows = {r["code"]: r["location"]["row"] for r in rows if r["code"].startswith("RL")}
    first = task.prompt.count("\n") + 1  # the completion's first line is the docstring's (1-based file rows)
    assert lint_rows == {"RL104": first + 1, "RL107": first + 2}
    assert task.test_id in {r["code"] for r in rows}
    assert recheck.findings(REPO.id, task.id, task.prompt + task.solution()) == []
    with pytest.raises(ValueError):
        recheck.findings("world-0-0", task.id, "")


def test_the_api_matches_bench_world() -> None:
    import inspect

    import bench.realrepo as rr
    import bench.world as world

    for name in ("build_or_load_model", "make_repos", "make_records", "pass_rate", "check", "render_feedback"):
        assert callable(getattr(rr, name)) and callable(getattr(world, name)), name
    for name in ("pass_rate", "make_records"):
        ours, theirs = (list(inspect.signature(getattr(m, name)).parameters)[:5] for m in (rr, world))
        assert ours == theirs, name
    assert "hindsight" in inspect.signature(rr.pass_rate).parameters
    assert {"kept", "adapter_dir", "temperature"} <= set(inspect.signature(rr.make_records).parameters)
    repo = rr.make_repos(2, 0)[1]
    assert repo.id == "realrepo-0-1" and repo.train_tasks and repo.heldout_tasks and repo.unchanged_tasks
    assert isinstance(rr.check(repo, repo.heldout_tasks[0], repo.solution(repo.heldout_tasks[0])), rr.CheckResult)


def test_the_corrections_benchs_statistics() -> None:
    from bench.smollm2_corrections import mcnemar_p, paired_bootstrap, wilson

    lo, hi = wilson(27, 48)
    assert 0.41 < lo < 0.43 and 0.69 < hi < 0.71
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    base = [True] * 20 + [False] * 28
    better = [True] * 20 + [True] * 14 + [False] * 14
    assert mcnemar_p(base, better) == (14, 0, pytest.approx(2 / 2 ** 14))
    assert mcnemar_p(base, base) == (0, 0, 1.0)
    lo, hi = paired_bootstrap(base, better, draws=2000)
    assert 0.15 < lo < 0.29 < hi < 0.43
    assert paired_bootstrap(base, base, draws=200) == (0.0, 0.0)


def test_fim_records_hold_the_prefix_and_an_empty_suffix() -> None:
    gen, _ = record_of(REPO, _task("config_name"), _task("config_name").solution(), model=MODEL, prompt_format="fim")
    assert gen.prompt_format == "fim" and gen.prompt.suffix == "" and gen.prompt.prefix == _task("config_name").prompt


class _Tokenizer:
    """Enough of a chat tokenizer for the renderings."""

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


def test_every_rendering_ends_with_the_prompt_so_the_attempt_can_follow() -> None:
    task = _task("make_output_dir")
    attempt = "\n    path = os.path.join(root, 'out')\n    os.mkdir(path)\n    return path"
    result = check(REPO, task, attempt)
    text = render_feedback(result.findings)
    assert "[RL104]" in text and "[RL107]" in text and "test failed: FileNotFoundError" in text
    other = _task("cache_path")
    for how in RENDERINGS:
        context = render(_Tokenizer(), how, task, attempt, text, demo=(other, other.solution()),
                         correction=task.solution())
        tail = task.prompt if how != "comment" else task.prompt.rsplit("\n", 1)[-1]
        assert context.endswith(tail), how
    assert task.solution() in render(_Tokenizer(), "chat+fix", task, attempt, text, correction=task.solution())
    block = comment_block(task.prompt, "- error: x")
    assert block.endswith('    # Write it correctly.\n    """' + task.spec.doc + '"""')
    for how in ("plain", "hint-comment", "chat-plain", "hint-chat"):
        assert hint_context(_Tokenizer(), how, task, REPO.hints).endswith(task.prompt)


def test_a_missing_model_is_one_line_naming_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match=BUILD_COMMAND.replace(".", r"\.")) as err:
        build_or_load(tmp_path / "nothing")
    assert "\n" not in str(err.value)


needs_model = pytest.mark.skipif(not is_built(default_dir()),
                                 reason=f"SmolLM2 is not built in {default_dir()}: run `{BUILD_COMMAND}`")


@pytest.mark.slow
@pytest.mark.real_part
@needs_model
def test_the_cached_build_matches_the_gguf_and_completes_a_task() -> None:
    import torch

    from bench.realrepo.evaluate import attempts
    from bench.smollm2 import RECORD

    torch.set_num_threads(2)
    path = build_or_load()
    record = json.loads((path / RECORD).read_text())
    assert record["check"]["greedy_equal"] and record["check"]["has_chat_template"]
    ((code, ids),) = attempts(path, None, REPO, [_task("count_orders")])
    assert code.startswith("\n    ") and ids
    check(REPO, _task("count_orders"), code)  # whatever it wrote, the checker answers
