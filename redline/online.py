"""The online check: are the promoted adapter's suggestions kept as often as those of what it replaced?

The gate judges an adapter on held-out records before it is served; what developers keep afterwards is the
measurement that matters ("code that stays"). The queue already counts, per adapter version, the completions
offered and those kept (tracked in a file, or accepted or corrected in the editor). When the promoted version's
share falls below its predecessor's beyond noise, the daemon rolls it back, and `redline status` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redline.adapters import AdapterRegistry
from redline.queue import Store
from redline.records import utc_now
from redline.status import publish_adapter

#: origins of completions a user was offered (served by `redline serve`/`proxy`, or captured from an editor plugin)
SUGGESTED = ("server", "editor")
#: suggestions each side needs before a difference can mean anything
MIN_OFFERED = 30
#: one-sided z below which the promoted version's share is worse beyond noise (about 97.5 % confidence)
WORSE_Z = -1.96


@dataclass(frozen=True)
class OnlineCheck:
    """Kept/offered for the served version and for the one before it (None: the base model)."""

    version: str
    previous: str | None
    kept: int
    offered: int
    previous_kept: int
    previous_offered: int

    @property
    def judged(self) -> bool:
        return min(self.offered, self.previous_offered) >= MIN_OFFERED

    @property
    def z(self) -> float:
        """Two-proportion z statistic of (served − previous), pooled; 0 when either side has nothing."""
        if not self.offered or not self.previous_offered:
            return 0.0
        pooled = (self.kept + self.previous_kept) / (self.offered + self.previous_offered)
        se = math.sqrt(pooled * (1 - pooled) * (1 / self.offered + 1 / self.previous_offered))
        return 0.0 if se == 0 else (self.kept / self.offered - self.previous_kept / self.previous_offered) / se

    @property
    def worse(self) -> bool:
        return self.judged and self.z < WORSE_Z

    def line(self) -> str:
        before = self.previous or "the base model"
        text = (f"online: {self.version}'s suggestions kept {_share(self.kept, self.offered)}, "
                f"{before}'s {_share(self.previous_kept, self.previous_offered)}")
        if not self.judged:
            return text + f" (not judged yet: {MIN_OFFERED} suggestions each needed)"
        return text + ("; worse beyond noise" if self.worse else "; no worse beyond noise")


def online_check(rows: Iterable[dict[str, Any]], version: str | None, previous: str | None) -> OnlineCheck | None:
    """The check for `version` against `previous`, from `Store.acceptance` rows; None when nothing is served."""
    if version is None:
        return None
    by_version = {r["adapter_version"]: (int(r["accepted"]), int(r["suggested"])) for r in rows}
    kept, offered = by_version.get(version, (0, 0))
    previous_kept, previous_offered = by_version.get(previous, (0, 0))
    return OnlineCheck(version, previous, kept, offered, previous_kept, previous_offered)


def check_served(store: Store, registry: AdapterRegistry) -> OnlineCheck | None:
    """The online check of the adapter being served now."""
    return online_check(store.acceptance(SUGGESTED), registry.current(), registry.previous())


def roll_back_if_worse(store: Store, registry: AdapterRegistry) -> OnlineCheck | None:
    """Roll the served adapter back when developers keep its suggestions less often than its predecessor's,
    beyond noise; returns the check that did it (None when nothing was rolled back)."""
    check = check_served(store, registry)
    if check is None or not check.worse:
        return None
    registry.update_meta(check.version, {"rolled_back": {"at": utc_now(), "why": check.line()}})
    registry.rollback()
    publish_adapter(store, registry, note=f"{check.version} rolled back: {check.line().removeprefix('online: ')}")
    return check


def _share(kept: int, offered: int) -> str:
    return f"{kept} of {offered} ({kept / offered:.0%})" if offered else "none offered yet"
