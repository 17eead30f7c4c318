"""The base of every config section: unknown keys rejected, values validated on set, floats
finite. Its own module so that the section modules (`schema`, `method`) share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every config section: unknown keys are rejected, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              use_attribute_docstrings=True, allow_inf_nan=False)
    """Unknown keys are rejected, values validated on set, and no float may be inf or nan."""
