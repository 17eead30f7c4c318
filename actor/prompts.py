"""Prompt token ids for a work item: template + problem, then the expert prefix, if any.

    prompt_ids = template(problem)        chat template with the assistant turn opened,
                                          or `data.plain_template` ("Question: ...\\nAnswer: ")
    context    = prompt_ids + prefix_ids  the model continues the expert's partial solution

The prefix arrives as token ids chosen by the learner (it cut the expert solution at a line or
sentence boundary), so the actor never re-tokenizes it: the tokens the model conditions on, the
tokens sent back to the learner and the tokens trained on are the same list. The prefix is
kept separate from the policy's completion tokens, and only the completion is verified: the
prefix never states the final answer (`learner.algo.prefix`), and a guided completion is
correct only if it gives the answer itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lppo.core.config import DataConfig
    from lppo.core.wire import WorkItem


class PromptError(ValueError):
    """A work item cannot be turned into a prompt (too long, empty, template failure)."""


class PromptBuilder:
    """Builds prompt token ids with the run's template and a Hugging Face tokenizer."""

    def __init__(self, tokenizer, data: DataConfig, max_model_len: int):
        self.tokenizer = tokenizer
        self.data = data
        self.max_model_len = max_model_len

    def prompt_ids(self, problem: str) -> list[int]:
        """Token ids of the templated problem, ending where the answer starts."""
        if not problem.strip():
            raise PromptError("empty problem text")
        if self.data.prompt_format == "plain":
            text = self.data.plain_template.format(problem=problem)
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        messages = []
        if self.data.system_prompt:
            messages.append({"role": "system", "content": self.data.system_prompt})
        messages.append({"role": "user", "content": problem})
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return list(ids["input_ids"] if isinstance(ids, dict) else ids)

    def context(self, item: WorkItem) -> tuple[list[int], list[int]]:
        """(prompt_ids, prefix_ids) of a work item, checked against the model's length."""
        if item.prompt_ids is not None:
            prompt = [int(t) for t in item.prompt_ids.numpy()]
        else:
            prompt = self.prompt_ids(item.prompt or "")
        prefix = [] if item.prefix_ids is None else [int(t) for t in item.prefix_ids.numpy()]
        if len(prompt) > self.data.max_prompt_tokens:
            raise PromptError(
                f"prompt of sample {item.sample_id} has {len(prompt)} tokens, more than "
                f"data.max_prompt_tokens={self.data.max_prompt_tokens}"
            )
        if len(prompt) + len(prefix) >= self.max_model_len:
            raise PromptError(
                f"sample {item.sample_id}: prompt ({len(prompt)}) + prefix ({len(prefix)}) tokens "
                f"leave no room within model.max_model_len={self.max_model_len}"
            )
        return prompt, prefix
