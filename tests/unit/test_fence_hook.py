"""The fence hook's definition and its refusals (the hook loading a firewall is tests/cloud's)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resilin.provisioners.localcloud import fence_hook
from resilin.provisioners.localcloud.fence_hook import ANNOTATION, HOOK_FILE, FenceHook


@pytest.fixture
def hook():
    made = FenceHook.create()
    yield made
    made.remove()
    assert not made.root.exists()


def _run_hook(hook: FenceHook, state: dict) -> subprocess.CompletedProcess[str]:
    definition = json.loads((hook.hooks_dir / HOOK_FILE).read_text())["hook"]
    return subprocess.run(
        definition["args"], input=json.dumps(state), capture_output=True, text=True, timeout=30
    )


def test_the_definition_runs_the_hook_before_the_container_for_annotated_containers(hook):
    definition = json.loads((hook.hooks_dir / HOOK_FILE).read_text())
    assert definition["stages"] == ["createRuntime"]
    assert definition["when"] == {"annotations": {r"^io\.resilin\.fence$": ".+"}}
    assert definition["hook"]["path"] == sys.executable
    assert definition["hook"]["args"][-2:] == [fence_hook.__file__, str(hook.scripts)]
    assert (hook.root.stat().st_mode & 0o077) == 0  # private to the cloud's process


def test_prepare_keeps_the_script_under_the_containers_name(hook):
    assert hook.prepare("resilin-c-i-1", "table inet resilin {}\n") == {ANNOTATION: "resilin-c-i-1"}
    assert (hook.scripts / "resilin-c-i-1.nft").read_text() == "table inet resilin {}\n"
    hook.forget(["resilin-c-i-1", "never-made"])
    assert list(hook.scripts.iterdir()) == []


@pytest.mark.parametrize(
    "state",
    [
        {"id": "c", "pid": 1, "annotations": {ANNOTATION: "../../etc/shadow"}},
        {"id": "c", "pid": 1, "annotations": {}},
        {"id": "c", "pid": 0, "annotations": {ANNOTATION: "resilin-c-i-1"}},
    ],
)
def test_the_hook_refuses_a_state_it_cannot_trust_and_so_fails_the_start(hook, state):
    done = _run_hook(hook, state)
    assert done.returncode == 1
    assert "fence hook" in done.stderr
