"""enrichwatch: track batch jobs at data-enrichment vendors until their results are in hand."""

from __future__ import annotations

__version__ = "0.1.0"
