from resilin.redis_server import PrivateRedis


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
