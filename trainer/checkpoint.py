"""Resumable checkpoints: LoRA weights, optimizer, scheduler, RNG states and step, written atomically.

Layout: `<dir>/step-000040/{adapter.safetensors,state.pt}` plus `<dir>/latest` naming the newest complete one.
A step directory is written under a temporary name, fsynced and renamed, then `latest` is replaced with
os.replace — so after SIGKILL at any instant, `latest` names a complete checkpoint or does not exist.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from redline.fsutil import atomic_write, fsync_path
from redline.trainer.errors import TrainError


class Checkpointer:
    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.dir = directory
        self.fingerprint = fingerprint  # config + data identity: never resume a different run

    def save(self, step: int, model: Any, optimizer: Any, scheduler: Any, extra: Any = None) -> Path:
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"step-{step:06d}"
        tmp = self.dir / f".tmp-step-{step:06d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        weights = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
        save_file(weights, str(tmp / "adapter.safetensors"))
        state = {
            "step": step,
            "fingerprint": self.fingerprint,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "extra": extra,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }
        torch.save(state, tmp / "state.pt")
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        atomic_write(self.dir / "latest", final.name)
        for old in self.dir.glob("step-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def has_checkpoint(self) -> bool:
        return (self.dir / "latest").exists()

    def restore(self, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, Any]:
        """Load the latest checkpoint into the given objects; returns (the step to continue from, the `extra`
        saved with it) — (0, None) when there is none."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        pointer = self.dir / "latest"
        if not pointer.exists():
            return 0, None
        path = self.dir / pointer.read_text(encoding="utf-8").strip()
        try:
            state = torch.load(path / "state.pt", weights_only=False, map_location="cpu")
            weights = load_file(str(path / "adapter.safetensors"))
        except (OSError, RuntimeError) as exc:
            raise TrainError(f"checkpoint {path} is unreadable ({exc})", fix=f"delete {self.dir} and retrain") from None
        if state["fingerprint"] != self.fingerprint:
            raise TrainError(f"checkpoint {path} belongs to a run with other settings or data",
                             fix=f"delete {self.dir} to start over, or rerun with the same settings")
        device = next(model.parameters()).device
        set_peft_model_state_dict(model, {k: v.to(device) for k, v in weights.items()})
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return int(state["step"]), state.get("extra")

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
