"""Record factories shared by the core tests."""

from __future__ import annotations

from redline.records import Feedback, Generation, Insertion, Message, ModelRef, Prompt, Range


def make_generation(i: int = 0, *, path: str | None = None, start: int = 0, completion: str | None = None,
                    repo_id: str = "test/repo") -> Generation:
    text = completion if completion is not None else f"def f{i}(x):\n    return x + {i}\n"
    insertion = None
    if path is not None:
        insertion = Insertion(path=path, range=Range(start, start + text.count("\n")))
    return Generation(
        prompt_format="chat",
        prompt=Prompt(messages=[Message("system", "You write Python."), Message("user", f"write f{i} ✓")]),
        completion=text,
        model=ModelRef("tiny-llama", "r1"),
        repo_id=repo_id,
        sampling={"temperature": 0.2, "top_p": 0.95},
        token_ids=[1, 2, 3],
        token_logprobs=[-0.1, -0.2, -0.3],
        insertion=insertion,
        meta={"task": i},
    )


def make_feedback(generation_id: str | None, i: int = 0, **kw: object) -> Feedback:
    fields: dict[str, object] = {
        "kind": "test_failure", "source": "pytest", "message": f"AssertionError: f{i}(1) == {i + 2}",
        "detail": "Traceback (most recent call last):\n  ...", "generation_id": generation_id,
    }
    fields.update(kw)
    return Feedback(**fields)  # type: ignore[arg-type]
