"""How many CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota.

In a Kubernetes pod `os.cpu_count()` and the affinity mask see the node's CPUs, while the
container's CPU limit is a CFS quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`); sizing
thread pools or worker processes by the node would oversubscribe the limit many times over.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (e.g. 1.5), or None when there is none or it cannot be read."""
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or "100000")
        quota_v1 = root / "cpu" / "cpu.cfs_quota_us"
        if quota_v1.is_file():
            quota_us = int(quota_v1.read_text().strip())
            if quota_us <= 0:
                return None
            return quota_us / int((root / "cpu" / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs to size work for: the affinity count, capped by the cgroup quota rounded up."""
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(root)
    if limit is not None and limit > 0:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)
