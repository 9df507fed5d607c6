"""The model server (helpers.serve) as a client meets it: a real process on a loopback port, a real model."""
import asyncio
import signal
import socket
import time

import httpx
import pytest

from helpers.chat import prompt_messages
from helpers.errors import CourseError
from helpers.loadtest import MAX_REQUESTS, check_loopback, load_test, running_server
from helpers.paths import BASE_MODEL_DIR
from helpers.serve import describe_answer
from tests.conftest import run_module, save_random_adapter

MAX_CHARS = 500
#: seconds a request may take: generous, since a busy shared machine can be many times slower than an idle one
TIMEOUT_S = 600
COMPLAINT = "My lower back has been aching since yesterday."


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, base):
    """A LoRA adapter on the embedded base, saved the way chapter 4 saves one, and the model merged from it."""
    from helpers.merging import save_merged
    from helpers.models import load_trained

    root = tmp_path_factory.mktemp("serve")
    save_random_adapter(base, root / "adapter")
    merged, merged_tokenizer = load_trained(root / "adapter", merge=True)
    save_merged(merged, merged_tokenizer, root / "merged")
    return {"adapter": root / "adapter", "merged": root / "merged"}


@pytest.fixture(scope="module")
def complaints():
    from helpers.training import load_split

    return [row["instruction"] for row in load_split("test")[:4]]


@pytest.fixture(scope="module")
def server(model_dirs):
    with running_server(model_dirs["merged"], "--max-batch", "8", "--max-wait-ms", "20", "--max-chars", str(MAX_CHARS),
                        "--threads", "1") as running:  # one thread: far faster than two on a busy shared machine
        yield running


@pytest.fixture(scope="module")
def small_server(model_dirs):
    """The adapter applied on the fly, one request per batch and two waiting at most: easy to overflow."""
    with running_server(model_dirs["adapter"], "--max-batch", "1", "--max-queue", "2", "--max-wait-ms", "0",
                        "--threads", "1") as running:
        yield running


def post(server, path, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=TIMEOUT_S, **kwargs)


def one_line_error(response: httpx.Response) -> str:
    message = response.json()["error"]["message"]
    assert message and "\n" not in message
    return message


# --- what an answer means (no server) ----------------------------------------------------------------------------

@pytest.mark.parametrize("answer, expected", [
    ("DIAGNOSIS_CODE: M54.50", {"code": "M54.50", "billable": True, "reason": None}),
    ("DIAGNOSIS_CODE: M54.5", {"code": "M54.5", "billable": False, "reason": "non_billable_code"}),
    ("DIAGNOSIS_CODE: Q99.99", {"code": None, "billable": False, "reason": "invalid_code"}),
    ("It sounds like back pain.", {"code": None, "billable": False, "reason": "no_code"}),
])
def test_an_answer_is_reported_as_a_billable_code_only_when_it_is_one(answer, expected):
    report = describe_answer(answer)
    assert {k: report[k] for k in expected} == expected
    assert report["answer"] == answer
    assert (report["title"] is not None) == (report["code"] is not None)
    if expected["code"] == "M54.50":
        assert report["title"] == "Low back pain, unspecified"


# --- the server ---------------------------------------------------------------------------------------------------

def test_health_describes_the_model_and_its_limits(server):
    health = server.health()
    assert health["status"] == "ok"
    assert health["model"].endswith("merged") and not health["model"].startswith("/")
    settings = (health["max_batch"], health["max_chars"], health["dtype"], health["threads"])
    assert settings == (8, MAX_CHARS, "float32", 1)
    assert health["load_seconds"] > 0 and health["peak_rss_mib"] > 100


def test_predict_reports_the_answer_and_what_it_means(server):
    response = post(server, "/predict", json={"complaint": COMPLAINT})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"code", "title", "billable", "reason", "answer"}
    assert body == describe_answer(body["answer"])


def test_predict_answers_are_the_evaluations_answers(server, model_dirs, complaints):
    from helpers.evaluation import generate_answers
    from helpers.models import load_trained

    served = [post(server, "/predict", json={"complaint": c}).json()["answer"] for c in complaints]
    model, tokenizer = load_trained(model_dirs["merged"])
    assert served == generate_answers(model, tokenizer, complaints, batch_size=1, progress=False)


def test_chat_completions_follow_the_openai_contract(server, tokenizer):
    response = post(server, "/v1/chat/completions",
                    json={"model": "any", "messages": [{"role": "user", "content": COMPLAINT}]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "merged"
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    # no system turn sent: the server adds the empty one the model was trained with, so this is /predict's answer
    assert choice["message"]["content"] == post(server, "/predict", json={"complaint": COMPLAINT}).json()["answer"]
    prompt = tokenizer.apply_chat_template(prompt_messages(COMPLAINT), tokenize=False, add_generation_prompt=True)
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > usage["prompt_tokens"]

    as_parts = post(server, "/v1/chat/completions", json={"messages": [
        {"role": "system", "content": ""}, {"role": "user", "content": [{"type": "text", "text": COMPLAINT}]}]})
    assert as_parts.json()["choices"][0]["message"]["content"] == choice["message"]["content"]

    assert usage["completion_tokens"] > 3
    cut = post(server, "/v1/chat/completions",
               json={"messages": [{"role": "user", "content": COMPLAINT}], "max_tokens": 3}).json()
    assert cut["usage"]["completion_tokens"] == 3 and cut["choices"][0]["finish_reason"] == "length"
    assert choice["message"]["content"].startswith(cut["choices"][0]["message"]["content"])


CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": COMPLAINT}]


@pytest.mark.parametrize("path, kwargs, status, fragment", [
    ("/predict", {"json": {}}, 422, "complaint: Field required"),
    ("/predict", {"json": {"complaint": ""}}, 422, "complaint: String should have at least 1 character"),
    ("/predict", {"json": {"complaint": "  \n "}}, 422, "complaint: must contain text"),
    ("/predict", {"json": {"complaint": 42}}, 422, "complaint: Input should be a valid string"),
    ("/predict", {"json": {"complaint": ["a cough"]}}, 422, "complaint: Input should be a valid string"),
    ("/predict", {"json": {"complaint": "x" * (MAX_CHARS + 1)}}, 422, f"at most {MAX_CHARS} characters"),
    ("/predict", {"content": b'{"complaint": "a cough"', "headers": {"content-type": "application/json"}}, 400,
     "the body is not valid JSON"),
    ("/predict", {"content": b'{"complaint": "a cough"}', "headers": {"content-type": "text/plain"}}, 415,
     "Content-Type: application/json"),
    ("/predict", {"headers": {"content-type": "application/json"}}, 422, "the request has no body"),
    ("/predict", {"json": {"complaint": "x" * 40_000}}, 413, "this server reads at most"),
    (CHAT, {"json": {"messages": []}}, 422, "messages: List should have at least 1 item"),
    (CHAT, {"json": {"messages": [{"role": "doctor", "content": "hi"}]}}, 422, "messages.0.role"),
    (CHAT, {"json": {"messages": [{"role": "system", "content": "hi"}]}}, 422, "need a user turn"),
    (CHAT, {"json": {"messages": USER, "temperature": 0.7}}, 422, "decodes greedily"),
    (CHAT, {"json": {"messages": USER, "stream": True}}, 422, "streaming is not supported"),
    (CHAT, {"json": {"messages": USER, "n": 2}}, 422, "n must be 1"),
    (CHAT, {"json": {"messages": USER, "max_tokens": 0}}, 422, "max_tokens"),
    (CHAT, {"json": {"messages": [{"role": "user", "content": "x" * (MAX_CHARS + 1)}]}}, 422,
     f"at most {MAX_CHARS}"),
])
def test_a_bad_request_gets_a_4xx_and_one_line(server, path, kwargs, status, fragment):
    response = post(server, path, **kwargs)
    assert response.status_code == status
    assert fragment in one_line_error(response)


def test_unknown_paths_and_methods_get_one_line_too(server):
    assert httpx.get(f"{server.url}/predict").status_code == 405
    missing = httpx.get(f"{server.url}/nowhere")
    assert missing.status_code == 404 and one_line_error(missing) == "Not Found"


def test_the_server_keeps_serving_after_bad_requests(server):
    post(server, "/predict", content=b"{", headers={"content-type": "application/json"})
    assert post(server, "/predict", json={"complaint": COMPLAINT}).status_code == 200
    assert server.health()["status"] == "ok"


def test_a_concurrent_burst_is_answered_in_batches(server, complaints):
    before = server.health()["batch_sizes"]
    run = load_test(server.url, complaints, requests=32, concurrency=8, timeout_s=TIMEOUT_S)
    assert (run["ok"], run["errors"]) == (32, 0), run["error_kinds"]
    assert 0 < run["p50_ms"] <= run["p95_ms"] and run["requests_per_s"] > 0
    assert all(isinstance(answer, str) for answer in run["answers"])
    after = server.health()["batch_sizes"]
    new = {int(size): count - before.get(size, 0) for size, count in after.items() if count > before.get(size, 0)}
    assert sum(size * count for size, count in new.items()) == 32
    assert max(new) > 1  # requests that arrived together were generated together


def test_a_full_queue_answers_503_at_once(small_server, complaints):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=small_server.url, timeout=TIMEOUT_S) as client:
            return await asyncio.gather(*(client.post("/predict", json={"complaint": c}) for c in complaints * 3))

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503}  # one request generating, two waiting, the rest refused
    for refused in (r for r in responses if r.status_code == 503):
        assert "busy" in one_line_error(refused) and refused.headers["retry-after"] == "1"
    health = small_server.health()
    assert health["status"] == "ok" and health["queued"] == 0 and health["batch_sizes"] == {"1": statuses.count(200)}


def test_sigterm_answers_the_request_in_flight_then_exits_0(small_server):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, small_server, CHAT, json={"messages": USER, "max_tokens": 64})  # a long one
        while small_server.health()["generating"] == 0:
            assert not in_flight.done(), in_flight.result().text
            time.sleep(0.05)
        small_server.process.send_signal(signal.SIGTERM)
        assert in_flight.result().status_code == 200
    assert small_server.process.wait(timeout=60) == 0
    log = small_server.log.read_text()
    assert "Finished server process" in log and "Traceback" not in log


# --- the command line and the load generator --------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "model directory 'no-such-model' does not exist"),
    (["--model", str(BASE_MODEL_DIR), "--port", "http"], "argument --port: 'http' is not a number"),
    (["--model", str(BASE_MODEL_DIR), "--port", "70000"], "argument --port: 70000 is outside 1..65535"),
    (["--model", str(BASE_MODEL_DIR), "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--model", str(BASE_MODEL_DIR), "--max-queue", "0"], "argument --max-queue: 0 is outside"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    result = run_module("helpers.serve", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1


def test_cli_reports_a_port_in_use_before_loading_the_model(base):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_module("helpers.serve", "--model", str(BASE_MODEL_DIR), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("url", ["http://example.com:8000", "http://10.1.2.3:8000", "not a url"])
def test_load_tests_only_go_to_this_machine(url):
    with pytest.raises(CourseError, match="load tests only go to this machine|is not a URL"):
        check_loopback(url)
    assert check_loopback("http://localhost:8000/") == "http://localhost:8000"
    assert check_loopback("http://[::1]:8000") == "http://[::1]:8000"


def test_load_tests_are_bounded():
    with pytest.raises(CourseError, match="requests must be"):
        load_test("http://127.0.0.1:9", [COMPLAINT], requests=MAX_REQUESTS + 1)
    result = run_module("helpers.loadtest", "--url", "http://192.0.2.1:8000")
    assert result.returncode == 2 and "load tests only go to this machine" in result.stderr


def test_a_load_test_runs_where_an_event_loop_already_runs(server, complaints):
    """A notebook's kernel runs an event loop: load_test must work there too (asyncio.run alone refuses)."""
    async def from_a_running_loop():
        return load_test(server.url, complaints[:2], requests=2, concurrency=1, timeout_s=TIMEOUT_S)

    report = asyncio.run(from_a_running_loop())
    assert report["ok"] == 2 and report["errors"] == 0 and all(report["answers"])
