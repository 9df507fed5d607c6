"""Chapter 7: serving the fine-tuned model over HTTP.

    python -m helpers.serve --model outputs/merged [--host 127.0.0.1] [--port 8000] [--dtype float32]

``--model`` is a merged model directory or a LoRA adapter directory (applied
on the fly to the base it names). The server listens on the loopback
interface unless told otherwise and answers:

* ``POST /predict`` ``{"complaint": "..."}``: the model's raw answer and what
  it means in the official ICD-10-CM table: ``code``, ``title``, ``billable``
  and, when the answer is no billable code, a ``reason`` (``no_code``,
  ``invalid_code`` or ``non_billable_code``; an invalid code is never
  returned as ``code``). The prompt is the one the model was trained on (an
  empty system turn, then the complaint), so the answer is the one
  :func:`helpers.evaluation.generate_answers` gives for the same complaint.
* ``POST /v1/chat/completions``: the OpenAI chat-completions contract
  (non-streaming), so standard clients work. Decoding is greedy. A
  conversation without a system turn gets the empty one the model was
  trained with, so a client that sends the complaint alone gets the answer
  ``/predict`` gives.
* ``GET /v1/models`` and ``GET /health`` (settings, load time, queue, the
  sizes of the batches run so far, peak memory).

Requests that arrive together are answered in one batch (micro-batching):
a batch starts when ``--max-batch`` requests wait or ``--max-wait-ms`` after
the first one arrived. At most ``--max-queue`` requests wait; beyond that the
server answers 503 at once rather than let memory grow. A batch pads its
prompts on the left, and the padded matrix products may round differently
in the last bits from one prompt alone, so a batched greedy answer can in
rare cases differ from the same request served alone (``helpers.loadtest``
measures how often on real complaints).

Every bad request gets a 4xx and one line of JSON
(``{"error": {"message": ..., "type": ...}}``, the shape OpenAI's API uses).
"""
# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time, and the
# request models are built inside create_app (they carry --max-chars), where a string annotation cannot be resolved.
import argparse
import asyncio
import contextlib
import math
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, StrictStr, StringConstraints, field_validator, model_validator
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from helpers.chat import SYSTEM_PROMPT, extract_code, prompt_messages
from helpers.cli import Parser
from helpers.errors import CourseError, run_cli
from helpers.memory import peak_rss_mib
from helpers.paths import show

#: the most new tokens a chat request may ask for
MAX_NEW_TOKENS = 256
#: the most messages in one chat request
MAX_MESSAGES = 64
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Settings:
    model: Path
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 64
    max_chars: int = 2000
    threads: int | None = None  # PyTorch's threads for one batch (None: its default, one per core)
    access_log: bool = False

    def describe(self) -> dict:
        return {"model": show(self.model), "device": self.device, "dtype": self.dtype, "quantize": self.quantize,
                "max_batch": self.max_batch, "max_wait_ms": self.max_wait_ms, "max_queue": self.max_queue,
                "max_chars": self.max_chars, "threads": self.threads}


# --- what an answer means ----------------------------------------------------------------------------------------

def describe_answer(answer: str) -> dict:
    """The code in a model answer, checked against the ICD-10-CM table.

    ``code`` is set only for a code the table knows; ``billable`` only for a
    leaf code; ``reason`` says why an answer is not a billable code.
    """
    import simple_icd_10_cm as icd  # reads the whole table (seconds): the server imports it before it serves

    from helpers.icd10 import is_billable, title

    code = extract_code(answer)
    if code is None:
        return {"code": None, "title": None, "billable": False, "reason": "no_code", "answer": answer}
    if not icd.is_valid_item(code):
        return {"code": None, "title": None, "billable": False, "reason": "invalid_code", "answer": answer}
    billable = is_billable(code)
    return {"code": code, "title": title(code), "billable": billable,
            "reason": None if billable else "non_billable_code", "answer": answer}


# --- micro-batching ------------------------------------------------------------------------------------------------

class Overloaded(Exception):
    """The queue is full: the request is refused (503) instead of waiting without bound."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool  # ended with the end-of-turn token (else cut at the token limit)


@dataclass
class Job:
    prompt: str
    max_new_tokens: int
    future: asyncio.Future


BatchRunner = Callable[[list[tuple[str, int]]], list[Completion]]


@dataclass
class MicroBatcher:
    """Gathers the requests waiting in a bounded queue into batches for one generation call at a time.

    Generation runs in one worker thread, so the event loop keeps accepting
    (and refusing) requests while a batch computes.
    """
    run_batch: BatchRunner
    max_batch: int
    max_wait_ms: float
    max_queue: int
    worker_setup: Callable[[], None] | None = None  # run once in the generation thread before its first batch
    batch_sizes: Counter = field(default_factory=Counter)
    queue: asyncio.Queue = field(init=False)

    def __post_init__(self):
        self.queue = asyncio.Queue(self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate",
                                            initializer=self.worker_setup)
        self._task: asyncio.Task | None = None
        self.generating = 0  # requests in the batch being generated now

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self.queue.empty():
            job = self.queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(Overloaded("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, prompt: str, max_new_tokens: int) -> Completion:
        job = Job(prompt, max_new_tokens, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(f"the server is busy ({self.max_queue} requests waiting); retry shortly") from None
        return await job.future

    async def _next_batch(self) -> list[Job]:
        batch = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_ms / 1000
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while len(batch) < self.max_batch:
                    batch.append(await self.queue.get())
        return [job for job in batch if not job.future.done()]  # one cancelled while it waited is not generated

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            self.batch_sizes[len(batch)] += 1
            self.generating = len(batch)
            try:
                done = await loop.run_in_executor(
                    self._executor, self.run_batch, [(job.prompt, job.max_new_tokens) for job in batch])
            except Exception as exc:  # noqa: BLE001 - the requests of this batch fail, the server goes on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self.generating = 0
            for job, completion in zip(batch, done):
                if not job.future.done():
                    job.future.set_result(completion)


def batch_runner(model, tokenizer) -> BatchRunner:
    """Generate for a batch of (chat-formatted prompt, token limit) pairs with the evaluation's own code path."""
    from helpers.evaluation import generate_batch
    def run(jobs: list[tuple[str, int]]) -> list[Completion]:
        prompt_tokens, new_tokens = generate_batch(model, tokenizer, [prompt for prompt, _ in jobs],
                                                   max(limit for _, limit in jobs))
        out = []
        for (_, limit), n_prompt, ids in zip(jobs, prompt_tokens, new_tokens):
            ids = ids[:limit]  # greedy: the first tokens do not depend on how long the batch ran
            out.append(Completion(text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
                                  prompt_tokens=n_prompt, completion_tokens=len(ids),
                                  finished=bool(ids) and ids[-1] == tokenizer.eos_token_id))
        return out

    return run


# --- request and response bodies ---------------------------------------------------------------------------------

def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain text, not only spaces")
    return value


def request_models(max_chars: int):
    """The request bodies, with the server's character limit built into their validation."""
    Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=max_chars), AfterValidator(_has_text)]

    class PredictRequest(BaseModel):
        complaint: Text

    class TextPart(BaseModel):
        type: Literal["text"]
        text: StrictStr

    class Message(BaseModel):
        role: Literal["system", "user", "assistant"]
        content: StrictStr | list[TextPart]

        def text(self) -> str:
            return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    class ChatRequest(BaseModel):
        model: str | None = None  # one model is served, whatever the client names
        messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
        max_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
        max_completion_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
        temperature: float | None = None
        n: int = 1
        stream: bool = False

        @field_validator("temperature")
        @classmethod
        def greedy(cls, value: float | None) -> float | None:
            if value not in (None, 0):
                raise ValueError("this server decodes greedily: leave temperature out or send 0")
            return value

        @field_validator("n")
        @classmethod
        def one_choice(cls, value: int) -> int:
            if value != 1:
                raise ValueError("greedy decoding gives one answer: n must be 1")
            return value

        @field_validator("stream")
        @classmethod
        def not_streamed(cls, value: bool) -> bool:
            if value:
                raise ValueError("streaming is not supported: send stream false (or leave it out)")
            return value

        @model_validator(mode="after")
        def within_limits(self):
            chars = sum(len(m.text()) for m in self.messages)
            if chars > max_chars:
                raise ValueError(f"the messages hold {chars} characters; this server takes at most {max_chars}")
            if not any(m.role == "user" and m.text().strip() for m in self.messages):
                raise ValueError("the messages need a user turn with text")
            return self

        def conversation(self) -> list[dict]:
            """The messages for the chat template, with the trained empty system turn when the client sent none."""
            turns = [{"role": m.role, "content": m.text()} for m in self.messages]
            if not any(t["role"] == "system" for t in turns):
                turns.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
            return turns

    return PredictRequest, ChatRequest


class Prediction(BaseModel):
    code: str | None
    title: str | None
    billable: bool
    reason: Literal["no_code", "invalid_code", "non_billable_code"] | None
    answer: str


# --- errors: one line of JSON ------------------------------------------------------------------------------------

def error_response(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": " ".join(message.split()), "type": kind}}, status, headers=headers)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return error_response(400, f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'unreadable')} "
                                   f"at character {first['loc'][-1]})", "invalid_request_error")
    if isinstance(exc.body, bytes) and exc.body and not _is_json(request.headers.get("content-type")):
        return error_response(415, "send the body as JSON with the header Content-Type: application/json",
                              "invalid_request_error")
    where = ".".join(str(part) for part in first["loc"][1:])
    if not where and first["type"] == "missing":
        return error_response(422, "the request has no body: send a JSON object", "invalid_request_error")
    where = where or "body"
    message = first["msg"].removeprefix("Value error, ")
    return error_response(422, f"{where}: {message}", "invalid_request_error")


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), "invalid_request_error", headers=exc.headers)


async def on_overloaded(request: Request, exc: Overloaded) -> JSONResponse:
    return error_response(503, str(exc), "overloaded", headers={"Retry-After": "1"})


async def on_server_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"generation failed: {type(exc).__name__}: {exc}".splitlines()[0], "server_error")


# --- the application ---------------------------------------------------------------------------------------------

def thread_setup(threads: int | None) -> Callable[[], None] | None:
    """What sets PyTorch's thread count in a thread (OpenMP keeps one count per thread)."""
    if threads is None:
        return None
    import torch

    return lambda: torch.set_num_threads(threads)


def create_app(model, tokenizer, settings: Settings, load_seconds: float | None = None) -> FastAPI:
    """The FastAPI application serving ``model``; batches run while the app's lifespan lasts."""
    from helpers.evaluation import ANSWER_TOKENS  # the evaluation's answer length (imported here: it loads torch)

    PredictRequest, ChatRequest = request_models(settings.max_chars)
    name = Path(settings.model).name
    served = Counter()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.batcher = MicroBatcher(batch_runner(model, tokenizer), settings.max_batch, settings.max_wait_ms,
                                         settings.max_queue, worker_setup=thread_setup(settings.threads))
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(title="ICD-10-CM coder", lifespan=lifespan, openapi_url=None)
    # JSON may escape one character as up to 12 bytes (a surrogate pair); a longer body is refused unread (413).
    # Starlette's middleware counts the bytes of a body sent without a length; one that declares its length is
    # answered before that middleware, which would reply in plain text.
    max_body = 12 * settings.max_chars + 16_384
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body)

    @app.middleware("http")
    async def declared_length(request: Request, call_next):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return error_response(413, f"the body has {declared} bytes; this server reads at most {max_body}",
                                  "invalid_request_error")
        return await call_next(request)

    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Overloaded, on_overloaded)
    app.add_exception_handler(Exception, on_server_error)

    def template(messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @app.post("/predict", response_model=Prediction)
    async def predict(body: PredictRequest, request: Request) -> dict:
        done = await request.app.state.batcher.submit(template(prompt_messages(body.complaint)), ANSWER_TOKENS)
        served["predict"] += 1
        return describe_answer(done.text)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> dict:
        limit = body.max_completion_tokens or body.max_tokens or ANSWER_TOKENS
        done = await request.app.state.batcher.submit(template(body.conversation()), limit)
        served["chat"] += 1
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "finish_reason": "stop" if done.finished else "length", "logprobs": None}],
            "usage": {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                      "total_tokens": done.prompt_tokens + done.completion_tokens},
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "course"}]}

    @app.get("/health")
    async def health(request: Request) -> dict:
        batcher = request.app.state.batcher
        return {"status": "ok", **settings.describe(), "load_seconds": load_seconds,
                "queued": batcher.queue.qsize(), "generating": batcher.generating, "served": dict(served),
                "batch_sizes": {str(k): v for k, v in sorted(batcher.batch_sizes.items())},
                "peak_rss_mib": round(peak, 1) if (peak := peak_rss_mib()) is not None else None}

    return app


# --- command line ------------------------------------------------------------------------------------------------

def load_for_serving(settings: Settings):
    """(model, tokenizer, seconds to load) for ``settings``."""
    import peft  # noqa: F401 - imported before the clock starts: the load time is the model's alone
    import simple_icd_10_cm  # noqa: F401 - the ICD-10-CM table, read now rather than on the first request
    import torch
    import transformers

    from helpers.models import load_trained

    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise CourseError(f"--device {settings.device}: no CUDA device is available here")
    transformers.utils.logging.disable_progress_bar()  # a progress bar per start is noise in a server log
    start = time.perf_counter()
    model, tokenizer = load_trained(settings.model, device=settings.device, dtype=settings.dtype,
                                    quantization=settings.quantize)
    return model, tokenizer, round(time.perf_counter() - start, 2)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind the address before the model loads, so a port in use is reported at once."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise CourseError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock  # uvicorn starts listening once the application is ready


def _in_range(kind: type, low: float, high: float = math.inf) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low}..{high}".replace("..inf", " or more"))
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m helpers.serve", description="Serve a merged model or a LoRA adapter over HTTP.")
    p.add_argument("--model", required=True, type=Path, help="merged model or LoRA adapter directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", default=8000, type=_in_range(int, 1, 65535))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--quantize", choices=("8bit",), help="reload the weights in 8 bits (bitsandbytes)")
    p.add_argument("--max-batch", default=8, type=_in_range(int, 1, 256), help="requests per batch at most")
    p.add_argument("--max-wait-ms", default=5.0, type=_in_range(float, 0, 10_000),
                   help="how long a batch waits for more requests after the first")
    p.add_argument("--max-queue", default=64, type=_in_range(int, 1, 100_000),
                   help="requests waiting at most; more get 503")
    p.add_argument("--max-chars", default=2000, type=_in_range(int, 1, 1_000_000), help="characters per request")
    p.add_argument("--threads", type=_in_range(int, 1, 1024),
                   help="PyTorch threads per batch (default: one per core; 1 on a machine shared with busy processes)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p


def stop_cleanly(signum: int, frame) -> None:
    """SIGTERM or Ctrl-C: the normal end of a server, so exit code 0 and no traceback.

    uvicorn shuts down gracefully on these signals (the requests in flight are
    answered), then raises the same signal again; this handler receives it.
    Before uvicorn runs (while the model loads) it simply stops the process.
    """
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, stop_cleanly)
    args = parser().parse_args(argv)
    settings = Settings(model=args.model, host=args.host, port=args.port, device=args.device, dtype=args.dtype,
                        quantize=args.quantize, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                        max_queue=args.max_queue, max_chars=args.max_chars, threads=args.threads,
                        access_log=args.access_log)
    from helpers.models import model_kind
    from helpers.notebook import quiet

    quiet()  # library notices off (a missing optional kernel is not the server's news); uvicorn's log stays
    kind = model_kind(settings.model)
    sock = listening_socket(settings.host, settings.port)
    model, tokenizer, seconds = load_for_serving(settings)
    print(f"serving the {kind} in {show(settings.model)} ({settings.quantize or settings.dtype} on {settings.device}, "
          f"loaded in {seconds:.1f} s) at http://{settings.host}:{settings.port}", flush=True)
    import uvicorn

    config = uvicorn.Config(create_app(model, tokenizer, settings, seconds), host=settings.host, port=settings.port,
                            access_log=settings.access_log, timeout_graceful_shutdown=30, log_level="info")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
