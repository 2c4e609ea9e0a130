"""Who may do what, and how much: the one gate for owner-only actions and the one rate limiter.

A deployed Space is public: anyone can call every endpoint without the browser. On a Space
(`SPACE_ID` set) the actions in `OWNER_ONLY` spend the owner's resources or touch the owner's
data, so they need the signed-in user to be the Space's owner (`SPACE_AUTHOR_NAME`) or one of
`MATHTUTOR_ADMINS` (comma separated Hub user names). Visitors chat, compare, tutor, run
evaluations within `VISITOR_BOUNDS`, and push with their own Hub sign-in. Locally (no
`SPACE_ID`) everything stays open. Every UI handler and endpoint asks `require(action, user)`
on the server, so calling an endpoint directly gets the same answer as clicking the button.

Fair use is counted per client, not per browser session (a new session is free to make):
`client_key` names a client by its signed-in user, else its IP address, and one sliding-window
`RateLimiter` per tab (`LIMITERS`) counts its requests. The training queue is bounded per user
and overall (`check_run_queue`, called by `training.runs.launch`). Owners and admins are
neither rate limited nor bounded; neither is anyone locally, except by the training queue,
which protects the machine itself. The examples below run as a local app (no `SPACE_ID`).

>>> allowed("train", None)
True
>>> limiter = RateLimiter("the tutor", limit=2, period=60)
>>> [limiter.wait_time("ip:1.2.3.4", now=t) for t in (0.0, 1.0, 2.0, 60.5)]
[0.0, 0.0, 58.0, 0.0]
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping

# action -> what it is, as the refusal names it. Everything not listed is open to visitors.
OWNER_ONLY = {
    "train": "Training on this Space",
    "stop_run": "Stopping a training run on this Space",
    "resume_run": "Resuming a training run on this Space",
    "delete_eval": "Deleting an evaluation on this Space",
    "stop_eval": "Stopping another visitor's evaluation on this Space",
    "export": "Exporting a merged model on this Space",
    "pull": "Pulling an adapter onto this Space",
    "space_token": "Using this Space's own Hub token",
}
# Largest request a visitor may make on a Space (field -> bound); owners have none.
VISITOR_BOUNDS = {
    "num_samples": 50,  # problems per evaluation
    "num_systems": 3,  # base + adapters per evaluation
    "num_votes": 8,  # samples per problem (evaluation self-consistency)
    "max_new_tokens": 1024,  # per completion: Compare's and Tutor's sliders end here
    "batch_size": 32,  # rows per forward pass (memory)
    "k": 10,  # Tutor self-consistency samples (its slider's end)
}
# Training runs queued or running at once: per user, and on the whole machine.
MAX_RUNS_PER_USER = int(os.environ.get("MATHTUTOR_MAX_RUNS_PER_USER", "2"))
MAX_RUNS = int(os.environ.get("MATHTUTOR_MAX_RUNS", "4"))


# --------------------------------------------------------------------------- who
def on_space() -> bool:
    """Whether the app runs as a Space (the Hub sets `SPACE_ID` there)."""
    return bool(os.environ.get("SPACE_ID", "").strip())


def space_owner() -> str | None:
    """The Space's owner (`SPACE_AUTHOR_NAME`), or None."""
    return os.environ.get("SPACE_AUTHOR_NAME", "").strip() or None


def admins() -> set[str]:
    """User names that may do everything on this Space: the owner and `MATHTUTOR_ADMINS`."""
    names = {name.strip() for name in os.environ.get("MATHTUTOR_ADMINS", "").split(",")}
    names.add(space_owner() or "")
    return {name.casefold() for name in names if name}


def is_admin(user: str | None) -> bool:
    """Whether `user` (a Hub user name, None when not signed in) may do everything here.

    >>> is_admin(None)  # locally everything stays open
    True
    """
    if not on_space():
        return True
    return bool(user) and user.casefold() in admins()


def who_may() -> str:
    """The people the refusals name, e.g. "its owner (alice) and MATHTUTOR_ADMINS"."""
    owner = space_owner()
    return f"its owner ({owner}) and MATHTUTOR_ADMINS" if owner else "MATHTUTOR_ADMINS"


def refusal(action: str, user: str | None) -> str | None:
    """Why `user` may not do `action` here (one line), or None when they may."""
    if action not in OWNER_ONLY:
        raise KeyError(f"unknown action {action!r}; expected one of {', '.join(OWNER_ONLY)}")
    if is_admin(user):
        return None
    if action == "space_token":  # anyone may act on the Hub as themselves
        signed = "sign in to act with your own Hugging Face account"
    else:
        signed = f"you are signed in as {user}" if user else "sign in as one of them"
    return f"{OWNER_ONLY[action]} is for {who_may()}; {signed}."


def allowed(action: str, user: str | None) -> bool:
    return refusal(action, user) is None


def require(action: str, user: str | None) -> None:
    """Raise PermissionError (one line: who may, and why) unless `user` may do `action`."""
    reason = refusal(action, user)
    if reason is not None:
        raise PermissionError(reason)


# --------------------------------------------------------------------------- how much
def check_bounds(values: Mapping[str, float | int | None], user: str | None) -> None:
    """PermissionError naming the first field of `values` over a visitor's bound.

    Keys are `VISITOR_BOUNDS` names. None ("automatic") passes, and so does a value that is
    not a number: the job's own validation names that field.
    """
    if is_admin(user):
        return
    for name, value in values.items():
        bound = VISITOR_BOUNDS[name]
        if isinstance(value, (int, float)) and value > bound:
            raise PermissionError(
                f"{name}: visitors may use at most {bound} on this Space (got {value:g}); "
                f"larger jobs are for {who_may()}."
            )


def check_run_queue(user: str | None, active_owners: Iterable[str | None]) -> None:
    """PermissionError if `user` may not add a training run to these queued/running ones.

    `active_owners` holds the launching user of every queued or running run (None: anonymous,
    e.g. locally or from the CLI).

    >>> check_run_queue("bob", ["alice", "bob"])
    >>> check_run_queue("bob", ["bob", "bob"])
    Traceback (most recent call last):
    PermissionError: You already have 2 runs queued or running; wait for one to finish or stop it.
    """
    owners = [owner.casefold() if owner else None for owner in active_owners]
    mine = owners.count(user.casefold() if user else None)
    if mine >= MAX_RUNS_PER_USER:
        raise PermissionError(
            f"You already have {mine} runs queued or running; wait for one to finish or stop it."
        )
    if len(owners) >= MAX_RUNS:
        raise PermissionError(
            f"{len(owners)} training runs are already queued or running on this machine "
            f"(the most it takes); try again when one has finished."
        )


# --------------------------------------------------------------------------- how often
def client_key(user: str | None, host: str | None, headers: Mapping[str, str] | None) -> str:
    """The identity fair use is counted by: the signed-in user, else the client's IP address.

    Only on a Space is `x-forwarded-for` honoured: there the Hub's proxy sets it (its first
    entry is the visitor) and the socket's peer is the proxy; elsewhere a client could forge it.

    >>> client_key(None, "10.0.0.7", {"x-forwarded-for": "1.2.3.4"}), client_key("Bob", None, {})
    ('ip:10.0.0.7', 'user:bob')
    """
    if user:
        return f"user:{user.casefold()}"
    forwarded = (headers or {}).get("x-forwarded-for", "") if on_space() else ""
    address = forwarded.split(",")[0].strip() or host or "unknown"
    return f"ip:{address}"


class RateLimited(PermissionError):
    """A client went over its allowance; `wait` is the seconds until the next request passes."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class RateLimiter:
    """At most `limit` requests per `period` seconds per client key, over a sliding window.

    Keys whose window is empty are forgotten, and at most `max_keys` are kept (the least
    recently seen go first), so memory stays bounded however many clients come.
    """

    def __init__(self, name: str, limit: int, period: float = 60.0, max_keys: int = 10_000):
        if limit < 1 or period <= 0:
            raise ValueError(f"{name}: limit must be >= 1 and period > 0, got {limit}, {period}")
        self.name, self.limit, self.period, self.max_keys = name, limit, period, max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, key: str, now: float | None = None) -> float:
        """Count one request for `key`: 0.0 when allowed, else seconds until one would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.period:
                hits.popleft()
            self._hits[key] = hits  # re-inserted: dict order is least recently seen first
            if len(hits) >= self.limit:
                return hits[0] + self.period - now
            hits.append(now)
            while len(self._hits) > self.max_keys:
                del self._hits[next(iter(self._hits))]
            return 0.0

    def check(self, key: str, user: str | None = None) -> None:
        """Count one request; RateLimited saying how long to wait when over the allowance.

        Owners and admins (everyone, locally) are not counted.
        """
        if is_admin(user):
            return
        wait = self.wait_time(key)
        if wait > 0:
            raise RateLimited(
                f"You're going fast! Please wait {math.ceil(wait)} seconds and try again, "
                f"so {self.name} stays quick for everyone.",
                wait,
            )


def _rate(variable: str, default: int) -> int:
    value = os.environ.get(variable, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{variable} must be a whole number of requests, got {value!r}") from None


# One limiter per tab; the limits are per minute (evaluations: per 10 minutes).
LIMITERS = {
    "tutor": RateLimiter("the tutor", _rate("MATHTUTOR_TUTOR_RATE", 12), 60.0),
    "compare": RateLimiter("Compare", _rate("MATHTUTOR_COMPARE_RATE", 12), 60.0),
    "evaluate": RateLimiter("evaluation", _rate("MATHTUTOR_EVAL_RATE", 3), 600.0),
    "votes": RateLimiter("voting", _rate("MATHTUTOR_VOTE_RATE", 20), 600.0),
}
