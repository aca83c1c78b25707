"""What one reconciler process keeps between passes: the token bucket it plans each vendor
account's status checks against, and the polling policies. The request budget every call
must fit (`enrichwatch.vendors.budget`) and all else live in the database."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from enrichwatch.models import VendorName
from enrichwatch.polling import TokenBucket, VendorPolicy, vendor_policy
from enrichwatch.runtime import Services
from enrichwatch.store.holders import owner_id
from enrichwatch.vendors import adapter_class


@dataclass
class Reconciler:
    services: Services
    owner: str = field(default_factory=owner_id)
    rng: random.Random = field(default_factory=random.Random)
    budgets: dict[VendorName, TokenBucket] = field(default_factory=dict)
    policies: dict[VendorName, VendorPolicy] = field(default_factory=dict)
    deferred: list[tuple[list[int], float]] = field(default_factory=list)
    """Jobs a pass could not afford to check, and when the budget allows; flushed per pass."""

    def __post_init__(self) -> None:
        settings = self.services.settings
        for vendor in VendorName:
            limits = adapter_class(vendor).limits
            self.budgets[vendor] = TokenBucket.per_minute(limits.requests_per_minute)
            self.policies[vendor] = vendor_policy(limits, settings.vendor(vendor), settings)

    def now(self) -> float:
        return self.services.store.clock()
