"""Data set import: the three formats, field mapping, errors with file and line, duplicates,
nothing committed on failure, and the shipped data sets byte for byte."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from lppo.cli import main
from lppo.core.answers import extract_boxed
from lppo.core.config.schema import DatasetSpec
from lppo.core.resources import SHIPPED_DATA as SHIPPED
from lppo.core.resources import data_dir
from store.datasets import (
    ROW_COUNTS,
    DatasetError,
    import_datasets,
    read_dataset,
    shipped,
)
from store.ledger import Ledger
from tests.store.helpers import count


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def spec(path: Path, fmt: str = "generic", name: str = "ds", **kw) -> DatasetSpec:
    return DatasetSpec(name=name, path=path, format=fmt, **kw)


def test_gsm8k_format(tmp_path):
    f = write_jsonl(tmp_path / "g.jsonl", [
        {"question": "Q1?", "answer": "She has 2*3=<<2*3=6>>6 apples.\n#### 6"},
        {"question": "Q2?", "answer": "Total 1000+80=<<1000+80=1080>>1080.\n#### 1,080"},
    ])
    recs = read_dataset(spec(f, "gsm8k"))
    assert [(r.answer, r.solution) for r in recs] == [
        ("6", "She has 2*3=6 apples."), ("1080", "Total 1000+80=1080.")]
    assert recs[0].source_key == "g.jsonl:1" and recs[0].problem == "Q1?"


def test_math_folder_one_problem_per_file(tmp_path):
    for sub, i, sol in [("algebra", 1, r"So $x = \boxed{\frac{1}{2}}$."),
                        ("geometry", 7, r"Area is \boxed{ {2}^{3} } and \fbox{8}.")]:
        (tmp_path / sub).mkdir()
        (tmp_path / sub / f"{i}.json").write_text(json.dumps(
            {"problem": f"P{i}", "solution": sol, "level": "Level 2", "type": sub}, indent=2))
    recs = read_dataset(spec(tmp_path, "math"))
    assert [(r.source_key, r.answer) for r in recs] == [
        ("algebra/1.json", r"\frac{1}{2}"), ("geometry/7.json", "8")]
    assert recs[0].meta == {"level": "Level 2", "type": "algebra"}


@pytest.mark.parametrize(("solution", "gold"), [
    (r"First \boxed{a}, then \boxed{}.", None),  # the last box is empty: no gold answer
    (r"\boxed{\{1,2\}} is the set", r"\{1,2\}"),  # escaped braces
    (r"\boxed{3} then a cut-off \boxed{\frac{1}{", "3"),  # an unclosed box is skipped
    (r"\boxed 5$ and more", "5"),
    (r"\boxed{\boxed{5}}", r"\boxed{5}"),
])
def test_the_importer_reads_gold_answers_as_the_verifier_does(tmp_path, solution, gold):
    """One extractor (`lppo.core.answers.extract_boxed`) for the importer and the verifier."""
    f = write_jsonl(tmp_path / "m.jsonl", [{"problem": "P", "solution": solution}])
    expected = extract_boxed(solution)
    assert (expected or None) == gold
    if gold is None:
        with pytest.raises(DatasetError, match=r"m.jsonl:1: an empty last \\boxed"):
            read_dataset(spec(f, "math"))
    else:
        assert read_dataset(spec(f, "math"))[0].answer == gold


def test_generic_with_field_mapping_and_json_list(tmp_path):
    f = tmp_path / "rows.json"
    f.write_text(json.dumps([{"uid": "a", "q": "What?", "final": 27.0, "why": "because"},
                             {"uid": "b", "q": "Who?", "final": "025"}], indent=1))
    recs = read_dataset(spec(f, problem_field="q", answer_field="final", solution_field="why",
                             id_field="uid"))
    assert [(r.source_key, r.answer, r.solution) for r in recs] == [
        ("a", "27", "because"), ("b", "25", None)]


@pytest.mark.parametrize("rows,fmt,reason", [
    (['{"question": "x", "answer": "no marker"}'], "gsm8k", "no '#### <answer>'"),
    (['{"problem": "x", "solution": "no box"}'], "math", r"no \\boxed"),
    (['{"problem": "x", "solution": "empty \\\\boxed{}"}'], "math", r"an empty last \\boxed"),
    (['{"problem": "x"}'], "generic", "field 'answer': expected text or a number, got nothing"),
    (['{"problem": "x", "answer": [1, 2]}'], "generic", "got list"),
    (['{"problem": "", "answer": "1"}'], "generic", "missing or empty field 'problem'"),
    (['{"problem": "x", "answer": "1"', ], "generic", "invalid JSON"),
    (['[1, 2]'], "generic", "expected a JSON object"),
])
def test_bad_rows_name_file_line_and_reason(tmp_path, rows, fmt, reason):
    good = {"gsm8k": '{"question": "q", "answer": "#### 1"}',
            "math": '{"problem": "p", "solution": "\\\\boxed{1}"}',
            "generic": '{"problem": "p", "answer": "1"}'}[fmt]
    f = write_jsonl(tmp_path / "d.jsonl", [good, "", *rows])
    with pytest.raises(DatasetError, match=reason) as info:
        read_dataset(spec(f, fmt))
    assert info.value.where == f"{f}:3"


def test_bad_item_of_a_json_list_names_its_line(tmp_path):
    f = tmp_path / "list.json"
    f.write_text('[\n  {"problem": "a", "answer": "1"},\n  {"problem": "b"}\n]\n')
    with pytest.raises(DatasetError) as info:
        read_dataset(spec(f))
    assert info.value.where == f"{f}:3"


def test_repeated_ids_and_exclusions(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"id": 1, "problem": "a", "answer": "1"},
                                           {"id": 1, "problem": "b", "answer": "2"},
                                           {"id": 2, "problem": "c", "answer": "3"}])
    with pytest.raises(DatasetError, match="source key '1' repeats row .*d.jsonl:1"):
        read_dataset(spec(f, id_field="id"))
    recs = read_dataset(spec(f, id_field="id", exclude=["1"]))
    assert [r.problem for r in recs] == ["c"]
    assert len(read_dataset(spec(f, limit=2))) == 2


def test_import_commits_all_or_nothing(ledger_url, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"problem": f"p{i}", "answer": str(i)}
                                                 for i in range(5)] + [{"problem": "p0 ",
                                                                        "answer": "0"}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "q", "answer": "1"}, {"problem": "r"}])
    evalset = write_jsonl(tmp_path / "eval.jsonl", [{"problem": "p3", "answer": "3"}])
    with Ledger(ledger_url) as ledger:
        with pytest.raises(DatasetError, match="bad.jsonl:2"):
            import_datasets(ledger, [spec(good, name="train"), spec(bad, name="other")])
        assert count(ledger.engine, "SELECT count(*) FROM samples") == 0
        result = import_datasets(ledger, [spec(good, name="train"), spec(evalset, name="eval")])
        train = result.datasets["train"]
        assert (train.rows, train.inserted, len(train.duplicates)) == (6, 5, 1)
        assert result.datasets["eval"].overlaps == {"train": 1}
        assert result.ids[5] == result.ids[0]  # the duplicate maps to the first row
        again = import_datasets(ledger, [spec(good, name="train")])
        assert again.datasets["train"].existing == 5
        assert count(ledger.engine, "SELECT count(*) FROM samples") == 6


def test_shipped_files_are_the_vetted_bytes():
    for sums in (data_dir() / "SHA256SUMS", data_dir() / "math_train" / "SHA256SUMS"):
        for line in sums.read_text().splitlines():
            digest, name = line.split(maxsplit=1)
            data = (sums.parent / name.strip()).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, name
    text = (data_dir() / "SOURCES.md").read_text()
    assert all(f"`{name}`" in text for name in SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_data_sets_import(name):
    records = read_dataset(shipped(name))
    assert len(records) == ROW_COUNTS[name]
    assert all(r.answer and r.problem for r in records)
    if name in ("gsm8k_train", "math_train", "math500"):
        assert all(r.solution for r in records)


def test_lppo_ledger_import_command(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(f"""
[run]
name = "imp"
output_dir = "{tmp_path}"

[[data.train]]
name = "gsm8k_train"
path = "{data_dir() / 'gsm8k' / 'train.jsonl'}"
format = "gsm8k"
limit = 40

[[data.eval]]
name = "aime24"
path = "{data_dir() / 'aime24' / 'test.jsonl'}"
id_field = "id"
""")
    assert main(["ledger", "import", str(config)]) == 0
    out = capsys.readouterr().out
    assert "gsm8k_train: 40 rows, 40 new" in out and "aime24: 30 rows, 30 new" in out
    assert main(["ledger", "import", str(config)]) == 0
    assert "40 already there" in capsys.readouterr().out
    ledger = f"sqlite:///{tmp_path / 'imp' / 'ledger.db'}"
    assert count(ledger, "SELECT count(*) FROM samples") == 70
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "no marker"}\n')
    code = main(["ledger", "import", str(config), "--set",
                 f'data.train=[{{name = "x", path = "{bad}", format = "gsm8k"}}]'])
    assert code == 2
    assert f"{bad}:1: GSM8K solution has no '#### <answer>' line" in capsys.readouterr().err


def test_a_failed_first_import_leaves_no_ledger_and_summary_times_are_readable(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "no marker"}\n')
    config = tmp_path / "run.toml"
    config.write_text(f'[run]\nname = "first"\noutput_dir = "{tmp_path}"\n'
                      f'[[data.train]]\nname = "x"\npath = "{bad}"\nformat = "gsm8k"\n')
    assert main(["ledger", "import", str(config)]) == 2
    assert "GSM8K solution has no '#### <answer>' line" in capsys.readouterr().err
    assert not (tmp_path / "first").exists() or not list((tmp_path / "first").iterdir())
    # the same config, its one data set's path set by index: imports, then a summary
    good = data_dir() / "aime24" / "test.jsonl"
    assert main(["ledger", "import", str(config), "--set", f"data.train[0].path={good}",
                 "--set", "data.train[0].format=generic", "--set", "data.train[0].limit=3"]) == 0
    assert "x: 3 rows, 3 new" in capsys.readouterr().out
    ledger = tmp_path / "first" / "ledger.db"
    with Ledger(f"sqlite:///{ledger}") as led:
        led.register_run("r", {})
    assert main(["ledger", "summary", str(ledger)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", summary["started_at"])
