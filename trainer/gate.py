"""The evaluation gate: an adapter is promoted only if, on held-out records, it changed behaviour towards the
hindsight teacher beyond noise, without losing what the base already did right.

Measured per held-out record, "before" (the adapter served now, or the base) against "after" (the new adapter),
on one copy of the base weights; the teacher is always the base shown the feedback. Every comparison is paired
by record, with a bootstrap confidence interval of the mean change over records, so a change within noise
counts as no change:

- **fixes** (must rise beyond noise): on failed records, at the completion positions where the teacher's
  arg-max differs from the attempt's token, the share where the student's arg-max equals the teacher's;
- **retention** (must not fall beyond noise): log-prob per token of the accepted completions of held-out passed
  (`accept`) records; and of human edits, when there are any;
- perplexity on the team's own code must not rise more than `max_ppl_increase` (when there is code to read; the
  report says so when there is not);
- informational: KL(teacher‖student) and the failed attempts' log-prob, with their intervals.

Refused outright, with the reason: a base model that predicts the held-out completions no better than chance
(random or untrained weights: nothing it learns can be judged), a teacher that agrees with every token of the
failed attempts (no signal), and too few records to tell a change from noise.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
import subprocess
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from redline.prompts import encode
from redline.trainer.batching import OutputHead, collate, completion_hidden
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Pair, Rendering, build_pair
from redline.trainer.data import TrainingExample
from redline.trainer.feedback_text import correction_of, is_accepted
from redline.trainer.losses import CHUNK, divergence, token_logprobs

#: metric names (the rows of the report; the status line and `redline eval` show them)
FIXES = "fixes on failed records"
RETENTION = "log-prob of passed records"
EDITS = "log-prob of human edits"
PERPLEXITY = "perplexity on human code"
KL = "KL(teacher‖student) held-out"
FAILED = "log-prob of failed attempts"


@dataclass
class GateThresholds:
    max_ppl_increase: float = 0.02
    #: one-sided confidence that a change is real (bootstrap over held-out records)
    confidence: float = 0.95
    #: fewest held-out failed records with a teacher/attempt disagreement to judge by
    min_records: int = 4
    #: a base whose held-out negative log-likelihood is above this share of ln(vocabulary) is treated as random
    chance_share: float = 0.75
    bootstrap_samples: int = 2000


@dataclass
class GateReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    #: what the gate could not check, and why (e.g. no human code for the perplexity guard)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"{'metric':<32}{'before':>10}{'after':>10}{'change':>10}  {'interval':<20}  rule"]
        for r in self.rows:
            ci = "" if r.get("ci_low") is None else f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] n={r['n']}"
            lines.append(f"{r['metric']:<32}{r['before']:>10.4f}{r['after']:>10.4f}{r['after'] - r['before']:>+10.4f}"
                         f"  {ci:<20}  {r['rule']}{'' if r['ok'] else '  ✗'}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append("gate: " + ("passed" if self.passed else "refused — " + "; ".join(self.reasons)))
        return "\n".join(lines)


def gate_records(heldout: Sequence[TrainingExample], max_records: int) -> list[TrainingExample]:
    """Up to `max_records` records with mistakes and as many accepted ones, in queue order: an editor's queue holds
    far more accepted code than mistakes, and a cut over both would leave the fixes unmeasured."""
    accepted: list[TrainingExample] = []
    rest: list[TrainingExample] = []
    for ex in heldout:
        (accepted if is_accepted(ex.feedback) else rest).append(ex)
    return rest[:max_records] + accepted[:max_records]


def evaluate_gate(model_path: str | Path, adapter_dir: Path, heldout: Sequence[TrainingExample], *,
                  human_texts: Sequence[str] | None = None, repo_root: Path | None = None,
                  thresholds: GateThresholds | None = None, config: TrainConfig | None = None,
                  max_records: int = 64, max_human: int = 16, baseline_adapter: Path | None = None,
                  device: str | None = None) -> GateReport:
    """Compare "before" (the base model, or `baseline_adapter` — the adapter served now) with base + the new
    adapter on the held-out records and human code; the teacher is always the base model. See module doc."""
    from peft import PeftModel

    from redline.trainer.identity import base_identity, check_base, read_adapter_meta
    from redline.trainer.model import fit_to_model, load_base

    th = thresholds or GateThresholds()
    if config is None:
        saved = Path(adapter_dir) / "train_config.json"
        config = TrainConfig.load(saved) if saved.is_file() else TrainConfig()
    base, tok = load_base(model_path, device=device, quantize=config.quantize)
    identity = base_identity(base, tok, model_path)
    for adapter in (adapter_dir, baseline_adapter):
        if adapter is not None:
            check_base(read_adapter_meta(adapter), identity)
    config = fit_to_model(config, base)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    before_mode = "base"
    if baseline_adapter is not None:
        model.load_adapter(str(baseline_adapter), adapter_name="baseline")
        before_mode = "baseline"
    model.eval()
    fp = identity["tokenizer_fingerprint"]
    pad = tok.pad_token_id
    # Score every record with the adapter's own hindsight rendering, whatever method it was trained with.
    rendering = Rendering.of(config)
    batch = min(config.batch_size, 8)

    records = gate_records(heldout, max_records)
    failed = [p for i, ex in enumerate(records)
              if (p := build_pair(tok, i, ex.generation, ex.feedback, rendering, fingerprint=fp, anchors=False))]
    passed_ = [p for i, ex in enumerate(records) if is_accepted(ex.feedback)
               if (p := build_pair(tok, i, ex.generation, [], rendering, fingerprint=fp,
                                   target_ids=_completion_ids(tok, ex, rendering, fp))) is not None]
    edits = []
    for i, ex in enumerate(records):
        text = correction_of(ex.feedback)
        if text is not None:
            target = encode(tok, text, False) + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
            if (p := build_pair(tok, i, ex.generation, [], rendering, target_ids=target)) is not None:
                edits.append(p)
    texts = (list(human_texts) if human_texts is not None
             else default_human_texts(repo_root, max_human, config.gate_human_code))

    report = GateReport()
    stats = _Stats(th)
    if not failed:
        report.reasons.append("no held-out records with feedback to judge the adapter (collect more feedback)")
    else:
        before = _failed_metrics(model, failed, pad, mode=before_mode, batch_size=batch)
        after = _failed_metrics(model, failed, pad, mode="default", batch_size=batch)
        chance = math.log(max(2, _vocab(base)))
        if before["nll"] > th.chance_share * chance:
            report.reasons.append(
                f"the base model predicts the held-out completions no better than chance ({before['nll']:.2f} "
                f"nats/token; chance is {chance:.2f}): random or untrained weights, nothing learnt can be judged")
        judged = [i for i, fx in enumerate(before["fix"]) if fx is not None]
        if not judged:
            report.reasons.append("no signal: the hindsight teacher agrees with every token of the held-out failed "
                                  "attempts (the model does not use this feedback in context)")
        elif len(judged) < th.min_records:
            report.reasons.append(f"only {len(judged)} held-out failed record(s) where the teacher disagrees with "
                                  f"the attempt: too few to tell a change from noise (need {th.min_records})")
        if judged:
            stats.row(report, FIXES, [before["fix"][i] for i in judged], [after["fix"][i] for i in judged],
                      "must rise beyond noise", rise=True)
        stats.row(report, KL, before["kl"], after["kl"], "info")
        stats.row(report, FAILED, before["logp"], after["logp"], "info")
    if passed_:
        b = _logp_per_record(model, passed_, pad, mode=before_mode, batch_size=batch)
        a = _logp_per_record(model, passed_, pad, mode="default", batch_size=batch)
        stats.row(report, RETENTION, b, a, "must not fall beyond noise", rise=False)
    else:
        report.notes.append("retention on passed records not measured: no held-out record was accepted as is")
    if edits:
        b = _logp_per_record(model, edits, pad, mode=before_mode, batch_size=batch)
        a = _logp_per_record(model, edits, pad, mode="default", batch_size=batch)
        stats.row(report, EDITS, b, a, "must not fall beyond noise", rise=False)
    if texts:
        chunks = _chunks(tok, texts, config.max_length)
        before_ppl = _perplexity(model, chunks, mode=before_mode)
        after_ppl = _perplexity(model, chunks, mode="default")
        report.rows.append({"metric": PERPLEXITY, "before": before_ppl, "after": after_ppl,
                            "change": (after_ppl - before_ppl) / before_ppl if before_ppl else 0.0,
                            "rule": f"≤ +{th.max_ppl_increase:.0%}", "ci_low": None, "ci_high": None,
                            "n": len(chunks), "ok": after_ppl <= before_ppl * (1 + th.max_ppl_increase)})
    else:
        report.notes.append(f"perplexity guard skipped: no human-written code found (gate_human_code = "
                            f"{list(config.gate_human_code)}); set `gate_human_code` to the team's own files")
    report.reasons += [_reason(r) for r in report.rows if not r["ok"]]
    report.passed = not report.reasons
    return report


def _reason(row: dict[str, Any]) -> str:
    if row["metric"] == FIXES:
        return (f"{FIXES} did not rise beyond noise (change {row['after'] - row['before']:+.3f}, "
                f"{row.get('confidence', 0.95):.0%} interval [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] "
                f"over {row['n']} records)")
    if row["metric"] == PERPLEXITY:
        return f"{PERPLEXITY} rose more than allowed ({row['before']:.3f} → {row['after']:.3f})"
    return (f"{row['metric']} fell beyond noise ({row['before']:.4f} → {row['after']:.4f}, interval "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] over {row['n']} records): the adapter forgets what "
            "the base did right")


def bootstrap_interval(diffs: Sequence[float], *, tail: float, samples: int = 2000) -> tuple[float, float]:
    """(low, high) bounds of the mean of paired differences, resampled `samples` times with a fixed seed (the
    same data always gets the same verdict); `tail` is the share of resampled means left out on each side."""
    if len(diffs) < 2:
        return (diffs[0], diffs[0]) if diffs else (0.0, 0.0)
    rng = random.Random(0)
    n = len(diffs)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(samples))
    return means[int(tail * samples)], means[min(samples - 1, int((1 - tail) * samples))]


class _Stats:
    """Paired bootstrap over records: the interval of the mean per-record change (after − before)."""

    def __init__(self, th: GateThresholds) -> None:
        self.th = th

    def interval(self, diffs: Sequence[float]) -> tuple[float, float]:
        return bootstrap_interval(diffs, tail=1 - self.th.confidence, samples=self.th.bootstrap_samples)

    def row(self, report: GateReport, metric: str, before: Sequence[float | None], after: Sequence[float | None],
            rule: str, *, rise: bool | None = None) -> None:
        pairs = [(b, a) for b, a in zip(before, after, strict=True) if b is not None and a is not None]
        if not pairs:
            return
        b_mean = statistics.fmean(b for b, _ in pairs)
        a_mean = statistics.fmean(a for _, a in pairs)
        low, high = self.interval([a - b for b, a in pairs])
        ok = True if rise is None else (low > 0 if rise else high >= 0)
        if rise is False and len(pairs) < self.th.min_records:  # one or two records cannot show noise: no verdict
            ok = True
            report.notes.append(f"{metric}: only {len(pairs)} held-out record(s), too few to tell a fall from noise "
                                f"(need {self.th.min_records}); not judged")
        report.rows.append({"metric": metric, "before": b_mean, "after": a_mean,
                            "change": (a_mean - b_mean) / abs(b_mean) if b_mean else 0.0, "rule": rule,
                            "ci_low": low, "ci_high": high, "n": len(pairs), "confidence": self.th.confidence,
                            "ok": bool(ok)})


def _completion_ids(tok: Any, ex: TrainingExample, rendering: Rendering, fp: str) -> list[int]:
    """The accepted completion's ids exactly as training splices them (the recorded ids when they match)."""
    from redline.trainer.contexts import completion_ids

    return completion_ids(tok, ex.generation, fingerprint=fp, append_eos=rendering.append_eos)[0]


def _vocab(model: Any) -> int:
    return int(getattr(model.config, "vocab_size", 0) or model.get_output_embeddings().weight.shape[0])


def _using(model: Any, mode: str) -> Any:
    """A context in which `model` is the base ("base") or carries the named adapter ("default", "baseline")."""
    if mode == "base":
        return model.disable_adapter()
    model.set_adapter(mode)
    return nullcontext()


def _split(values: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
    return list(torch.split(values, counts))


@torch.no_grad()
def _failed_metrics(model: Any, pairs: Sequence[Pair], pad: int, *, mode: str, batch_size: int
                    ) -> dict[str, Any]:
    """Per record: fix share (None when the teacher agrees with every attempt token), mean KL(T‖S), mean
    log-prob of the attempt; and the mean NLL per token over all records (the chance check)."""
    dev = next(model.parameters()).device
    head = OutputHead(model)
    out: dict[str, Any] = {"fix": [], "kl": [], "logp": []}
    nll, n_tok = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        comps = [p.completion_ids for p in chunk]
        s = collate([p.student_ids for p in chunk], comps, pad_id=pad, device=dev)
        t = collate([p.teacher_ids for p in chunk], comps, pad_id=pad, device=dev)
        with model.disable_adapter():
            t_h = completion_hidden(model, t)
        with _using(model, mode):
            s_h = completion_hidden(model, s)
        ids = s.completion_ids[s.completion_mask]
        fix, kl, logp = [], [], []
        for lo in range(0, ids.shape[0], CHUNK):
            tl, sl = head(t_h[lo:lo + CHUNK]).float(), head(s_h[lo:lo + CHUNK]).float()
            t_lp, s_lp = torch.log_softmax(tl, -1), torch.log_softmax(sl, -1)
            part = ids[lo:lo + CHUNK]
            t_arg, s_arg = tl.argmax(-1), sl.argmax(-1)
            fix.append(torch.stack([t_arg != part, s_arg == t_arg]))
            kl.append(divergence(s_lp, t_lp, alpha=0.0))
            logp.append(s_lp.gather(-1, part.unsqueeze(-1)).squeeze(-1))
        counts = s.completion_mask.sum(-1).tolist()
        fixes, kls, lps = torch.cat(fix, 1), torch.cat(kl), torch.cat(logp)
        for f, k, lp in zip(torch.split(fixes, counts, 1), _split(kls, counts), _split(lps, counts), strict=True):
            disagree = f[0]
            out["fix"].append(float(f[1][disagree].float().mean()) if bool(disagree.any()) else None)
            out["kl"].append(float(k.mean()))
            out["logp"].append(float(lp.mean()))
        nll -= float(lps.sum())
        n_tok += int(lps.numel())
    out["nll"] = nll / max(1, n_tok)
    return out


@torch.no_grad()
def _logp_per_record(model: Any, pairs: Sequence[Pair], pad: int, *, mode: str, batch_size: int) -> list[float]:
    """Mean log-prob per token of each pair's completion in the student context."""
    dev = next(model.parameters()).device
    head = OutputHead(model)
    out: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        s = collate([p.student_ids for p in chunk], [p.completion_ids for p in chunk], pad_id=pad, device=dev)
        with _using(model, mode):
            h = completion_hidden(model, s)
        ids = s.completion_ids[s.completion_mask]
        lps = torch.cat([token_logprobs(head(h[lo:lo + CHUNK]), ids[lo:lo + CHUNK])
                         for lo in range(0, max(1, ids.shape[0]), CHUNK)])
        out += [float(x.mean()) for x in _split(lps, s.completion_mask.sum(-1).tolist())]
    return out


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
