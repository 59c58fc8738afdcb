"""CPU count for sizing work: affinity capped by a cgroup v1/v2 CPU quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core import cpus

pytestmark = pytest.mark.unit


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("content", "limit"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 100000", 2.0), ("junk", None)],
)
def test_cgroup_v2_quota(tmp_path: Path, content: str, limit: float | None) -> None:
    write(tmp_path, "cpu.max", content)
    assert cpus.cgroup_cpu_limit(tmp_path, tmp_path / "no-such-file") == limit


def test_cgroup_v2_takes_the_smallest_limit_up_from_its_own_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root, "cgroup.controllers", "cpu memory\n")
    write(root, "cpu.max", "max 100000\n")
    write(root, "system.slice/cpu.max", "300000 100000\n")
    write(root, "system.slice/crossguard.service/cpu.max", "max 100000\n")
    write(tmp_path, "proc-cgroup", "0::/system.slice/crossguard.service\n")
    assert cpus.cgroup_cpu_limit(root, tmp_path / "proc-cgroup") == 3.0
    write(root, "system.slice/crossguard.service/cpu.max", "150000 100000\n")
    assert cpus.cgroup_cpu_limit(root, tmp_path / "proc-cgroup") == 1.5


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    none = tmp_path / "no-such-file"
    write(tmp_path, "cpu/cpu.cfs_quota_us", "50000\n")
    write(tmp_path, "cpu/cpu.cfs_period_us", "100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path, none) == 0.5
    write(tmp_path, "cpu/cpu.cfs_quota_us", "-1\n")
    assert cpus.cgroup_cpu_limit(tmp_path, none) is None


def test_no_cgroup_files_means_no_limit(tmp_path: Path) -> None:
    assert cpus.cgroup_cpu_limit(tmp_path, tmp_path / "no-such-file") is None


def test_available_cpus_is_capped_by_the_quota_rounded_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 64)
    none = tmp_path / "no-such-file"
    write(tmp_path, "cpu.max", "150000 100000")
    assert cpus.available_cpus(tmp_path, none) == 2
    write(tmp_path, "cpu.max", "10000 100000")
    assert cpus.available_cpus(tmp_path, none) == 1
    write(tmp_path, "cpu.max", "max 100000")
    assert cpus.available_cpus(tmp_path, none) == 64
