from recoverctl.core.stack import ServiceStatus, describe_problem, merge


def st(service: str, state: str = "running", health: str | None = "healthy") -> ServiceStatus:
    return ServiceStatus(service=service, container=f"p-{service}-1", state=state, health=health)


def test_ready_when_every_expected_service_is_running_and_healthy() -> None:
    status = merge("p", "dev", ["backend", "db"], [st("db"), st("backend")])
    assert status.ready
    assert [s.service for s in status.services] == ["backend", "db"]


def test_no_healthcheck_counts_as_ready_when_running() -> None:
    assert merge("p", "dev", ["db"], [st("db", health=None)]).ready


def test_missing_service_is_a_row_and_not_ready() -> None:
    status = merge("p", "dev", ["backend", "db"], [st("db")])
    assert not status.ready
    missing = status.services[0]
    assert (missing.service, missing.state, missing.container) == ("backend", "missing", None)
    assert describe_problem(missing) == "backend has no container"
    assert status.waiting == (missing,)


def test_dead_unhealthy_and_crash_looping_are_failures() -> None:
    exited = ServiceStatus("backend", "c", "exited", None, exit_code=3)
    assert exited.failed and describe_problem(exited) == "backend exited with code 3"
    assert st("db", health="unhealthy").failed
    loop = st("backend", state="restarting", health="starting")
    assert loop.failed and "crashes on start" in describe_problem(loop)
    assert not st("db", health="starting").failed


def test_worst_container_of_a_service_is_shown() -> None:
    status = merge("p", "dev", ["db"], [st("db"), st("db", state="exited", health=None)])
    assert status.services[0].state == "exited"


def test_empty_stack_is_not_ready() -> None:
    assert not merge("p", "dev", [], []).ready
