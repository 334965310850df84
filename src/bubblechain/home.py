"""Where a node keeps its ledger, keys, replicas and artifacts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "BUBBLECHAIN_HOME"
DEFAULT_HOME = ".bubblechain"


def resolve_home(home: str | os.PathLike | None) -> Path:
    """`--home`, else $BUBBLECHAIN_HOME, else ./.bubblechain."""
    if home is None:
        home = os.environ.get(ENV_HOME) or DEFAULT_HOME
    return Path(home).expanduser().absolute()


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def genesis(self) -> Path:
        return self.root / "genesis.json"

    @property
    def config(self) -> Path:
        return self.root / "home.json"

    @property
    def store(self) -> Path:
        return self.root / "ledger.db"

    @property
    def lock(self) -> Path:
        return self.root / "ledger.lock"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    def key(self, role: str) -> Path:
        return self.keys / f"{role}.key"

    @property
    def witnesses(self) -> Path:
        return self.root / "witnesses"

    def witness(self, label: str) -> Path:
        return self.witnesses / label

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def witness_dirs(self) -> list[Path]:
        if not self.witnesses.is_dir():
            return []
        return sorted(p for p in self.witnesses.iterdir() if p.is_dir())
