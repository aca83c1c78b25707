from __future__ import annotations

from enrichwatch.cli import main

main()
