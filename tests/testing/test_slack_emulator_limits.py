"""Rate limits and injected faults, as slack_sdk sees them."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from norbit_connectors.exceptions import ConfigurationError
from norbit_connectors.testing._slack_emulator import SlackEmulator


class FakeClock:
    def __init__(self, start: float = 1_712_345_678.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def client(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])


def test_tight_post_message_per_channel_bucket() -> None:
    clock = FakeClock()
    with SlackEmulator(rate_limits="tight", clock=clock) as emu:
        bot = client(emu)
        first = bot.conversations_create(name="busy")["channel"]["id"]
        clock.now += 1
        second = bot.conversations_create(name="quiet")["channel"]["id"]
        bot.chat_postMessage(channel=first, text="1")
        bot.chat_postMessage(channel=first, text="2")
        with pytest.raises(SlackApiError) as info:
            bot.chat_postMessage(channel=first, text="3")
        response = info.value.response
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert response.data == {"ok": False, "error": "ratelimited"}
        # Other channels have their own bucket; refused calls consumed nothing.
        assert bot.chat_postMessage(channel=second, text="elsewhere")["ok"]
        clock.now += 0.2  # the bucket refills at 10 per second
        assert bot.chat_postMessage(channel=first, text="3")["ok"]
        assert [m["text"] for m in emu.messages(first)] == ["1", "2", "3"]
        assert [c.status for c in emu.calls_to("chat.postMessage")] == [200, 200, 429, 200, 200]


def test_slack_profile_tier_limits_per_token_and_method() -> None:
    clock = FakeClock()
    with SlackEmulator(rate_limits="slack", clock=clock) as emu:
        bot = client(emu)
        for index in range(20):  # Tier 2: 20 per minute
            bot.conversations_create(name=f"c-{index}")
        with pytest.raises(SlackApiError) as info:
            bot.conversations_create(name="c-20")
        assert info.value.response.status_code == 429
        assert int(info.value.response.headers["Retry-After"]) == 3  # one call every 3 s
        # Another method, and the same method with another token, are not affected.
        assert bot.conversations_info(channel=emu.find_channel("c-0")["id"])["ok"]  # type: ignore[index]
        user = WebClient(token=emu.user_token, base_url=emu.base_url, retry_handlers=[])
        assert user.conversations_create(name="by-user")["ok"]
        clock.now += 3
        assert bot.conversations_create(name="c-20")["ok"]


def test_slack_profile_post_message_burst_then_one_per_second() -> None:
    clock = FakeClock()
    with SlackEmulator(rate_limits="slack", clock=clock) as emu:
        bot = client(emu)
        channel = bot.conversations_create(name="burst")["channel"]["id"]
        for index in range(5):
            bot.chat_postMessage(channel=channel, text=str(index))
        with pytest.raises(SlackApiError) as info:
            bot.chat_postMessage(channel=channel, text="too fast")
        assert info.value.response.headers["Retry-After"] == "1"
        clock.now += 1
        assert bot.chat_postMessage(channel=channel, text="ok again")["ok"]


def test_rate_limits_off_by_default() -> None:
    with SlackEmulator(clock=FakeClock()) as emu:
        bot = client(emu)
        channel = bot.conversations_create(name="free")["channel"]["id"]
        for index in range(30):
            bot.chat_postMessage(channel=channel, text=str(index))
        assert len(emu.messages(channel)) == 30


@pytest.mark.parametrize(("status", "code"), [(500, "internal_error"), (503, "service_unavailable")])
def test_fail_next_server_errors(status: int, code: str) -> None:
    with SlackEmulator() as emu:
        bot = client(emu)
        emu.fail_next("auth.test", status=status, times=2)  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(SlackApiError) as info:
                bot.auth_test()
            assert info.value.response.status_code == status
            assert info.value.response["error"] == code
        assert bot.auth_test()["ok"]
        assert [c.fault for c in emu.calls] == [str(status), str(status), None]


def test_fail_next_429_with_retry_after() -> None:
    with SlackEmulator() as emu:
        bot = client(emu)
        channel = bot.conversations_create(name="r")["channel"]["id"]
        emu.fail_next("chat.postMessage", status=429, retry_after=7)
        with pytest.raises(SlackApiError) as info:
            bot.chat_postMessage(channel=channel, text="x")
        assert info.value.response.headers["Retry-After"] == "7"
        assert info.value.response.data == {"ok": False, "error": "ratelimited"}
        assert emu.messages(channel) == []  # failed before taking effect


def test_fail_next_reset_closes_the_connection() -> None:
    with SlackEmulator() as emu:
        bot = client(emu)
        emu.fail_next("*", status="reset")
        with pytest.raises(OSError):  # urllib: RemoteDisconnected / URLError
            bot.auth_test()
        assert emu.calls[-1].status == 0
        assert emu.calls[-1].error == "connection_reset"
        assert bot.auth_test()["ok"]


def test_fail_after_applies_the_call_but_loses_the_answer() -> None:
    with SlackEmulator() as emu:
        bot = client(emu)
        channel = bot.conversations_create(name="lost")["channel"]["id"]
        emu.fail_next("chat.postMessage", status=503, after=True)
        with pytest.raises(SlackApiError):
            bot.chat_postMessage(channel=channel, text="did it post?")
        assert [m["text"] for m in emu.messages(channel)] == ["did it post?"]


def test_latency_answers_normally() -> None:
    with SlackEmulator() as emu:
        bot = client(emu)
        emu.fail_next("auth.test", status="latency", delay=0.05)
        assert bot.auth_test()["ok"]
        assert emu.calls[-1].fault is None


def test_random_faults_are_seeded_and_filtered() -> None:
    def run() -> list[int]:
        with SlackEmulator() as emu:
            bot = client(emu)
            emu.faults(probability=0.5, kinds=(500, 503, 429), seed=7, methods={"auth.test"})
            statuses = []
            for _ in range(20):
                try:
                    bot.auth_test()
                    statuses.append(200)
                except SlackApiError as error:
                    statuses.append(error.response.status_code)
            # Methods outside the filter never fail.
            assert bot.users_getPresence(user=emu.bot_user_id)["ok"]
            emu.faults(probability=0)
            assert bot.auth_test()["ok"]
            return statuses

    first, second = run(), run()
    assert first == second
    assert {200} < set(first) <= {200, 500, 503, 429}


def test_fault_configuration_errors() -> None:
    emu = SlackEmulator()
    with pytest.raises(ConfigurationError):
        emu.fail_next("chat.nope")
    with pytest.raises(ConfigurationError):
        emu.fail_next("auth.test", status=418)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        emu.faults(probability=1.5)
    with pytest.raises(ConfigurationError):
        emu.faults(probability=0.5, methods={"nope"})
    with pytest.raises(ConfigurationError):
        SlackEmulator(rate_limits="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SlackEmulator(bot_scopes="chat:write")
    emu.fail_next("auth.test")
    emu.clear_faults()
