"""The Knowtator reader (CRAFT's own format): a hand-made corpus in CRAFT's
layout (tests/data/knowtator: Knowtator 1 and 2 files, a +extensions set and
MONDO's "with genotype" set that must be ignored), bad inputs, and the real
CRAFT against the shared Prodigy mirror when both are present."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.knowtator import split_tokens
from biomed_spancat.ingest.readers import ReadOptions, get_reader
from biomed_spancat.ingest.tasks import IngestError

FIXTURE = Path(__file__).parent / "data" / "knowtator"

# (doc_id, paragraph, covered text, start, end, label, token_start, token_end) of every span
EXPECTED = [
    ("1001", 0, "Mouse", 0, 5, "NCBITaxon", 0, 0),
    ("1001", 0, "BMP4", 7, 11, "PR", 2, 2),  # inside the token "mBMP4": split into "m" + "BMP4"
    ("1001", 0, "limb", 30, 34, "UBERON", 6, 6),
    ("1001", 1, "BMP4", 4, 8, "PR", 1, 1),
    ("1001", 1, "BMP4 receptor", 4, 17, "PR", 1, 2),  # nested in the same label
    ("1001", 1, "brown fat", 34, 43, "UBERON", 6, 7),  # "white ... fat" (discontinuous) is dropped
    ("1001", 1, "Huntington disease", 53, 71, "MONDO", 10, 11),  # Knowtator 2 file
    ("1002", 0, "Zebrafish", 0, 9, "NCBITaxon", 0, 0),
    ("1002", 0, "embryos", 10, 17, "UBERON", 1, 1),
    ("1002", 0, "Shh", 23, 26, "PR", 3, 3),  # "Shh\nprotein" (MONDO) crosses a paragraph: dropped
    ("1002", 1, "fin", 15, 18, "UBERON", 3, 3),
    ("1003", 0, "Rats", 0, 4, "NCBITaxon", 0, 0),
    ("1003", 0, "BMP4", 11, 15, "PR", 2, 2),
    ("1004", 0, "Human", 0, 5, "NCBITaxon", 0, 0),
    ("1004", 0, "Shh", 6, 9, "PR", 1, 1),
    ("1004", 0, "limb", 22, 26, "UBERON", 5, 5),
]


def read_all(source, datasets=None):
    reader = get_reader(str(source))
    return reader, list(reader.read(str(source), datasets, ReadOptions()))


def spans_of(tasks):
    return sorted(
        (
            t.data["meta"]["doc_id"],
            t.data["meta"]["paragraph"],
            t.data["text"][s["start"] : s["end"]],
            s["start"],
            s["end"],
            s["label"],
            s["token_start"],
            s["token_end"],
        )
        for t in tasks
        for s in t.data["spans"]
    )


def test_detected_with_craft_split_as_datasets():
    reader = get_reader(str(FIXTURE))
    assert reader.name == "knowtator"
    assert [d.name for d in reader.list_datasets(str(FIXTURE), ReadOptions())] == ["craft_dev", "craft_test", "craft_train"]


def test_exact_spans_tokens_and_origins():
    _, tasks = read_all(FIXTURE)
    assert all(t.data is not None for t in tasks)
    assert spans_of(tasks) == sorted(EXPECTED)
    # one task per non-empty line; origin = text file + line (line 2 of 1001 is blank)
    origins = [
        (Path(t.origin.source).name, t.origin.line, t.origin.dataset, t.data["meta"]["paragraph"]) for t in tasks
    ]
    assert origins == [
        ("1003.txt", 1, "craft_dev", 0),
        ("1004.txt", 1, "craft_test", 0),
        ("1001.txt", 1, "craft_train", 0),
        ("1001.txt", 3, "craft_train", 1),
        ("1002.txt", 1, "craft_train", 0),
        ("1002.txt", 2, "craft_train", 1),
    ]
    first = tasks[2].data
    assert [(t["text"], t["start"], t["end"], t["ws"]) for t in first["tokens"]] == [
        ("Mouse", 0, 5, True),
        ("m", 6, 7, False),
        ("BMP4", 7, 11, True),
        ("signalling", 12, 22, True),
        ("in", 23, 25, True),
        ("the", 26, 29, True),
        ("limb", 30, 34, False),
        (".", 34, 35, False),
    ]
    assert [t.data.get("_spans_dropped") for t in tasks] == [
        None,
        None,
        None,
        {"discontinuous": 1},
        {"crosses_paragraph": 1},
        None,
    ]
    # the annotator names in the files never reach a task
    assert {t.data["_annotator_id"] for t in tasks} == {"knowtator:consolidated"}
    assert "Annotator Name" not in json.dumps([t.data for t in tasks])


def test_one_dataset_reads_only_its_articles():
    _, tasks = read_all(FIXTURE, ["craft_dev"])
    assert [t.data["meta"]["doc_id"] for t in tasks] == ["1003"]


@pytest.mark.parametrize(
    "words,boundaries,expected",
    [
        ([(0, 5, True), (6, 11, False)], [7], [("Mouse", True), ("m", False), ("BMP4", False)]),
        ([(0, 11, True)], [2, 4, 0, 11], [("ab", False), ("cd", False), ("efghijk", True)]),
        ([(0, 5, False)], [], [("abcde", False)]),
        ([], [3], []),
    ],
)
def test_split_tokens(words, boundaries, expected):
    text = "Mouse mBMP4" if expected and expected[0][0] == "Mouse" else "abcdefghijk"
    tokens = split_tokens(words, text, boundaries)
    assert [(t["text"], t["ws"]) for t in tokens] == expected
    assert [t["id"] for t in tokens] == list(range(len(expected)))


def test_convert_keeps_the_split_and_counts_what_it_drops(tmp_path):
    options = ConvertOptions(datasets=["craft_train"], eval=["craft_dev"])
    report = convert([str(FIXTURE)], tmp_path, options)
    assert (report["read"], report["kept"], report["rejected"]) == (5, 5, 0)
    assert report["spans_dropped"] == {"crosses_paragraph": 1, "discontinuous": 1}
    vocab = spacy.blank("en").vocab
    docs = {s: list(DocBin().from_disk(tmp_path / f"{s}.spacy").get_docs(vocab)) for s in ("train", "dev")}
    assert [d.text for d in docs["dev"]] == ["Rats carry BMP4."]
    got = sorted(
        (d.text[s.start_char : s.end_char], s.start_char, s.end_char, s.label_) for d in docs["train"] for s in d.spans["sc"]
    )
    assert got == sorted((e[2], e[3], e[4], e[5]) for e in EXPECTED if e[0] in ("1001", "1002"))
    assert [t.text for t in docs["train"][0]] == ["Mouse", "m", "BMP4", "signalling", "in", "the", "limb", "."]
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):  # the outputs' manifests too
        assert b"Annotator Name" not in path.read_bytes(), path


def copy_fixture(tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(FIXTURE, root)
    return root


def rejected(tmp_path, root):
    report = convert([str(root)], tmp_path / "out", ConvertOptions(datasets=["craft_train"], eval=["craft_dev"]))
    lines = [json.loads(x) for x in (tmp_path / "out" / "rejections.jsonl").read_text().splitlines()]
    return report, lines


def test_missing_annotation_file_rejects_the_article_by_name(tmp_path):
    root = copy_fixture(tmp_path)
    (root / "concept-annotation/PR/PR/knowtator/1002.txt.knowtator.xml").unlink()
    report, lines = rejected(tmp_path, root)
    assert report["rejected_by_reason"] == {"knowtator_missing_file": 1}
    assert report["kept"] == 3  # 1001 (2 paragraphs) and 1003; none of 1002
    assert lines[0]["source"].endswith("PR/PR/knowtator/1002.txt.knowtator.xml")
    assert lines[0]["detail"] == "article 1002: no PR annotation file (1002.txt.knowtator.xml); article left out"


def test_malformed_xml_names_file_and_line(tmp_path):
    root = copy_fixture(tmp_path)
    path = root / "concept-annotation/UBERON/UBERON/knowtator/1001.txt.knowtator.xml"
    path.write_text(path.read_text().replace("</annotation>", "</annotatio>", 1))
    report, lines = rejected(tmp_path, root)
    assert report["rejected_by_reason"] == {"knowtator_malformed": 1}
    assert report["kept"] == 3
    assert lines[0]["detail"].startswith(f"{path}:8:")
    assert "malformed XML" in lines[0]["detail"]


def test_span_text_that_does_not_match_the_article_is_rejected(tmp_path):
    root = copy_fixture(tmp_path)
    text = root / "articles/txt/1003.txt"
    text.write_text("Mice carry BMP4.\n")
    report, lines = rejected(tmp_path, root)
    assert report["rejected_by_reason"] == {"knowtator_text_mismatch": 1}
    assert lines[0]["detail"] == (
        "article 1003: NCBITaxon annotation NCBITaxon_Instance_0 covers 'Mice' in 1003.txt "
        "but the file says 'Rats' (a different version of the text?)"
    )


def test_non_integer_offsets_are_reported(tmp_path):
    root = copy_fixture(tmp_path)
    path = root / "concept-annotation/PR/PR/knowtator/1003.txt.knowtator.xml"
    path.write_text(path.read_text().replace('start="11"', 'start="eleven"'))
    report, lines = rejected(tmp_path, root)
    assert report["rejected_by_reason"] == {"knowtator_malformed": 1}
    assert lines[0]["detail"] == (
        f"{path}: annotation PR_Instance_0 has a span without integer start/end ('eleven', '15')"
    )


def test_unknown_dataset_and_missing_sets_are_fatal(tmp_path):
    with pytest.raises(IngestError, match=r"unknown dataset 'craft_other' \(available in .*craft_dev, craft_test, craft_train\)"):
        convert([str(FIXTURE)], tmp_path / "a", ConvertOptions(datasets=["craft_other"]))
    root = tmp_path / "empty"
    (root / "articles/txt").mkdir(parents=True)
    (root / "concept-annotation/PR").mkdir(parents=True)
    (root / "articles/txt/1.txt").write_text("BMP4.\n")
    with pytest.raises(IngestError, match=r"concept-annotation: no Knowtator annotation set"):
        list(get_reader(str(root)).read(str(root), None, ReadOptions()))


def test_without_id_lists_the_folder_is_one_dataset(tmp_path):
    root = copy_fixture(tmp_path)
    shutil.rmtree(root / "articles/ids")
    reader, tasks = read_all(root)
    assert [d.name for d in reader.list_datasets(str(root), ReadOptions())] == ["corpus"]
    assert spans_of(tasks) == sorted(EXPECTED)


# --- the real CRAFT: the fetched asset read by this reader vs the shared Prodigy mirror ---------


@pytest.mark.parametrize(
    "split,n_spans,dropped",
    [
        ("dev", 9556, {"discontinuous": 154}),
        ("test", 28825, {"discontinuous": 704}),
        pytest.param("train", 59226, {"discontinuous": 1157, "crosses_paragraph": 1}, marks=pytest.mark.slow),
    ],
)
def test_craft_matches_the_mirror_exactly(craft_asset, craft_dir, split, n_spans, dropped):
    if craft_dir.name.startswith("craft_mirror"):
        pytest.skip("the mirror here is made from the corpus itself: nothing to compare")
    reader, tasks = read_all(craft_asset, [f"craft_{split}"])
    assert reader.name == "knowtator"
    assert all(t.data is not None for t in tasks), [t.error for t in tasks if t.data is None][:3]
    mirror = [json.loads(x) for x in (craft_dir / f"craft_{split}.jsonl").read_text(encoding="utf8").splitlines()]

    def key(d):
        return (str(d["meta"]["doc_id"]), d["meta"]["paragraph"])

    ours = {key(t.data): t.data for t in tasks}
    theirs = {key(d): d for d in mirror}
    assert ours.keys() == theirs.keys()
    for k, d in theirs.items():
        assert ours[k]["text"] == d["text"], k
        assert [(t["start"], t["end"], t["ws"]) for t in ours[k]["tokens"]] == [
            (t["start"], t["end"], t["ws"]) for t in d["tokens"]
        ], k
        fields = ("start", "end", "token_start", "token_end", "label")
        assert Counter(tuple(s[f] for f in fields) for s in ours[k]["spans"]) == Counter(
            tuple(s[f] for f in fields) for s in d["spans"]
        ), k
    assert sum(len(d["spans"]) for d in mirror) == n_spans
    counts = Counter()
    for t in tasks:
        counts.update(t.data.get("_spans_dropped", {}))
    assert dict(counts) == dropped


# --- where CRAFT comes from: the mirror when present, else the fetched corpus -------------------

from biomed_spancat.ingest.craft import CRAFT_COMMIT, craft_source, mirror_stands_in  # noqa: E402
from biomed_spancat.training.uptrain import split_heldout  # noqa: E402


def test_craft_source_prefers_the_mirror_and_falls_back_to_the_corpus(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    assert craft_source(mirror, FIXTURE) == (str(FIXTURE), "knowtator")  # an empty folder is no mirror
    for split in ("train", "dev", "test"):
        (mirror / f"craft_{split}.jsonl").write_text("")
    assert craft_source(mirror, FIXTURE) == (str(mirror), "mirror")
    assert craft_source(None, FIXTURE) == (str(FIXTURE), "knowtator")
    with pytest.raises(IngestError) as err:
        craft_source(tmp_path / "nowhere", tmp_path / "assets" / "craft")
    assert str(err.value) == (
        f"CRAFT not found: no mirror at {tmp_path / 'nowhere'} and no corpus at {tmp_path / 'assets' / 'craft'} "
        "(articles/txt/ and concept-annotation/); run `weasel assets` to fetch it from "
        "https://github.com/UCDenver-ccp/CRAFT (v5.0.2)"
    )


def test_the_mirror_stands_in_for_craft_only(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for split in ("train", "dev", "test"):
        (mirror / f"craft_{split}.jsonl").write_text("")
    own = tmp_path / "my_heldout.jsonl"
    own.write_text("")
    assert mirror_stands_in(mirror, str(FIXTURE), ["craft_test"])  # the fetched corpus: same data, the mirror is read
    assert mirror_stands_in(mirror, str(tmp_path / "assets" / "craft"), ["craft_test"])  # CRAFT not fetched
    assert not mirror_stands_in(mirror, str(own), ["craft_test"])  # a user's own export, whatever the datasets
    assert not mirror_stands_in(mirror, str(own), [])
    assert not mirror_stands_in(mirror, str(tmp_path / "absent.jsonl"), [])  # no CRAFT dataset asked
    assert not mirror_stands_in(mirror, str(FIXTURE), ["craft_test", "my_notes"])
    assert not mirror_stands_in(tmp_path / "nowhere", str(FIXTURE), ["craft_test"])
    assert not mirror_stands_in(None, str(FIXTURE), ["craft_test"])


def test_craft_source_refuses_a_checkout_at_another_commit(tmp_path):
    import subprocess

    root = copy_fixture(tmp_path)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(root), *cmd], check=True, env={**env, "PATH": "/usr/bin:/bin"})
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with pytest.raises(IngestError, match=rf"CRAFT is at commit {head[:12]}, not the pinned {CRAFT_COMMIT[:12]} \(v5.0.2\)"):
        craft_source(None, root)
    assert craft_source(None, root, commit=head) == (str(root), "knowtator")


def test_split_heldout_reads_one_dataset_of_the_corpus(tmp_path):
    report = split_heldout(str(FIXTURE), tmp_path / "out", share=0.5, seed=0, datasets=["craft_train"])
    assert report["documents"] == {"unlabelled": 1, "test": 1}  # 1001 and 1002; never 1003 (craft_dev)
    assert report["tasks"]["unlabelled"] + report["tasks"]["test"] == 4
    unlabelled = [json.loads(x) for x in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    assert {r["meta"]["doc_id"] for r in unlabelled} < {"1001", "1002"}
    assert all(set(r) == {"text", "meta"} for r in unlabelled)
