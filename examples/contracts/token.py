"""A fungible token: one admin organisation mints, every member transfers.

Accounts are identity names (``context.caller.name``), e.g. ``bank-client``.

    init(admin_org, symbol)        governance runs it once, at activation
    mint(to, amount)               admins of the admin organisation only
    transfer(to, amount)           from the caller's own account
    balance(account) -> int
    supply() -> int
    info() -> {"symbol", "admin_org", "supply"}
"""

from pilotchain.contracts.api import Map, Variable, context, deny, emit, reject_arguments, require

balances = Map("balances")
admin_org = Variable("admin_org")
symbol = Variable("symbol")
total = Variable("supply")

AMOUNT_MAX = 10**18


def init(admin_org_id, token_symbol="PLT"):
    admin_org.set(admin_org_id)
    symbol.set(token_symbol)
    total.set(0)


def _check_amount(amount):
    if not isinstance(amount, int) or isinstance(amount, bool):
        reject_arguments("amount must be an integer")
    if amount <= 0 or amount > AMOUNT_MAX:
        reject_arguments(f"amount must be 1..{AMOUNT_MAX}")


def _check_account(account):
    if not isinstance(account, str) or not 1 <= len(account) <= 128:
        reject_arguments("accounts are identity names (1-128 characters)")


def mint(to, amount):
    _check_account(to)
    _check_amount(amount)
    caller = context.caller
    if caller.org != admin_org.get() or "admin" not in caller.roles:
        deny(f"only admins of {admin_org.get()} mint")
    balances.set(to, balances.get(to, 0) + amount)
    total.set(total.get(0) + amount)
    emit("minted", {"to": to, "amount": amount})
    return balances.get(to)


def transfer(to, amount):
    _check_account(to)
    _check_amount(amount)
    sender = context.caller.name
    have = balances.get(sender, 0)
    require(have >= amount, f"insufficient balance: {sender} has {have}, needs {amount}")
    balances.set(sender, have - amount)
    balances.set(to, balances.get(to, 0) + amount)
    emit("transfer", {"from": sender, "to": to, "amount": amount})
    return have - amount


def balance(account):
    _check_account(account)
    return balances.get(account, 0)


def supply():
    return total.get(0)


def info():
    return {"symbol": symbol.get(), "admin_org": admin_org.get(), "supply": total.get(0)}
