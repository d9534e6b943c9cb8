"""The evaluation gate: an adapter is promoted only when its answers are better, on held-out records, beyond noise.

It judges behaviour. Each held-out record's prompt is answered again, greedily, by "before" (the adapter served
now, or the base) and by "after" (the new adapter), on one copy of the base weights (`replay.py`), and every
answer is judged by the evidence that drew the record's red line (`redline.evidence`: the tool rerun on the answer
in a scratch copy, the feedback's own criterion; where neither can judge, the teacher's greedy correction as the
reference). Paired by record, with a bootstrap interval of the mean change, so a change within noise is none:

- **red lines fixed** (must rise beyond noise): the share of held-out records with a red line whose red line no
  longer comes back;
- **accepted answers kept** (must not fall beyond noise): the share of held-out accepted records whose answer
  still passes (the same answer, or one the accept's recorded check passes);
- **perplexity on your code** must not rise more than `max_ppl_increase` (a guard on the team's own files);
- a forgetting alarm, KL(base ‖ after) on the held-out prompts, and the teacher-forced figures of before
  (`gate_proxies.py`) are reported, not decided on: they move with any change of confidence, even when every
  answer stays the same.

Below `min_records` judged records with a red line the gate says "not judged" and keeps the current adapter
(`redline adapters promote` overrides); a base that predicts the held-out completions no better than chance is
refused with the reason.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redline.evidence import Judge, Verdict
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Rendering, build_pair
from redline.trainer.data import TrainingExample
from redline.trainer.feedback_text import is_accepted, is_passed
from redline.trainer.human_code import default_human_texts

#: metric names (the rows of the report; the status line and `redline eval` show them)
FIXED = "red lines fixed"
KEPT = "accepted answers kept"
PERPLEXITY = "perplexity on your code"
DRIFT = "KL(base‖adapter) on your prompts"
TF_FIXES = "teacher-forced fixes (info)"
TF_RETENTION = "log-prob of accepted answers (info)"


@dataclass
class GateThresholds:
    max_ppl_increase: float = 0.02
    #: one-sided confidence that a change is real (bootstrap over held-out records)
    confidence: float = 0.95
    #: fewest judged held-out records with a red line to decide by ("not judged" below it)
    min_records: int = 8
    #: a base whose held-out negative log-likelihood is above this share of ln(vocabulary) is treated as random
    chance_share: float = 0.75
    bootstrap_samples: int = 2000


@dataclass
class GateReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = False
    #: "promoted", "refused" or "not judged" (set by the decision)
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    #: what the gate could not check, and why (e.g. no human code for the perplexity guard)
    notes: list[str] = field(default_factory=list)
    #: per rule (the finding's code or test id): held-out records, fixed before, fixed after
    by_rule: list[dict[str, Any]] = field(default_factory=list)
    #: how the answers were judged (e.g. "ruff 0.6.9 rerun": 12), so a user sees what the verdict rests on
    judged_by: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self, metric: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["metric"] == metric), None)

    def summary(self, version: str | None = None) -> str:
        """One line in a user's words: what the adapter fixes and keeps, and what the gate did."""
        who = version or "the adapter"
        parts = []
        fixed = self.row(FIXED)
        if fixed is not None:
            change = fixed["after"] - fixed["before"]
            parts.append(f"{who} fixes {fixed['after_count']} of {fixed['n']} held-out red lines (before: "
                         f"{fixed['before_count']}; {change:+.0%}, {fixed['confidence']:.0%} interval "
                         f"{fixed['ci_low']:+.0%} to {fixed['ci_high']:+.0%})")
        kept = self.row(KEPT)
        if kept is not None:
            parts.append(f"keeps {kept['after_count']} of {kept['n']} accepted answers "
                         f"(before: {kept['before_count']})")
        ppl = self.row(PERPLEXITY)
        if ppl is not None:
            parts.append(f"perplexity on your code {ppl['change']:+.0%}")
        text = ", ".join(parts) or f"{who}: nothing held out to judge by"
        why = "" if self.verdict == "promoted" else f" ({'; '.join(self.reasons)})"
        return f"{text}: {self.verdict or 'not decided'}{why}"

    def table(self) -> str:
        lines = [f"{'metric':<36}{'before':>10}{'after':>10}{'change':>10}  {'interval':<24}  rule"]
        for r in self.rows:
            ci = "" if r.get("ci_low") is None else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] n={r['n']}"
            lines.append(f"{r['metric']:<36}{r['before']:>10.4f}{r['after']:>10.4f}{r['after'] - r['before']:>+10.4f}"
                         f"  {ci:<24}  {r['rule']}{'' if r['ok'] else '  ✗'}")
        for rule in self.by_rule:
            lines.append(f"  {rule['rule'][:60]:<60} fixed {rule['before']}/{rule['n']} → {rule['after']}/{rule['n']}")
        if self.judged_by:
            lines.append("judged by: " + ", ".join(f"{how} ({n})" for how, n in self.judged_by.items()))
        lines += [f"note: {n}" for n in self.notes]
        lines.append("gate: " + self.summary())
        return "\n".join(lines)


def gate_records(heldout: Sequence[TrainingExample], max_records: int) -> list[TrainingExample]:
    """Up to `max_records` records with mistakes and as many accepted ones, in queue order: an editor's queue holds
    far more accepted code than mistakes, and a cut over both would leave the fixes unmeasured."""
    accepted: list[TrainingExample] = []
    rest: list[TrainingExample] = []
    for ex in heldout:
        if is_accepted(ex.feedback):
            accepted.append(ex)
        elif not is_passed(ex.feedback):
            rest.append(ex)
    return rest[:max_records] + accepted[:max_records]


def evaluate_gate(model_path: str | Path, adapter_dir: Path, heldout: Sequence[TrainingExample], *,
                  human_texts: Sequence[str] | None = None, repo_root: Path | None = None,
                  thresholds: GateThresholds | None = None, config: TrainConfig | None = None,
                  max_records: int = 64, max_human: int = 16, baseline_adapter: Path | None = None,
                  device: str | None = None, judge: Judge | None = None) -> GateReport:
    """Compare "before" (the base model, or `baseline_adapter` — the adapter served now) with base + the new
    adapter on the held-out records (their answers, judged by `judge`, default: one over `repo_root`) and the
    team's code. See the module doc."""
    th = thresholds or GateThresholds()
    if config is None:
        saved = Path(adapter_dir) / "train_config.json"
        config = TrainConfig.load(saved) if saved.is_file() else TrainConfig()
    loaded = _load(model_path, adapter_dir, baseline_adapter, config, device)
    records = gate_records(heldout, max_records)
    failed = [ex for ex in records if not is_passed(ex.feedback)]
    accepted = [ex for ex in records if is_accepted(ex.feedback)]
    texts = (list(human_texts) if human_texts is not None
             else default_human_texts(repo_root, max_human, config.gate_human_code))
    report = GateReport()
    owned = judge is None
    judge = judge or Judge(repo_root)
    try:
        _judge_failed(report, loaded, failed, judge, th)
        _judge_accepted(report, loaded, accepted, judge, th)
    finally:
        if owned:
            judge.close()
    _informational(report, loaded, failed, accepted, th)
    _perplexity_guard(report, loaded, texts, config, th)
    _decide(report)
    return report


# -- loading -----------------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    rendering: Rendering
    fingerprint: str
    #: the adapter name of "before" ("base" = the adapter off)
    before: str
    batch_size: int


def _load(model_path: str | Path, adapter_dir: Path, baseline_adapter: Path | None, config: TrainConfig,
          device: str | None) -> _Loaded:
    """One copy of the base with the new adapter ("default") and, when one is served, the current ("baseline")."""
    from peft import PeftModel

    from redline.trainer.identity import base_identity, check_base, read_adapter_meta
    from redline.trainer.model import fit_to_model, load_base

    base, tok = load_base(model_path, device=device, quantize=config.quantize)
    identity = base_identity(base, tok, model_path)
    for adapter in (adapter_dir, baseline_adapter):
        if adapter is not None:
            check_base(read_adapter_meta(adapter), identity)
    config = fit_to_model(config, base)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    before = "base"
    if baseline_adapter is not None:
        model.load_adapter(str(baseline_adapter), adapter_name="baseline")
        before = "baseline"
    model.eval()
    # the adapter's own hindsight rendering (the teacher's correction, the teacher-forced figures)
    return _Loaded(model, tok, Rendering.of(config), identity["tokenizer_fingerprint"], before,
                   min(config.batch_size, 8))


def _mode(loaded: _Loaded, mode: str) -> Any:
    from redline.trainer.gate_proxies import using

    return lambda: using(loaded.model, mode)


# -- behaviour ---------------------------------------------------------------------------------------------------


def _answers(loaded: _Loaded, examples: Sequence[TrainingExample], mode: str) -> list[str]:
    from redline.trainer.replay import answers, student_contexts

    contexts = student_contexts(loaded.tokenizer, examples, loaded.rendering.max_length)
    return answers(loaded.model, loaded.tokenizer, contexts, examples, using=_mode(loaded, mode),
                   batch_size=loaded.batch_size)


def _judge_failed(report: GateReport, loaded: _Loaded, failed: Sequence[TrainingExample], judge: Judge,
                  th: GateThresholds) -> None:
    """Replay the records with a red line: does it come back on before's answer, on after's?"""
    if not failed:
        report.reasons.append(f"not judged: no held-out record with a red line, need {th.min_records} (collect "
                              "more feedback)")
        return
    before = _answers(loaded, failed, loaded.before)
    after = _answers(loaded, failed, "default")
    b = [judge.verdict(ex.generation, ex.feedback, text) for ex, text in zip(failed, before, strict=True)]
    a = [judge.verdict(ex.generation, ex.feedback, text) for ex, text in zip(failed, after, strict=True)]
    undecided = [i for i in range(len(failed)) if b[i].clean is None or a[i].clean is None]
    if undecided:  # nothing could rerun or read a criterion: the teacher's own correction is the reference
        refs = _teacher_corrections(loaded, [failed[i] for i in undecided])
        for i, ref in zip(undecided, refs, strict=True):
            ex = failed[i]
            b[i] = judge.verdict(ex.generation, ex.feedback, before[i], reference=ref)
            a[i] = judge.verdict(ex.generation, ex.feedback, after[i], reference=ref)
    pairs = [(i, bv, av) for i, (bv, av) in enumerate(zip(b, a, strict=True))
             if bv.clean is not None and av.clean is not None]
    for verdict in (*b, *a):
        report.judged_by[verdict.how] = report.judged_by.get(verdict.how, 0) + 1
    if len(pairs) < th.min_records:
        report.reasons.append(f"not judged: {len(pairs)} held-out record(s) with a red line could be judged, need "
                              f"{th.min_records} (the rest had nothing to rerun and no criterion in the feedback)")
    if pairs:
        _paired_row(report, FIXED, [float(bool(bv.clean)) for _, bv, _ in pairs],
                    [float(bool(av.clean)) for _, _, av in pairs], "must rise beyond noise", th, rise=True)
    rules: dict[str, list[int]] = {}
    for i, bv, av in pairs:
        got = rules.setdefault(_rule_of(failed[i]), [0, 0, 0])
        got[0] += 1
        got[1] += bool(bv.clean)
        got[2] += bool(av.clean)
    report.by_rule = [{"rule": r, "n": n, "before": x, "after": y}
                      for r, (n, x, y) in sorted(rules.items(), key=lambda kv: -kv[1][0])]


def _judge_accepted(report: GateReport, loaded: _Loaded, accepted: Sequence[TrainingExample], judge: Judge,
                    th: GateThresholds) -> None:
    """Held-out accepted records: is before's answer, and after's, still one that passes?"""
    if not accepted:
        report.notes.append("accepted answers not checked: no held-out record was accepted as written")
        return
    before = _answers(loaded, accepted, loaded.before)
    after = _answers(loaded, accepted, "default")
    pairs = []
    for ex, bt, at in zip(accepted, before, after, strict=True):
        bv, av = judge.verdict(ex.generation, ex.feedback, bt), judge.verdict(ex.generation, ex.feedback, at)
        if bv.clean is None and av.clean is None:
            continue
        # an answer unchanged by the adapter keeps whatever before's did; a changed one with nothing to rerun fails
        if av.clean is None:
            av = Verdict(bv.clean if bt == at else False, "changed, nothing to rerun")
        if bv.clean is None:
            bv = Verdict(False, "changed, nothing to rerun")
        pairs.append((bv, av))
    if not pairs:
        report.notes.append("accepted answers not checked: no held-out accepted record could be judged")
        return
    _paired_row(report, KEPT, [float(bool(b.clean)) for b, _ in pairs], [float(bool(a.clean)) for _, a in pairs],
                "must not fall beyond noise", th, rise=False)


def _teacher_corrections(loaded: _Loaded, examples: Sequence[TrainingExample]) -> list[str]:
    """The base model's greedy answer with the hindsight in context: the reference where nothing else judges."""
    from redline.prompts import encode
    from redline.trainer.contexts import render_teacher
    from redline.trainer.feedback_text import aggregate
    from redline.trainer.replay import answers, budget_of

    contexts = []
    for ex in examples:
        text, special = render_teacher(loaded.tokenizer, ex.generation,
                                       aggregate(ex.feedback, max_chars=loaded.rendering.max_feedback_chars),
                                       loaded.rendering)
        contexts.append(encode(loaded.tokenizer, text, special)[-max(1, loaded.rendering.max_length
                                                                    - budget_of(ex)):])
    return answers(loaded.model, loaded.tokenizer, contexts, examples, using=_mode(loaded, "base"),
                   batch_size=loaded.batch_size)


def _rule_of(example: TrainingExample) -> str:
    """The record's first red line, by its code or test id (else its first words)."""
    for f in example.feedback:
        if f.kind != "accept":
            return f.rule or " ".join((f.message or f.kind).split()[:8])
    return "?"


# -- what is reported, not decided on ----------------------------------------------------------------------------


def _informational(report: GateReport, loaded: _Loaded, failed: Sequence[TrainingExample],
                   accepted: Sequence[TrainingExample], th: GateThresholds) -> None:
    """The forgetting alarm and the teacher-forced figures; a base no better than chance is refused here."""
    from redline.trainer import gate_proxies as gp

    tok, r = loaded.tokenizer, loaded.rendering
    pairs = [p for i, ex in enumerate(failed)
             if (p := build_pair(tok, i, ex.generation, ex.feedback, r, fingerprint=loaded.fingerprint,
                                 anchors=False))]
    kept = [p for i, ex in enumerate(accepted)
            if (p := build_pair(tok, i, ex.generation, [], r, fingerprint=loaded.fingerprint,
                                target_ids=gp.completion_ids_of(tok, ex, r, loaded.fingerprint))) is not None]
    if pairs:
        before = gp.failed_metrics(loaded.model, pairs, tok.pad_token_id, mode=loaded.before,
                                   batch_size=loaded.batch_size)
        after = gp.failed_metrics(loaded.model, pairs, tok.pad_token_id, mode="default",
                                  batch_size=loaded.batch_size)
        chance = math.log(max(2, gp.vocab_size(loaded.model)))
        if before["nll"] > th.chance_share * chance:
            report.reasons.append(
                f"the base model predicts the held-out completions no better than chance ({before['nll']:.2f} "
                f"nats/token; chance is {chance:.2f}): random or untrained weights, nothing learnt can be judged")
            report.verdict = "refused"
        judged = [i for i, fx in enumerate(before["fix"]) if fx is not None]
        if judged:
            _paired_row(report, TF_FIXES, [before["fix"][i] for i in judged], [after["fix"][i] for i in judged],
                        "info", th)
    everything = pairs + kept
    if everything:
        drift = gp.kl_from_base(loaded.model, everything, tok.pad_token_id, mode="default",
                                batch_size=loaded.batch_size)
        _paired_row(report, DRIFT, [0.0] * len(drift), drift, "info (a rise predicts forgetting)", th)
    if kept:
        b = gp.logp_per_record(loaded.model, kept, tok.pad_token_id, mode=loaded.before, batch_size=loaded.batch_size)
        a = gp.logp_per_record(loaded.model, kept, tok.pad_token_id, mode="default", batch_size=loaded.batch_size)
        _paired_row(report, TF_RETENTION, b, a, "info", th)


def _perplexity_guard(report: GateReport, loaded: _Loaded, texts: Sequence[str], config: TrainConfig,
                      th: GateThresholds) -> None:
    from redline.trainer import gate_proxies as gp

    if not texts:
        report.notes.append(f"perplexity guard skipped: no human-written code found (gate_human_code = "
                            f"{list(config.gate_human_code)}); set `gate_human_code` to the team's own files")
        return
    chunks = gp.human_chunks(loaded.tokenizer, texts, loaded.rendering.max_length)
    before = gp.perplexity(loaded.model, chunks, mode=loaded.before)
    after = gp.perplexity(loaded.model, chunks, mode="default")
    report.rows.append({"metric": PERPLEXITY, "before": before, "after": after,
                        "change": (after - before) / before if before else 0.0,
                        "rule": f"≤ +{th.max_ppl_increase:.0%}", "ci_low": None, "ci_high": None, "n": len(chunks),
                        "ok": after <= before * (1 + th.max_ppl_increase)})


# -- the decision --------------------------------------------------------------------------------------------------


def _decide(report: GateReport) -> None:
    """Refused when a decided row fails (or the base is random); "not judged" when too few records could be
    judged (the current adapter stays); promoted otherwise."""
    report.reasons += [_reason(r) for r in report.rows if not r["ok"] and not r["rule"].startswith("info")]
    if report.verdict != "refused":
        if any(r.startswith("not judged") for r in report.reasons):
            report.verdict = "not judged"
        else:
            report.verdict = "refused" if report.reasons else "promoted"
    report.passed = report.verdict == "promoted"


def _reason(row: dict[str, Any]) -> str:
    if row["metric"] == FIXED:
        return (f"{FIXED} did not rise beyond noise ({row['before_count']} → {row['after_count']} of {row['n']}, "
                f"{row.get('confidence', 0.95):.0%} interval [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}])")
    if row["metric"] == PERPLEXITY:
        return f"{PERPLEXITY} rose more than allowed ({row['before']:.3f} → {row['after']:.3f})"
    return (f"{row['metric']} fell beyond noise ({row['before_count']} → {row['after_count']} of {row['n']}, "
            f"interval [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]): the adapter breaks what the base did right")


def bootstrap_interval(diffs: Sequence[float], *, tail: float, samples: int = 2000) -> tuple[float, float]:
    """(low, high) bounds of the mean of paired differences, resampled `samples` times with a fixed seed (the
    same data always gets the same verdict); `tail` is the share of resampled means left out on each side."""
    if len(diffs) < 2:
        return (diffs[0], diffs[0]) if diffs else (0.0, 0.0)
    rng = random.Random(0)
    n = len(diffs)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(samples))
    return means[int(tail * samples)], means[min(samples - 1, int((1 - tail) * samples))]


def _paired_row(report: GateReport, metric: str, before: Sequence[float], after: Sequence[float], rule: str,
                th: GateThresholds, *, rise: bool | None = None) -> None:
    """A row of paired per-record values: means, the bootstrap interval of the mean change, and whether it passes
    (`rise`: must rise beyond noise; False: must not fall beyond noise; None: reported only)."""
    b_mean, a_mean = statistics.fmean(before), statistics.fmean(after)
    low, high = bootstrap_interval([a - b for b, a in zip(before, after, strict=True)], tail=1 - th.confidence,
                                   samples=th.bootstrap_samples)
    ok = True if rise is None else (low > 0 if rise else high >= 0)
    if rise is False and len(before) < th.min_records:  # a few records cannot show noise: no verdict
        ok = True
        report.notes.append(f"{metric}: only {len(before)} held-out record(s), too few to tell a fall from noise "
                            f"(need {th.min_records}); not judged")
    report.rows.append({"metric": metric, "before": b_mean, "after": a_mean,
                        "change": (a_mean - b_mean) / abs(b_mean) if b_mean else 0.0, "rule": rule,
                        "ci_low": low, "ci_high": high, "n": len(before), "confidence": th.confidence,
                        "before_count": round(sum(before)), "after_count": round(sum(after)), "ok": bool(ok)})


__all__ = ["DRIFT", "FIXED", "KEPT", "PERPLEXITY", "GateReport", "GateThresholds", "bootstrap_interval",
           "evaluate_gate", "gate_records"]
