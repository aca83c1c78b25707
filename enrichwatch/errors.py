"""One exception tree, so callers can catch by meaning and every error carries its context."""

from __future__ import annotations


class EnrichwatchError(Exception):
    """Base of every error enrichwatch raises on purpose."""


class SettingsError(EnrichwatchError):
    """A setting has a bad value; the message names the setting."""


class StoreError(EnrichwatchError):
    """The event log could not do what was asked."""


class StoreUnavailableError(StoreError):
    """The event log could not take a write now: another process held the lock past the wait,
    the disk is full or failing, or the service is stopping. Nothing was written; the same
    request may be sent again."""


class MigrationError(StoreError):
    """The database schema is newer than this code, or a migration failed."""


class UnknownJobError(StoreError):
    """No job has that id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class AlreadyTrackedError(StoreError):
    """The vendor job is tracked already, with other notification targets than the ones asked
    for: answering with the job as it is would drop those targets without a word."""

    def __init__(self, job_id: int, vendor: str, vendor_job_id: str) -> None:
        super().__init__(
            f"{vendor} job {vendor_job_id} is already tracked (job {job_id}) with other "
            "notification targets"
        )
        self.job_id = job_id


class UnknownInboxError(StoreError):
    """No stored callback has that inbox id."""

    def __init__(self, inbox_id: int) -> None:
        super().__init__(f"no stored callback with inbox id {inbox_id}")
        self.inbox_id = inbox_id


class FetchSupersededError(StoreError):
    """A results fetch outlived its run: a reprocess reopened the job while it ran."""

    def __init__(self, job_id: int, item_id: int) -> None:
        super().__init__(f"the results fetch {item_id} of job {job_id} was superseded")
        self.job_id = job_id
        self.item_id = item_id


class ResultsStateError(StoreError):
    """The job's results are not in the state this asks for."""


class UnknownVendorError(EnrichwatchError, LookupError):
    """The name is not one of the supported vendors."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown vendor {name!r}")
        self.name = name


class InputError(EnrichwatchError):
    """A batch's input breaks the vendor's rules; found before anything is sent.

    `row` is the 1-based data row (the CSV line after the header) where there is one.
    """

    def __init__(self, vendor: str, message: str, *, row: int | None = None) -> None:
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{vendor}: {where}{message}")
        self.vendor = vendor
        self.row = row
        self.message = message


class VendorJobIdError(EnrichwatchError, ValueError):
    """A vendor job id no vendor could have issued (blank, too long, control characters).

    A ValueError too, so a pydantic validator that calls the check reports it as invalid."""


class SignatureError(EnrichwatchError):
    """A callback's signature is missing, stale or wrong; `reason` is a short metric label."""

    def __init__(self, vendor: str, reason: str) -> None:
        super().__init__(f"{vendor} callback signature rejected: {reason}")
        self.vendor = vendor
        self.reason = reason


class VendorError(EnrichwatchError):
    """A vendor API call failed; `status` is the HTTP status (None for network errors)."""

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{vendor}: {message}")
        self.vendor = vendor
        self.message = message
        self.status = status
        self.retry_after = retry_after


class VendorTransientError(VendorError):
    """429, 5xx, timeouts and dropped connections: retry, after `retry_after` if given."""


class VendorBudgetSpentError(VendorTransientError):
    """Not sent: the vendor account's request budget, which every process on the database
    draws on, has no place for `retry_after` seconds. Nothing reached the vendor, so it is no
    failure: the work waits that long, and no retry is spent on it."""


class VendorAuthError(VendorError):
    """401/403: the credentials are wrong; retrying will not help."""


class VendorPaymentError(VendorError):
    """402: out of credits; terminal until someone tops up. Carries what the vendor said."""

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        status: int | None = 402,
        required: float | None = None,
        balance: float | None = None,
    ) -> None:
        super().__init__(vendor, message, status=status)
        self.required = required
        self.balance = balance


class VendorNotFoundError(VendorError):
    """404: the vendor does not know this job."""


class VendorRejectedError(VendorError):
    """4xx validation errors: the request itself is wrong."""


class ActionNotSupportedError(VendorError):
    """The vendor offers no such action (resume, reprocess, list…)."""


class VendorAmbiguousError(VendorTransientError):
    """A request that changes state may have reached the vendor before it failed (a timeout
    or dropped connection after sending, or a 5xx): resending it could do the work twice."""


class VendorConcurrencyLimitError(VendorTransientError):
    """The vendor refused a new job because too many of ours are still running (Crustdata's
    5-active-jobs cap): queue it locally and submit again once one of them finishes."""


class VendorPartialSubmitError(VendorError):
    """An input split into several jobs failed part-way: the first `rows_submitted` rows are
    already running as `submitted_ids`; `__cause__` is the failure of the next part."""

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        submitted_ids: list[str],
        rows_submitted: int,
        status: int | None = None,
    ) -> None:
        super().__init__(vendor, message, status=status)
        self.submitted_ids = submitted_ids
        self.rows_submitted = rows_submitted


class VendorProtocolError(VendorError):
    """The vendor answered in a shape we do not understand (unknown status, not JSON)."""


class VendorUntrustedUrlError(VendorError):
    """A result URL points outside the vendor's allow-listed hosts; it was not fetched."""


class VendorDownloadExpiredError(VendorError):
    """A pre-signed result link was refused (expired): read the job's status again for fresh
    links and resume the fetch where it stopped."""
