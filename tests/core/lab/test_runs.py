"""Where Objective lab runs stand, from their folders and this server's training jobs (issue 30: a running run
was invisible to the tab that started it and to every other tab)."""
from __future__ import annotations

from core.jobs import JobStatus
from core.lab.runs import LabRun, RunState, TrainConfig, plan_training, run_id_of_job, run_states, train_job_key

SUPERVISED, CLAMP, SIMCLR = (TrainConfig(objective, epochs=4) for objective in ("supervised", "clamp", "simclr"))


def job(config: TrainConfig, state: str, *, done: int = 0, total: int = 0, started_at: float = 1000.0,
        owners: frozenset[str] = frozenset({"tab 1"}), cancel_requested: bool = False) -> JobStatus:
    return JobStatus(train_job_key(config.run_id), f"{config.objective} · {config.run_id}", state, done, total, "",
                     "", started_at, None, owners=owners, cancel_requested=cancel_requested)


def folder(config: TrainConfig, epochs_done: int, finished: bool = False) -> LabRun:
    """A run's folder as `load_run` reads it: `epochs_done` finished epochs (2 steps each), result.json if finished."""
    history = [{"epoch": epoch, "step": step, "loss": 1.0} for epoch in range(1, epochs_done + 1) for step in (1, 2)]
    return LabRun(config.run_id, config, finished, epochs_done, history, {"images": 32} if finished else {})


def by_id(states: list[RunState]) -> dict[str, RunState]:
    return {state.run_id: state for state in states}


def test_a_training_job_key_names_its_run_and_no_other_job_does() -> None:
    assert run_id_of_job(train_job_key(SUPERVISED.run_id)) == SUPERVISED.run_id
    assert run_id_of_job("probes|abc") is None and run_id_of_job("lab|") is None


def test_a_running_run_is_training_with_its_jobs_progress_and_start() -> None:
    # Mid-epoch 2 of 4: one finished epoch on disk (checkpoint + history), 40 of 128 images trained by the job.
    states = run_states([folder(SUPERVISED, 1)], [job(SUPERVISED, "running", done=40, total=128, started_at=1234.0)])
    [state] = states
    assert (state.state, state.epochs_done, state.progress, state.since) == ("training", 1, 40 / 128, 1234.0)
    assert state.active and state.config == SUPERVISED and state.spec == f"lab:{SUPERVISED.run_id}"


def test_queued_and_starting_runs_are_listed_before_their_folder_exists() -> None:
    """The rerun right after Train: the jobs exist, their folders not yet (one waits for a slot)."""
    stranger = TrainConfig("simclr", backbone="vit_tiny_patch16_224", epochs=9)  # another tab's settings
    states = by_id(run_states([], [job(SUPERVISED, "running"), job(CLAMP, "queued", started_at=7.0),
                                   job(stranger, "queued")], configs=[SUPERVISED, CLAMP]))
    assert states[SUPERVISED.run_id].state == "training" and states[SUPERVISED.run_id].run is None
    assert states[CLAMP.run_id].state == "queued" and states[CLAMP.run_id].config == CLAMP
    assert (states[CLAMP.run_id].since, states[CLAMP.run_id].progress, states[CLAMP.run_id].epochs_done) == (7.0, 0, 0)
    # Settings unknown here: listed by its run id, which starts with the objective.
    assert states[stranger.run_id].config is None and states[stranger.run_id].objective == "simclr"


def test_a_partial_run_without_a_job_is_stopped_and_a_finished_one_is_finished() -> None:
    """A cancelled run, or one a stopped server left midway: its folder stays, Train resumes it."""
    states = by_id(run_states([folder(SUPERVISED, 3), folder(CLAMP, 4, finished=True)],
                              [job(SUPERVISED, "cancelled", done=100, total=128),
                               job(CLAMP, "running", done=5, total=128)]))  # a stale record: the folder wins
    assert (states[SUPERVISED.run_id].state, states[SUPERVISED.run_id].progress) == ("stopped", 3 / 4)
    assert not states[SUPERVISED.run_id].active and states[SUPERVISED.run_id].since is None
    assert (states[CLAMP.run_id].state, states[CLAMP.run_id].progress) == ("finished", 1.0)


def test_a_cancelled_job_still_running_is_stopping() -> None:
    [state] = run_states([folder(SUPERVISED, 1)], [job(SUPERVISED, "running", done=70, total=128,
                                                       cancel_requested=True)])
    assert state.state == "stopping" and state.active


def test_train_starts_idle_runs_joins_other_sessions_runs_and_never_restarts_running_ones() -> None:
    jobs = [job(SUPERVISED, "running", owners=frozenset({"tab 1"})), job(CLAMP, "queued", owners=frozenset({"tab 1"}))]
    fresh_tab = plan_training([SUPERVISED, CLAMP, SIMCLR], [], jobs, owner="tab 2")
    assert (fresh_tab.start, fresh_tab.join, fresh_tab.joined) == ([SIMCLR], [SUPERVISED, CLAMP], [])
    starting_tab = plan_training([SUPERVISED, CLAMP, SIMCLR], [SIMCLR.run_id], jobs, owner="tab 1")
    assert (starting_tab.start, starting_tab.join, starting_tab.joined) == ([], [], [SUPERVISED, CLAMP])
    # A job being cancelled or already ended no longer trains the run: Train starts it again (it resumes).
    ended = [job(SUPERVISED, "running", cancel_requested=True), job(CLAMP, "failed")]
    assert plan_training([SUPERVISED, CLAMP], [], ended, owner="tab 2").start == [SUPERVISED, CLAMP]
