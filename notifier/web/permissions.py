"""The one place that answers "may role R do action A?" (issue 19, "Who may do what").

A view names its action when it is wired (`app.py`); `auth.require()` asks here and answers a
forbidden action with a 403 page, so a hidden button is never the only guard. The templates ask
`may(role, action)` too, only to hide what would be refused.
"""
from __future__ import annotations

# Support: find a customer, read and act on them, work the task queue.
SUPPORT = frozenset({
    "panel.view", "customers.view", "customers.escalate", "customers.contact", "customers.hold",
    "customers.optout", "tasks.view", "tasks.work",
})
# Finance: everything support does, plus money and the records an audit reads.
FINANCE = SUPPORT | {"payments.record", "log.view", "exports", "reports.audit", "reports.monthly", "reports.forecast"}
# Admin: everything, plus the users and the channels' status.
ADMIN = FINANCE | {"settings.view", "users.manage"}

ROLE_ACTIONS = {"support": SUPPORT, "finance": FINANCE, "admin": ADMIN}
ACTIONS = ADMIN


def may(role: str, action: str) -> bool:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")  # a typo in a view must not read as "forbidden"
    return action in ROLE_ACTIONS.get(role, frozenset())
