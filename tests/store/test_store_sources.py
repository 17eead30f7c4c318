"""Rows from parquet files, verl's parquet layout, `datasets` folders and the Hugging Face cache
(store/sources.py, store/datasets.py). Everything is built locally; nothing is downloaded."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lppo.core.config import ConfigError, load_config
from lppo.core.config.schema import DatasetSpec
from lppo.core.resources import SHIPPED_DATA, data_dir
from store.datasets import read_dataset, shipped
from store.sources import DatasetError

datasets = pytest.importorskip("datasets")

GSM8K_ROWS = [
    {"question": "Tom has 2 apples and buys 3. How many?",
     "answer": "2+3=<<2+3=5>>5\n#### 5"},
    {"question": "A box holds 1,000 nails and 80 more. How many?",
     "answer": "1000+80=<<1000+80=1080>>1080\n#### 1,080"},
]


def verl_row(index: int, question: str, raw_answer: str, truth: str) -> dict:
    """One row as verl's examples/data_preprocess/gsm8k.py writes it."""
    return {
        "data_source": "openai/gsm8k",
        "prompt": [{"role": "user", "content": question + " Let's think step by step."}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": {"split": "train", "index": index, "answer": raw_answer,
                       "question": question},
    }


def test_parquet_file_rows(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(GSM8K_ROWS), path)
    recs = read_dataset(DatasetSpec(name="g", path=path, format="gsm8k"))
    assert [(r.source_key, r.answer, r.solution) for r in recs] == [
        ("train.parquet#0", "5", "2+3=5"), ("train.parquet#1", "1080", "1000+80=1080")]


def test_verl_parquet_layout(tmp_path):
    rows = [verl_row(0, "Q one?", "1+1=<<1+1=2>>2\n#### 2", "2"),
            verl_row(1, "Q two?", "#### 7", "7")]
    del rows[1]["extra_info"]["question"]  # verl's MATH rows: only the chat prompt
    del rows[1]["extra_info"]["answer"]
    (tmp_path / "verl").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "verl" / "train.parquet")
    recs = read_dataset(DatasetSpec(name="v", path=tmp_path / "verl", format="verl"))
    assert [(r.problem, r.answer, r.solution) for r in recs] == [
        ("Q one?", "2", "1+1=2"), ("Q two? Let's think step by step.", "7", None)]
    assert recs[0].meta == {"data_source": "openai/gsm8k", "ability": "math"}


def test_verl_row_without_ground_truth_names_the_field(tmp_path):
    row = verl_row(0, "Q?", "#### 2", "2")
    row["reward_model"] = {"style": "rule"}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "t.parquet")
    with pytest.raises(DatasetError, match=r"t.parquet#0: field 'reward_model.ground_truth'"):
        read_dataset(DatasetSpec(name="v", path=tmp_path / "t.parquet", format="verl"))


def test_a_file_that_is_not_parquet_is_a_clear_error(tmp_path):
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DatasetError, match="bad.parquet: cannot read parquet"):
        read_dataset(DatasetSpec(name="b", path=tmp_path / "bad.parquet"))


def test_a_saved_datasets_folder(tmp_path):
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(GSM8K_ROWS),
                          "test": datasets.Dataset.from_list(GSM8K_ROWS[:1])}).save_to_disk(folder)
    recs = read_dataset(DatasetSpec(name="s", hub=str(folder), split="test", format="gsm8k"))
    assert [(r.source_key, r.answer) for r in recs] == [("test#0", "5")]
    with pytest.raises(DatasetError, match="no split 'dev'; it has train, test"):
        read_dataset(DatasetSpec(name="s", hub=str(folder), split="dev", format="gsm8k"))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face hub cache holding `local/toy` as `hf download` lays it out (two subsets,
    the `main` ref at one commit), and a private `datasets` cache."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--local--toy"
    snapshot = repo / "snapshots" / commit
    for subset, rows in (("main", GSM8K_ROWS), ("small", GSM8K_ROWS[1:])):
        (snapshot / subset).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), snapshot / subset / "train-00000.parquet")
    (snapshot / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*.parquet\n"
        "- config_name: small\n  data_files:\n  - split: train\n    path: small/train-*.parquet\n"
        "---\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    return commit


def test_a_hub_data_set_by_name_subset_and_revision_from_the_cache(hub_cache):
    spec = DatasetSpec(name="toy", hub="local/toy", subset="main", format="gsm8k")
    assert [r.answer for r in read_dataset(spec)] == ["5", "1080"]
    pinned = DatasetSpec(name="toy", hub="local/toy", subset="small", revision=hub_cache,
                         format="gsm8k")
    assert [(r.source_key, r.answer) for r in read_dataset(pinned)] == [("train#0", "1080")]


def test_a_hub_data_set_missing_from_the_cache_says_how_to_fetch_it(hub_cache):
    spec = DatasetSpec(name="x", hub="local/absent", subset="main")
    with pytest.raises(DatasetError, match=r"hub local/absent\[main\]:train: not in the local "
                                           r"Hugging Face cache .* `hf download --repo-type "
                                           r"dataset local/absent`"):
        read_dataset(spec)


def test_exactly_one_source_per_data_set(tmp_path):
    (tmp_path / "c.toml").write_text(
        '[[data.train]]\nname = "a"\npath = "x.jsonl"\nhub = "o/n"\n'
        '[[data.train]]\nname = "b"\npath = "x.jsonl"\nsplit = "test"\n'
        '[[data.train]]\nname = "c"\nshipped = "gsm9k"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.toml")
    assert info.value.problems == [
        "data.train[0]: data set 'a': give exactly one of path, shipped or hub (got path and hub)",
        "data.train[1]: data set 'b': split apply only to hub data sets",
        "data.train[2]: data set 'c': unknown shipped data set 'gsm9k'; choose from "
        + ", ".join(SHIPPED_DATA),
    ]


def test_a_shipped_data_set_is_found_through_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout
    (tmp_path / "c.toml").write_text('[[data.eval]]\nname = "aime"\nshipped = "aime24"\n'
                                     '[[data.eval]]\nname = "g"\nshipped = "gsm8k_test"\n'
                                     'limit = 3\n')
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.data.eval[0].path == data_dir() / "aime24" / "test.jsonl"
    assert len(read_dataset(cfg.data.eval[0])) == 30
    assert len(read_dataset(cfg.data.eval[1])) == 3 and cfg.data.eval[1].format == "gsm8k"
    assert shipped("math500").id_field == "unique_id"


def test_the_shipped_field_documents_every_shipped_data_set():
    doc = DatasetSpec.model_fields["shipped"].description
    assert all(f"`{name}`" in doc for name in SHIPPED_DATA)
