"""The repository's size as the README states it: clone this checkout's current branch into a temporary folder,
as `git clone` from GitHub fetches the default branch (one pack of its whole history, no other branch, no tags).
Then print the pack's size, the clone's size (the files' apparent sizes, .git included) and the trained models'
share (`vaelib/pretrained/`, its model folders counted). The clone is removed afterwards.

    python tools/clone_size.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size(path: Path) -> int:
    """Bytes of every file under `path` (or of `path` itself)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files)


def is_cs236(folder: Path) -> bool:
    """Whether the model in `folder` is an M2 of Stanford CS236's recipe (ELU networks; notebook 13 loads ten)."""
    shape = json.loads((folder / "settings.json").read_text())["settings"].get("model")
    return isinstance(shape, dict) and shape.get("kind") == "m2" and shape.get("activation") == "elu"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", "--no-local", "--single-branch", "--no-tags", str(ROOT), str(clone)],
                       check=True)
        packs = list((clone / ".git" / "objects" / "pack").glob("*.pack"))
        pack = sum(p.stat().st_size for p in packs)
        pretrained = clone / "vaelib" / "pretrained"
        models = [p.parent for p in pretrained.glob("*/model.pt")]
        cs236 = [m for m in models if is_cs236(m)]
        head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        print(f"commit {head}")
        print(f"git's pack: {pack / 1e6:.0f} MB ({pack / 2**20:.0f} MiB)")
        print(f"clone on disk: {size(clone) / 1e6:.0f} MB (the files' apparent sizes, .git included)")
        print(f"trained models: {len(models)} in vaelib/pretrained/, {size(pretrained) / 1e6:.0f} MB; of those, "
              f"{len(cs236)} of Stanford CS236's recipe (M2, ELU networks), {sum(map(size, cs236)) / 1e6:.0f} MB")
        print(f"benchmark results: {size(clone / 'benchmarks' / 'results') / 1e6:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
