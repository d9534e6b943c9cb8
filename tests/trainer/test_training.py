from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import chat_generation, failing, fim_generation, raw_generation
from safetensors.torch import load_file

from redline.records import Feedback
from redline.trainer.api import TrainConfig, TrainingExample, generate, load_for_inference, train
from redline.trainer.contexts import Rendering, build_pair
from redline.trainer.errors import TrainError
from redline.trainer.methods import distill_loss, off_policy_weights
from redline.trainer.model import attach_lora, load_base, lora_targets


def examples(n: int = 8) -> list[TrainingExample]:
    gens = [raw_generation(i) for i in range(n)]
    return [TrainingExample(g, failing(g)) for g in gens]


def pairs_of(tok, exs: list[TrainingExample], cfg: TrainConfig) -> list:  # type: ignore[no-untyped-def]
    return [build_pair(tok, i, ex.generation, ex.feedback, Rendering.of(cfg)) for i, ex in enumerate(exs)]


def test_lora_targets_are_attention_and_mlp(tiny_model: Path) -> None:
    model, _ = load_base(tiny_model)
    assert lora_targets(model) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def test_only_lora_parameters_receive_gradients(tiny_model: Path) -> None:
    base, tok = load_base(tiny_model)
    model = attach_lora(base, TrainConfig())
    cfg = TrainConfig()
    pairs = pairs_of(tok, examples(4), cfg)
    loss, _kl, _n = distill_loss(model, pairs, cfg, tok.pad_token_id, None)
    loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)
    assert any(p.grad.abs().sum() > 0 for name, p in model.named_parameters() if "lora_B" in name)
    assert all(p.grad is None for name, p in model.named_parameters() if "lora_" not in name)


def test_loss_is_zero_when_teacher_sees_the_student_context(tiny_model: Path) -> None:
    base, tok = load_base(tiny_model)
    model = attach_lora(base, TrainConfig())
    for top_k in (0, 20):
        cfg = TrainConfig(top_k=top_k)
        pairs = pairs_of(tok, examples(4), cfg)
        for p in pairs:
            p.teacher_ids = list(p.student_ids)
        loss, _, _ = distill_loss(model, pairs, cfg, tok.pad_token_id, None)
        assert abs(loss.item()) < 1e-6
        pairs_fb = pairs_of(tok, examples(4), cfg)
        assert distill_loss(model, pairs_fb, cfg, tok.pad_token_id, None)[0].item() > 1e-4


def test_a_step_on_the_cached_teacher_is_the_step_on_the_live_one(tiny_model: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The base teacher runs once before training: its states, cached in batches of one size and read back in
    batches of another, give the loss and the gradients that running it in the step gives."""
    from redline.trainer import teacher

    base, tok = load_base(tiny_model)
    cfg = TrainConfig(lr=1e-2)
    gens = [replace(raw_generation(i), completion="    return a" + " + b" * (1 + 3 * i) + "\n") for i in range(6)]
    pairs = [build_pair(tok, i, g, failing(g), Rendering.of(cfg)) for i, g in enumerate(gens)]
    assert len({len(p.completion_ids) for p in pairs}) == 6
    assert teacher.cache_teacher_hidden(base, pairs, tok.pad_token_id, batch_size=4)
    model = attach_lora(base, cfg)
    with torch.no_grad():  # a student that differs from the base, so the step has something to move
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    for batch in (pairs[:3], pairs[3:]):
        results = []
        for use_cache in (True, False):
            model.zero_grad()
            loss, kl, n = distill_loss(model, batch if use_cache else [replace(p, teacher_hidden=None) for p in batch],
                                       cfg, tok.pad_token_id, None)
            loss.backward()
            grads = [q.grad.clone() for q in model.parameters() if q.requires_grad]
            results.append((loss.item(), kl, n, grads))
        (l1, k1, n1, g1), (l2, k2, n2, g2) = results
        assert n1 == n2 and l1 == pytest.approx(l2, rel=1e-4) and k1 == pytest.approx(k2, rel=1e-4)
        assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(g1, g2, strict=True))
    # a cache that would not fit in RAM is not made; the loop then runs the teacher in every step
    monkeypatch.setattr(teacher, "CACHE_RAM_SHARE", 1e-12)
    fresh = [replace(p, teacher_hidden=None) for p in pairs]
    assert not teacher.cache_teacher_hidden(base, fresh, tok.pad_token_id, batch_size=4)
    assert all(p.teacher_hidden is None for p in fresh)


def test_off_policy_records_get_clipped_importance_weights(tiny_tokenizer) -> None:
    g = raw_generation()
    g.adapter_version = "v0001"
    cfg = TrainConfig()
    pair = build_pair(tiny_tokenizer, 0, g, failing(g), Rendering.of(cfg))
    n = len(pair.completion_ids)
    pair.old_logprobs = [-50.0] * n  # the old policy found these very unlikely → ratio huge → clipped at 2
    logp = torch.full((n,), -30.0)  # the student's log-probs of the n completion tokens (uniform over 30 ids: -3.4)
    mask = torch.ones(1, n, dtype=torch.bool)
    w = off_policy_weights([pair], logp, mask, cfg, parent_version=None)
    assert torch.allclose(w, torch.full((n,), 2.0))
    assert off_policy_weights([pair], logp, mask, cfg, parent_version="v0001") is None


@pytest.mark.slow
def test_train_writes_a_peft_adapter_that_plain_peft_loads(tiny_model: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    exs = [*examples(6), TrainingExample(chat_generation(), failing(chat_generation())),
           TrainingExample(fim_generation(), failing(fim_generation()))]
    out = tmp_path / "adapter"
    result = train(tiny_model, exs, out, TrainConfig(max_steps=12, lr=5e-3, batch_size=4), progress=False)
    assert result.steps == 12 and result.pairs == 16 and result.skipped == 0 and result.tokens > 0  # + 8 rewrites
    assert result.metrics["loss_last"] < result.metrics["loss_first"]
    assert {"adapter_config.json", "adapter_model.safetensors", "redline.json", "train_config.json"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "checkpoints").exists()
    meta = json.loads((out / "redline.json").read_text())
    assert meta["method"] == "self-distill" and len(meta["records"]) == 8 and meta["tokenizer_fingerprint"]
    assert meta["base_model"]["id"] == str(tiny_model) and "hindsight" in meta["metrics"]["metrics"]
    assert all("lora_" in k for k in load_file(str(out / "adapter_model.safetensors")))

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model), local_files_only=True)
    plain = PeftModel.from_pretrained(base, str(out))
    x = torch.tensor([[1, 20, 30, 40]])
    with torch.no_grad():
        adapted = plain(input_ids=x).logits
        with plain.disable_adapter():
            original = plain(input_ids=x).logits
    assert not torch.allclose(adapted, original)

    model, tok = load_for_inference(tiny_model, out)
    texts = generate(model, tok, exs[0].generation, max_new_tokens=5, greedy=False, n=3)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    greedy = generate(model, tok, "def f(a):\n", max_new_tokens=4, n=2)
    assert len(greedy) == 2 and greedy[0] == greedy[1] == generate(model, tok, "def f(a):\n", max_new_tokens=4)[0]


@pytest.mark.slow
def test_self_distillation_also_scores_the_teachers_greedy_rewrite(tiny_model: Path, tmp_path: Path) -> None:
    from redline.trainer.revisions import rewrite_pairs

    model, tok = load_base(tiny_model)
    cfg = TrainConfig()
    accepted = raw_generation(9)
    exs = [*examples(3), TrainingExample(accepted, [Feedback(kind="accept", source="human",
                                                             generation_id=accepted.id)])]
    pairs = pairs_of(tok, exs, cfg)
    assert pairs[3].anchor
    rewrites = rewrite_pairs(model, tok, exs, pairs, cfg)
    assert [q.index for q in rewrites] == [0, 1, 2]  # failed attempts only; an accepted one is its own target
    for p, q in zip(pairs, rewrites, strict=False):
        assert (q.student_ids, q.teacher_ids) == (p.student_ids, p.teacher_ids) and not q.anchor
        # the completion is the base model's greedy path from the teacher context, as ids (never re-tokenized)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p.teacher_ids + q.completion_ids])).logits[0]
        start = len(p.teacher_ids) - 1
        assert logits[start:start + len(q.completion_ids)].argmax(-1).tolist() == q.completion_ids
    # steps and epochs count records: a rewrite rides in the same optimizer step as its attempt
    cfg = TrainConfig(epochs=2, batch_size=2)
    off = train(tiny_model, exs, tmp_path / "off", replace(cfg, use_revisions=False), progress=False)
    on = train(tiny_model, exs, tmp_path / "on", cfg, progress=False)
    assert (off.pairs, on.pairs) == (4, 7) and off.skipped == on.skipped == 0 and off.steps == on.steps == 4
    assert on.tokens > off.tokens  # the same steps also score the rewrites


def test_a_rewrite_is_scheduled_with_its_attempt(tiny_tokenizer) -> None:
    from redline.trainer.batching import with_rewrites

    cfg = TrainConfig()
    gens = [raw_generation(i) for i in range(3)]
    attempts = [build_pair(tiny_tokenizer, i, g, failing(g), Rendering.of(cfg)) for i, g in enumerate(gens)]
    rewrites = [replace(attempts[2], completion_ids=[5, 6]), replace(attempts[0], completion_ids=[7])]
    plan = with_rewrites([[0, 1], [2], [1, 0]], [*attempts, *rewrites], records=3)
    assert plan == [[0, 1, 4], [2, 3], [1, 0, 4]]


def test_batched_greedy_decoding_matches_one_prompt_at_a_time(tiny_model: Path) -> None:
    from redline.trainer.generation import greedy_ids, sample_ids

    model, tok = load_base(tiny_model)
    prompts = [[1, 20, 30], [1, 5, 6, 7, 8, 9, 10, 11, 12], [1, 40], [1, 21, 22, 23, 24]]
    budgets = [5, 3, 9, 1]
    alone = [sample_ids(model, tok, p, max_new_tokens=b)[0] for p, b in zip(prompts, budgets, strict=True)]
    for batch_size in (1, 3, 8):  # left padding must not change a row's greedy path
        assert greedy_ids(model, tok, prompts, budgets, batch_size=batch_size) == alone
    assert all(len(r) <= b for r, b in zip(alone, budgets, strict=True)) and len(alone[3]) == 1
    real, sizes = model.generate, []

    def small_memory(**kw):  # long contexts on a small card: a batch over 2 runs out of memory
        sizes.append(kw["input_ids"].shape[0])
        if sizes[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(**kw)

    model.generate = small_memory
    assert greedy_ids(model, tok, prompts, budgets, batch_size=8) == alone and sizes == [4, 4, 2, 2]  # 8, 4: too many

    def no_memory(**kw):
        raise torch.OutOfMemoryError("CUDA out of memory")

    model.generate = no_memory  # even one context does not fit: a one-line error with the fix, not a traceback
    with pytest.raises(TrainError, match=r"out of memory .* use_revisions = false"):
        greedy_ids(model, tok, prompts, budgets, batch_size=8)


def test_records_without_feedback_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    g = raw_generation()
    with pytest.raises(TrainError, match="anything to train"):
        train(tiny_model, [TrainingExample(g, [])], tmp_path / "a", TrainConfig(max_steps=1),
                      progress=False)


def test_missing_model_says_how_to_fetch_it_and_never_downloads(tmp_path: Path) -> None:
    from redline.trainer.errors import ModelNotAvailable

    with pytest.raises(ModelNotAvailable, match="hf download redline-test/not-a-model"):
        load_base("redline-test/not-a-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailable, match="save_pretrained"):
        load_base(tmp_path / "empty")


@pytest.mark.slow
def test_sft_revision_baseline(tiny_model: Path, tmp_path: Path) -> None:
    exs = examples(4)
    g = exs[0].generation
    exs[0].feedback.append(Feedback(kind="edit", source="human", correction="    return a * b\n",
                                    generation_id=g.id))
    cfg = TrainConfig(method="sft-revision", max_steps=2, revision_max_new_tokens=6)
    assert train(tiny_model, exs[:2], tmp_path / "rev", cfg, progress=False).pairs == 2
