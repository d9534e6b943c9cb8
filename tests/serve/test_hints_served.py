"""`serve_hints` on a real `redline serve` process: the recurring red lines of its queue go into the prompt the
model sees, and the ledger row records that prompt (hints included); a one-off red line stays out."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from redline.hints import HEADER
from redline.queue import open_store
from redline.records import Feedback, Generation, ModelRef, Prompt
from tests.serve.conftest import World, start, stop

pytestmark = pytest.mark.slow
RULE = "JSON files are not opened by hand in this repository: write `data = read_json(path)`"


@pytest.fixture(scope="module")
def hinted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    from tests.trainer.conftest import build_tiny_model

    root = tmp_path_factory.mktemp("hints")
    model = build_tiny_model(root / "tiny-llama")
    repo = root / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "redline.toml").write_text(f'model = "{model}"\nserve_hints = 3\n', encoding="utf-8")
    world = World(repo, root / "home", model)
    store = open_store(world.config)
    gens = [Generation(prompt_format="raw", prompt=Prompt(text=f"def load{i}(path):\n"), completion="    pass\n",
                       model=ModelRef(str(model)), repo_id=world.config.repo_id) for i in range(3)]
    store.add(generations=gens, feedback=[
        *(Feedback(kind="diagnostic", source="ruff", message=RULE, rule="RL101", generation_id=g.id) for g in gens),
        Feedback(kind="review", source="reviewer", message="rename this one variable", generation_id=gens[0].id)])
    store.close()
    proc = start(["serve", "--port", "0"], world, ready="redline serve:")
    info = json.loads((world.config.state_dir / "serve.json").read_text())
    yield f"http://127.0.0.1:{info['port']}", world
    stop(proc)


@pytest.mark.parametrize("body", [
    {"prompt": "import json\n\ndef load_config(path):\n    ", "max_tokens": 4, "temperature": 0},
    {"messages": [{"role": "user", "content": "load the config"}], "max_tokens": 4, "temperature": 0},
])
def test_the_model_sees_the_recurring_red_lines_and_the_ledger_keeps_that_prompt(
        hinted: tuple[str, World], body: dict) -> None:
    url, world = hinted
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    r = httpx.post(url + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    row = world.row(r.headers["X-Redline-Generation"])
    seen = row.prompt.text or ""  # the rendered text the model was given
    assert HEADER in seen and f"{RULE} [RL101]" in seen and "rename this one variable" not in seen
    assert row.meta["hints"] == 1
