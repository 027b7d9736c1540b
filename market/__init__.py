"""The market: the deterministic contract logic, order books, settlement and trading."""
