"""Ollama, natively (/api/chat, NDJSON) and through its OpenAI-compatible /v1,
against a loopback server speaking Ollama's wire format."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import Cut, Reply, json_reply, openai_chunks, openai_usage, sse, sse_reply
from tokencli.providers.registry import PRESETS

MODEL = "llama3.2"
CREATED = "2026-11-22T10:00:00.000000Z"


def chunk(content: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "created_at": CREATED,
        "message": {"role": "assistant", "content": content},
        "done": False,
    }


def final(prompt: int | None = 26, output: int | None = 3, reason: str = "stop", content: str = ""):
    data: dict[str, Any] = {
        "model": MODEL,
        "created_at": CREATED,
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": reason,
        "total_duration": 5_589_157_167,
        "load_duration": 3_013_701_500,
        "prompt_eval_duration": 1_160_282_000,
        "eval_duration": 1_325_948_000,
    }
    # Ollama leaves zero counts out (omitempty).
    if prompt is not None:
        data["prompt_eval_count"] = prompt
    if output is not None:
        data["eval_count"] = output
    return data


def ndjson(*objects: Any) -> list[bytes | Cut]:
    return [json.dumps(o).encode() + b"\n" for o in objects]


def ndjson_reply(chunks: list[Any]) -> Reply:
    return Reply(200, {"content-type": "application/x-ndjson"}, chunks=chunks)


def use_ollama(home, server, **fields: object) -> None:
    write_config(home, provider_config("ollama", "ollama", server.url, **fields))


def test_preset_speaks_the_native_api_on_the_default_port():
    preset = PRESETS["ollama"]
    assert (preset.type, preset.base_url) == ("ollama", "http://localhost:11434")
    assert preset.self_hosted and not preset.key_required


def test_streamed_answer_usage_and_durations(cli, home, server):
    use_ollama(home, server)
    server.queue(ndjson_reply(ndjson(chunk("The sky"), chunk(" is"), chunk(" blue."), final())))
    r = cli(
        "run", "-m", f"ollama:{MODEL}", "-s", "Be brief.", "--max-tokens", "50",
        "--temperature", "0.2", "Why is the sky blue?",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "The sky is blue.\n"

    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/api/chat")
    assert request.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
        "stream": True,
        "options": {"num_predict": 50, "temperature": 0.2},
    }
    (row,) = ledger_rows(home)
    assert (row["status"], row["input_tokens"], row["output_tokens"]) == ("ok", 26, 3)
    assert row["usage_source"] == "reported" and row["finish_reason"] == "stop"
    assert row["cost_pico"] == 0 and row["price_source"] == "self-hosted (free)"
    assert json.loads(row["extra"]) == {
        "total_duration_ns": 5_589_157_167,
        "load_duration_ns": 3_013_701_500,
        "prompt_eval_duration_ns": 1_160_282_000,
        "eval_duration_ns": 1_325_948_000,
    }


def test_unstreamed_answer(cli, home, server):
    use_ollama(home, server)
    server.queue(json_reply(final(12, 4, reason="length", content="One two three four")))
    r = cli("run", "-m", f"ollama:{MODEL}", "--no-stream", "--json", "Count.")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"] == "One two three four"
    assert out["usage"]["input_tokens"] == 12 and out["usage"]["output_tokens"] == 4
    assert out["finish_reason"] == "length"
    assert server.requests[0].json["stream"] is False
    assert "options" not in server.requests[0].json


def test_absent_counts_mean_zero(cli, home, server):
    # A full prompt-cache hit on an old Ollama leaves prompt_eval_count out.
    use_ollama(home, server)
    server.queue(ndjson_reply(ndjson(chunk("Hi"), final(prompt=None, output=1))))
    out = json.loads(cli("run", "-m", f"ollama:{MODEL}", "--json", "Hi").stdout)
    assert out["usage"]["input_tokens"] == 0 and out["usage"]["output_tokens"] == 1
    assert out["usage"]["usage_source"] == "reported"


def test_error_line_mid_stream(cli, home, server):
    use_ollama(home, server)
    server.queue(
        ndjson_reply(
            ndjson(chunk("Partial"), {"error": "an error was encountered while running the model"})
        )
    )
    r = cli("run", "-m", f"ollama:{MODEL}", "Go.")
    assert r.exit_code == 5
    assert r.stdout == "Partial\n"
    assert "an error was encountered while running the model" in r.stderr
    (row,) = ledger_rows(home)
    assert row["status"] == "error" and row["usage_source"] == "estimated"


def test_cut_stream_is_recorded_as_estimated(cli, home, server):
    use_ollama(home, server)
    server.queue(ndjson_reply([*ndjson(chunk("Half an ans"), chunk("wer")), Cut()]))
    r = cli("run", "-m", f"ollama:{MODEL}", "Go.")
    assert r.exit_code == 5
    assert r.stdout == "Half an answer\n"
    (row,) = ledger_rows(home)
    assert row["error_kind"] == "stream_cut" and row["usage_source"] == "estimated"
    assert row["output_tokens"] > 0


def test_stream_that_ends_without_done_is_cut(cli, home, server):
    use_ollama(home, server)
    server.queue(ndjson_reply(ndjson(chunk("No end"))))
    r = cli("run", "-m", f"ollama:{MODEL}", "Go.")
    assert r.exit_code == 5
    assert ledger_rows(home)[0]["error_kind"] == "stream_cut"


def test_missing_model_says_pull_it(cli, home, server):
    use_ollama(home, server)
    server.queue(json_reply({"error": 'model "nope" not found, try pulling it first'}, status=404))
    r = cli("run", "-m", "ollama:nope", "Hi")
    assert r.exit_code == 6
    assert 'model "nope" not found' in r.stderr and "ollama pull nope" in r.stderr


def test_options_from_config_and_old_v1_base_url(cli, home, server):
    # A base_url written for the OpenAI-compatible route still reaches /api/chat.
    use_ollama(home, server, num_ctx=8192, keep_alive="30m")
    write_config(
        home,
        provider_config("ollama", "ollama", server.url + "/v1", num_ctx=8192, keep_alive="30m"),
    )
    server.queue(ndjson_reply(ndjson(final(5, 0))))
    r = cli("run", "-m", f"ollama:{MODEL}", "Hi")
    assert r.exit_code == 0, r.stderr
    request = server.requests[0]
    assert request.path == "/api/chat"
    assert request.json["options"] == {"num_ctx": 8192}
    assert request.json["keep_alive"] == "30m"


def test_openai_compatible_route_still_works(cli, home, server):
    write_config(
        home,
        provider_config("ollama-v1", "openai", server.url + "/v1", self_hosted=True),
    )
    chunks = openai_chunks(["Hel", "lo"], openai_usage(9, 2), model=MODEL)
    for c in chunks:  # what Ollama's /v1 adds to each chunk
        c["system_fingerprint"] = "fp_ollama"
        c["id"] = "chatcmpl-123"
    server.queue(sse_reply(sse(chunks)))
    r = cli("run", "-m", f"ollama-v1:{MODEL}", "--json", "Hi")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"] == "Hello" and out["cost"] == "0"
    assert out["usage"]["input_tokens"] == 9 and out["usage"]["output_tokens"] == 2
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].json["stream_options"] == {"include_usage": True}
