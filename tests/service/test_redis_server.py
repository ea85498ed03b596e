from resilin.service.redis_server import PrivateRedis


def test_private_redis_persists_with_append_only_file(tmp_path):
    server = PrivateRedis(tmp_path).start()
    try:
        server.client().set("k", "v")
        assert server.client().config_get("appendonly")["appendonly"] == "yes"
    finally:
        server.stop()
    again = PrivateRedis(tmp_path).start()
    try:
        assert again.client().get("k") == "v"
    finally:
        again.stop()


def test_server_left_by_a_crashed_run_is_adopted_and_stopped(tmp_path):
    first = PrivateRedis(tmp_path).start()
    pid = first.process.pid
    adopted = PrivateRedis(tmp_path).start()  # as a restarted Resilin would
    assert adopted.adopted_pid == pid and adopted.process is None
    adopted.client().set("still", "here")
    adopted.stop()
    assert first.process.wait(10) == 0
    again = PrivateRedis(tmp_path).start()
    try:
        assert again.client().get("still") == "here"
    finally:
        again.stop()
