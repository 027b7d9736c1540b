"""The top of the stack: the landing redirect, the household dashboard and the consoles, which
gather what every app below shows (ledger < meters < market < supervision < dashboards)."""
