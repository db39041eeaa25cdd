"""The node: the I/O shell that drives the deterministic core (consensus, ledger) over sockets, disk and clock."""
