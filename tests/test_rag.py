import json
import socket

import numpy as np
import pytest

from helpers import rag
from helpers.curate import normalise
from helpers.errors import CourseError
from helpers.paths import DATA
from helpers.rag import Document, Hit

CODES = ["M54.50", "J02.9", "H10.9"]
#: labelled complaints for the tiny knowledge base (written for these tests, not taken from the splits)
EXAMPLES = [
    {"code": "M54.50", "instruction": "Code this for the chart: my lower back aches when I bend down"},
    {"code": "J02.9",
     "instruction": "What is the ICD-10-CM code for this complaint: sore scratchy throat, hurts to swallow"},
    {"code": "H10.9", "instruction": 'Patient says: "my eye is red and crusty every morning" Give the diagnosis code.'},
]


class CountingEmbedder:
    """The real embedder, counting its calls and the texts it is asked to embed."""

    def __init__(self, model):
        self.model, self.calls, self.texts = model, 0, 0

    def encode(self, texts, **kwargs):
        self.calls += 1
        self.texts += len(texts)
        return self.model.encode(texts, **kwargs)


@pytest.fixture(scope="module")
def embedder():
    return rag.load_embedder()


@pytest.fixture(scope="module")
def documents():
    return rag.catalogue(rag.billable_codes("dataset-categories", CODES)) + rag.examples(EXAMPLES)


@pytest.fixture(scope="module")
def index(embedder, documents, tmp_path_factory):
    built = rag.build_index(documents, embedder, ":memory:", cache=tmp_path_factory.mktemp("cache") / "e.npz")
    yield built
    built.client.close()


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- queries ---------------------------------------------------------------------------------------------------

def test_strip_wrapper_recovers_the_complaint_from_every_instruction_template():
    source = json.loads((DATA / "complaints.json").read_text(encoding="utf-8"))
    complaints = [source["M54.50"]["complaints"][0], "It's my 'bad' knee again: \"clicking\" when I climb stairs."]
    templates = rag.instruction_templates()
    assert len(templates) == 10
    for number, template in enumerate(templates):
        for complaint in complaints:
            for instruction in (template.format(c=complaint), normalise(template.format(c=complaint))):
                assert rag.wrapper_of(instruction) == number, instruction
                assert rag.strip_wrapper(instruction) == complaint


def test_an_instruction_in_another_wording_is_kept_whole():
    assert rag.wrapper_of("please code: my ear hurts") is None
    assert rag.strip_wrapper("  please code: my ear hurts ") == "please code: my ear hurts"


# --- documents -------------------------------------------------------------------------------------------------

def test_dataset_scope_holds_the_codes_and_their_billable_siblings_only():
    codes = rag.billable_codes("dataset-categories", ["M54.50", "R05.9"])
    assert {"M54.50", "M54.51", "M54.59", "R05.1", "R05.9"} <= set(codes)
    assert "M54.5" not in codes and "R05" not in codes  # headers, not billable
    assert all(c.startswith(("M54", "R05")) for c in codes)


def test_catalogue_documents_hold_title_and_inclusion_terms_and_examples_the_complaint(documents):
    assert rag.document_text("M54.50") == "Low back pain, unspecified; Loin pain; Lumbago NOS"
    examples = [d for d in documents if d.kind == "example"]
    assert examples[0] == Document("M54.50", "my lower back aches when I bend down", "example", "row 1")


def test_bad_inputs_are_one_line_errors(index, tmp_path):
    with pytest.raises(CourseError) as excinfo:
        rag.catalogue(["M54.50", "X99.99"])
    assert "'X99.99' is not an ICD-10-CM code" in one_line_error(excinfo)
    with pytest.raises(CourseError, match="'M54' is a category, not a billable code"):
        rag.billable_codes("dataset-categories", ["M54"])
    with pytest.raises(CourseError, match="'C00-C96' is a block of categories, not a billable code"):
        rag.catalogue(["C00-C96"])  # a block without children: a leaf of the table, but no code
    with pytest.raises(CourseError, match="'M54.5' is no longer billable: its successor is M54.50"):
        rag.catalogue(["M54.5"])
    with pytest.raises(CourseError, match="'M5450' must be written with its dot, M54.50"):
        rag.catalogue(["M5450"])
    with pytest.raises(CourseError, match="unknown retrieval scope"):
        rag.billable_codes("everything")
    with pytest.raises(CourseError) as excinfo:
        rag.load_examples(tmp_path / "train.jsonl")
    assert one_line_error(excinfo).startswith("train.jsonl: no such knowledge-base file")
    (tmp_path / "kb.jsonl").write_text('{"code": "J02.9", "instruction": "sore throat"}\n{"code": "J02.9"}\n')
    with pytest.raises(CourseError, match="kb.jsonl line 2: a knowledge-base row needs string fields"):
        rag.load_examples(tmp_path / "kb.jsonl")
    with pytest.raises(CourseError) as excinfo:
        index.search(["sore throat", "  "])
    assert one_line_error(excinfo) == "query 2 is empty: retrieval needs the complaint's text"
    with pytest.raises(CourseError, match="unknown retrieval method 'bm42'"):
        index.search(["sore throat"], method="bm42")
    stray = rag.examples([{"code": "R05.9", "instruction": "dry cough", "source": "kb.jsonl:7"}])
    with pytest.raises(CourseError, match=r"example kb.jsonl:7: code R05.9 is not in the catalogue \(1 codes\)"):
        rag.build_index(rag.catalogue(["J02.9"]) + stray, None, cache=None)


# --- the index -------------------------------------------------------------------------------------------------

def test_the_index_builds_and_answers_offline(index):
    queries = ["lumbago", "my throat is so sore I can hardly swallow", "pink eye, sticky in the morning"]
    for method in rag.METHODS:
        hits = index.search(queries, k=5, method=method)
        assert rag.recall_at(hits, CODES, 5) == 1.0, method
        assert all(len({h.code for h in hs}) == len(hs) <= 5 for hs in hits)  # codes, each once
    found = rag.candidates(index, EXAMPLES[1], k=3)
    assert found[0].code == "J02.9" and found[0].title == "Acute pharyngitis, unspecified"
    prompt = rag.rag_instruction(EXAMPLES[1]["instruction"], found)
    assert "- J02.9: Acute pharyngitis, unspecified" in prompt and prompt.count("\n- ") == 3
    assert rag.top1_answers([found]) == ["DIAGNOSIS_CODE: J02.9"]


def test_an_index_built_without_an_embedder_is_bm25_alone(documents):
    bm25_only = rag.build_index(documents, None)
    assert bm25_only.client is None
    assert bm25_only.search(["loin pain"], k=1, method="sparse")[0][0].code == "M54.50"
    with pytest.raises(CourseError, match="built without an embedder: it answers method 'sparse' only"):
        bm25_only.search(["lumbago"], method="fusion")


def test_a_code_ranks_by_its_best_document(index):
    # the example is the only document that says "crusty": BM25 finds H10.9 through it
    assert index.sparse("crusty")[0].code == "H10.9"
    dense = index.dense(index.query_vectors(["my eye is red and crusty every morning"])[0])
    assert dense[0] == Hit("H10.9", pytest.approx(1.0, abs=1e-5))  # the example itself


def test_a_second_build_embeds_nothing_and_a_changed_document_only_itself(embedder, documents, tmp_path):
    counting = CountingEmbedder(embedder)
    cache = tmp_path / "embeddings.npz"
    first = rag.build_index(documents, counting, ":memory:", cache=cache)
    assert counting.texts == len({d.text for d in documents})
    counting.calls = counting.texts = 0
    again = rag.build_index(documents, counting, ":memory:", cache=cache)
    assert counting.calls == counting.texts == 0
    changed = documents[:-1] + [Document("H10.9", "both eyes itchy and watery", "example")]
    third = rag.build_index(changed, counting, ":memory:", cache=cache)
    assert counting.calls == counting.texts == 1
    cached = rag.EmbeddingCache(cache).get([rag.content_key("both eyes itchy and watery", rag.embedding_model_id())])
    assert np.allclose(cached, rag.encode(embedder, ["both eyes itchy and watery"]), atol=1e-5)
    for built in (first, again, third):
        built.client.close()


def test_a_progress_bar_shows_for_long_embedding_runs_only(embedder, monkeypatch, capfd):
    monkeypatch.setattr(rag, "PROGRESS_FROM", 3)  # the threshold, not the embedding, is what is scaled down
    rag.embed(embedder, ["dry cough", "wet cough"])
    assert "embedding" not in capfd.readouterr().err
    rag.embed(embedder, ["dry cough", "wet cough", "barking cough"])
    assert "embedding: 100%" in capfd.readouterr().err


def test_an_index_on_disk_is_reused_when_its_content_is_unchanged(embedder, documents, tmp_path):
    cache, folder = tmp_path / "e.npz", tmp_path / "qdrant"
    first = rag.build_index(documents, embedder, folder, cache=cache)
    first.client.close()
    reopened = rag.connect(folder)
    assert [c.name for c in reopened.get_collections().collections] == [first.collection]
    reopened.close()
    second = rag.build_index(documents[:-1], embedder, folder, cache=cache)  # other content, other collection
    assert [c.name for c in second.client.get_collections().collections] == [second.collection]
    assert second.collection != first.collection
    assert second.client.count(second.collection).count == len(documents) - 1
    second.client.close()


def test_a_server_url_builds_a_remote_client_and_fails_in_one_line_when_nothing_listens():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = rag.connect(url, probe=False)
    assert client.init_options["url"] == url and client.init_options["location"] is None
    assert type(client._client).__name__ == "QdrantRemote"
    with pytest.raises(CourseError) as excinfo:
        rag.connect(url, timeout=2)
    assert one_line_error(excinfo).startswith(f"no Qdrant server answers at {url} (")


# --- fusion and metrics ----------------------------------------------------------------------------------------

def test_reciprocal_rank_fusion_on_a_hand_made_case():
    dense = [Hit("A", 0.9), Hit("B", 0.8), Hit("C", 0.7)]
    sparse = [Hit("C", 12.0), Hit("A", 3.0), Hit("D", 1.0)]
    fused = rag.rrf([dense, sparse], k=60)
    assert [h.code for h in fused] == ["A", "C", "B", "D"]  # A: 1/61 + 1/62; C: 1/63 + 1/61; B: 1/62; D: 1/63
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert [h.code for h in rag.rrf([dense])] == ["A", "B", "C"]


def test_rrf_ranks_as_qdrants_fusion_query_does():
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("c", vectors_config={"dense": models.VectorParams(size=2, distance=models.Distance.DOT)},
                             sparse_vectors_config={"sparse": models.SparseVectorParams()})
    dense = [[1, 0], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0, 1]]
    sparse = [([0], [0.2]), ([0], [3.0]), ([0, 1], [1.0, 1.0]), ([1], [2.0]), ([0], [0.5])]
    client.upsert("c", [models.PointStruct(id=i, vector={
        "dense": d, "sparse": models.SparseVector(indices=ix, values=v)})
                        for i, (d, (ix, v)) in enumerate(zip(dense, sparse))])
    prefetch = [models.Prefetch(query=[1.0, 0.2], using="dense", limit=5),
                models.Prefetch(query=models.SparseVector(indices=[0], values=[1.0]), using="sparse", limit=5)]
    # Qdrant counts ranks from 0 (1 / (k + rank0)): its k=61 is the textbook k=60 that rrf() uses
    theirs = client.query_points("c", prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=rag.RRF_K + 1)),
                                 limit=5).points
    rankings = [[Hit(str(p.id), p.score) for p in client.query_points("c", query=f.query, using=f.using,
                                                                     limit=5).points] for f in prefetch]
    ours = rag.rrf(rankings)
    assert [h.code for h in ours] == [str(p.id) for p in theirs]
    assert [h.score for h in ours] == pytest.approx([p.score for p in theirs])
    client.close()


def test_bm25s_scores_equal_qdrant_sparse_vectors_built_from_them():
    import bm25s
    import scipy.sparse as sp
    from qdrant_client import QdrantClient, models

    texts = ["sore throat and cough", "low back pain", "throat pain when swallowing, sore", "red eye"]
    bm25 = bm25s.BM25()
    bm25.index(rag.bm25_tokens(texts), show_progress=False)
    scores = bm25.scores
    by_doc = sp.csc_matrix((scores["data"], scores["indices"], scores["indptr"]),
                           shape=(scores["num_docs"], len(scores["indptr"]) - 1)).tocsr()
    client = QdrantClient(":memory:")
    client.create_collection("c", vectors_config={}, sparse_vectors_config={"bm25": models.SparseVectorParams()})
    client.upsert("c", [models.PointStruct(id=i, vector={"bm25": models.SparseVector(
        indices=by_doc[i].indices.tolist(), values=by_doc[i].data.tolist())}) for i in range(len(texts))])
    query = rag.bm25_tokens(["my sore throat"], ids=False)[0]
    ids = sorted(bm25.vocab_dict[t] for t in query if t in bm25.vocab_dict)
    points = client.query_points("c", query=models.SparseVector(indices=ids, values=[1.0] * len(ids)), using="bm25",
                                 limit=4).points
    expected = bm25.get_scores(query)
    assert {p.id: p.score for p in points} == pytest.approx({i: s for i, s in enumerate(expected) if s > 0})
    client.close()


def test_recall_at_k_on_a_hand_made_case():
    hits = [[Hit("A", 1), Hit("B", 1)], [Hit("C", 1), Hit("A", 1)], [Hit("D", 1)]]
    references = ["A", "A", "B"]
    assert rag.recall_at(hits, references, 1) == pytest.approx(1 / 3)
    assert rag.recall_at(hits, references, 2) == pytest.approx(2 / 3)
    with pytest.raises(CourseError):
        rag.recall_at([], [], 1)


def test_measure_reports_recall_and_latency_per_method(index):
    rows = [{"code": c, "instruction": e["instruction"]} for c, e in zip(CODES, EXAMPLES)]
    report = rag.measure(index, rows, ks=(1, 5))
    assert set(report) == set(rag.METHODS)
    for method, result in report.items():
        assert result["n"] == 3 and result["recall@1"] == 1.0 and result["recall@5"] == 1.0, method
        assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]
        alone = index.search([rag.strip_wrapper(e["instruction"]) for e in EXAMPLES], 5, method)
        assert [[h.code for h in hs] for hs in result["hits"]] == [[h.code for h in hs] for hs in alone]


def test_chosen_candidates_reads_the_first_candidate_mentioned():
    hits = [[Hit("M54.50", 0.9), Hit("M54.59", 0.8)], [Hit("R05.9", 0.7)]]
    answers = ["The correct answer is M54.59, not M54.50", "I am not sure"]
    assert rag.chosen_candidates(answers, hits) == ["DIAGNOSIS_CODE: M54.59", "I am not sure"]


def test_raft_rows_list_k_candidates_with_the_right_code_in_the_kept_share_only(index):
    rows = [{**e, "response": f"DIAGNOSIS_CODE: {e['code']}"} for e in EXAMPLES] * 20
    made = rag.raft_rows(rows, index, k=4, keep_gold=0.5, seed=1)
    listed = [[line[2:].split(":")[0] for line in r["instruction"].splitlines() if line.startswith("- ")]
              for r in made]
    assert all(len(codes) == 4 and len(set(codes)) == 4 for codes in listed)
    with_gold = [row["code"] in codes for row, codes in zip(rows, listed)]
    assert 0 < sum(with_gold) < len(rows)  # some prompts hold the answer, some do not
    # the right code is not always first: its place is drawn, so position alone does not give the answer away
    assert len({codes.index(row["code"]) for row, codes, kept in zip(rows, listed, with_gold) if kept}) > 1
    for row, new in zip(rows, made):
        assert new["response"] == row["response"] and new["prompt"][-1]["content"] == new["instruction"]
        assert row["instruction"] in new["instruction"]
    assert made == rag.raft_rows(rows, index, k=4, keep_gold=0.5, seed=1)  # a fixed seed, the same rows
    assert all(row["code"] in codes for row, codes in zip(rows, [
        [line[2:].split(":")[0] for line in r["instruction"].splitlines() if line.startswith("- ")]
        for r in rag.raft_rows(rows, index, k=4, keep_gold=1.0)]))
    with pytest.raises(CourseError):
        rag.raft_rows(rows, index, k=0)
