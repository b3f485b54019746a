"""The progress bar a job shows: stages in order, each filling its own span of the bar."""

from __future__ import annotations

from worker.recon.stages import Stage, Stages

TABLE = (Stage("fit", "fitting", 0.32), Stage("refine", "refining", 0.58), Stage("write", "writing", 0.1))


def test_a_stage_done_ends_where_the_next_one_starts_never_past_it():
    reported = []
    stages = Stages(lambda fraction, text: reported.append(fraction), TABLE, interval_s=0.0)
    stages.start("refine")  # spans 0.32-0.9, where 0.32 + (0.9 - 0.32) is 0.9000000000000001
    stages.within(1.0)
    stages.start("write")
    assert reported == sorted(reported)
    assert reported[-2] == reported[-1] == 0.9
