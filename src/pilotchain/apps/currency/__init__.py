"""The digital currency: a two-tier, centrally issued digital yuan on its own central-bank network —
maker-checker issuance and redemption under quotas and reserves, tiered wallets whose holders sign
with their own keys, managed anonymity with lawful disclosure through the data exchange,
programmable payments (red envelopes, escrow, holds), offline vouchers, a supply audit and
analytics over the exported history. See docs/currency.md."""
