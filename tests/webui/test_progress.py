"""The progress bar's words and numbers: one wording with the card, the elapsed clock, and a time left that is
either measured or not given."""

from html.parser import HTMLParser

from webui.fragments import progress_text, status_html
from webui.progress import (
    Profiles,
    RunClock,
    clock,
    profiled_time_left,
    stage_label,
    steady_time_left,
    time_left_text,
)
from worker.jobs.record import COMPLETED, PROCESSING, QUEUED, Job

SUBMITTED = 1_000.0


def job(status: str = PROCESSING, progress: int = 0, stage: str | None = None, started: float | None = 1_010.0,
        **fields) -> Job:
    """A job record; queued ones wait in the queue, the others refine the mesh unless told otherwise."""
    stage = stage or ("waiting in queue" if status == QUEUED else "refining mesh")
    fields.setdefault("options", {"iterations": 0})
    return Job(job_id="k3m8xq2p", model_type="nvdiffrec", created_at=SUBMITTED, token_hash="", status=status,
               progress=progress, stage=stage, started_at=started, **fields)


class Attributes(HTMLParser):
    """The attributes of the first element with a given role."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role, self.found = role, None

    def handle_starttag(self, tag, attrs):
        if self.found is None and dict(attrs).get("role") == self.role:
            self.found = dict(attrs)


def progressbar(html: str) -> dict | None:
    parser = Attributes("progressbar")
    parser.feed(html)
    return parser.found


def test_the_card_the_bar_and_the_client_api_say_the_same_words():
    running = job(progress=41)
    assert stage_label(running, None) == "Refining mesh"
    card = status_html(running, None, owned=True, now=1_093.0)
    assert "Refining mesh" in card and "41%" in card and "refining mesh ·" not in card
    assert progress_text(running, None) == "Refining mesh · job k3m8xq2p"
    assert stage_label(job(QUEUED, started=None), 2) == "Position 2 in the queue, waiting for a worker."
    retried = job(QUEUED, stage="waiting in queue (retrying: run 2 of 2)", started=None)
    assert stage_label(retried, 1) == "Waiting in queue (retrying: run 2 of 2) · position 1"


def test_an_active_job_s_card_has_a_progressbar_with_its_value_and_the_time_since_submission():
    bar = progressbar(status_html(job(progress=41), None, owned=True, left_s=100, now=1_083.4))
    assert bar["aria-valuenow"] == "41" and bar["aria-valuemin"] == "0" and bar["aria-valuemax"] == "100"
    card = status_html(job(progress=41), None, owned=True, left_s=100, now=1_083.4)
    assert "data-elapsed='83.4'>1:23<" in card and "about 1 min 40 s left" in card
    queued = progressbar(status_html(job(QUEUED, started=None), 3, owned=False, now=1_005.0))
    assert queued["aria-valuenow"] == "0" and "Position 3 in the queue" in queued["aria-valuetext"]


def test_a_finished_job_s_card_has_no_progressbar_and_stage_text_is_escaped():
    assert progressbar(status_html(job(COMPLETED, progress=100, finished_at=1_050.0), None, owned=True)) is None
    card = status_html(job(stage="<b>x</b>"), None, owned=True, now=1_001.0)
    assert "<b>x</b>" not in card and "&lt;b&gt;x&lt;/b&gt;" in card


def test_clock_and_time_left_read_as_a_person_would_say_them():
    assert [clock(s) for s in (0, 9.9, 65, 3725)] == ["0:00", "0:09", "1:05", "1:02:05"]
    assert time_left_text(None) == ""
    assert time_left_text(4) == "a few seconds left"
    assert time_left_text(37) == "about 35 s left"
    assert time_left_text(125) == "about 2 min left" and time_left_text(134) == "about 2 min 10 s left"


def test_a_steady_pace_predicts_and_an_unsteady_or_short_one_does_not():
    steady = [(float(t), 30 + t // 2) for t in range(25)]
    assert abs(steady_time_left(steady) - (100 - steady[-1][1]) / 0.5) < 1e-9
    assert steady_time_left(steady[:15]) is None  # not yet twice the window
    jumpy = [(float(t), 2 + 3 * t if t < 10 else 32 + (t - 10) // 4) for t in range(25)]
    assert steady_time_left(jumpy) is None


def test_a_profile_gives_the_rest_of_its_run_scaled_by_this_run_s_recent_pace():
    profile = [(0.0, 1), (10.0, 30), (90.0, 90), (100.0, 100)]
    assert profiled_time_left(profile, [(10.0, 30)]) == 90.0
    assert profiled_time_left(profile, [(50.0, 60)]) == 50.0  # 60% lies halfway between 10 s and 90 s
    assert profiled_time_left(profile, [(0.0, 1), (20.0, 30)]) == 180.0  # 1-30% took twice the profile's time
    late_start = [(0.0, 1), (30.0, 30), (70.0, 60)]  # slow to 30%, then the profile's pace
    assert profiled_time_left(profile, late_start) == 50.0


def test_a_run_followed_from_its_start_to_completion_becomes_the_profile_of_its_model_and_options():
    profiles = Profiles()
    first = RunClock(profiles)
    assert first.observe(job(progress=1), 1_011.0) is None
    assert first.observe(job(progress=50), 1_060.0) is None  # no profile yet, and not steady for long enough
    first.observe(job(COMPLETED, progress=100, finished_at=1_110.0), 1_110.0)
    assert profiles.get(job()) == [(1.0, 1), (50.0, 50), (100.0, 100)]
    second = RunClock(profiles)
    assert second.observe(job(progress=50, started=2_000.0), 2_050.0) == 50.0
    assert profiles.get(job(options={"iterations": 10})) is None


def test_a_run_joined_halfway_teaches_nothing_and_a_retried_run_starts_its_samples_again():
    profiles = Profiles()
    late = RunClock(profiles)
    late.observe(job(progress=60), 1_070.0)
    late.observe(job(COMPLETED, progress=100, finished_at=1_110.0), 1_110.0)
    assert profiles.get(job()) is None
    clock_ = RunClock(profiles)
    clock_.observe(job(progress=40), 1_040.0)
    assert clock_.observe(job(QUEUED, progress=0, started=None), 1_050.0) is None
    clock_.observe(job(progress=2, started=1_060.0), 1_061.0)
    assert clock_.samples == [(1.0, 2)]
