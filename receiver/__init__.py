"""The HTTP side of enrichwatch: vendor callbacks, health, metrics and the JSON API."""

from __future__ import annotations

from receiver.app import create_app, serving

__all__ = ["create_app", "serving"]
