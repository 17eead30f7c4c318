"""The `data` section: where training and held-out problems come from, and how prompts look.

A data set comes from exactly one source:

- `path`: a `.jsonl`, `.json` or `.parquet` file, or a folder of them;
- `shipped`: one of the data sets lppo ships (`lppo.core.resources.SHIPPED_DATA`), found through
  the installed package, so a config naming it works from any working directory;
- `hub`: a Hugging Face `datasets` data set by name (with `subset`, `split`, `revision`), read
  from the local Hugging Face cache only (fetch it once with `hf download --repo-type dataset
  NAME`), or a local folder `datasets` can load (its layout or one saved by `save_to_disk`).

`format` says how a row holds problem, solution and answer (store/datasets.py reads them);
`verl` is the layout of verl's preprocessed parquet files (docs/design.md, "Data").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from lppo.core.config.section import Section
from lppo.core.resources import SHIPPED_DATA, shipped_dataset_fields


class DatasetSpec(Section):
    name: str = Field(min_length=1)
    """Dataset name recorded in the ledger (e.g. `gsm8k`)."""
    path: Path | None = None
    """A `.jsonl`, `.json` or `.parquet` file, or a folder of them (MATH's one-problem-per-file
    layout). A relative path resolves against the working directory."""
    shipped: str | None = None
    """A data set shipped with lppo, by name (`gsm8k_train`, `gsm8k_test`, `math_train`,
    `math500`, `aime24`, `aime25`, `amc23`): sets `path`, `format` and the field names, which
    keys given beside it override."""
    hub: str | None = None
    """A Hugging Face `datasets` data set by name (`openai/gsm8k`) or local folder, read from
    the local cache only (nothing is downloaded)."""
    subset: str | None = None
    """With `hub`: the data set's configuration (`main` for GSM8K)."""
    split: str = "train"
    """With `hub`: the split to read."""
    revision: str | None = None
    """With `hub`: a branch, tag or commit of the data set (default: the cached `main`)."""
    format: Literal["gsm8k", "math", "generic", "verl"] = "generic"
    """Row format: GSM8K (`#### N`), MATH (`\\boxed{}` in the solution), generic fields, or
    verl's parquet layout (`extra_info.question`, `reward_model.ground_truth`)."""
    problem_field: str | None = None
    """Field holding the problem; default by format (`question` for gsm8k,
    `extra_info.question` for verl, else `problem`). A dotted name reads a nested field."""
    solution_field: str | None = None
    """Field holding the expert solution; default `answer` for gsm8k, `extra_info.answer` for
    verl, else `solution` (optional for generic and verl rows)."""
    answer_field: str | None = None
    """Field holding the final answer; default: extracted from the solution (gsm8k `#### N`,
    math `\\boxed{}`), `answer` for generic rows, `reward_model.ground_truth` for verl."""
    id_field: str | None = None
    """Field used as the sample's source key; default: the file's path in the folder
    (one-problem files), `file:line` (JSONL), `file#index` (JSON lists, parquet and hub rows)."""
    limit: int | None = Field(None, gt=0)
    """Import at most this many rows (after deterministic ordering)."""
    exclude: list[str] = Field(default_factory=list)
    """Source keys of rows to leave out (rows known to be broken); any other bad row fails."""

    @model_validator(mode="before")
    @classmethod
    def _fill_shipped(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("shipped") is not None:
            if not isinstance(data["shipped"], str) or data["shipped"] not in SHIPPED_DATA:
                raise ValueError(f"data set {data.get('name')!r}: unknown shipped data set "
                                 f"{data['shipped']!r}; choose from {', '.join(SHIPPED_DATA)}")
            return {**shipped_dataset_fields(data["shipped"]), **data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        sources = [k for k in ("path", "hub") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"data set {self.name!r}: give exactly one of path, shipped or hub"
                             + (f" (got {' and '.join(sources)})" if sources else ""))
        if self.hub is None:
            given = [k for k in ("subset", "revision") if getattr(self, k) is not None]
            if self.split != "train":
                given.append("split")
            if given:
                raise ValueError(f"data set {self.name!r}: {', '.join(given)} apply only to "
                                 "hub data sets")
        return self

    @property
    def source(self) -> str:
        """Where the rows come from, for messages: the path, or `hub NAME[subset]:split`."""
        if self.hub is None:
            return str(self.path)
        subset = f"[{self.subset}]" if self.subset else ""
        at = f"@{self.revision}" if self.revision else ""
        return f"hub {self.hub}{subset}{at}:{self.split}"


class DataConfig(Section):
    train: list[DatasetSpec] = Field(default_factory=list)
    """Training sets: imported into the ledger, scheduled by the learner."""
    eval: list[DatasetSpec] = Field(default_factory=list)
    """Held-out sets for `lppo eval` and periodic evaluation."""
    prompt_format: Literal["chat", "plain"] = "chat"
    """`chat`: the tokenizer's chat template; `plain`: `plain_template`."""
    system_prompt: str | None = "Please reason step by step, and put your final answer within \\boxed{}."
    """System message for `chat` prompts (None: no system message)."""
    plain_template: str = "Question: {problem}\nAnswer: "
    """Template for `plain` prompts; must contain `{problem}`."""
    max_prompt_tokens: int = Field(1024, gt=0)
    """Problems whose prompt is longer are skipped at import, with a warning."""
    shuffle: bool = True
    """Visit training samples in a random order (seeded by `run.seed`) rather than file
    order; either way, each sample comes up again only after all others have (least recently
    dispatched first)."""

    @model_validator(mode="after")
    def _template_has_problem(self) -> DataConfig:
        if "{problem}" not in self.plain_template:
            raise ValueError("data.plain_template: must contain '{problem}'")
        return self
