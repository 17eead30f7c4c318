"""The typed configuration tree shared by every process.

One pydantic v2 model per config section (`run`, `model`, `data`, `actor`, `learner`,
`lppo`, `store`, `transport`). Every field has a description and a default a practitioner would
start from; unknown keys are errors (`extra="forbid"`), so a typo never silently falls back to
a default. Rules that involve more than one field live in `model_validator`s next to the fields
they relate, and name the keys in their message.

The method's constants (docs/design.md, "The method") are defaults here, not literals in the
learner: every rule of LPPO reads its numbers from `LPPOConfig`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

# The method's sections live in lppo/core/config/method.py; imported here under their names so that
# `lppo.core.config.schema` stays the one place a section can be imported from.
from lppo.core.config.actor import ActorConfig
from lppo.core.config.actor import RewardConfig as RewardConfig
from lppo.core.config.actor import SamplingConfig as SamplingConfig
from lppo.core.config.data import DataConfig as DataConfig
from lppo.core.config.data import DatasetSpec as DatasetSpec
from lppo.core.config.method import CurationConfig as CurationConfig
from lppo.core.config.method import LPConfig as LPConfig
from lppo.core.config.method import LPPOConfig
from lppo.core.config.method import PGConfig as PGConfig
from lppo.core.config.section import Section
from lppo.core.config.selection import (
    CategoryBanditConfig,
    TargetPassRateConfig,
    ThompsonConfig,
)
from lppo.core.secrets import SecretURL, redact_url

# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------


class RunConfig(Section):
    name: str = Field("lppo-run", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Run name; the run directory is `output_dir/name`. Letters, digits, `.`, `_`, `-`."""
    output_dir: Path = Path("runs")
    """Folder that holds run directories."""
    seed: int = Field(0, ge=0)
    """Seed for Python, NumPy and torch RNGs and the vLLM engine."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of every process of the run."""
    log_format: Literal["auto", "rich", "plain"] = "auto"
    """`rich` console logs, `plain` lines, or `auto`: rich on a TTY, plain otherwise."""
    cpu_split: bool = True
    """`lppo run` on a machine without GPUs: pin the learner to `learner_cores` cores and the
    actors to the others (torch/OpenMP threads and vLLM's thread binding set to match), so
    training and generation stop taking each other's cores (lppo/launcher.py). Off: every
    process may use every core."""
    learner_cores: int = Field(0, ge=0)
    """With `cpu_split`: cores for the learner (0: half of them); the actors share the rest."""

    @property
    def run_dir(self) -> Path:
        """The run directory: config, ledger, checkpoints, weights and logs live here."""
        return self.output_dir / self.name


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


class ModelConfig(Section):
    path: str = "Qwen/Qwen2.5-Math-1.5B"
    """Local model directory or hub name (hub names need network access at start only)."""
    tokenizer: str | None = None
    """Tokenizer directory or hub name; defaults to `path`."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Compute dtype of engine and trainer; `auto` is bf16 on GPU, fp32 on CPU. The trainer keeps
    fp32 master weights and optimizer state whatever this is (`learner/trainer.py`). fp16 is not
    offered: training in it needs loss scaling, which is not built."""
    max_model_len: int = Field(4096, gt=0)
    """Longest prompt + prefix + completion in tokens."""
    trust_remote_code: bool = False
    """Allow model code from the model directory (off: only transformers' own architectures)."""


# --------------------------------------------------------------------------------------------
# learner
# --------------------------------------------------------------------------------------------


class EvalConfig(Section):
    """Sampling and size of evaluation: `lppo eval` and periodic evaluation during a run.

    Each problem gets `k` completions at `temperature` / `top_p`; pass@1 is the share of correct
    completions averaged over problems (the mean over k samples, less noisy than one sample),
    pass@k the share of problems with at least one correct completion. Stop strings and the
    verifier (`actor.reward`) are the training ones, so verdicts mean the same thing.
    """

    k: int = Field(4, ge=1, le=1024)
    """Completions sampled per problem."""
    temperature: float = Field(0.6, ge=0.0)
    """Sampling temperature for evaluation (0: greedy; then all k samples are the same)."""
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    """Nucleus sampling mass for evaluation."""
    max_tokens: int | None = Field(None, gt=0)
    """Most new tokens per completion; None: `actor.sampling.max_tokens`."""
    limit: int | None = Field(None, gt=0)
    """Evaluate at most this many problems per benchmark (the first in file order); None: all."""


class LearnerConfig(Section):
    max_steps: int = Field(200, ge=1)
    """Optimizer steps to run."""
    batch_groups: int = Field(16, ge=1)
    """Rollout groups (prompts) per optimizer step, after curation."""
    group_size: int = Field(8, ge=2)
    """Completions per prompt (n); GRPO needs at least 2."""
    max_staleness: int = Field(1, ge=0)
    """Most policy versions between generation and training; 0 is synchronous."""
    advantage: Literal["grpo", "drgrpo", "reinforce_pp"] = "grpo"
    """Advantage estimator."""
    std_normalize: bool = True
    """GRPO: divide by the group's reward std (Dr.GRPO never does)."""
    lr: float = Field(1e-6, gt=0.0)
    """Peak AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Schedule after warm-up."""
    grad_clip: float = Field(1.0, gt=0.0)
    """Global gradient-norm clip."""
    on_nonfinite: Literal["skip", "fail"] = "skip"
    """A batch whose loss or gradient norm is not finite: `skip` it (no optimizer step, no new
    weights; logged and counted in `train/nonfinite_skipped`) or `fail` the run. Either way
    nothing non-finite reaches the weights."""
    max_nonfinite_skips: int = Field(3, ge=1)
    """Consecutive skipped batches after which the run fails anyway."""
    clip_low: float = Field(0.2, ge=0.0, lt=1.0)
    """PPO ratio clip below 1 (ratio >= 1 - clip_low)."""
    clip_high: float = Field(0.28, ge=0.0)
    """PPO ratio clip above 1 (clip-higher, DAPO)."""
    tis_cap: float | None = Field(None, gt=1.0)
    """Truncated importance sampling cap on trainer/behaviour ratio (None: off)."""
    is_level: Literal["token", "sequence"] = "token"
    """With `tis_cap`: the importance weight per token, or one per completion (the product of
    its tokens' ratios, truncated; verl's `rollout_is = "sequence"`)."""
    reject_band: tuple[float, float] | None = None
    """Leave out of the loss every completion whose trainer/behaviour ratio (geometric mean
    over its tokens) falls outside [low, high] (verl's rollout rejection sampling with
    `rollout_rs = "geometric"`), e.g. `[0.5, 2.0]`; None: off."""
    ppo_epochs: int = Field(1, ge=1)
    """Passes over each batch (TRL `num_iterations`, verl `ppo_epochs`). Above 1 (or with
    `mini_batches` > 1) the clip's reference is the trainer's policy before the batch's first
    update, and the behaviour policy enters only through `tis_cap`/`reject_band` (AReaL's
    decoupled loss)."""
    mini_batches: int = Field(1, ge=1)
    """Optimizer updates per pass, each on an equal share of the batch's groups (verl
    `ppo_mini_batch_size` = batch / this; TRL `steps_per_generation`)."""
    mask_truncated: bool = False
    """Leave completions cut by `max_tokens` (finish reason `length`) out of the loss; they
    still count in their group's advantage baseline (TRL `mask_truncated_completions`).
    Recorded per completion (`rollouts.loss_masked`)."""
    dump_rollouts: bool = False
    """Write what each step trained on (token ids, behaviour log-probs, advantages, weights)
    to `<run_dir>/rollouts/step_<n>.safetensors`, for `lppo replay` (learner/dump.py)."""
    kl_coef: float = Field(0.0, ge=0.0)
    """Weight of the KL penalty to a frozen reference model (0: no reference loaded)."""
    loss_agg: Literal["auto", "token_mean", "seq_mean_token_sum_norm"] = "auto"
    """Loss aggregation: `token_mean` divides the summed token terms by the batch's loss
    tokens; `seq_mean_token_sum_norm` (Dr.GRPO) by completions x `actor.sampling.max_tokens`;
    `auto` picks the latter for `advantage = "drgrpo"`, token_mean otherwise."""
    micro_batch_tokens: int = Field(16_384, gt=0)
    """Token budget per forward/backward micro-batch."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Training device; `auto` picks CUDA when available."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory."""
    shared_prefix: bool = True
    """Encode each group's shared context (prompt, or prompt + expert prefix) once instead of
    once per completion, reusing its keys and values (learner/grouped.py); same log-probs and
    gradients. Off by itself, with a log line, where the model cannot (its forward lacks
    `past_key_values`/`logits_to_keep`) or with `gradient_checkpointing`."""
    cpu_offload: bool = False
    """Keep the sharded fp32 parameters, gradients and AdamW state in host memory between
    uses (FSDP2 `CPUOffloadPolicy`): GPU memory for larger models, at the cost of copies each
    step. Needs CUDA and a learner of several ranks (`nproc` >= 2 or torchrun); refused
    otherwise, since on CPU everything already lives in host memory."""
    publish_every: int = Field(1, ge=1)
    """Publish weights to actors every k steps."""
    nproc: int = Field(1, ge=1)
    """Learner ranks `lppo run` starts on this machine: the model sharded across them (FSDP2),
    each batch split by whole groups; rank 0 alone talks to actors and the ledger
    (learner/ranks.py). On CUDA each rank takes one GPU; on CPU they share the cores (gloo).
    Under your own `torchrun`, its `--nproc_per_node` decides instead."""
    selection: Literal["lppo", "uniform", "thompson", "target_pass_rate",
                       "category_bandit"] = "lppo"
    """Which samples are dispatched next (learner/algo/select.py): `lppo`, least recently
    dispatched first (every sample comes back after all others); `uniform`, at random;
    `thompson`, MoPPS's Thompson sampling of a Beta posterior of each pass rate (`thompson`);
    `target_pass_rate`, predicted pass rate (its EMA) closest to a target, as in Prompt
    Curriculum Learning (`target_pass_rate`); `category_bandit`, SEC's Boltzmann bandit over a
    data field's categories, rewarded by the mean absolute advantage (`category_bandit`).
    Curation's due revisits and rechecks go first whatever the policy."""
    thompson: ThompsonConfig = Field(default_factory=ThompsonConfig)
    """`selection = "thompson"`."""
    target_pass_rate: TargetPassRateConfig = Field(default_factory=TargetPassRateConfig)
    """`selection = "target_pass_rate"`."""
    category_bandit: CategoryBanditConfig = Field(default_factory=CategoryBanditConfig)
    """`selection = "category_bandit"`."""
    weights_backend: Literal["filesystem", "collective"] = "filesystem"
    """How actors receive weights. `filesystem`: a safetensors file per version under the run
    folder, announced on the wire (lppo/core/weightfiles.py). `collective`: broadcast from
    learner rank 0 to each actor's engine workers over a process group of their own (gloo on
    CPU, NCCL on CUDA), met through `transport.sync_port` (learner/collective.py); a failed
    transfer falls back to a file for that version. Files are still written when an
    evaluation or `keep_weights_every` needs one."""
    weights_bucket_mb: float = Field(256.0, gt=0.0)
    """`collective`: most megabytes broadcast in one piece; about what an actor holds beyond
    its engine's weights while receiving."""
    weights_sync_timeout_s: float = Field(120.0, gt=0.0)
    """`collective`: how long forming a group or one broadcast may take before the transfer
    counts as failed (and falls back to a file)."""
    checkpoint_every: int = Field(50, ge=1)
    """Checkpoint every N steps (and at a clean stop)."""
    keep_checkpoints: int = Field(2, ge=1)
    """Most recent checkpoints kept on disk."""
    keep_weights_every: int = Field(0, ge=0)
    """Also keep every N-th published `weights/vN/` (0: only the recent versions actors may
    still load), e.g. to evaluate a learning curve after the run (`bench/sample_efficiency.py`)."""
    eval_every: int = Field(0, ge=0)
    """Evaluate on `data.eval` every N steps during `lppo run` (0: never)."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Sampling and size of evaluation (`lppo eval`, and every `eval_every` steps)."""
    loggers: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)
    """Experiment trackers that also get every step's metrics and the periodic evaluation
    results per benchmark (the ledger always gets them): `tensorboard` (`<run_dir>/tensorboard`),
    `wandb`, `mlflow`. Each needs its package (`pip install 'lppo[trackers]'`); a resumed run
    continues the same tracker run (learner/trackers.py)."""
    wandb_project: str | None = None
    """With `wandb` in `loggers`: the project (default: `run.name`). Entity, mode and API key
    come from W&B's own environment variables (`WANDB_ENTITY`, `WANDB_MODE`, ...)."""
    mlflow_tracking_uri: SecretURL | None = Field(None, repr=False)
    """With `mlflow` in `loggers`: the tracking URI (default: `MLFLOW_TRACKING_URI`, else
    `sqlite:///<run_dir>/mlflow.db`). A password in it is redacted from every dump."""
    mlflow_experiment: str | None = None
    """With `mlflow` in `loggers`: the experiment (default: `run.name`)."""

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tensorboard" in data:
            raise ValueError('learner.tensorboard: replaced by learner.loggers = ["tensorboard"]')
        return data

    @model_validator(mode="after")
    def _update_settings(self) -> LearnerConfig:
        if self.reject_band is not None:
            low, high = self.reject_band
            if not 0.0 < low < 1.0 < high:
                raise ValueError(f"learner.reject_band: expected [low, high] with 0 < low < 1 "
                                 f"< high, got {list(self.reject_band)}")
        if self.is_level == "sequence" and self.tis_cap is None:
            raise ValueError('learner.is_level: "sequence" weights need learner.tis_cap (the cap)')
        if self.mini_batches > self.batch_groups:
            raise ValueError(f"learner.mini_batches: expected <= learner.batch_groups "
                             f"({self.batch_groups}): each update trains whole groups, got "
                             f"{self.mini_batches}")
        return self

    @model_validator(mode="after")
    def _tracker_settings_need_their_tracker(self) -> LearnerConfig:
        if len(set(self.loggers)) != len(self.loggers):
            raise ValueError(f"learner.loggers: a tracker is named twice in {self.loggers}")
        for key, tracker in (("wandb_project", "wandb"), ("mlflow_tracking_uri", "mlflow"),
                             ("mlflow_experiment", "mlflow")):
            if getattr(self, key) is not None and tracker not in self.loggers:
                raise ValueError(f"learner.{key}: set, but {tracker!r} is not in learner.loggers")
        return self

    @model_validator(mode="after")
    def _clips(self) -> LearnerConfig:
        if self.batch_groups < self.nproc:
            raise ValueError(f"learner.batch_groups: expected >= learner.nproc ({self.nproc}): "
                             f"each rank trains whole groups, got {self.batch_groups}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"learner.warmup_steps: expected <= learner.max_steps ({self.max_steps}), "
                f"got {self.warmup_steps}"
            )
        for name in ("thompson", "target_pass_rate", "category_bandit"):
            section = getattr(self, name)
            if self.selection != name and section != type(section)():
                raise ValueError(f"learner.{name}: set, but learner.selection is "
                                 f"{self.selection!r} (its parameters would do nothing)")
        if self.selection == "category_bandit" and not self.category_bandit.field:
            raise ValueError("learner.category_bandit.field: required with learner.selection "
                             "= 'category_bandit' (the data field that names a category)")
        if self.advantage == "drgrpo" and self.std_normalize:
            # Dr.GRPO is defined without std normalisation; make the conflict explicit.
            raise ValueError(
                "learner.std_normalize: Dr.GRPO does not divide by the group std; "
                "set learner.std_normalize=false or choose learner.advantage='grpo'"
            )
        return self


# --------------------------------------------------------------------------------------------
# store
# --------------------------------------------------------------------------------------------


class StoreConfig(Section):
    url: SecretURL | None = Field(None, repr=False)
    """SQLAlchemy URL of the ledger; None: SQLite `ledger.db` in the run directory.
    PostgreSQL: `postgresql+psycopg://user@host:port/db`. A password in it is redacted from
    every dump of the config (lppo/core/secrets.py)."""
    store_texts: bool = True
    """Record completion texts in `rollouts` (they can dominate the ledger's size)."""
    busy_timeout_ms: int = Field(10_000, ge=0)
    """SQLite busy timeout for writers and readers."""
    write_batch_groups: int = Field(64, ge=1)
    """Most rollout groups committed in one transaction by the writer thread."""
    write_queue: int = Field(8192, ge=1)
    """Records the learner may queue ahead of the writer thread before `put` waits."""
    write_retry_s: float = Field(120.0, ge=0.0)
    """How long the writer retries a transaction that failed for a transient reason (SQLite
    locked, PostgreSQL connection lost) before the run fails with the error."""
    statement_timeout_s: float = Field(30.0, gt=0.0)
    """Read-only queries (`lppo sql`, dashboard) are cancelled after this."""
    row_limit: int = Field(10_000, ge=1)
    """Most rows a read-only query returns."""

    @model_validator(mode="after")
    def _known_backend(self) -> StoreConfig:
        if self.url is not None and not self.url.startswith(("sqlite", "postgresql")):
            raise ValueError("store.url: expected a sqlite:/// or postgresql+psycopg:// URL, "
                             f"got {redact_url(self.url)!r}")
        return self


# --------------------------------------------------------------------------------------------
# transport
# --------------------------------------------------------------------------------------------


class TransportConfig(Section):
    scheme: Literal["tcp", "ipc"] = "tcp"
    """`tcp` (host + ports) or `ipc` (Unix sockets under `ipc_dir`, one machine only)."""
    host: str = "127.0.0.1"
    """Address the learner binds; non-loopback needs `allow_non_loopback`."""
    allow_non_loopback: bool = False
    """Allow binding beyond loopback (multi-host runs). Off by default: nothing listens outside."""
    work_port: int = Field(5555, ge=1, le=65535)
    """ROUTER/DEALER port: register, work requests and replies, heartbeats."""
    rollout_port: int = Field(5556, ge=1, le=65535)
    """PUSH/PULL port: rollout groups from actors to the learner."""
    weights_port: int = Field(5557, ge=1, le=65535)
    """PUB/SUB port: weight notices and shutdown broadcasts."""
    sync_port: int = Field(5558, ge=1, le=65535)
    """`learner.weights_backend = "collective"`: the learner's rendezvous store for weight
    groups (a TCP port even with `scheme = "ipc"`, then on 127.0.0.1)."""
    ipc_dir: Path | None = None
    """Folder for ipc:// sockets; default `<run_dir>/sockets`."""
    hwm: int = Field(1000, ge=1)
    """ZeroMQ high-water mark (messages queued per socket before blocking/dropping)."""
    max_frame_mb: float = Field(64.0, gt=0.0)
    """Frames larger than this are rejected before decoding."""
    heartbeat_s: float = Field(5.0, gt=0.0)
    """Actor heartbeat interval."""
    peer_timeout_s: float = Field(30.0, gt=0.0)
    """An actor silent this long is considered gone; its in-flight work is released."""
    work_timeout_s: float = Field(600.0, gt=0.0)
    """A work item not returned this long after it was handed out is released (its slot
    comes back; a group that arrives later is ignored as a duplicate)."""

    @model_validator(mode="after")
    def _loopback_and_ports(self) -> TransportConfig:
        ports = [self.work_port, self.rollout_port, self.weights_port]
        if self.scheme == "tcp" and len(set(ports)) != 3:
            raise ValueError(
                "transport: work_port, rollout_port and weights_port must differ, got "
                f"{ports}"
            )
        if self.scheme == "tcp" and not self.allow_non_loopback and not is_loopback(self.host):
            raise ValueError(
                f"transport.host: {self.host!r} is not a loopback address; set "
                "transport.allow_non_loopback=true to listen beyond this machine"
            )
        if self.peer_timeout_s <= self.heartbeat_s:
            raise ValueError(
                f"transport.peer_timeout_s: expected > transport.heartbeat_s ({self.heartbeat_s}), "
                f"got {self.peer_timeout_s}"
            )
        return self


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP address (a name that is not `localhost` is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# the tree
# --------------------------------------------------------------------------------------------


class Config(Section):
    """The whole configuration of a run, as loaded from TOML plus `--set` overrides."""

    run: RunConfig = Field(default_factory=RunConfig)
    """Run identity, seed, logging."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """Policy model and tokenizer."""
    data: DataConfig = Field(default_factory=DataConfig)
    """Training and evaluation data, prompt format."""
    actor: ActorConfig = Field(default_factory=ActorConfig)
    """Generation and verification."""
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    """Optimisation, staleness, checkpoints."""
    lppo: LPPOConfig = Field(default_factory=LPPOConfig)
    """The method: LP weights, PG-sampling, curation."""
    store: StoreConfig = Field(default_factory=StoreConfig)
    """The sample ledger."""
    transport: TransportConfig = Field(default_factory=TransportConfig)
    """Sockets between actors and learner."""

    @model_validator(mode="after")
    def _cross_section(self) -> Config:
        budget = self.actor.sampling.max_tokens + self.data.max_prompt_tokens
        if budget > self.model.max_model_len:
            raise ValueError(
                "actor.sampling.max_tokens: data.max_prompt_tokens "
                f"({self.data.max_prompt_tokens}) + actor.sampling.max_tokens "
                f"({self.actor.sampling.max_tokens}) = {budget} exceeds model.max_model_len "
                f"({self.model.max_model_len})"
            )
        ports = [self.transport.work_port, self.transport.rollout_port,
                 self.transport.weights_port]
        if (self.learner.weights_backend == "collective" and self.transport.scheme == "tcp"
                and self.transport.sync_port in ports):
            raise ValueError(f"transport.sync_port: {self.transport.sync_port} is already one "
                             f"of the other transport ports {ports}")
        return self

    @model_validator(mode="after")
    def _eval_budget(self) -> Config:
        max_tokens = self.learner.eval.max_tokens
        budget = (max_tokens or 0) + self.data.max_prompt_tokens
        if max_tokens is not None and budget > self.model.max_model_len:
            raise ValueError(
                "learner.eval.max_tokens: data.max_prompt_tokens "
                f"({self.data.max_prompt_tokens}) + learner.eval.max_tokens ({max_tokens}) = "
                f"{budget} exceeds model.max_model_len ({self.model.max_model_len})"
            )
        return self

    @property
    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL (SQLite in the run directory unless `store.url`)."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.run.run_dir / 'ledger.db').resolve()}"
