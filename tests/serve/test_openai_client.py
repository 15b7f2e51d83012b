"""`tessera serve` through the official `openai` Python client (PyPI), as any application
written for OpenAI's completions API would use it: create, stream, n > 1, stop strings,
logprobs, echo, and its typed errors (BadRequestError, NotFoundError).

Usage: test_openai_client.py --tessera BUILD/launcher/tessera --out DIR  (from the repository root)
"""
import argparse
import math
import os
import sys
import time

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Server, train_checkpoint  # noqa: E402


def check_create(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"], models
    r = client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=24, temperature=0.9, seed=11)
    assert r.object == "text_completion" and r.model == "tiny" and r.id.startswith("cmpl-"), r
    assert len(r.choices) == 1 and len(r.choices[0].text) == 24 and r.choices[0].finish_reason == "length", r
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (7, 24, 31), r.usage
    again = client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=24, temperature=0.9, seed=11)
    assert again.choices[0].text == r.choices[0].text
    echo = client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=24, temperature=0.9, seed=11,
                                     echo=True)
    assert echo.choices[0].text == "ROMEO:\n" + r.choices[0].text, echo
    print(f"create: {r.choices[0].text!r}, the same again for seed 11, echo prepends the prompt")
    return r.choices[0].text


def check_stream(client, expected):
    stream = client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=24, temperature=0.9, seed=11,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    usage = chunks.pop()
    assert usage.choices == [] and usage.usage.completion_tokens == 24, usage
    text = "".join(c.choices[0].text for c in chunks)
    assert text == expected, (text, expected)
    assert chunks[-1].choices[0].finish_reason == "length", chunks[-1]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    print(f"stream: {len(chunks)} chunks add up to the same text")


def check_n(client):
    r = client.completions.create(model="tiny", prompt=["First", "KING"], max_tokens=12, n=3, seed=40)
    assert [c.index for c in r.choices] == list(range(6)), r.choices
    texts = [c.text for c in r.choices]
    assert len(set(texts[:3])) == 3, texts  # n samples of one prompt differ
    # Choice i samples with seed + i: each replays alone (prompt-major order, as OpenAI numbers them).
    for i, prompt in [(1, "First"), (4, "KING")]:
        alone = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, seed=40 + i)
        assert alone.choices[0].text == texts[i], (i, alone.choices[0].text, texts[i])
    assert r.usage.prompt_tokens == 5 + 4 and r.usage.completion_tokens == 6 * 12, r.usage
    streamed = {}
    for chunk in client.completions.create(model="tiny", prompt=["First", "KING"], max_tokens=12, n=3, seed=40,
                                           stream=True):
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + c.text
    assert [streamed[i] for i in range(6)] == texts, streamed
    print("n: 2 prompts x 3 choices, each choice replays alone with seed + index; streamed alike")


def check_stop(client):
    # Sampled with a seed: as deterministic as greedy, and less repetitive for a barely trained model.
    fixed = {"model": "tiny", "prompt": "JULIET:", "max_tokens": 60, "temperature": 1.0, "seed": 77}
    full = client.completions.create(**fixed).choices[0].text
    # A stop string whose first occurrence is well inside the text.
    stop = next(full[p:p + k] for k in (2, 3, 4) for p in range(10, 40) if full.index(full[p:p + k]) == p)
    expected = full[:full.index(stop)]
    r = client.completions.create(**fixed, stop=[stop, "\x01"])
    assert r.choices[0].text == expected and r.choices[0].finish_reason == "stop", (r.choices[0], expected, stop)
    assert r.usage.completion_tokens < 60, f"decoding went on after the stop string: {r.usage}"
    streamed = list(client.completions.create(**fixed, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == expected, streamed
    assert streamed[-1].choices[0].finish_reason == "stop", streamed[-1]
    unmatched = client.completions.create(**fixed, stop="\x01")
    assert unmatched.choices[0].text == full and unmatched.choices[0].finish_reason == "length"
    print(f"stop: {stop!r} cuts {full!r} at {len(expected)} characters after {r.usage.completion_tokens} tokens, "
          "streamed alike")


def check_logprobs(client):
    r = client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=10, temperature=0, logprobs=3)
    choice = r.choices[0]
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text and len(lp.tokens) == 10, lp
    assert lp.text_offset == list(range(10)), lp.text_offset
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and logprob <= 0, top
        best = max(top, key=top.get)
        assert best == token and math.isclose(top[token], logprob, rel_tol=1e-6), (token, logprob, top)
        assert sum(math.exp(v) for v in top.values()) <= 1 + 1e-6, top
    streamed = list(client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=10, temperature=0,
                                              logprobs=3, stream=True))
    tokens = [t for c in streamed for t in c.choices[0].logprobs.tokens]
    assert tokens == lp.tokens, (tokens, lp.tokens)
    # Scoring a prompt (echo, max_tokens 0, as lm-evaluation-harness does): the logprob of its
    # last token is the one the model gave that token when it generated it.
    text = "ROMEO:" + lp.tokens[0]
    scored = client.completions.create(model="tiny", prompt=text, max_tokens=0, echo=True, logprobs=3)
    s = scored.choices[0]
    assert s.text == text and s.logprobs.tokens == list(text) and s.logprobs.text_offset == list(range(len(text)))
    assert s.logprobs.token_logprobs[0] is None and s.logprobs.top_logprobs[0] is None, s.logprobs
    assert math.isclose(s.logprobs.token_logprobs[-1], lp.token_logprobs[0], rel_tol=1e-4), (s.logprobs, lp)
    assert scored.usage.completion_tokens == 0, scored.usage
    both = client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=10, temperature=0, logprobs=3,
                                     echo=True).choices[0]
    assert both.text == "ROMEO:" + choice.text and both.logprobs.tokens == list("ROMEO:") + lp.tokens
    assert both.logprobs.token_logprobs[6:] == lp.token_logprobs or all(
        math.isclose(x, y, rel_tol=1e-4) for x, y in zip(both.logprobs.token_logprobs[6:], lp.token_logprobs))
    streamed_echo = list(client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=10, temperature=0,
                                                   logprobs=3, echo=True, stream=True))
    assert [t for c in streamed_echo for t in c.choices[0].logprobs.tokens] == both.logprobs.tokens
    print(f"logprobs: 10 tokens, greedy picks the top one each time, first {lp.token_logprobs[0]:.3f}; "
          f"a prompt scored with echo gives {s.logprobs.token_logprobs[-1]:.3f} for the same token")


def check_errors(client):
    try:
        client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=0)
        raise AssertionError("max_tokens 0 was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and e.body["param"] == "max_tokens", e.body
        assert e.body["message"] == "'max_tokens' must be at least 1 (0 only with echo), not 0", e.body
    try:
        client.completions.create(model="tiny", prompt="ROMEO:", frequency_penalty=0.5)
        raise AssertionError("an unknown field was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "frequency_penalty" and "unknown field 'frequency_penalty'" in e.body["message"]
    try:
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="ROMEO:")
        raise AssertionError("a wrong model was accepted")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and e.body["code"] == "model_not_found", e.body
    print("errors: BadRequestError naming the field, NotFoundError for another model")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tessera", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    server = Server(args.tessera, train_checkpoint(args.tessera, args.out), "--max-batch", "8")
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)
        text = check_create(client)
        check_stream(client, text)
        check_n(client)
        check_stop(client)
        check_logprobs(client)
        check_errors(client)
        client.close()  # no idle keep-alive connection for the shutdown to wait out
    finally:
        code = server.stop()
    assert code == 0, f"exit code {code}: {server.log()}"
    print(f"openai client: all checks passed in {time.time() - started:.1f} s (openai {openai.__version__})")


if __name__ == "__main__":
    main()
