from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import openai_chunks, openai_usage, sse, sse_reply


def test_mock_echo(cli, home):
    r = cli("run", "-m", "mock:echo", "hello there")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "hello there\n"


def test_openai_stream(cli, home, server):
    write_config(home, provider_config("fake", "openai", server.url + "/v1", prices_from="openai"))
    server.queue(sse_reply(sse(openai_chunks(["Hel", "lo"], openai_usage(12, 2)))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "hi")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "Hello\n"
    row = ledger_rows(home)[0]
    assert row["input_tokens"] == 12 and row["status"] == "ok"
