"""tokencli's local provider against a plain transformers `generate` loop.

Both sides run the same model, prompt and settings (greedy, the same
max_new_tokens) in this process, alternating, after a warm-up. Each side is
timed from "prompt text in hand" to "last token received":

- plain: apply_chat_template, then model.generate with a streamer that only
  notes when each token arrives (the cheapest way to see a first token);
- tokencli: Engine.run on `local:<folder>`, which also writes the ledger row
  before and after the call, renders the chat template, decodes text as it
  streams and counts every token.

Reported: time to first token and tokens per second (medians), and tokencli
as a ratio of the plain loop (target: tokens/s ratio ≥ 0.95). The model is a
random Llama built offline (tests/tiny_model.py), large enough that the
forward pass, not Python, dominates each token.

    python benchmarks/local_generate.py              # hidden 384, 6 layers, 128 tokens
    python benchmarks/local_generate.py --hidden 512 --layers 8 --tokens 256 --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "Write a short note about counting tokens in a local ledger. 请用中文和英文。"
SYSTEM = "You are concise."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    torch.set_num_threads(args.threads)
    from tests.tiny_model import build

    with tempfile.TemporaryDirectory() as tmp:
        folder = build(
            Path(tmp) / "bench",
            hidden=args.hidden,
            layers=args.layers,
            heads=max(args.hidden // 64, 1),
            context=4096,
            never_stop=True,
        )
        home = Path(tmp) / "home"
        plain = PlainLoop(folder, args.device)
        streamer = StreamerLoop(folder, args.device)
        ours = TokencliLoop(folder, home, args.device)
        params = sum(p.numel() for p in plain.model.parameters())
        print(
            f"model: random Llama, hidden {args.hidden}, {args.layers} layers, "
            f"{params / 1e6:.1f}M parameters, {plain.model.dtype}, on {plain.device}; "
            f"torch {torch.__version__}, {args.threads} thread(s); "
            f"greedy, {args.tokens} new tokens, {args.runs} runs each after a warm-up",
            file=sys.stderr,
        )
        loops: dict[str, PlainLoop | TokencliLoop] = {
            "plain generate": plain,
            "TextIteratorStreamer": streamer,
            "tokencli": ours,
        }
        for loop in loops.values():
            loop.run(args.tokens)  # warm-up: first-call allocations, lazy imports
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in loops}
        order = list(loops)
        for i in range(args.runs):
            # Rotate which goes first, so none always runs on a warmer machine.
            for name in order[i % 3 :] + order[: i % 3]:
                results[name].append(loops[name].run(args.tokens))
        ours.close()

    report(results)


class PlainLoop:
    def __init__(self, folder: Path, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = (
            device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = (
            AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        )

    def run(self, tokens: int) -> tuple[float, float, int]:
        import torch
        from transformers.generation.streamers import BaseStreamer

        arrivals: list[float] = []

        class Clock(BaseStreamer):
            seen_prompt = False

            def put(self, value: object) -> None:
                if self.seen_prompt:
                    arrivals.append(time.perf_counter())
                self.seen_prompt = True

            def end(self) -> None:
                pass

        start = time.perf_counter()
        enc = self.tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            self.model.generate(
                **enc,
                max_new_tokens=tokens,
                do_sample=False,
                streamer=Clock(),
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return arrivals[0] - start, arrivals[-1] - start, len(arrivals)


class StreamerLoop(PlainLoop):
    """The streaming recipe from transformers' docs: TextIteratorStreamer, generate in a thread."""

    def run(self, tokens: int) -> tuple[float, float, int]:
        import threading

        import torch
        from transformers import TextIteratorStreamer

        start = time.perf_counter()
        enc = self.tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, timeout=60)
        out: list[int] = []

        def work() -> None:
            with torch.inference_mode():
                ids = self.model.generate(
                    **enc,
                    max_new_tokens=tokens,
                    do_sample=False,
                    streamer=streamer,
                    eos_token_id=self.tokenizer.eos_token_id,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            out.append(ids.shape[1] - enc["input_ids"].shape[1])

        thread = threading.Thread(target=work)
        thread.start()
        first = None
        for _text in streamer:
            if first is None:
                first = time.perf_counter()
        thread.join()
        end = time.perf_counter()
        return (first or end) - start, end - start, out[0]


class TokencliLoop:
    def __init__(self, folder: Path, home: Path, device: str) -> None:
        from tokencli.calls.engine import Engine
        from tokencli.ledger import Ledger
        from tokencli.settings.loader import load_settings

        home.mkdir()
        (home / "config.toml").write_text(f'[providers.local]\ndevice = "{device}"\n')
        settings = load_settings({**os.environ, "TOKENCLI_HOME": str(home)})
        self.engine = Engine(settings, ledger=lambda: Ledger.open(settings.paths.db))
        self.model = f"local:{folder}"

    def run(self, tokens: int) -> tuple[float, float, int]:
        from tokencli.calls.engine import RunOptions

        arrivals: list[float] = []
        start = time.perf_counter()
        result = self.engine.run(
            RunOptions(PROMPT, model=self.model, system=SYSTEM, max_tokens=tokens, temperature=0),
            lambda _text: arrivals.append(time.perf_counter()),
        )
        end = time.perf_counter()
        # Text can lag a token (a character split across tokens), so the last
        # token's time is the call's end, and the first token's the first text.
        return arrivals[0] - start, end - start, result.call.usage.output_tokens

    def close(self) -> None:
        self.engine.close()


def report(results: dict[str, list[tuple[float, float, int]]]) -> None:
    rows = {}
    for name, runs in results.items():
        counts = {n for _, _, n in runs}
        ttft = statistics.median(t for t, _, _ in runs)
        # Decode speed: tokens after the first over the time after the first.
        tps = statistics.median(_decode_tps(r) for r in runs)
        total = statistics.median(n / end for _, end, n in runs)
        rows[name] = (ttft, tps, total, counts)
    if len({frozenset(r[3]) for r in rows.values()}) > 1:
        print("warning: the loops generated different numbers of tokens", file=sys.stderr)
    print("| loop | tokens | time to first token | decode tokens/s | end-to-end tokens/s |")
    print("|---|---:|---:|---:|---:|")
    for name, (ttft, tps, total, counts) in rows.items():
        n = "/".join(str(c) for c in sorted(counts))
        print(f"| {name} | {n} | {ttft * 1000:.1f} ms | {tps:.1f} | {total:.1f} |")
    # Ratios per round (loops run back to back), then the median: a load burst
    # from another process then skews one round, not the whole comparison.
    ours = results["tokencli"]
    for base in ("plain generate", "TextIteratorStreamer"):
        pairs = list(zip(ours, results[base], strict=True))
        ttft = statistics.median(o[0] / b[0] for o, b in pairs)
        tps = statistics.median(_decode_tps(o) / _decode_tps(b) for o, b in pairs)
        total = statistics.median((o[2] / o[1]) / (b[2] / b[1]) for o, b in pairs)
        spread = sorted(_decode_tps(o) / _decode_tps(b) for o, b in pairs)
        print(
            f"| tokencli ÷ {base} (median of {len(pairs)} rounds; decode range "
            f"{spread[0]:.2f}–{spread[-1]:.2f}) | | {ttft:.2f}× the time | "
            f"**{tps:.3f}** | **{total:.3f}** |"
        )


def _decode_tps(run: tuple[float, float, int]) -> float:
    first, end, n = run
    return (n - 1) / (end - first)


if __name__ == "__main__":
    main()
