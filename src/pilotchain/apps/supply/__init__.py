"""S4 of the pilot: supply-chain receivables that cannot be financed twice, and parts traceability as
GS1 EPCIS 2.0 events anchored by their Event Hash ID. Built on the data exchange
(``pilotchain.apps.exchange``): invoices, delivery notes and financing terms stay in the vaults;
see docs/supply.md."""
