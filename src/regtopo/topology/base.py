"""The base every topology model shares: unknown keys refused, `x-` keys left to the user."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

_USER_KEYS: dict[str, Any] = {"patternProperties": {"^x-": {}}}


class Model(BaseModel):
    # `x-` keys are the user's own (anchors, notes); everything else must be known.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_USER_KEYS)

    @model_validator(mode="before")
    @classmethod
    def _drop_user_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))
            }
        return data
