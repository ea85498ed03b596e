from resilin import demo


def _timeline(*states: str) -> demo.Timeline:
    timeline = demo.Timeline()
    for state in states:
        timeline.mark(state)
    return timeline


def test_a_cluster_that_failed_before_the_first_poll_is_reported_from_starting():
    timeline = _timeline("TERMINATING", "step CANCELLED", "TERMINATED_WITH_ERRORS")
    assert demo.phases_reached(timeline) == ["STARTING", "TERMINATING", "TERMINATED_WITH_ERRORS"]


def test_phases_seen_from_starting_are_reported_as_seen_without_steps():
    timeline = _timeline(
        "STARTING", "step PENDING", "BOOTSTRAPPING", "RUNNING", "step COMPLETED", "TERMINATED"
    )
    assert demo.phases_reached(timeline) == ["STARTING", "BOOTSTRAPPING", "RUNNING", "TERMINATED"]
