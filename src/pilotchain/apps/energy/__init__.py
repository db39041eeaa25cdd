"""S5 of the pilot: green-power certificates issued against signed meter readings (never more than
metered, never twice for the same device and period), transferred, retired once, cancelled at expiry,
and a retirement traced from a QR code offline. Built on the data exchange (meter readings stay in the
meter operator's vault); see docs/energy.md."""
