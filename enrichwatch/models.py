"""The normalized vocabulary every vendor's statuses map onto (DESIGN.md: job state)."""

from __future__ import annotations

from enum import StrEnum


class VendorName(StrEnum):
    CRUSTDATA = "crustdata"
    INFLUENCERS_CLUB = "influencers_club"
    REPROMPT = "reprompt"
    BRIGHTLOCAL = "brightlocal"
    ECORE = "ecore"


class JobState(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    NEEDS_ACTION = "needs_action"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.EXPIRED})
ENDED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED})
"""Ended at the vendor's word: never asked about again. An expired job ended only at ours,
and a person may have it asked about again."""
OPEN_STATES = tuple(state for state in JobState if state not in TERMINAL_STATES)


class EventSource(StrEnum):
    WEBHOOK = "webhook"
    POLL = "poll"
    API = "api"
    SYSTEM = "system"
