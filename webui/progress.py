"""What the job's progress bar says: the stage in words, the percent, the time since submission, the time left.

The time left comes from measurements, or is not given: a run of the same model
with the same options that this process followed from start to end is the
profile (seconds at each percent); without one, the job's own pace counts once
it has been steady for a while. A guess from the first seconds of a job whose
stages run at very different speeds would be wrong by minutes, so none is made.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from collections import OrderedDict

from worker.jobs.record import COMPLETED, PROCESSING, QUEUED, Job

PROFILES_KEPT = 32
STEADY_WINDOW_S = 10.0  # the pace over the last window and over twice it must agree before it predicts
STEADY_TOLERANCE = 0.25
SPEED_RANGE = (0.5, 2.0)  # how much slower or faster than its profile a run is believed to go
FROM_START_PERCENT = 5  # a run followed from at most this percent gives a whole profile

FIRST_STAGE = Job.stage  # the record's stage before any run

Sample = tuple[float, int]
"""(seconds since the run started, percent)."""


def stage_label(job: Job, position: int | None) -> str:
    """The one wording of where a job is, shared by the job card, its progress bar and the client API."""
    stage = f"{job.stage[:1].upper()}{job.stage[1:]}"
    if job.status != QUEUED:
        return stage
    if job.stage != FIRST_STAGE:  # back in the queue after a run: the stage says why (a retry, a hand-back)
        return f"{stage} · position {position}" if position else stage
    return f"Position {position} in the queue, waiting for a worker." if position else "Waiting for a worker."


def clock(seconds: float) -> str:
    """1:05, or 1:02:05 past an hour."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def time_left_text(seconds: float | None) -> str:
    """"about 40 s left", "about 2 min 10 s left", or nothing when there is no estimate."""
    if seconds is None:
        return ""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {5 * round(seconds / 5)} s left"
    minutes, rest = divmod(10 * round(seconds / 10), 60)
    return f"about {minutes} min {rest} s left" if rest else f"about {minutes} min left"


def _at(profile: list[Sample], percent: int) -> float:
    """Seconds the profile's run had taken when it reached `percent` (linear between its samples)."""
    percents = [p for _, p in profile]
    index = bisect_left(percents, percent)
    if index == 0:
        return profile[0][0]
    if index == len(profile):
        return profile[-1][0]
    (t0, p0), (t1, p1) = profile[index - 1], profile[index]
    return t0 + (t1 - t0) * (percent - p0) / (p1 - p0) if p1 > p0 else t1


def _before(samples: list[Sample], seconds: float) -> Sample | None:
    """The last sample taken at least `seconds` before the newest one."""
    earlier = [sample for sample in samples if sample[0] <= samples[-1][0] - seconds]
    return earlier[-1] if earlier else None


def _pace(since: Sample, now: Sample) -> float:
    """Percent per second from one sample to another."""
    return (now[1] - since[1]) / (now[0] - since[0])


def steady_time_left(samples: list[Sample]) -> float | None:
    """From the job's own pace, when its pace over the last window and over twice it agree (two different
    samples apart: one jump between two distant samples proves nothing)."""
    short_since, long_since = _before(samples, STEADY_WINDOW_S), _before(samples, 2 * STEADY_WINDOW_S)
    if short_since is None or long_since is None or short_since == long_since:
        return None
    short, long = _pace(short_since, samples[-1]), _pace(long_since, samples[-1])
    if short <= 0 or abs(short - long) > STEADY_TOLERANCE * long:
        return None
    return (100 - samples[-1][1]) / short


def profiled_time_left(profile: list[Sample], samples: list[Sample]) -> float:
    """The profile's time from this percent to its end, scaled by this run's recent pace against the profile's
    over the same percents (a stage bound by a time budget keeps its length on a faster machine)."""
    elapsed, percent = samples[-1]
    then = _at(profile, percent)
    speed = 1.0
    since = _before(samples, STEADY_WINDOW_S)
    if since is not None and then - _at(profile, since[1]) >= 1:
        speed = min(max((elapsed - since[0]) / (then - _at(profile, since[1])), SPEED_RANGE[0]), SPEED_RANGE[1])
    return max(0.0, (profile[-1][0] - then) * speed)


class Profiles:
    """Measured runs by (model, options): the seconds each percent took, from followed runs that completed."""

    def __init__(self, kept: int = PROFILES_KEPT) -> None:
        self.kept = kept
        self._runs: OrderedDict[str, list[Sample]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(job: Job) -> str:
        return json.dumps([job.model_type, job.options], sort_keys=True)

    def get(self, job: Job) -> list[Sample] | None:
        with self._lock:
            return self._runs.get(self.key(job))

    def learn(self, job: Job, samples: list[Sample]) -> None:
        with self._lock:
            self._runs[self.key(job)] = samples
            self._runs.move_to_end(self.key(job))
            if len(self._runs) > self.kept:
                self._runs.popitem(last=False)


class RunClock:
    """Follows one job for one page: records its run's (seconds, percent) and says how long is left."""

    def __init__(self, profiles: Profiles) -> None:
        self.profiles = profiles
        self.run_started: float | None = None
        self.samples: list[Sample] = []

    def observe(self, job: Job, now: float) -> float | None:
        """Seconds left in the job's run (None when unknown); a completed run followed from its start is learnt."""
        if job.started_at != self.run_started:
            self.run_started, self.samples = job.started_at, []
        if job.started_at is None:
            return None
        if job.status == COMPLETED and job.finished_at is not None:
            self._learn(job)
            return None
        if job.status != PROCESSING:
            return None
        self.samples.append((now - job.started_at, job.progress))
        profile = self.profiles.get(job)
        return profiled_time_left(profile, self.samples) if profile else steady_time_left(self.samples)

    def _learn(self, job: Job) -> None:
        if self.samples and self.samples[0][1] <= FROM_START_PERCENT:
            self.profiles.learn(job, [*self.samples, (job.finished_at - job.started_at, 100)])
