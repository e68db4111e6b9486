"""Schemathesis hooks for tests/api/test_contract_fuzz.py (loaded by SCHEMATHESIS_HOOKS).

One failure is dropped, and only that one: a schema-valid submission refused 422 with the
problem type idempotency-key-reused. Schemathesis draws Idempotency-Key values freely, so
it sends the same key with two different bodies; answering 422 then is what the server
must do (the IETF Idempotency-Key draft), and the check cannot know keys have a memory.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import RejectedPositiveData

KEY_REUSED = "/problems/idempotency-key-reused"


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return True
    try:
        kind = response.json().get("type")
    except ValueError:
        return True
    return kind != KEY_REUSED
