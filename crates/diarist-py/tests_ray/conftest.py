"""A real Ray cluster of three nodes on this machine, on loopback only, for diarist.ray's tests
(tools/test_ray.sh runs them against the installed wheel, never the source tree)."""

from __future__ import annotations

import os

# Before Ray is imported (it reads these once): every node, the driver and the workers on
# 127.0.0.1 (else Ray advertises the address it would reach the internet from), and no usage
# report sent anywhere.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import ray.data
from ray.cluster_utils import Cluster

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "audio-fixtures"
#: The command line whose outputs the cluster's must equal (`cargo build --release -p diarist`).
CLI = Path(os.environ.get("DIARIST_CLI", REPO / "target/release/diarist"))
#: Seconds any one wait in these tests may last.
WAIT = 240


#: One node: one CPU, a small object store, on loopback.
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 100 * 1024 * 1024}


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A head node and two worker nodes of one CPU each, this process its driver; the nodes'
    processes are ended and their files removed afterwards."""
    # Every file of the cluster's under a directory of its own (Ray's default, $RAY_TMPDIR/ray,
    # which also holds the cluster's address file), on a short path: its Unix sockets live there.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = temp_dir
    c = None
    try:
        c = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        for _ in range(2):
            c.add_node(**NODE)
        c.wait_for_nodes(timeout=60)
        ray.init(address=c.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield c
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def cli(*args: str | Path) -> None:
    """Runs the command line, which must succeed within the tests' wait."""
    assert CLI.is_file(), f"{CLI} is missing: cargo build --release -p diarist"
    done = subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert done.returncode == 0, done.stderr
