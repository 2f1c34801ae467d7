"""Who decides an approval when a person does not have to (seed 000's auto-approve policy)."""

from __future__ import annotations

APPROVE = "approve"
DENY = "deny"
RETRY_WITH_FULL_ACCESS = "retry_with_full_access"
POLICY_ACTOR = "policy"
SESSION_ACTOR = "session"


def auto_decision(
    *, auto_approve: bool, trust_mode: bool, requires_full_access: bool
) -> str | None:
    """The policy's decision for a turn started with ``auto_approve``, else None (a person decides).

    Approve; a request that needs full access is retried with full access when the
    turn has ``trust_mode`` and denied without it.
    """
    if not auto_approve:
        return None
    if requires_full_access:
        return RETRY_WITH_FULL_ACCESS if trust_mode else DENY
    return APPROVE
