"""The console: the ETA leaves the compilation out; a members' evaluation says its
numbers are means."""

import io

from salx.app import runtime


def test_rate_and_eta_count_only_the_steps_after_the_first_line(monkeypatch):
  clock = iter([100.0, 110.0, 120.0])   # The first line after 100 s of compiling; then 1 step/s.
  monkeypatch.setattr(runtime.time, "monotonic", lambda: next(clock))
  out = io.StringIO()
  c = runtime.Console(stream=out)
  c.start(0)
  c.step(10, 1000, 1.0)
  c.step(20, 1000, 1.0)
  c.step(30, 1000, 1.0)
  first, second, third = out.getvalue().splitlines()
  assert "(compiled)" in first and "ETA" not in first
  assert "1.00 steps/s, ETA 16m20s" in second      # 980 steps at 1 step/s.
  assert "1.00 steps/s, ETA 16m10s" in third


def test_a_members_evaluation_says_mean():
  out = io.StringIO()
  c = runtime.Console(stream=out)
  c.evaluation(50, 0.3, 0.35, 40, members=4)
  c.evaluation(50, 0.3, 0.35, 40)
  members, single = out.getvalue().splitlines()
  assert "30.00%, mean of 4 members" in members and "35.00% on average" in members
  assert single == "eval step 50: test average mAP 30.00% (best 35.00% at step 40)"
