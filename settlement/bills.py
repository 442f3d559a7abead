"""Where a provider's daily trade bill comes from (a Protocol), and the sandbox's bill.

The WeChat sandbox's bill is written by :mod:`settlement.tradebill` from what the sandbox
itself holds as paid and refunded — the provider's side, not our ledger — so that a
payment our ledger missed (a lost notification) or booked wrongly shows as a difference.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol


class BillSource(Protocol):
    """A provider's daily trade bills."""

    async def trade_bill(self, day: date) -> bytes:
        """The bill file of a local day, as the provider serves it."""
        ...
