"""The terminate summary: informative values first, structures by shape, secrets withheld, deterministic,
and never over its budget in UTF-8 bytes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mcp_memory.json_values import encode_value
from mcp_memory.models import Item
from mcp_memory.summary import DEFAULT_BUDGET, clip, looks_secret, summarize_state


def items(state: dict[str, Any]) -> dict[str, Item]:
    return {key: Item(encode_value(value)) for key, value in state.items()}


STATE = {
    "status": "waiting for the canary",
    "service": "payments-api",
    "attempt": 3,
    "dry_run": False,
    "plan": "Roll out v2.14 to 10% of pods, watch p99 latency for 30 minutes, then promote. " * 5,
    "rollout": {"stage": "canary", "percent": 10, "started": "2026-11-25T17:00:00Z", "pods": ["a", "b"]},
    "checks": [{"name": "p99", "ok": True}, {"name": "errors", "ok": True}, {"name": "saturation", "ok": False}],
    "last_error": None,
    "github_token": "ghp_0123456789abcdef0123456789abcdef0123",
    "db_password": "hunter2",
    "scratch": "sk-proj-abcdefghijklmnopqrstuvwxyz",
}


def test_short_scalars_come_first_then_long_text_then_shapes() -> None:
    lines = summarize_state(items(STATE)).splitlines()
    assert lines[0].startswith("11 keys, ") and lines[0].endswith(
        "(6 string, 1 array, 1 boolean, 1 null, 1 number, 1 object)."
    )
    order = [line.split(":")[0].split(" (")[0].removeprefix("- ") for line in lines[1:]]
    assert order == [
        "service",
        "status",
        "attempt",
        "dry_run",
        "plan",
        "checks",
        "rollout",
        "db_password",
        "github_token",
        "last_error",
        "scratch",
    ]
    text = "\n".join(lines)
    assert '- status: "waiting for the canary"' in text and "- attempt: 3" in text and "- dry_run: false" in text
    assert "- plan (string, " in text and "Roll out v2.14" in text
    assert "- rollout (object, 4 keys: percent, pods, stage, started; " in text
    assert "- checks (array of 3: 3 object {name, ok}; " in text
    assert "- last_error: null" in text


def test_secrets_are_named_but_never_shown() -> None:
    text = summarize_state(items(STATE))
    for secret in ("ghp_0123456789", "hunter2", "sk-proj-abc"):
        assert secret not in text
    assert "- db_password: (string, 9 B, withheld: looks like a secret)" in text
    assert looks_secret("apiKey", '"x"') and looks_secret("AUTHORIZATION", '"Bearer x"')
    assert looks_secret("anything", '"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"')
    # A number under a secret-sounding key is a PIN, a code or a numeric password; a count of tokens is not.
    assert looks_secret("bank_pin", "4821") and looks_secret("otp", "739201") and looks_secret("password", "12345678")
    assert looks_secret("card_cvv", "123") and looks_secret("access_token", "99") and looks_secret("token", "7")
    for counting in ("max_tokens", "maxTokens", "token_count", "tokens", "prompt_tokens", "tokens_per_second"):
        assert not looks_secret(counting, "4096"), counting
    assert looks_secret("max_tokens_password", "1")  # a count's name does not hide a secret beside it
    assert not looks_secret("password_set", "true") and not looks_secret("pin", "null")  # says nothing secret
    assert not looks_secret("footprint", '"small"') and not looks_secret("spinner", '"on"')
    assert looks_secret("otp", '"123456"') and looks_secret("user_pin", '"1234"')


def test_the_summary_is_deterministic() -> None:
    keys = list(STATE)
    shuffled = dict(STATE)
    for seed in range(5):
        random.Random(seed).shuffle(keys)
        shuffled = {k: STATE[k] for k in keys}
        assert summarize_state(items(shuffled)) == summarize_state(items(STATE))


@pytest.mark.parametrize("budget", [10, 40, 120, 300, 1000, DEFAULT_BUDGET])
def test_the_budget_is_in_bytes_and_always_kept(budget: int) -> None:
    state = {f"ключ_{i:03d}": "значение " * (i % 30) for i in range(300)}  # two bytes a letter
    state.update(STATE)
    text = summarize_state(items(state), budget)
    assert len(text.encode("utf-8")) <= budget
    text.encode("utf-8").decode("utf-8")  # never cut inside a character


def test_keys_that_do_not_fit_are_named_at_the_end() -> None:
    state = {f"step_{i:04d}": f"done {i}" for i in range(1000)}
    text = summarize_state(items(state), 600)
    assert text.splitlines()[-1].startswith("- and ")
    assert "more keys: step_" in text.splitlines()[-1]


def test_odd_keys_stay_on_one_line_and_are_shortened() -> None:
    text = summarize_state(items({"line\nbreak": "x", "k" * 256: "y"}))
    assert "line\\nbreak" in text and "k" * 61 not in text
    assert len(text.splitlines()) == 3


def test_big_structures_are_described_without_being_dumped() -> None:
    big = {"rows": [{"id": i, "payload": "x" * 100} for i in range(2000)]}
    text = summarize_state(items(big))
    assert "- rows (array, " in text and "x" * 50 not in text


def test_empty_state() -> None:
    assert summarize_state({}) == "Working memory was empty."


def test_clip() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcdef", 5) == "ab..."
    assert clip("ééé", 4) == "..."  # 2 bytes a letter: none fits beside the ellipsis
    assert clip("ééé", 5) == "é..."
    assert clip("abcdef", 2) == "ab"
