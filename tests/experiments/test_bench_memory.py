"""experiments/bench_memory.py: RSS of K = 1 and K = 2 members, cache_data on and off."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_bench_memory_smallest(tmp_path):
  command = [sys.executable, str(ROOT / "experiments" / "bench_memory.py"),
             "--num_train=8", "--num_test=2", "--feature_dim=16", "--members=1,2",
             f"--data_dir={tmp_path / 'data'}"]
  done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert done.returncode == 0, done.stderr[-3000:]
  lines = done.stdout.strip().splitlines()
  assert re.match(r"bench_memory train_split_mb=\d+ videos=8 snippets=\d+ feature_dim=16 ",
                  lines[0])
  for k, line in zip((1, 2), lines[1:3]):
    fields = dict(f.split("=", 1) for f in line.split()[1:])
    assert fields["members"] == str(k) and fields["steps"] == "2"
    assert float(fields["peak_rss_mb"]) >= float(fields["start_rss_mb"]) > 0
    assert float(fields["peak_rss_mb_without_cache"]) > 0
    assert {"cache_rss_mb", "splits_held", "end_rss_mb", "wall_s"} <= set(fields)
  assert re.match(r"bench_memory extra_peak_rss_mb\(K=2-K=1\)=-?\d+ train_split_mb=\d+ "
                  r"split_held=", lines[3])
