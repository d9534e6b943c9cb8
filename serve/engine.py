"""The model behind `redline serve`: base model + the repo's adapters (peft), one request at a time.

Torch lives here and only here (the HTTP layer imports this module lazily). Every method runs on the server's
single generation worker, so requests never share KV state and an adapter swap happens between two requests:
a request finishes on the adapter it started with. Prompts are rendered by the trainer's own
`render_student`, so the text the model sees here is the text the trainer will rebuild from the record.

An adapter is checked before peft sees it (the registry's digests and safetensors header, then its tensor shapes
against this model), and one that still fails to load is taken out of peft again: a half-registered adapter would
otherwise answer every later load of that name with "already exists". A version that failed is left out of the
model list and kept out of service until a reload (`POST /redline/reload`) tries it again.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from redline.adapter_store import registry_for
from redline.adapters import adapter_shapes
from redline.config import Config
from redline.errors import NotFound, RedlineError
from redline.prompts import encode, render_student
from redline.records import Prompt
from redline.serve.shapes import BadRequest, GenRequest, Result
from redline.trainer.model import load_base, tokenizer_fingerprint

log = logging.getLogger("redline.serve")

BASE = "base"
#: adapters kept loaded besides the current one (explicit `<repo>@vNNNN` requests), least recently used dropped
KEEP_LOADED = 3
#: after the first piece, streamed text goes out at most this often: a model faster than this writes several
#: tokens per frame instead of spending its time on HTTP frames (vLLM's `--stream-interval` for the same reason);
#: a model slower than this still streams every token as it comes
STREAM_INTERVAL_S = 0.02


class PromptTooLong(BadRequest):
    """The rendered prompt does not fit the model's context (HTTP 400)."""


class UnknownModel(NotFound):
    """The request names a model this server does not serve (HTTP 404)."""


class AdapterUnavailable(UnknownModel):
    """A registered version this server could not load (damaged, or shaped for another base model): HTTP 404."""


@dataclass
class Prepared:
    """A request rendered for the model: the exact text and ids it will see."""

    prompt: Prompt
    text: str
    add_special_tokens: bool
    ids: list[int]
    max_new: int


@dataclass
class Output:
    result: Result
    token_ids: list[int]
    token_logprobs: list[float]


class Engine:
    def __init__(self, config: Config, model_path: str | Path, *, device: str | None = None) -> None:
        self.config = config
        self.model_path = str(model_path)
        self.device = device
        self.registry = registry_for(config)  # the team adapter store when set: `sync` follows its pointer
        self.repo_name = (config.repo_id.rstrip("/").rsplit("/", 1)[-1] or "repo").replace("@", "-")
        self.model: Any = None
        self.tokenizer: Any = None
        self.fingerprint: str | None = None
        self.current: str | None = None  # the promoted version being served (None = base model)
        self._loaded: list[str] = []  # peft adapter names, least recently used first
        #: versions whose load failed → why, in one line (not listed, not served until a forced sync retries them)
        self.failed: dict[str, str] = {}
        self._pointer_stamp: tuple[int, int] | None = None
        self._eos: set[int] = set()
        self._cache_arg = "past_key_values"
        self.load()

    # -- model lifecycle ---------------------------------------------------------------------------------------

    def load(self) -> None:
        self.model, self.tokenizer = load_base(self.model_path, device=self.device)
        self.fingerprint = tokenizer_fingerprint(self.tokenizer)
        self._eos = _eos_ids(self.model, self.tokenizer)
        self._cache_arg = _cache_arg(self.model)  # the base model's; a peft wrapper passes it on
        self._loaded = []
        self._pointer_stamp = None
        self.current = None
        self.sync(force=True)

    def unload(self) -> None:
        """Free the weights (the daemon wants the GPU for training)."""
        self.model = None
        self._loaded = []
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def sync(self, *, force: bool = False) -> str | None:
        """Serve the registry's current version; cheap when the pointer file has not changed (one stat)."""
        if self.model is None:
            return self.current
        try:
            st = os.stat(self.registry.pointer)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if not force and stamp == self._pointer_stamp:
            return self.current
        self._pointer_stamp = stamp
        if force:  # a reload tries failed versions again: the files may have been put right
            self.failed.clear()
        version = self.registry.current()
        if version is not None and not self._try(version):
            version = self.current  # keep serving what was served
        if version != self.current:
            log.info("serving %s (was %s)", version or "the base model", self.current or "the base model")
        self.current = version
        return version

    def ensure(self, version: str) -> None:
        """Load `version` if it is not loaded; AdapterUnavailable (one line saying why) when it cannot be."""
        if not self._try(version):
            raise AdapterUnavailable(f"adapter {version} is not served: {self.failed[version]}",
                                     fix="see `redline status`; promote another version or retrain")

    def _try(self, version: str) -> bool:
        """Load `version`; on failure note why (one log line, no traceback: the reason is the adapter's, not ours)."""
        if version in self.failed:
            return False
        try:
            self._ensure(version)
        except Exception as exc:
            why = exc.message if isinstance(exc, RedlineError) else \
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            self.failed[version] = why
            log.error("could not load adapter %s (%s); still serving %s", version, why,
                      self.current or "the base model")
            return False
        return True

    def _ensure(self, version: str) -> None:
        """Load `version` under its own adapter name (never reused for other weights), evicting old ones."""
        if version in self._loaded:
            self._loaded.remove(version)
            self._loaded.append(version)
            return
        path = self.registry.verify(version)
        self._check_shapes(path, version)
        from peft import PeftModel

        wrapped = hasattr(self.model, "load_adapter") and hasattr(self.model, "peft_config")
        try:
            if not wrapped:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=version)
            else:
                self.model.load_adapter(str(path), adapter_name=version)
        except Exception:
            self._undo(version, wrapped)
            raise
        self.model.eval()
        self._loaded.append(version)
        while len(self._loaded) > KEEP_LOADED + 1:
            victim = next((v for v in self._loaded if v not in (self.current, version)), None)
            if victim is None:
                break
            self.model.set_adapter(version)
            self.model.delete_adapter(victim)
            self._loaded.remove(victim)

    def _check_shapes(self, path: Path, version: str) -> None:
        """Refuse an adapter whose LoRA matrices do not fit this model's weights, before peft injects anything."""
        if not (path / "adapter_model.safetensors").is_file():
            return  # a pickled adapter_model.bin: peft's own load is the only check
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        modules = dict(base.named_modules())
        for name, (out_f, in_f) in sorted(adapter_shapes(path).items()):
            module = modules.get(name)
            weight = getattr(getattr(module, "base_layer", module), "weight", None)
            have = tuple(weight.shape) if weight is not None else None
            if have != (out_f, in_f):
                what = "has no such weight" if have is None else f"is {have[0]}x{have[1]}"
                raise RedlineError(f"adapter {version} does not fit this model: {name} {what}, the adapter needs "
                                   f"{out_f}x{in_f}", fix="promote an adapter trained on this base model")

    def _undo(self, version: str, wrapped: bool) -> None:
        """Take a failed load out of peft. Loaded into a PeftModel: delete that adapter. Wrapping the bare model:
        peft may have injected layers into it already, so the base is read again (rare: the checks above come
        first)."""
        if wrapped:
            if version in getattr(self.model, "peft_config", {}):
                with contextlib.suppress(Exception):
                    self.model.delete_adapter(version)
            return
        self.model = None
        gc.collect()
        self.model, _ = load_base(self.model_path, device=self.device)

    # -- names -------------------------------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """What `/v1/models` lists: the repo (current adapter), the base model, and each version."""
        return [self.repo_name, f"{self.repo_name}@{BASE}",
                *(f"{self.repo_name}@{v}" for v in reversed(self.registry.versions()) if v not in self.failed)]

    def resolve(self, name: str | None) -> str | None:
        """The adapter version a model name selects (None = base model). Raises UnknownModel."""
        if not name or name == self.repo_name:
            return self.current
        repo, _, version = name.rpartition("@")
        if repo == self.repo_name:
            if version == BASE:
                return None
            if version in self.failed:
                raise AdapterUnavailable(f"adapter {version} is not served: {self.failed[version]}",
                                         fix="see `redline status`; promote another version or retrain")
            if version in self.registry.versions():
                return version
        raise UnknownModel(f"unknown model {name!r}", fix=f"use one of {', '.join(self.model_names()[:4])}")

    # -- generation --------------------------------------------------------------------------------------------

    @property
    def context(self) -> int:
        n = getattr(self.model.config, "max_position_embeddings", None) if self.model is not None else None
        return int(n) if isinstance(n, int) and n > 0 else 2048

    def prepare(self, req: GenRequest) -> Prepared:
        """Render and tokenize as the trainer will; refuses prompts that leave no room to generate."""
        prompt = req.prompt()
        text, special = render_student(self.tokenizer, prompt)
        ids = encode(self.tokenizer, text, special)
        room = self.context - len(ids)
        if room < 1:
            raise PromptTooLong(f"the prompt is {len(ids)} tokens and the model's context is {self.context}: "
                                "send a shorter prompt")
        if not ids:
            raise BadRequest("the prompt renders to no tokens: send some text")
        prompt.text = text
        return Prepared(prompt, text, special, ids, min(req.max_tokens, room))

    @torch.inference_mode()
    def generate(self, prep: Prepared, req: GenRequest, version: str | None, *,
                 on_tokens: Callable[[str], None] | None = None,
                 cancelled: Callable[[], bool] = lambda: False) -> Output | None:
        """Decode token by token with the KV cache; `on_tokens(text)` gets the text that is final (never part of
        a stop string) as it comes, at most every STREAM_INTERVAL_S after the first piece. Returns None when
        `cancelled()` turned true. Log-probs are the model's own (temperature 1, before top-p), the policy the
        trainer compares against."""
        if version is not None:
            self.ensure(version)  # first adapter ever: this wraps the base model in a PeftModel
        model = self.model
        if version is not None:
            model.set_adapter(version)
            ctx: Any = contextlib.nullcontext()
        elif hasattr(model, "disable_adapter"):
            ctx = model.disable_adapter()
        else:
            ctx = contextlib.nullcontext()
        device = next(model.parameters()).device
        eos = self._eos
        gen = None
        if req.temperature >= MIN_TEMPERATURE:
            gen = torch.Generator(device=device)
            gen.manual_seed(int.from_bytes(os.urandom(4), "little"))
        stops = req.stop
        hold = max((len(s) for s in stops), default=1) - 1
        ids: list[int] = []
        logprobs: list[float] = []
        ends: list[int] = []  # with stop strings: the character end of each token in the decoded text
        emitted = 0  # with stop strings: tokens whose text went to on_tokens
        sent = 0  # characters that went to on_tokens
        flushed = 0.0  # when they last did
        finish, stopping_word, stop_at = "length", "", None
        cache_arg = self._cache_arg
        with ctx:
            inputs = torch.tensor([prep.ids], device=device)
            past = None
            for _ in range(prep.max_new):
                if cancelled():
                    return None
                out = model(input_ids=inputs, use_cache=True, **{cache_arg: past})
                past = out.cache if cache_arg == "cache" else out.past_key_values
                logits = out.logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                tok = _sample(logits, req.temperature, req.top_p, gen)
                ids.append(tok)
                logprobs.append(float(logp[tok]))
                if tok in eos:
                    if stops:
                        ends.append(ends[-1] if ends else 0)
                    finish = "stop"
                    break
                due = on_tokens is not None and (not sent or time.perf_counter() - flushed >= STREAM_INTERVAL_S)
                if stops or due:  # the text is needed only to find a stop string or to send a piece
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if stops:  # a stop string can only end in the new text: search from just before it (a few
                        # characters more, since bytes completed by this token may re-decode the previous tail)
                        tail = max(0, (ends[-1] if ends else 0) - hold - 4)
                        hits = [(i, s) for s in stops if (i := text.find(s, tail)) >= 0]
                        ends.append(len(text))
                        if hits:
                            stop_at, stopping_word = min(hits)
                            finish = "word"
                            break
                    if due and not text.endswith("\ufffd"):
                        upto = len(text)
                        if stops:  # whole tokens only, and none that may still turn out part of a stop string
                            while emitted < len(ids) and ends[emitted] <= len(text) - hold:
                                emitted += 1
                            upto = ends[emitted - 1] if emitted else 0
                        if upto > sent:
                            on_tokens(text[sent:upto])
                            sent, flushed = upto, time.perf_counter()
                inputs = torch.tensor([[tok]], device=device)
        if stop_at is not None:  # keep the tokens wholly before the stop string; the completion is their text
            keep = 0
            while keep < len(ids) and ends[keep] <= stop_at:
                keep += 1
            ids, logprobs = ids[:keep], logprobs[:keep]
        completion = self.tokenizer.decode(ids, skip_special_tokens=True)
        if on_tokens is not None and len(completion) > sent:
            on_tokens(completion[sent:])
        n_gen = len(ids)
        return Output(Result(completion, finish, len(prep.ids), n_gen, stopping_word), ids, logprobs)  # type: ignore[arg-type]


#: below this a temperature is greedy: dividing float32 logits by it would overflow to inf, and sampling from
#: the NaN probabilities that follow fails (an HTTP 500 for `"temperature": 1e-300`)
MIN_TEMPERATURE = 1e-6


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> int:
    if temperature < MIN_TEMPERATURE:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_p, dim=-1)
        sorted_p[(cum - sorted_p) > top_p] = 0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=gen))


def _cache_arg(model: Any) -> str:
    """transformers 5 names the KV cache `cache`; 4.x called it `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    found: set[int] = set()
    gcfg = getattr(model, "generation_config", None)
    value = getattr(gcfg, "eos_token_id", None)
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, int):
            found.add(v)
    if tokenizer.eos_token_id is not None:
        found.add(int(tokenizer.eos_token_id))
    return found
