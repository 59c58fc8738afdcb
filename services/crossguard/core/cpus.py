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


def _v2_quota(path: Path) -> float | None:
    """CPUs allowed by one cgroup v2 directory's cpu.max, None when unlimited or unreadable."""
    try:
        quota, _, period = (path / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or "100000")
    except (OSError, ValueError):
        return None


def _own_v2_path(proc_cgroup: Path) -> str:
    """This process's cgroup v2 path ("0::/a/b" in /proc/self/cgroup), "/" when unknown."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    except OSError:
        pass
    return "/"


def cgroup_cpu_limit(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CPU quota in CPUs (e.g. 1.5), or None when there is none or it cannot be read.

    cgroup v2: the smallest cpu.max from this process's own cgroup up to the mount root (a
    container sees its own cgroup as the root; a systemd unit's CPUQuota sits below it).
    cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us of the cpu controller's mount root."""
    if (root / "cgroup.controllers").is_file() or (root / "cpu.max").is_file():
        limits = []
        own = (root / _own_v2_path(proc_cgroup).lstrip("/")).resolve()
        for path in [own, *own.parents]:
            limit = _v2_quota(path)
            if limit is not None:
                limits.append(limit)
            if path == root.resolve():
                break
        return min(limits) if limits else None
    try:
        quota_v1 = root / "cpu" / "cpu.cfs_quota_us"
        if quota_v1.is_file():
            quota_us = int(quota_v1.read_text().strip())
            if quota_us <= 0:
                return None
            return quota_us / int((root / "cpu" / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """CPUs to size work for: the affinity count, capped by the cgroup quota rounded up."""
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None and limit > 0:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)
