"""The probe that ``legalize --target auto`` acts on, cached per runtime: probing every installed runtime
takes minutes, and its answer changes only with the runtime's version, poolport's version or the suite.

One JSON file per runtime under the user's cache folder (``$XDG_CACHE_HOME/poolport/probe``, by default
``~/.cache/poolport/probe``; never beside the model), named by the runtime, its version and poolport's
version, and holding a digest of the suite (the cases and the rules): a file that does not match, or that
cannot be read, is ignored and written again. Files are written atomically (a temporary file, then a
rename). ``reprobe`` ignores the cache and writes it again. ``poolport probe`` always probes."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from . import probe
from .probe import CaseResult, ProbeReport

FORMAT = 1


def cache_folder() -> Path:
    """``$XDG_CACHE_HOME/poolport/probe`` (an absolute XDG_CACHE_HOME only, as the XDG spec says), else
    ``~/.cache/poolport/probe``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "poolport" / "probe"


def _poolport_version() -> str:
    from .. import version

    return version.__version__


def cache_path(runtime: str, runtime_version: str) -> Path:
    """The cache file of ``runtime`` at ``runtime_version`` for this poolport version."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{runtime}-{runtime_version}-poolport-{_poolport_version()}")
    return cache_folder() / f"{name}.json"


def suite_digest() -> str:
    """A digest of what a probe measures: every case (name, attributes, shape, opset) and the rules."""
    from .rules import RULES

    text = json.dumps([[c.name, c.describe(), c.opset] for c in probe.CASES] + [r.name for r in RULES])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load(path: Path, runtime: str, runtime_version: str):
    """``(results, fixes, date)`` cached at ``path`` for ``runtime`` at ``runtime_version``; None where the file
    is missing, unreadable, corrupt or for another version or suite."""
    try:
        data = json.loads(path.read_text())
        if (data["format"], data["runtime"], data["version"], data["poolport"], data["suite"]) != (
                FORMAT, runtime, runtime_version, _poolport_version(), suite_digest()):
            return None
        results = [CaseResult(**row) for row in data["results"]]
        fixes = {case: (tuple(rules), CaseResult(**after)) for case, (rules, after) in data["fixes"].items()}
        if [r.case for r in results] != [c.name for c in probe.CASES]:
            return None
        return results, fixes, str(data["date"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _store(report: ProbeReport, runtime: str, path: Path) -> bool:
    """Write ``runtime``'s part of ``report`` to ``path`` atomically; False where it cannot be written."""
    from ..errors import PoolportError
    from ..onnxfile.staging import write_atomically

    data = {"format": FORMAT, "runtime": runtime, "version": report.versions[runtime],
            "poolport": _poolport_version(), "suite": suite_digest(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "results": [r.__dict__ for r in report.results[runtime]],
            "fixes": {case: [list(rules), after.__dict__] for case, (rules, after) in report.fixes[runtime].items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically((json.dumps(data, indent=1) + "\n").encode(), path, overwrite=True)
    except (OSError, PoolportError):
        return False
    return True


def cached_probe(runtimes: tuple[str, ...] | None = None, progress=None, reprobe: bool = False) -> ProbeReport:
    """The probe of ``runtimes`` (default: every installed one), from the cache where it holds this
    runtime version, poolport version and suite, else from ``probe.run_probe`` (then cached). The
    report's ``cached`` says, per runtime read from the cache, the file and when it was probed;
    ``reprobe`` probes every runtime again and rewrites its file."""
    from ..runtimes import registry

    selected = registry.select(runtimes) if runtimes else registry.NAMES
    parts, todo, skipped = {}, [], {}
    for rt in selected:
        if not registry.available(rt):
            skipped[rt] = f"not installed: {registry.get(rt).install}"
            continue
        rt_version = registry.version(rt)
        path = cache_path(rt, rt_version)
        hit = None if reprobe else _load(path, rt, rt_version)
        if hit is None:
            todo.append(rt)
        else:
            parts[rt] = (rt_version, *hit, str(path))
    report = ProbeReport(skipped=skipped)
    fresh = probe.run_probe(tuple(todo), progress=progress) if todo else ProbeReport()
    for rt in fresh.results:
        path = cache_path(rt, fresh.versions[rt])
        if _store(fresh, rt, path):
            report.stored[rt] = str(path)
    for rt in selected:
        if rt in parts:
            rt_version, results, fixes, date, path = parts[rt]
            report.versions[rt], report.results[rt], report.fixes[rt] = rt_version, results, fixes
            report.cached[rt] = (path, date)
        elif rt in fresh.results:
            report.versions[rt], report.results[rt] = fresh.versions[rt], fresh.results[rt]
            report.fixes[rt] = fresh.fixes[rt]
    report.skipped.update(fresh.skipped)
    return report
