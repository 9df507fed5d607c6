from helpers.rag import billable_codes, build_index, document_text, load_embedder, recall_at, retrieve


def test_dataset_scope_holds_billable_siblings_only():
    codes = billable_codes("dataset-categories", ["M54.50", "R05.9"])
    assert {"M54.50", "M54.51", "M54.59", "R05.1", "R05.9"} <= set(codes)
    assert "M54.5" not in codes and "R05" not in codes  # categories, not billable
    assert all(c.startswith(("M54", "R05")) for c in codes)


def test_documents_include_inclusion_terms():
    assert document_text("M54.50") == "Low back pain, unspecified; Loin pain; Lumbago NOS"


def test_retrieval_finds_a_code_from_its_own_wording(tmp_path):
    codes = billable_codes("dataset-categories", ["M54.50", "R05.9", "J02.9", "H10.9"])
    embedder = load_embedder()
    index = build_index(embedder, codes, cache_dir=tmp_path)
    hits = retrieve(index, embedder, ["lumbago", "acute pharyngitis"], k=3)
    assert recall_at(hits, ["M54.50", "J02.9"], 3) == 1.0
    assert (tmp_path / "index.npy").is_file()  # embeddings cached for the next run


def test_chosen_candidates_reads_the_first_candidate_mentioned():
    from helpers.rag import Hit, chosen_candidates

    hits = [[Hit("M54.50", 0.9), Hit("M54.59", 0.8)], [Hit("R05.9", 0.7)]]
    answers = ["The correct answer is M54.59, not M54.50", "I am not sure"]
    assert chosen_candidates(answers, hits) == ["DIAGNOSIS_CODE: M54.59", "I am not sure"]
