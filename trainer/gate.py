"""The evaluation gate: an adapter is promoted only if, on held-out records, it moved towards the hindsight
teacher without making human-written code of the repo less likely.

Measured with the adapter off (before) and on (after), on one copy of the base weights:
- mean KL(teacher ‖ student) on held-out records with feedback — must drop;
- mean log-prob per token of the failed attempts — must drop (the model should write them less);
- mean log-prob per token of human edits (corrections) — must rise, when there are any;
- perplexity on a sample of human-written code — must not rise by more than `max_ppl_increase`.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.batching import collate, completion_logits
from trainer.config import TrainConfig
from trainer.contexts import Pair, build_pair, encode
from trainer.data import TrainingExample
from trainer.feedback_text import correction_of
from trainer.losses import divergence, token_logprobs


@dataclass
class GateThresholds:
    max_ppl_increase: float = 0.02
    require_kl_drop: bool = True
    require_failed_logp_drop: bool = True
    require_edit_logp_rise: bool = True


@dataclass
class GateReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"{'metric':<34}{'before':>12}{'after':>12}{'change':>10}  rule"]
        for r in self.rows:
            lines.append(f"{r['metric']:<34}{r['before']:>12.4f}{r['after']:>12.4f}{r['change']:>+9.1%}  "
                         f"{r['rule']}{'' if r['ok'] else '  ✗'}")
        lines.append("gate: " + ("passed" if self.passed else "refused — " + "; ".join(self.reasons)))
        return "\n".join(lines)


def evaluate_gate(model_path: str | Path, adapter_dir: Path, heldout: Sequence[TrainingExample], *,
                  human_texts: Sequence[str] | None = None, repo_root: Path | None = None,
                  thresholds: GateThresholds | None = None, config: TrainConfig | None = None,
                  max_records: int = 64, max_human: int = 16, baseline_adapter: Path | None = None,
                  device: str | None = None) -> GateReport:
    """Compare "before" (the base model, or `baseline_adapter` — the adapter served now) with base + the new
    adapter on the held-out records and human code; the teacher is always the base model. See module doc."""
    from peft import PeftModel

    from trainer.model import fit_to_model, load_base, tokenizer_fingerprint

    th = thresholds or GateThresholds()
    if config is None:
        saved = Path(adapter_dir) / "train_config.json"
        config = TrainConfig.load(saved) if saved.is_file() else TrainConfig()
    base, tok = load_base(model_path, device=device)
    config = fit_to_model(config, base)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    before_mode = "base"
    if baseline_adapter is not None:
        model.load_adapter(str(baseline_adapter), adapter_name="baseline")
        before_mode = "baseline"
    model.eval()
    fp = tokenizer_fingerprint(tok)
    pad = tok.pad_token_id
    # Score every record with the adapter's own hindsight rendering, ignoring the method it was trained with.
    cfg = TrainConfig.from_dict({**config.to_dict(), "method": "self-distill", "use_passed_anchors": False})

    records = list(heldout)[:max_records]
    pairs = [p for i, ex in enumerate(records)
             if (p := build_pair(tok, i, ex.generation, ex.feedback, cfg, fingerprint=fp))]
    edits = []
    for i, ex in enumerate(records):
        text = correction_of(ex.feedback)
        if text is not None:
            target = encode(tok, text, False) + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
            if (p := build_pair(tok, i, ex.generation, [], cfg, target_ids=target)) is not None:
                edits.append(p)
    texts = (list(human_texts) if human_texts is not None
             else default_human_texts(repo_root, max_human, config.gate_human_code))

    report = GateReport()
    if not pairs:
        report.reasons.append("no held-out records with feedback to judge the adapter (collect more feedback)")
    else:
        before = _pair_metrics(model, pairs, pad, mode=before_mode, batch_size=cfg.batch_size)
        after = _pair_metrics(model, pairs, pad, mode="default", batch_size=cfg.batch_size)
        _row(report, "KL(teacher‖student) held-out", before["kl"], after["kl"], "must drop",
             after["kl"] < before["kl"] or not th.require_kl_drop)
        _row(report, "log-prob of failed attempts", before["logp"], after["logp"], "must drop",
             after["logp"] < before["logp"] or not th.require_failed_logp_drop)
    if edits:
        before = _pair_metrics(model, edits, pad, mode=before_mode, batch_size=cfg.batch_size, with_teacher=False)
        after = _pair_metrics(model, edits, pad, mode="default", batch_size=cfg.batch_size, with_teacher=False)
        _row(report, "log-prob of human edits", before["logp"], after["logp"], "must rise",
             after["logp"] > before["logp"] or not th.require_edit_logp_rise)
    if texts:
        chunks = _chunks(tok, texts, cfg.max_length)
        before_ppl = _perplexity(model, chunks, mode=before_mode)
        after_ppl = _perplexity(model, chunks, mode="default")
        _row(report, "perplexity on human code", before_ppl, after_ppl, f"≤ +{th.max_ppl_increase:.0%}",
             after_ppl <= before_ppl * (1 + th.max_ppl_increase))
    report.reasons += [f"{r['metric']} {r['rule']} (before {r['before']:.4f}, after {r['after']:.4f})"
                       for r in report.rows if not r["ok"]]
    report.passed = not report.reasons
    return report


def _row(report: GateReport, metric: str, before: float, after: float, rule: str, ok: bool) -> None:
    change = (after - before) / abs(before) if before else 0.0
    report.rows.append({"metric": metric, "before": before, "after": after, "change": change, "rule": rule,
                        "ok": bool(ok)})


def _using(model: Any, mode: str) -> Any:
    """A context in which `model` is the base ("base") or carries the named adapter ("default", "baseline")."""
    if mode == "base":
        return model.disable_adapter()
    model.set_adapter(mode)
    return nullcontext()


@torch.no_grad()
def _pair_metrics(model: Any, pairs: Sequence[Pair], pad: int, *, mode: str, batch_size: int,
                  with_teacher: bool = True) -> dict[str, float]:
    dev = next(model.parameters()).device
    kl_sum, lp_sum, n = 0.0, 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        comps = [p.completion_ids for p in chunk]
        s = collate([p.student_ids for p in chunk], comps, pad_id=pad, device=dev)
        mask = s.completion_mask
        with _using(model, mode):
            s_logits = completion_logits(model, s)[mask]
        lp_sum += float(token_logprobs(s_logits, s.completion_ids[mask]).sum())
        if with_teacher:
            t = collate([p.teacher_ids for p in chunk], comps, pad_id=pad, device=dev)
            with model.disable_adapter():
                t_logits = completion_logits(model, t)[mask]
            kl_sum += float(divergence(torch.log_softmax(s_logits.float(), -1),
                                       torch.log_softmax(t_logits.float(), -1), alpha=0.0).sum())
        n += int(mask.sum())
    return {"kl": kl_sum / max(1, n), "logp": lp_sum / max(1, n)}


def _chunks(tok: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    out = []
    for text in texts:
        ids = encode(tok, text, True)
        out += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    return out


@torch.no_grad()
def _perplexity(model: Any, chunks: Sequence[list[int]], *, mode: str) -> float:
    dev = next(model.parameters()).device
    nll, n = 0.0, 0
    for ids in chunks:
        x = torch.tensor([ids], device=dev)
        with _using(model, mode):
            logits = model(input_ids=x, use_cache=False).logits
        nll -= float(token_logprobs(logits[0, :-1], x[0, 1:]).sum())
        n += len(ids) - 1
    return math.exp(nll / max(1, n))


def default_human_texts(repo_root: Path | None, limit: int, pathspecs: Sequence[str] = ("*.py",),
                        max_chars: int = 8000) -> list[str]:
    """A stable sample of the repo's tracked files matching `pathspecs` (git ls-files), each cut to `max_chars`."""
    if repo_root is None:
        return []
    try:
        listed = subprocess.run(["git", "-C", str(repo_root), "ls-files", "--", *pathspecs], capture_output=True,
                                text=True, timeout=30, check=False).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    chosen = sorted(listed, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:limit]
    texts = []
    for rel in chosen:
        try:
            texts.append((Path(repo_root) / rel).read_text(encoding="utf-8")[:max_chars])
        except (OSError, UnicodeDecodeError):
            continue
    return [t for t in texts if t.strip()]
