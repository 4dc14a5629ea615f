"""The quote app's clients: the shared ones plus the vendor relay it hosts."""

from __future__ import annotations

from functools import cached_property

from shared.runtime import Runtime


class QuoteRuntime(Runtime):
    service = "quote"

    @cached_property
    def vendor_relay(self):
        """The relay's side: only the ``vendor-relay`` function uses it."""
        from .vendor_relay import VendorRelay

        return VendorRelay(self.settings)
