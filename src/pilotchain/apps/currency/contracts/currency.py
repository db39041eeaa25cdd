"""currency — a two-tier, centrally issued digital currency (e-CNY style; docs/currency.md).

Three kinds of party. The **central bank** (an organisation; its officers are its client and admin
identities) issues to and redeems from **authorised operators** (member organisations: commercial
banks) under a quota and a reserve rule, with maker-checker: one officer proposes, another
approves. Operators open **wallets** for holders who are not consortium members: a wallet is a
pseudonymous id, a public key the holder keeps, a kind (personal tiers 1-4, corporate, merchant,
sub-wallet) and limits. Every instruction that takes money out of a wallet is signed by the
holder's key over a canonical statement and submitted by the wallet's operator in a transaction
the operator signs; this contract checks both.

Statements (``apps/currency/statements.py`` writes the same bytes)::

    pilotchain/currency/v1|<chain id>|<kind>|<wallet>|<seq>|<field>|<field>...

``seq`` must exceed the wallet's last accepted one (no replay; gaps allowed, so one lost
instruction never blocks a wallet). Money is an integer number of fen. Every instrument a holder
creates (payment, hold, escrow, refund) is named ``<wallet>:<client key>``: submitting it again
returns the first result and moves nothing (idempotent submission).

Supply: every movement of value is one ``move`` event between buckets — ``cb`` (outside the
supply), ``vault:<operator>``, ``wallet:<id>``, ``pool:<campaign>`` and ``env:<id>:<campaign>``
(red envelopes), ``held:<hold or escrow>``, ``offline:<device>`` — chained into a tamper-evident
history (``history``: count and head, head = H(previous head hex | movement text)), and the
aggregate per kind of bucket is kept in ``supply``. The invariant, at every block::

    issued - redeemed == vaults + wallets + envelopes + held + offline

Calendar days and years for the limits are Asia/Shanghai's (UTC+8, no daylight saving), computed
from the block's certified time (``context.timestamp_ms``).
"""

from pilotchain.contracts.api import (
    Map,
    Variable,
    attempt,
    call,
    context,
    deny,
    emit,
    hash,
    reject_arguments,
    require,
    verify_signature,
)

settings = Variable("settings")
supply = Variable("supply")
history = Variable("history")
operators = Map("operators")
proposals = Map("proposals")
wallets = Map("wallets")
payments = Map("payments")
campaigns = Map("campaigns")
recipients = Map("recipients")
escrows = Map("escrows")
holds = Map("holds")
devices = Map("devices")
disclosures = Map("disclosures")

VERSION = "pilotchain/currency/v1"
DAY_MS = 86400000
TZ_OFFSET_MS = 8 * 3600000
AMOUNT_MAX = 10 ** 15
BALANCE_MAX = 10 ** 17
TEXT_MAX = 64
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
KINDS = ["personal", "corporate", "merchant"]
LIMIT_NAMES = ["balance_max", "payment_max", "daily_max", "annual_max"]
ACTIONS = ["issue", "redeem", "add_operator", "set_quota", "set_reserve", "set_config"]
STATUSES = ["active", "receive_only", "frozen", "closed"]
CNY = 100
#: pay_batch carries at most this many payments whatever the settings say (a transaction emits at
#: most 256 events, and a payment from own funds emits one)
BATCH_MAX = 200


def _default_settings():
    return {
        "central_bank": "central-bank",
        "regulators": ["central-bank"],
        "officers": [],
        "reserve_ratio_bp": 10000,
        "proposal_ms": DAY_MS,
        "tiers": {
            "1": {"balance_max": None, "payment_max": None, "daily_max": None, "annual_max": None},
            "2": {"balance_max": 500000 * CNY, "payment_max": 50000 * CNY, "daily_max": 100000 * CNY,
                  "annual_max": None},
            "3": {"balance_max": 20000 * CNY, "payment_max": 5000 * CNY, "daily_max": 10000 * CNY,
                  "annual_max": None},
            "4": {"balance_max": 10000 * CNY, "payment_max": 2000 * CNY, "daily_max": 5000 * CNY,
                  "annual_max": 50000 * CNY},
        },
        "kinds": {
            "corporate": {"balance_max": None, "payment_max": None, "daily_max": None, "annual_max": None},
            "merchant": {"balance_max": None, "payment_max": None, "daily_max": None, "annual_max": None},
        },
        "kyc_required": True,
        "large_value": 50000 * CNY,
        "aml": {"velocity_per_day": 50, "structuring_margin_bp": 1000, "structuring_count": 3},
        "interest_bp": 0,
        "disclosure_ms": 30 * DAY_MS,
        "offline": {"balance_max": 1000 * CNY, "voucher_max": 500 * CNY, "vouchers_max": 64,
                    "valid_ms": 7 * DAY_MS, "grace_ms": 3 * DAY_MS},
        "envelope": {"recipients_max": 10000, "merchants_max": 64},
        "sub_wallets_max": 16,
        "batch_max": 100,
    }


# ------------------------------------------------------------------------------ configuration

def init(args=None):
    settings.set(_merged(_default_settings(), args))
    supply.set({"issued": 0, "redeemed": 0, "vaults": 0, "wallets": 0, "envelopes": 0, "held": 0,
                "offline": 0})
    history.set({"count": 0, "head": ""})


def upgrade(args=None):
    settings.set(_merged(_settings(), args))


def _settings():
    return settings.get()


def _limit_value(where, value):
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                              or value > BALANCE_MAX):
        reject_arguments(f"{where} is an amount in fen or null (no limit)")


def _limits_map(where, value):
    if not isinstance(value, dict) or sorted(value) != sorted(LIMIT_NAMES):
        reject_arguments(f"{where} has exactly " + ", ".join(LIMIT_NAMES))
    for name in LIMIT_NAMES:
        _limit_value(where + "." + name, value[name])


def _positive(where, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        reject_arguments(f"{where} is an integer in {low}..{high}")


def _merged(current, changes):
    """``current`` with ``changes`` applied (top-level keys; a nested map replaces its whole value
    for tiers / kinds entries, aml and offline); everything checked."""
    if changes is None:
        changes = {}
    if not isinstance(changes, dict):
        reject_arguments("configuration is a map")
    base = _default_settings()  # a setting a later version added starts at its default
    for key in current:
        base[key] = current[key]
    current = base
    out = {}
    for key in current:
        out[key] = current[key]
    for key in changes:
        if key not in current:
            reject_arguments(f"unknown setting {key}; settings are " + ", ".join(sorted(current)))
        value = changes[key]
        if key == "tiers" or key == "kinds":
            if not isinstance(value, dict):
                reject_arguments(f"{key} is a map")
            merged = {}
            for name in current[key]:
                merged[name] = current[key][name]
            for name in value:
                if name not in current[key]:
                    reject_arguments(f"{key} are " + ", ".join(sorted(current[key])))
                _limits_map(key + "." + name, value[name])
                merged[name] = value[name]
            value = merged
        elif key == "aml" or key == "offline" or key == "envelope":
            if not isinstance(value, dict):
                reject_arguments(f"{key} is a map")
            merged = {}
            for name in current[key]:
                merged[name] = current[key][name]
            for name in value:
                if name not in current[key]:
                    reject_arguments(f"{key} has " + ", ".join(sorted(current[key])))
                _positive(key + "." + name, value[name], 1, BALANCE_MAX)
                merged[name] = value[name]
            value = merged
        elif key == "central_bank":
            _text("central_bank", value)
        elif key == "regulators" or key == "officers":
            if not isinstance(value, list) or len(value) > 64:
                reject_arguments(f"{key} is a list of at most 64 names")
            for name in value:
                _text(key, name)
        elif key == "reserve_ratio_bp":
            _positive(key, value, 1, 10000)
        elif key == "interest_bp":
            _positive(key, value, 0, 10000)
        elif key == "kyc_required":
            if not isinstance(value, bool):
                reject_arguments("kyc_required is true or false")
        elif key == "sub_wallets_max":
            _positive(key, value, 0, 256)
        elif key == "batch_max":
            _positive(key, value, 1, BATCH_MAX)
        else:
            _positive(key, value, 1, BALANCE_MAX)
        out[key] = value
    return out


# ------------------------------------------------------------------------------ small checks

def _text(name, value):
    if not isinstance(value, str) or not 1 <= len(value) <= TEXT_MAX:
        reject_arguments(f"{name} is a text of 1..{TEXT_MAX} characters")
    if value.strip(SAFE) != "":  # one C-level pass: what is left holds a character outside SAFE
        reject_arguments(f"{name} uses only letters, digits and . _ : -")


def _note(name, value):
    if not isinstance(value, str) or len(value) > 256:
        reject_arguments(f"{name} is a text of at most 256 characters")


def _amount(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= AMOUNT_MAX:
        reject_arguments(f"{name} is a positive whole number of fen, at most {AMOUNT_MAX}")


def _key(name, value):
    if not isinstance(value, bytes) or not 16 <= len(value) <= 256:
        reject_arguments(f"{name} is a public key (SubjectPublicKeyInfo DER of the chain's suite)")


def _signature(value):
    if not isinstance(value, bytes) or not 1 <= len(value) <= 128:
        reject_arguments("signature is the holder's signature bytes")


def _member():
    roles = context.caller.roles
    if "client" not in roles and "admin" not in roles:
        deny("a client or admin identity of a member organisation acts here")


def _statement(kind, wallet, seq, fields):
    text = VERSION + "|" + context.chain_id + "|" + kind + "|" + wallet + "|" + str(seq)
    for value in fields:
        text = text + "|" + str(value)
    return text


def _signed(record, wallet, kind, seq, fields, signature):
    """The wallet's key signed the statement; ``seq`` is new. Advances the wallet's seq."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= record["seq"] or seq > 2 ** 62:
        reject_arguments(f"seq must be above {record['seq']} (the wallet's last accepted instruction)")
    _signature(signature)
    if not verify_signature(record["key"], _statement(kind, wallet, seq, fields), signature):
        deny(f"the signature does not verify with the key of wallet {wallet}: only its holder instructs it")
    record["seq"] = seq


# ------------------------------------------------------------------------------ calendar (Asia/Shanghai)

def _day(ms):
    """Days since 1970-01-01 in Asia/Shanghai (UTC+8 all year)."""
    return (ms + TZ_OFFSET_MS) // DAY_MS


def _civil(day):
    """(year, month, day of month) of a day number (proleptic Gregorian calendar)."""
    z = day + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return (y, m, d)


def _date(day):
    y, m, d = _civil(day)
    return str(y) + "-" + ("0" if m < 10 else "") + str(m) + "-" + ("0" if d < 10 else "") + str(d)


# ------------------------------------------------------------------------------ movements and supply

BUCKET_KINDS = {"vault": "vaults", "wallet": "wallets", "env": "envelopes", "pool": "envelopes",
                "held": "held", "offline": "offline"}


def _move(moves, kind, source, target, amount, ref):
    moves.append([kind, source, target, amount, ref])


def _bucket_kind(bucket):
    if bucket == "cb":
        return "cb"
    return BUCKET_KINDS[bucket.split(":")[0]]


def _record(moves):
    """Chain the movements into the history, emit them and update the supply aggregates."""
    if not moves:
        return
    state = history.get()
    count = state["count"]
    head = state["head"]
    deltas = {}
    for kind, source, target, amount, ref in moves:
        count = count + 1
        text = str(count) + "|" + kind + "|" + source + "|" + target + "|" + str(amount) + "|" + ref
        head = hash(head + "|" + text).hex()
        emit("move", {"n": count, "kind": kind, "from": source, "to": target, "amount": amount, "ref": ref})
        a = _bucket_kind(source)
        b = _bucket_kind(target)
        if a != b:
            deltas[a] = deltas.get(a, 0) - amount
            deltas[b] = deltas.get(b, 0) + amount
    history.set({"count": count, "head": head})
    if deltas:
        totals = supply.get()
        for name in deltas:
            if name == "cb":
                continue
            totals[name] = totals[name] + deltas[name]
            if totals[name] < 0:
                require(False, "invariant broken: supply bucket " + name + " below zero")
        if "cb" in deltas:
            if deltas["cb"] < 0:
                totals["issued"] = totals["issued"] - deltas["cb"]
            else:
                totals["redeemed"] = totals["redeemed"] + deltas["cb"]
        supply.set(totals)


# ------------------------------------------------------------------------------ maker-checker

def _officer(s):
    _member()
    if context.caller.org != s["central_bank"]:
        deny("only officers of the central bank (" + s["central_bank"] + ") propose and approve")
    if s["officers"] and context.caller.name not in s["officers"]:
        deny(context.caller.name + " is not one of the central bank's listed officers")


def propose(proposal_id, action, args):
    """An officer of the central bank proposes ``action`` (issue, redeem, add_operator,
    set_quota, set_reserve, set_config); another officer approves it."""
    s = _settings()
    _officer(s)
    _text("proposal_id", proposal_id)
    if action not in ACTIONS:
        reject_arguments("action is one of " + ", ".join(ACTIONS))
    if not isinstance(args, dict):
        reject_arguments("args is a map")
    require(not proposals.contains(proposal_id), f"proposal {proposal_id} exists already")
    _check_action(s, action, args)
    proposals.set(proposal_id, {"id": proposal_id, "action": action, "args": args, "maker": context.caller.name,
                                "status": "proposed", "checker": None, "ms": context.timestamp_ms,
                                "expires_ms": context.timestamp_ms + s["proposal_ms"], "height": context.height,
                                "done_ms": None})
    emit("proposed", {"id": proposal_id, "action": action, "maker": context.caller.name})
    return proposals.get(proposal_id)


def approve(proposal_id):
    """A second officer (not the maker) approves: the action runs now, or the approval fails."""
    s = _settings()
    _officer(s)
    _text("proposal_id", proposal_id)
    record = proposals.get(proposal_id)
    if record is None:
        reject_arguments(f"no proposal {proposal_id}")
    require(record["status"] == "proposed", f"proposal {proposal_id} is {record['status']}")
    if record["maker"] == context.caller.name:
        deny("maker-checker: the officer who proposed cannot approve; another officer must")
    require(context.timestamp_ms < record["expires_ms"], f"proposal {proposal_id} expired; propose again")
    _check_action(s, record["action"], record["args"])
    moves = []
    _apply_action(s, record["action"], record["args"], proposal_id, moves)
    _record(moves)
    record["status"] = "executed"
    record["checker"] = context.caller.name
    record["done_ms"] = context.timestamp_ms
    proposals.set(proposal_id, record)
    emit("approved", {"id": proposal_id, "action": record["action"], "maker": record["maker"],
                      "checker": context.caller.name})
    return record


def reject(proposal_id, reason=""):
    """An officer (the maker too) rejects an open proposal."""
    s = _settings()
    _officer(s)
    _note("reason", reason)
    record = proposals.get(proposal_id)
    if record is None:
        reject_arguments(f"no proposal {proposal_id}")
    require(record["status"] == "proposed", f"proposal {proposal_id} is {record['status']}")
    record["status"] = "rejected"
    record["checker"] = context.caller.name
    record["done_ms"] = context.timestamp_ms
    proposals.set(proposal_id, record)
    emit("rejected", {"id": proposal_id, "by": context.caller.name, "reason": reason})


def _operator(org):
    record = operators.get(org)
    if record is None:
        reject_arguments(f"{org} is not an authorised operator")
    return record


def _check_action(s, action, args):
    if action == "set_config":
        if sorted(args) != ["changes"]:
            reject_arguments('set_config takes {"changes": {...}}')
        _merged(s, args["changes"])
        return
    if "operator" not in args:
        reject_arguments(action + " names an operator")
    _text("operator", args["operator"])
    if action == "add_operator":
        if sorted(args) != ["operator", "quota", "reserve"]:
            reject_arguments('add_operator takes {"operator", "quota", "reserve"}')
        require(not operators.contains(args["operator"]), args["operator"] + " is an operator already")
        require(args["operator"] != s["central_bank"], "the central bank issues; it is not an operator")
        _limit_value("quota", args["quota"])
        _limit_value("reserve", args["reserve"])
        require(args["quota"] is not None and args["reserve"] is not None, "quota and reserve are amounts")
        return
    op = _operator(args["operator"])
    if action == "issue" or action == "redeem":
        if sorted(args) != ["amount", "operator"]:
            reject_arguments(action + ' takes {"operator", "amount"}')
        _amount("amount", args["amount"])
        if action == "issue":
            outstanding = op["issued"] - op["redeemed"] + args["amount"]
            require(outstanding <= op["quota"],
                    f"issuing {args['amount']} would put {args['operator']}'s outstanding currency at "
                    f"{outstanding}, above its quota {op['quota']}")
            require(outstanding * s["reserve_ratio_bp"] <= op["reserve"] * 10000,
                    f"issuing {args['amount']} needs reserves of {(outstanding * s['reserve_ratio_bp'] + 9999) // 10000}"
                    f" at the reserve ratio {s['reserve_ratio_bp']} bp; {args['operator']} holds {op['reserve']}")
        else:
            require(op["vault"] >= args["amount"],
                    f"{args['operator']}'s vault holds {op['vault']}; it cannot redeem {args['amount']}")
        return
    if action == "set_quota" or action == "set_reserve":
        name = "quota" if action == "set_quota" else "reserve"
        if sorted(args) != sorted(["operator", name]):
            reject_arguments(action + ' takes {"operator", "' + name + '"}')
        _limit_value(name, args[name])
        require(args[name] is not None, name + " is an amount")
        return
    reject_arguments("unknown action")


def _apply_action(s, action, args, proposal_id, moves):
    if action == "set_config":
        settings.set(_merged(s, args["changes"]))
        return
    org = args["operator"]
    if action == "add_operator":
        operators.set(org, {"org": org, "quota": args["quota"], "reserve": args["reserve"], "issued": 0,
                            "redeemed": 0, "vault": 0, "wallets": 0})
        return
    op = operators.get(org)
    if action == "issue":
        op["issued"] = op["issued"] + args["amount"]
        op["vault"] = op["vault"] + args["amount"]
        _move(moves, "issue", "cb", "vault:" + org, args["amount"], proposal_id)
    elif action == "redeem":
        op["redeemed"] = op["redeemed"] + args["amount"]
        op["vault"] = op["vault"] - args["amount"]
        _move(moves, "redeem", "vault:" + org, "cb", args["amount"], proposal_id)
    elif action == "set_quota":
        op["quota"] = args["quota"]
    elif action == "set_reserve":
        op["reserve"] = args["reserve"]
    operators.set(org, op)


# ------------------------------------------------------------------------------ wallets

def _wallet(wallet_id):
    _text("wallet", wallet_id)
    record = wallets.get(wallet_id)
    if record is None:
        reject_arguments(f"no wallet {wallet_id}")
    return record


def _own_operator(record):
    """The caller acts for the wallet's operator."""
    _member()
    if context.caller.org != record["operator"]:
        deny("wallet " + record["id"] + " is managed by " + record["operator"] + "; its operator submits for it")


def _limits(s, record):
    if record["kind"] == "personal":
        return s["tiers"][str(record["tier"])]
    if record["kind"] == "sub":
        return {"balance_max": record["cap"], "payment_max": None, "daily_max": None, "annual_max": None}
    return s["kinds"][record["kind"]]


def _new_wallet(wallet_id, operator, kind, tier, public_key, linked, kyc):
    return {"id": wallet_id, "operator": operator, "kind": kind, "tier": tier, "key": public_key, "seq": 0,
            "balance": 0, "held": 0, "envelopes": {}, "status": "active", "day": 0, "day_out": 0, "day_n": 0,
            "day_near": 0, "year": 0, "year_out": 0, "flags": {"large": 0, "velocity": 0, "structuring": 0},
            "linked": linked, "kyc": kyc, "parent": None, "merchant": None, "cap": None, "subs": [],
            "interest": None, "devices": 0, "opened_ms": context.timestamp_ms, "closed": None}


def _check_kyc(s, wallet_id, kyc, operator):
    if kyc == "":
        require(not s["kyc_required"], "the operator must register the holder's KYC record in its vault "
                                        "(policy currency, subject the wallet) and name it")
        return
    _text("kyc", kyc)
    record = call("dataex", "payload", {"payload_id": kyc})
    require(record is not None, f"no KYC record {kyc} is registered in the data exchange")
    require(record["owner"] == operator, f"KYC record {kyc} belongs to {record['owner']}, not to {operator}")
    require(record["policy"] == "currency" and record["subjects"] == [wallet_id],
            f"KYC record {kyc} must name policy currency and subject {wallet_id}")


def open_wallet(wallet, public_key, kind, tier, linked, kyc, signature):
    """The operator opens a wallet for a holder who signed ``open`` (seq 0) with the wallet's key:
    personal tier 1..4 (4: anonymous, a mobile number; 3: + national ID; 2: + a linked bank
    account; 1: in person), corporate or merchant (tier 0)."""
    s = _settings()
    _member()
    org = context.caller.org
    _operator(org)
    _text("wallet", wallet)
    _key("public_key", public_key)
    if kind not in KINDS:
        reject_arguments("kind is one of " + ", ".join(KINDS))
    if kind == "personal":
        if tier not in [1, 2, 3, 4]:
            reject_arguments("a personal wallet has tier 1, 2, 3 or 4")
    elif tier != 0:
        reject_arguments("corporate and merchant wallets have tier 0")
    if linked != "":
        _text("linked", linked)
    require(linked != "" or kind != "personal" or tier >= 3, "tiers 1 and 2 need a linked bank account")
    require(not wallets.contains(wallet), f"wallet {wallet} exists already")
    _check_kyc(s, wallet, kyc, org)
    _signature(signature)
    text = _statement("open", wallet, 0, [org, kind, tier, public_key.hex()])
    if not verify_signature(public_key, text, signature):
        deny("the holder must sign the opening with the wallet's key (proof that they hold it)")
    record = _new_wallet(wallet, org, kind, tier, public_key, linked, kyc)
    if s["interest_bp"] > 0 and not (kind == "personal" and tier == 4):
        record["interest"] = {"day": _day(context.timestamp_ms), "acc": 0}
    wallets.set(wallet, record)
    op = operators.get(org)
    op["wallets"] = op["wallets"] + 1
    operators.set(org, op)
    emit("wallet_opened", {"wallet": wallet, "operator": org, "kind": kind, "tier": tier})
    return {"wallet": wallet, "operator": org, "kind": kind, "tier": tier}


def _interest_touch(record, now):
    """Accrue balance x days on interest-bearing (real-name) wallets before the balance changes."""
    state = record["interest"]
    if state is None:
        return
    day = _day(now)
    if day > state["day"]:
        state["acc"] = state["acc"] + (record["balance"] + record["held"]) * (day - state["day"])
        state["day"] = day


def _roll(record, now):
    day = _day(now)
    if record["day"] != day:
        record["day"] = day
        record["day_out"] = 0
        record["day_n"] = 0
        record["day_near"] = 0
        year = _civil(day)[0]
        if record["year"] != year:
            record["year"] = year
            record["year_out"] = 0


def _cny(fen):
    """An amount for people: 123456 -> "1234.56 CNY"."""
    if fen is None:
        return "no limit"
    cents = fen % 100
    return str(fen // 100) + "." + ("0" if cents < 10 else "") + str(cents) + " CNY"


def _left(limit, used):
    if limit is None:
        return None
    return max(limit - used, 0)


def _spend(s, record, amount, counter):
    """Limits of a payment of ``amount`` out of ``record`` (checked, then counted); AML flags."""
    require(record["status"] == "active",
            f"wallet {record['id']} is {record['status']}: it cannot pay")
    now = context.timestamp_ms
    _roll(record, now)
    limits = _limits(s, record)
    if limits["payment_max"] is not None and amount > limits["payment_max"]:
        require(False, f"{_cny(amount)} is above wallet {record['id']}'s single-payment limit "
                       f"{_cny(limits['payment_max'])}")
    if limits["daily_max"] is not None and record["day_out"] + amount > limits["daily_max"]:
        require(False, f"wallet {record['id']} has {_cny(_left(limits['daily_max'], record['day_out']))} left of its "
                       f"daily limit {_cny(limits['daily_max'])} today ({_date(record['day'])}, Asia/Shanghai)")
    if limits["annual_max"] is not None and record["year_out"] + amount > limits["annual_max"]:
        require(False, f"wallet {record['id']} has {_cny(_left(limits['annual_max'], record['year_out']))} left of "
                       f"its annual limit {_cny(limits['annual_max'])} in {record['year']}")
    record["day_out"] = record["day_out"] + amount
    record["year_out"] = record["year_out"] + amount
    if counter:
        record["day_n"] = record["day_n"] + 1
        aml = s["aml"]
        if amount >= s["large_value"]:
            record["flags"]["large"] = record["flags"]["large"] + 1
        elif amount * 10000 >= s["large_value"] * (10000 - aml["structuring_margin_bp"]):
            record["day_near"] = record["day_near"] + 1
            if record["day_near"] == aml["structuring_count"]:
                record["flags"]["structuring"] = record["flags"]["structuring"] + 1
        if record["day_n"] == aml["velocity_per_day"] + 1:
            record["flags"]["velocity"] = record["flags"]["velocity"] + 1


def _receive(s, record, amount):
    """Credit own funds, within the wallet's balance cap."""
    require(record["status"] == "active" or record["status"] == "receive_only",
            f"wallet {record['id']} is {record['status']}: it cannot receive")
    _interest_touch(record, context.timestamp_ms)
    limit = _limits(s, record)["balance_max"]
    total = record["balance"] + record["held"] + amount
    require(total <= BALANCE_MAX, "the balance would exceed the bound on any wallet")
    if limit is not None and total > limit:
        require(False, f"wallet {record['id']} would hold {_cny(total)}, above its balance cap {_cny(limit)}")
    record["balance"] = record["balance"] + amount


def _debit(record, amount):
    _interest_touch(record, context.timestamp_ms)
    require(record["balance"] >= amount,
            f"wallet {record['id']} has {_cny(record['balance'])} available; it cannot move {_cny(amount)}")
    record["balance"] = record["balance"] - amount


def load(wallet, amount, ref=""):
    """The operator converts a holder's deposit into currency: its vault -> the wallet."""
    s = _settings()
    record = _wallet(wallet)
    _own_operator(record)
    _amount("amount", amount)
    _note("ref", ref)
    op = operators.get(record["operator"])
    require(op["vault"] >= amount, f"{record['operator']}'s vault holds {op['vault']}: ask the central bank to issue")
    _receive(s, record, amount)
    op["vault"] = op["vault"] - amount
    operators.set(record["operator"], op)
    wallets.set(wallet, record)
    moves = []
    _move(moves, "load", "vault:" + record["operator"], "wallet:" + wallet, amount, ref)
    _record(moves)
    return {"wallet": wallet, "balance": record["balance"]}


def unload(wallet, amount, client_key, seq, signature):
    """The holder converts currency back into a deposit at the operator: the wallet -> its vault."""
    record = _wallet(wallet)
    _own_operator(record)
    _amount("amount", amount)
    _text("client_key", client_key)
    require(record["status"] != "frozen" and record["status"] != "closed", f"wallet {wallet} is {record['status']}")
    _signed(record, wallet, "unload", seq, [amount, client_key], signature)
    _debit(record, amount)
    op = operators.get(record["operator"])
    op["vault"] = op["vault"] + amount
    operators.set(record["operator"], op)
    wallets.set(wallet, record)
    moves = []
    _move(moves, "unload", "wallet:" + wallet, "vault:" + record["operator"], amount, wallet + ":" + client_key)
    _record(moves)
    return {"wallet": wallet, "balance": record["balance"]}


# ------------------------------------------------------------------------------ payments

def pay(payer, payee, amount, client_key, seq, signature, memo=""):
    """A payment the payer's holder signed, submitted by the payer's operator. Red envelopes that
    may be spent at the payee go first, own funds after; limits are checked and counted in the
    same transaction; submitting the same (payer, client key) again returns the first result."""
    return _pay(None, payer, payee, amount, client_key, seq, signature, memo)


PAYMENT_FIELDS = ["payer", "payee", "amount", "client_key", "seq", "signature", "memo"]


def pay_batch(payments):
    """Many payments, each signed by its payer's holder, submitted by their operator in one
    transaction (an operator's front end gathers its holders' instructions for a few
    milliseconds). Each payment is applied whole or not at all, in order, exactly as ``pay`` would
    apply it on its own: one refused payment changes nothing and does not stop the others. The
    result has one entry per payment, in order: ``{"ok": true, "payment": <pay's result>}`` or
    ``{"ok": false, "id": "<payer>:<client key>", "code": ..., "message": ...}``."""
    s = _settings()
    limit = min(s["batch_max"], BATCH_MAX)
    if not isinstance(payments, list) or not 1 <= len(payments) <= limit:
        reject_arguments(f"payments is a list of 1..{limit} payments")
    results = []
    for item in payments:
        if not isinstance(item, dict) or not _payment_shape(item):
            results.append({"ok": False, "id": "", "code": "BAD_ARGUMENTS",
                            "message": "a payment is a map of " + ", ".join(PAYMENT_FIELDS) + " (memo optional)"})
            continue
        ok, outcome = attempt(_pay, s, item["payer"], item["payee"], item["amount"], item["client_key"],
                              item["seq"], item["signature"], item.get("memo", ""))
        if ok:
            results.append({"ok": True, "payment": outcome})
        else:
            payer = item["payer"]
            key = item["client_key"]
            ident = payer + ":" + key if isinstance(payer, str) and isinstance(key, str) else ""
            results.append({"ok": False, "id": ident, "code": outcome["code"], "message": outcome["message"]})
    return results


def _payment_shape(item):
    for name in item:
        if name not in PAYMENT_FIELDS:
            return False
    for name in PAYMENT_FIELDS:  # noqa: SIM110 - contracts have no generator expressions
        if name != "memo" and name not in item:
            return False
    return True


def _pay(s, payer, payee, amount, client_key, seq, signature, memo):
    _text("payer", payer)
    _text("client_key", client_key)
    payment_id = payer + ":" + client_key
    done = payments.get(payment_id)
    if done is not None:
        return done
    if s is None:
        s = _settings()
    record = _wallet(payer)
    _own_operator(record)
    _amount("amount", amount)
    _note("memo", memo)
    _text("payee", payee)
    require(payee != payer, "a wallet does not pay itself")
    target = _wallet(payee)
    require(record["kind"] != "sub", "a sub-wallet pays only by its merchant's charge")
    require(target["kind"] != "sub", "a sub-wallet is funded only by its holder (fund_sub)")
    _signed(record, payer, "pay", seq, [payee, amount, client_key], signature)
    _spend(s, record, amount, True)
    moves = []
    parts = {}
    ws = {payer: record, payee: target}
    from_envelopes = _spend_envelopes(record, payee, amount, payment_id, moves, parts, ws)
    own = amount - from_envelopes
    if own > 0:
        _debit(record, own)
        _move(moves, "pay", "wallet:" + payer, "wallet:" + payee, own, payment_id)
    _receive(s, target, amount)
    if amount >= s["large_value"]:
        target["flags"]["large"] = target["flags"]["large"] + 1
    _save(ws)
    result = {"id": payment_id, "payer": payer, "payee": payee, "amount": amount, "own": own,
              "envelopes": from_envelopes, "parts": parts, "refunded": 0, "refunded_own": 0,
              "height": context.height, "ms": context.timestamp_ms, "large": amount >= s["large_value"]}
    payments.set(payment_id, result)
    _record(moves)
    return result


def _spend_envelopes(record, payee, amount, payment_id, moves, parts, ws):
    """Red envelopes valid at ``payee`` now pay first (in campaign order); expired ones go back to
    their funders on the way. Returns the amount envelopes paid; ``parts`` gets each campaign's."""
    if not record["envelopes"]:
        return 0
    now = context.timestamp_ms
    paid = 0
    for campaign in sorted(record["envelopes"]):
        c = campaigns.get(campaign)
        if now >= c["until_ms"]:
            _return_envelope(record, c, moves, "expired", ws)
            continue
        if paid == amount or payee not in c["merchants"] or now < c["from_ms"]:
            continue
        use = min(record["envelopes"][campaign], amount - paid)
        record["envelopes"][campaign] = record["envelopes"][campaign] - use
        if record["envelopes"][campaign] == 0:
            record["envelopes"].pop(campaign)
        c["spent"] = c["spent"] + use
        campaigns.set(campaign, c)
        parts[campaign] = use
        paid = paid + use
        _move(moves, "pay", "env:" + record["id"] + ":" + campaign, "wallet:" + payee, use, payment_id)
    return paid


# ------------------------------------------------------------------------------ wallet life

def set_tier(wallet, tier, linked="", kyc=""):
    """Re-KYC by the operator: upgrade or downgrade a personal wallet. Tiers 1 and 2 need a linked
    bank account; a downgrade below what the wallet holds is refused (unload first)."""
    s = _settings()
    record = _wallet(wallet)
    _own_operator(record)
    require(record["kind"] == "personal", "only personal wallets have tiers")
    require(record["status"] != "closed", f"wallet {wallet} is closed")
    if tier not in [1, 2, 3, 4]:
        reject_arguments("a personal wallet has tier 1, 2, 3 or 4")
    if linked != "":
        _text("linked", linked)
        record["linked"] = linked
    if kyc != "":
        _check_kyc(s, wallet, kyc, record["operator"])
        record["kyc"] = kyc
    require(record["linked"] != "" or tier >= 3, "tiers 1 and 2 need a linked bank account")
    cap = s["tiers"][str(tier)]["balance_max"]
    held = record["balance"] + record["held"]
    require(cap is None or held <= cap,
            f"wallet {wallet} holds {held}, above tier {tier}'s balance cap {cap}: unload first")
    before = record["tier"]
    _interest_touch(record, context.timestamp_ms)
    record["tier"] = tier
    if tier == 4:
        record["interest"] = None
    elif record["interest"] is None and s["interest_bp"] > 0:
        record["interest"] = {"day": _day(context.timestamp_ms), "acc": 0}
    wallets.set(wallet, record)
    emit("tier_changed", {"wallet": wallet, "from": before, "to": tier})
    return {"wallet": wallet, "tier": tier}


def _may_freeze(s, record):
    _member()
    org = context.caller.org
    if org != record["operator"] and org != s["central_bank"] and org not in s["regulators"]:
        deny("the wallet's operator, the central bank or a regulator freezes a wallet")


def freeze(wallet, mode, reason):
    """Freeze fully (nothing in or out) or to receive only. By the wallet's operator, the central
    bank or a regulator; only the organisation that froze it (or the central bank) unfreezes."""
    s = _settings()
    record = _wallet(wallet)
    _may_freeze(s, record)
    _note("reason", reason)
    if mode not in ["full", "receive_only"]:
        reject_arguments("mode is full or receive_only")
    require(record["status"] != "closed", f"wallet {wallet} is closed")
    record["status"] = "frozen" if mode == "full" else "receive_only"
    record["frozen_by"] = context.caller.org
    wallets.set(wallet, record)
    emit("frozen", {"wallet": wallet, "mode": mode, "by": context.caller.org, "reason": reason})


def unfreeze(wallet, reason):
    s = _settings()
    record = _wallet(wallet)
    _may_freeze(s, record)
    _note("reason", reason)
    require(record["status"] == "frozen" or record["status"] == "receive_only", f"wallet {wallet} is not frozen")
    by = record.get("frozen_by", record["operator"])
    if context.caller.org != by and context.caller.org != s["central_bank"]:
        deny(f"wallet {wallet} was frozen by {by}; only {by} or the central bank unfreezes it")
    record["status"] = "active"
    record["frozen_by"] = None
    wallets.set(wallet, record)
    emit("unfrozen", {"wallet": wallet, "by": context.caller.org, "reason": reason})


def close(wallet, to, client_key, seq, signature):
    """The holder closes the wallet: open sub-wallets are swept into it, red envelopes go back to
    their funders, and the balance is swept to the linked bank account (``to`` empty: a deposit at
    the operator, through its vault) or to the wallet ``to``. Refused while value is held in
    escrow, holds or an offline device."""
    s = _settings()
    record = _wallet(wallet)
    _own_operator(record)
    _text("client_key", client_key)
    require(record["kind"] != "sub", "a sub-wallet is closed by close_sub")
    require(record["status"] != "closed", f"wallet {wallet} is closed already")
    require(record["status"] != "frozen", f"wallet {wallet} is frozen; it cannot be closed now")
    if to != "":
        _text("to", to)
        require(to != wallet, "a wallet is not swept into itself")
    else:
        require(record["linked"] != "", f"wallet {wallet} has no linked bank account: name a wallet to sweep to")
    _signed(record, wallet, "close", seq, [to, client_key], signature)
    require(record["held"] == 0, f"wallet {wallet} has {record['held']} held in escrow or holds; settle them first")
    require(record["devices"] == 0, f"wallet {wallet} has value in an offline device; reclaim it first")
    moves = []
    ws = {wallet: record}
    for sub_id in record["subs"]:
        sub = wallets.get(sub_id)
        if sub["status"] != "closed":
            _sweep_sub(record, sub, moves)
    _return_envelopes(record, moves, "close", ws)
    amount = record["balance"]
    if amount > 0:
        _debit(record, amount)
        if to == "":
            op = operators.get(record["operator"])
            op["vault"] = op["vault"] + amount
            operators.set(record["operator"], op)
            _move(moves, "close", "wallet:" + wallet, "vault:" + record["operator"], amount,
                  "linked:" + record["linked"])
        else:
            _wallet(to)
            target = _cached(ws, to)
            _receive(s, target, amount)
            _move(moves, "close", "wallet:" + wallet, "wallet:" + to, amount, wallet + ":" + client_key)
    record["status"] = "closed"
    record["closed"] = {"ms": context.timestamp_ms, "swept": amount, "to": to if to != "" else "linked"}
    _save(ws)
    op = operators.get(record["operator"])
    op["wallets"] = op["wallets"] - 1
    operators.set(record["operator"], op)
    _record(moves)
    emit("wallet_closed", {"wallet": wallet, "swept": amount, "to": to if to != "" else "linked"})
    return record["closed"]


def _return_envelopes(record, moves, why, ws):
    """Every red envelope of ``record`` goes back to its funder."""
    for campaign in sorted(record["envelopes"]):
        _return_envelope(record, campaigns.get(campaign), moves, why, ws)


# ------------------------------------------------------------------------------ sub-wallets

def open_sub_wallet(parent, sub, merchant, cap, seq, signature):
    """The holder pushes a sub-wallet to a merchant: the merchant sees only the sub-wallet's id and
    may charge it (up to what the holder put in it, at most ``cap``); the holder's limits apply."""
    s = _settings()
    record = _wallet(parent)
    _own_operator(record)
    require(record["kind"] == "personal" or record["kind"] == "corporate", "only a holder's wallet has sub-wallets")
    require(record["status"] == "active", f"wallet {parent} is {record['status']}")
    _text("sub", sub)
    require(not wallets.contains(sub), f"wallet {sub} exists already")
    shop = _wallet(merchant)
    require(shop["kind"] == "merchant", f"{merchant} is not a merchant wallet")
    _amount("cap", cap)
    open_subs = [x for x in record["subs"] if wallets.get(x)["status"] != "closed"]
    require(len(open_subs) < s["sub_wallets_max"], f"wallet {parent} has {len(open_subs)} open sub-wallets already")
    _signed(record, parent, "sub", seq, [sub, merchant, cap], signature)
    child = _new_wallet(sub, record["operator"], "sub", 0, record["key"], "", "")
    child["parent"] = parent
    child["merchant"] = merchant
    child["cap"] = cap
    wallets.set(sub, child)
    record["subs"] = open_subs + [sub]
    wallets.set(parent, record)
    emit("sub_wallet_opened", {"sub": sub, "merchant": merchant, "cap": cap})
    return {"sub": sub, "merchant": merchant, "cap": cap}


def _sub_of(parent_id, sub_id):
    record = _wallet(parent_id)
    sub = _wallet(sub_id)
    require(sub["kind"] == "sub" and sub["parent"] == parent_id, f"{sub_id} is not a sub-wallet of {parent_id}")
    return record, sub


def fund_sub(parent, sub, amount, seq, signature):
    """The holder moves own funds into a sub-wallet (within its cap)."""
    s = _settings()
    record, child = _sub_of(parent, sub)
    _own_operator(record)
    _amount("amount", amount)
    require(record["status"] == "active", f"wallet {parent} is {record['status']}")
    _signed(record, parent, "fund_sub", seq, [sub, amount], signature)
    _debit(record, amount)
    _receive(s, child, amount)
    wallets.set(parent, record)
    wallets.set(sub, child)
    moves = []
    _move(moves, "fund_sub", "wallet:" + parent, "wallet:" + sub, amount, "")
    _record(moves)
    return {"sub": sub, "balance": child["balance"]}


def _sweep_sub(record, child, moves):
    amount = child["balance"]
    if amount > 0:
        child["balance"] = 0
        _interest_touch(record, context.timestamp_ms)
        record["balance"] = record["balance"] + amount
        _move(moves, "close_sub", "wallet:" + child["id"], "wallet:" + record["id"], amount, "")
    child["status"] = "closed"
    child["closed"] = {"ms": context.timestamp_ms, "swept": amount, "to": record["id"]}
    wallets.set(child["id"], child)


def close_sub(parent, sub, seq, signature):
    """The holder withdraws a sub-wallet from its merchant: its balance returns to the parent."""
    record, child = _sub_of(parent, sub)
    _own_operator(record)
    require(child["status"] != "closed", f"sub-wallet {sub} is closed already")
    _signed(record, parent, "close_sub", seq, [sub], signature)
    moves = []
    _sweep_sub(record, child, moves)
    record["subs"] = [x for x in record["subs"] if x != sub]
    wallets.set(parent, record)
    _record(moves)
    return {"sub": sub, "returned": child["closed"]["swept"]}


def charge(merchant, sub, amount, client_key, seq, signature):
    """The merchant charges a sub-wallet pushed to it (signed by the merchant's key, submitted by
    the merchant's operator); the holder's limits are counted on the parent wallet."""
    _text("merchant", merchant)
    _text("client_key", client_key)
    payment_id = merchant + ":" + client_key
    done = payments.get(payment_id)
    if done is not None:
        return done
    s = _settings()
    shop = _wallet(merchant)
    _own_operator(shop)
    _amount("amount", amount)
    child = _wallet(sub)
    require(child["kind"] == "sub" and child["merchant"] == merchant, f"{sub} is not pushed to {merchant}")
    require(child["status"] == "active", f"sub-wallet {sub} is {child['status']}")
    parent = wallets.get(child["parent"])
    _signed(shop, merchant, "charge", seq, [sub, amount, client_key], signature)
    _spend(s, parent, amount, True)
    _debit(child, amount)
    _receive(s, shop, amount)
    wallets.set(child["parent"], parent)
    wallets.set(sub, child)
    wallets.set(merchant, shop)
    moves = []
    _move(moves, "charge", "wallet:" + sub, "wallet:" + merchant, amount, payment_id)
    _record(moves)
    result = {"id": payment_id, "payer": sub, "payee": merchant, "amount": amount, "own": amount, "envelopes": 0,
              "parts": {}, "refunded": 0, "refunded_own": 0, "height": context.height, "ms": context.timestamp_ms,
              "large": amount >= s["large_value"]}
    payments.set(payment_id, result)
    return result


# ------------------------------------------------------------------------------ programmable money

def _cached(ws, wallet_id):
    """The transaction's one copy of a wallet record (so two roles of one wallet never clobber)."""
    record = ws.get(wallet_id)
    if record is None:
        record = wallets.get(wallet_id)
        ws[wallet_id] = record
    return record


def _save(ws):
    for wallet_id in ws:
        wallets.set(wallet_id, ws[wallet_id])


def _funder_receives(c, amount, source, moves, why, ws):
    """Value of a campaign back to its funder: its wallet, or (closed) a deposit at its operator."""
    funder = _cached(ws, c["funder"])
    if funder["status"] == "closed":
        op = operators.get(funder["operator"])
        op["vault"] = op["vault"] + amount
        operators.set(funder["operator"], op)
        _move(moves, "envelope_return", source, "vault:" + funder["operator"], amount, c["id"] + ":" + why)
    else:
        _interest_touch(funder, context.timestamp_ms)
        funder["balance"] = funder["balance"] + amount
        _move(moves, "envelope_return", source, "wallet:" + c["funder"], amount, c["id"] + ":" + why)
    c["returned"] = c["returned"] + amount


def _return_envelope(record, c, moves, why, ws):
    amount = record["envelopes"].pop(c["id"])
    if amount > 0:
        _funder_receives(c, amount, "env:" + record["id"] + ":" + c["id"], moves, why, ws)
    campaigns.set(c["id"], c)


def envelope_campaign(campaign, funder, face, count, merchants, from_ms, until_ms, seq, signature):
    """A funder (a government agency, a merchant) funds ``count`` red envelopes of ``face`` each,
    spendable only at ``merchants`` in [from_ms, until_ms): the whole budget leaves its wallet
    into the campaign's pool now; what is not granted or not spent returns when it ends."""
    s = _settings()
    record = _wallet(funder)
    _own_operator(record)
    require(record["kind"] != "sub", "a sub-wallet funds no campaign")
    _text("campaign", campaign)
    require(not campaigns.contains(campaign), f"campaign {campaign} exists already")
    _amount("face", face)
    _positive("count", count, 1, s["envelope"]["recipients_max"])
    if not isinstance(merchants, list) or not 1 <= len(merchants) <= s["envelope"]["merchants_max"]:
        reject_arguments(f"merchants lists 1..{s['envelope']['merchants_max']} merchant wallets")
    for merchant in merchants:
        shop = _wallet(merchant)
        require(shop["kind"] == "merchant", f"{merchant} is not a merchant wallet")
    _positive("from_ms", from_ms, 0, 2 ** 62)
    _positive("until_ms", until_ms, 0, 2 ** 62)
    require(from_ms < until_ms and until_ms > context.timestamp_ms, "the validity window must end after it starts, "
                                                                    "in the future")
    budget = face * count
    _amount("face x count", budget)
    require(record["status"] == "active", f"wallet {funder} is {record['status']}")
    _signed(record, funder, "campaign", seq, [campaign, face, count, ",".join(merchants), from_ms, until_ms], signature)
    _debit(record, budget)
    wallets.set(funder, record)
    campaigns.set(campaign, {"id": campaign, "funder": funder, "operator": record["operator"], "face": face,
                             "count": count, "merchants": merchants, "from_ms": from_ms, "until_ms": until_ms,
                             "pool": budget, "granted": 0, "spent": 0, "returned": 0, "cursor": 0,
                             "status": "open"})
    moves = []
    _move(moves, "campaign", "wallet:" + funder, "pool:" + campaign, budget, campaign)
    _record(moves)
    emit("campaign", {"campaign": campaign, "funder": funder, "face": face, "count": count})
    return campaigns.get(campaign)


def envelope_grant(campaign, wallet):
    """The funder's operator gives one envelope of the campaign to a personal wallet (once each).
    An envelope is not transferable and not redeemable: it only pays its merchants."""
    c = campaigns.get(campaign)
    if c is None:
        reject_arguments(f"no campaign {campaign}")
    _member()
    if context.caller.org != c["operator"]:
        deny("the funder's operator (" + c["operator"] + ") grants the campaign's envelopes")
    require(context.timestamp_ms < c["until_ms"], f"campaign {campaign} has ended")
    require(c["granted"] < c["count"], f"all {c['count']} envelopes of campaign {campaign} are granted")
    record = _wallet(wallet)
    require(record["kind"] == "personal", "red envelopes go to personal wallets")
    require(wallet != c["funder"], "a funder grants no envelope to itself")
    require(record["status"] == "active" or record["status"] == "receive_only", f"wallet {wallet} is {record['status']}")
    require(campaign not in record["envelopes"], f"wallet {wallet} has an envelope of {campaign} already")
    require(not recipients.contains(campaign + "|" + wallet), f"wallet {wallet} had an envelope of {campaign}")
    record["envelopes"][campaign] = c["face"]
    wallets.set(wallet, record)
    recipients.set(campaign + "|" + str(c["granted"]), wallet)
    recipients.set(campaign + "|" + wallet, c["granted"])
    c["granted"] = c["granted"] + 1
    c["pool"] = c["pool"] - c["face"]
    campaigns.set(campaign, c)
    moves = []
    _move(moves, "grant", "pool:" + campaign, "env:" + wallet + ":" + campaign, c["face"], campaign)
    _record(moves)
    return {"campaign": campaign, "wallet": wallet, "face": c["face"]}


def envelope_expire(campaign, limit=200):
    """After a campaign ends, anyone (a member) returns its unspent value to the funder, up to
    ``limit`` recipients per call (call again until it answers done)."""
    _member()
    c = campaigns.get(campaign)
    if c is None:
        reject_arguments(f"no campaign {campaign}")
    _positive("limit", limit, 1, 1000)
    require(context.timestamp_ms >= c["until_ms"], f"campaign {campaign} runs until {c['until_ms']}")
    moves = []
    ws = {}
    if c["pool"] > 0:
        amount = c["pool"]
        c["pool"] = 0
        _funder_receives(c, amount, "pool:" + campaign, moves, "not granted", ws)
    end = min(c["cursor"] + limit, c["granted"])
    for index in range(c["cursor"], end):
        record = _cached(ws, recipients.get(campaign + "|" + str(index)))
        if campaign in record["envelopes"]:
            _return_envelope(record, c, moves, "expired", ws)
    _save(ws)
    c["cursor"] = end
    if end == c["granted"]:
        c["status"] = "ended"
    campaigns.set(campaign, c)
    _record(moves)
    return {"campaign": campaign, "done": c["status"] == "ended", "returned": c["returned"]}


def refund(payment_id, amount, client_key, seq, signature):
    """The payee refunds (part of) a payment, signed by the payee's key: own funds go back first,
    then envelope value — to the payer's envelope while its campaign runs, else to the funder."""
    _text("payment_id", payment_id)
    _text("client_key", client_key)
    original = payments.get(payment_id)
    if original is None or original.get("kind") == "refund":
        reject_arguments(f"no payment {payment_id} (a refund is not refunded)")
    refund_id = original["payee"] + ":" + client_key
    done = payments.get(refund_id)
    if done is not None:
        return done
    s = _settings()
    shop = _wallet(original["payee"])
    _own_operator(shop)
    _amount("amount", amount)
    left = original["amount"] - original["refunded"]
    require(amount <= left, f"payment {payment_id} has {left} left to refund")
    require(shop["status"] == "active", f"wallet {shop['id']} is {shop['status']}: it cannot refund")
    _signed(shop, shop["id"], "refund", seq, [payment_id, amount, client_key], signature)
    payer_id = original["payer"]
    payer = wallets.get(payer_id)
    if payer["status"] == "closed" and payer["kind"] == "sub":
        payer_id = payer["parent"]
        payer = wallets.get(payer_id)
    require(payer["status"] != "closed", f"wallet {payer_id} is closed: refund the holder another way")
    ws = {shop["id"]: shop, payer_id: payer}
    _debit(shop, amount)
    moves = []
    own = min(amount, original["own"] - original["refunded_own"])
    if own > 0:
        _receive(s, payer, own)
        _move(moves, "refund", "wallet:" + shop["id"], "wallet:" + payer_id, own, refund_id)
    rest = amount - own
    parts = original["parts"]
    for campaign in sorted(parts):
        if rest == 0:
            break
        back = min(rest, parts[campaign])
        if back == 0:
            continue
        parts[campaign] = parts[campaign] - back
        rest = rest - back
        c = campaigns.get(campaign)
        c["spent"] = c["spent"] - back
        if context.timestamp_ms < c["until_ms"] and payer["kind"] == "personal":
            payer["envelopes"][campaign] = payer["envelopes"].get(campaign, 0) + back
            _move(moves, "refund", "wallet:" + shop["id"], "env:" + payer_id + ":" + campaign, back, refund_id)
            campaigns.set(campaign, c)
        else:
            _funder_receives(c, back, "wallet:" + shop["id"], moves, "refund after the campaign", ws)
            campaigns.set(campaign, c)
    original["refunded"] = original["refunded"] + amount
    original["refunded_own"] = original["refunded_own"] + own
    original["parts"] = parts
    payments.set(payment_id, original)
    _save(ws)
    result = {"id": refund_id, "kind": "refund", "payment": payment_id, "payer": shop["id"], "payee": payer_id,
              "amount": amount, "own": own, "envelopes": amount - own, "height": context.height,
              "ms": context.timestamp_ms}
    payments.set(refund_id, result)
    _record(moves)
    return result


def _unhold(record, amount):
    """Held value returns to the wallet's own funds (it never left the wallet's total)."""
    _interest_touch(record, context.timestamp_ms)
    record["held"] = record["held"] - amount
    record["balance"] = record["balance"] + amount


def _to_held(s, record, amount, bucket, ref, moves):
    _spend(s, record, amount, True)
    _debit(record, amount)
    record["held"] = record["held"] + amount
    _move(moves, "hold", "wallet:" + record["id"], bucket, amount, ref)


def escrow_open(payer, merchant, unit_price, units, until_ms, client_key, seq, signature):
    """Prepaid escrow: ``unit_price`` x ``units`` frozen in the payer's wallet, released to the
    merchant per delivered unit; what is undelivered is refunded when the service stops."""
    _text("payer", payer)
    _text("client_key", client_key)
    escrow_id = payer + ":" + client_key
    done = escrows.get(escrow_id)
    if done is not None:
        return done
    s = _settings()
    record = _wallet(payer)
    _own_operator(record)
    shop = _wallet(merchant)
    require(shop["kind"] == "merchant" and merchant != payer, f"{merchant} is not another merchant wallet")
    _amount("unit_price", unit_price)
    _positive("units", units, 1, 100000)
    _positive("until_ms", until_ms, 0, 2 ** 62)
    require(until_ms > context.timestamp_ms, "the service period must end in the future")
    amount = unit_price * units
    _amount("unit_price x units", amount)
    _signed(record, payer, "escrow", seq, [merchant, unit_price, units, until_ms, client_key], signature)
    moves = []
    _to_held(s, record, amount, "held:" + escrow_id, escrow_id, moves)
    wallets.set(payer, record)
    result = {"id": escrow_id, "payer": payer, "merchant": merchant, "unit_price": unit_price, "units": units,
              "delivered": 0, "refunded": 0, "until_ms": until_ms, "status": "open", "ms": context.timestamp_ms}
    escrows.set(escrow_id, result)
    _record(moves)
    return result


def _escrow(escrow_id):
    _text("escrow_id", escrow_id)
    record = escrows.get(escrow_id)
    if record is None:
        reject_arguments(f"no escrow {escrow_id}")
    require(record["status"] == "open", f"escrow {escrow_id} is {record['status']}")
    return record


def escrow_deliver(escrow_id, units, seq, signature):
    """The merchant (its key) confirms ``units`` delivered: their price goes to the merchant."""
    s = _settings()
    e = _escrow(escrow_id)
    shop = _wallet(e["merchant"])
    _own_operator(shop)
    _positive("units", units, 1, e["units"] - e["delivered"] - e["refunded"])
    _signed(shop, e["merchant"], "deliver", seq, [escrow_id, units], signature)
    amount = units * e["unit_price"]
    payer = wallets.get(e["payer"])
    payer["held"] = payer["held"] - amount
    _receive(s, shop, amount)
    e["delivered"] = e["delivered"] + units
    if e["delivered"] + e["refunded"] == e["units"]:
        e["status"] = "done"
    escrows.set(escrow_id, e)
    wallets.set(e["payer"], payer)
    wallets.set(e["merchant"], shop)
    moves = []
    _move(moves, "deliver", "held:" + escrow_id, "wallet:" + e["merchant"], amount, escrow_id)
    _record(moves)
    return e


def escrow_stop(escrow_id, signer, seq=0, signature=b""):
    """The service stops: the undelivered units are refunded to the payer. By the merchant (its
    key), by the payer (its key) once the service period ended, or by the merchant's operator
    when the merchant's wallet is frozen or closed."""
    e = _escrow(escrow_id)
    shop = wallets.get(e["merchant"])
    payer = wallets.get(e["payer"])
    if signer == "merchant":
        _own_operator(shop)
        _signed(shop, e["merchant"], "stop", seq, [escrow_id], signature)
    elif signer == "payer":
        _own_operator(payer)
        require(context.timestamp_ms >= e["until_ms"], f"the service period of escrow {escrow_id} has not ended")
        _signed(payer, e["payer"], "stop", seq, [escrow_id], signature)
    elif signer == "operator":
        _own_operator(shop)
        require(shop["status"] == "frozen" or shop["status"] == "closed",
                f"merchant {e['merchant']} is {shop['status']}: it stops the service itself")
    else:
        reject_arguments("signer is merchant, payer or operator")
    units = e["units"] - e["delivered"] - e["refunded"]
    amount = units * e["unit_price"]
    _unhold(payer, amount)
    e["refunded"] = e["refunded"] + units
    e["status"] = "stopped"
    escrows.set(escrow_id, e)
    wallets.set(e["payer"], payer)
    if signer != "payer":
        wallets.set(e["merchant"], shop)
    moves = []
    _move(moves, "escrow_refund", "held:" + escrow_id, "wallet:" + e["payer"], amount, escrow_id)
    _record(moves)
    return e


def hold(payer, payee, amount, until_ms, arbiter, client_key, seq, signature):
    """A hold (a conditional payment): ``amount`` frozen in the payer's wallet until it is executed
    to the payee — by the payee, or by ``arbiter`` (a wallet whose holder confirms the condition) —
    or released back: by the payee or arbiter at any time, by the payer once ``until_ms`` passed."""
    _text("payer", payer)
    _text("client_key", client_key)
    hold_id = payer + ":" + client_key
    done = holds.get(hold_id)
    if done is not None:
        return done
    s = _settings()
    record = _wallet(payer)
    _own_operator(record)
    _wallet(payee)
    require(payee != payer, "a wallet does not hold for itself")
    if arbiter != "":
        _wallet(arbiter)
    _amount("amount", amount)
    _positive("until_ms", until_ms, 0, 2 ** 62)
    require(until_ms > context.timestamp_ms, "a hold must end in the future")
    _signed(record, payer, "hold", seq, [payee, amount, until_ms, arbiter, client_key], signature)
    moves = []
    _to_held(s, record, amount, "held:" + hold_id, hold_id, moves)
    wallets.set(payer, record)
    result = {"id": hold_id, "payer": payer, "payee": payee, "amount": amount, "until_ms": until_ms,
              "arbiter": arbiter, "status": "held", "ms": context.timestamp_ms, "by": None}
    holds.set(hold_id, result)
    _record(moves)
    return result


def _decide_hold(hold_id, decision, signer, seq, signature):
    _text("hold_id", hold_id)
    h = holds.get(hold_id)
    if h is None:
        reject_arguments(f"no hold {hold_id}")
    require(h["status"] == "held", f"hold {hold_id} is {h['status']}")
    deciders = [h["arbiter"]] if h["arbiter"] != "" else [h["payee"]]
    if decision == "release":
        deciders = deciders + [h["payee"]]
        if context.timestamp_ms >= h["until_ms"]:
            deciders = deciders + [h["payer"]]
    if signer not in deciders:
        deny(f"{signer} cannot {decision} hold {hold_id}; " + " or ".join(deciders) + " can")
    who = _wallet(signer)
    _own_operator(who)
    _signed(who, signer, decision, seq, [hold_id], signature)
    wallets.set(signer, who)
    return h


def hold_execute(hold_id, signer, seq, signature):
    s = _settings()
    h = _decide_hold(hold_id, "execute", signer, seq, signature)
    payer = wallets.get(h["payer"])
    payee = wallets.get(h["payee"])
    payer["held"] = payer["held"] - h["amount"]
    _receive(s, payee, h["amount"])
    wallets.set(h["payer"], payer)
    wallets.set(h["payee"], payee)
    h["status"] = "executed"
    h["by"] = signer
    holds.set(hold_id, h)
    moves = []
    _move(moves, "execute", "held:" + hold_id, "wallet:" + h["payee"], h["amount"], hold_id)
    _record(moves)
    return h


def hold_release(hold_id, signer, seq, signature):
    h = _decide_hold(hold_id, "release", signer, seq, signature)
    payer = wallets.get(h["payer"])
    _unhold(payer, h["amount"])
    wallets.set(h["payer"], payer)
    h["status"] = "released"
    h["by"] = signer
    holds.set(hold_id, h)
    moves = []
    _move(moves, "release", "held:" + hold_id, "wallet:" + h["payer"], h["amount"], hold_id)
    _record(moves)
    return h


def pay_interest(wallet):
    """The operator pays the interest a real-name wallet accrued (balance x days x the configured
    annual rate) from its vault. Anonymous (tier 4) wallets never accrue."""
    s = _settings()
    record = _wallet(wallet)
    _own_operator(record)
    require(record["interest"] is not None, f"wallet {wallet} earns no interest")
    _interest_touch(record, context.timestamp_ms)
    amount = record["interest"]["acc"] * s["interest_bp"] // (10000 * 365)
    record["interest"]["acc"] = 0
    moves = []
    if amount > 0:
        op = operators.get(record["operator"])
        require(op["vault"] >= amount, f"{record['operator']}'s vault cannot pay {amount} of interest")
        op["vault"] = op["vault"] - amount
        operators.set(record["operator"], op)
        _receive(s, record, amount)
        _move(moves, "interest", "vault:" + record["operator"], "wallet:" + wallet, amount, "")
    wallets.set(wallet, record)
    _record(moves)
    return {"wallet": wallet, "interest": amount}


# ------------------------------------------------------------------------------ offline payments

VOUCHERS_PER_CALL_MAX = 64
DOUBLE_SPENDS_KEPT_MAX = 16


def offline_fund(wallet, device, device_key, amount, seq, signature):
    """The holder moves ``amount`` of own funds into an offline device (a hard wallet, a phone's
    secure element) whose key signs vouchers while both parties are offline; the value sits in
    "offline outstanding" until vouchers settle or the rest is reclaimed after the device's
    validity and a grace period. A device of the wallet may be topped up while valid."""
    s = _settings()
    limits = s["offline"]
    record = _wallet(wallet)
    _own_operator(record)
    require(record["status"] == "active", f"wallet {wallet} is {record['status']}")
    require(record["kind"] != "sub", "a sub-wallet funds no device")
    _text("device", device)
    _key("device_key", device_key)
    _amount("amount", amount)
    now = context.timestamp_ms
    d = devices.get(device)
    if d is None:
        d = {"id": device, "wallet": wallet, "key": device_key, "balance": 0, "funded": 0, "from_ms": now,
             "until_ms": now + limits["valid_ms"], "settled": {}, "count": 0, "spent": 0, "status": "active",
             "double_spends": [], "overspends": 0}
        record["devices"] = record["devices"] + 1
    else:
        require(d["wallet"] == wallet and d["key"] == device_key, f"device {device} belongs to another wallet or key")
        require(d["status"] == "active" and now < d["until_ms"], f"device {device} cannot be topped up now")
    require(d["balance"] + amount <= limits["balance_max"],
            f"an offline device holds at most {limits['balance_max']}; device {device} would hold {d['balance'] + amount}")
    _signed(record, wallet, "offline_fund", seq, [device, device_key.hex(), amount], signature)
    _debit(record, amount)
    d["balance"] = d["balance"] + amount
    d["funded"] = d["funded"] + amount
    devices.set(device, d)
    wallets.set(wallet, record)
    moves = []
    _move(moves, "offline_fund", "wallet:" + wallet, "offline:" + device, amount, device)
    _record(moves)
    return {"device": device, "balance": d["balance"], "until_ms": d["until_ms"], "counter_after": d["count"]}


def _voucher_result(v, status):
    return {"device": v.get("device"), "counter": v.get("counter"), "amount": v.get("amount"), "status": status}


def _attribute(d, kind, evidence):
    """The device's key signed a voucher it had no right to: the device is compromised (its
    wallet answers for it); the evidence is kept with the device."""
    d["status"] = "compromised"
    if len(d["double_spends"]) < DOUBLE_SPENDS_KEPT_MAX:
        d["double_spends"].append(evidence)
    if kind == "overspend":
        d["overspends"] = d["overspends"] + 1
    emit("double_spend", {"device": d["id"], "wallet": d["wallet"], "kind": kind, "counter": evidence["counter"]})


def settle(payee, vouchers):
    """The payee's operator settles offline vouchers its holder received (on reconnection). Each
    voucher is judged alone and answered: settled, duplicate (the same voucher again: idempotent),
    double_spend (another voucher with the same device counter: rejected and attributed to the
    device that signed both), overspend (beyond the device's funded balance: rejected, attributed),
    bad_signature, unknown_device, wrong_payee, over_limit, out_of_window, late, cannot_receive."""
    s = _settings()
    limits = s["offline"]
    target = _wallet(payee)
    _own_operator(target)
    if not isinstance(vouchers, list) or not 1 <= len(vouchers) <= VOUCHERS_PER_CALL_MAX:
        reject_arguments(f"vouchers is a list of 1..{VOUCHERS_PER_CALL_MAX} vouchers")
    now = context.timestamp_ms
    results = []
    moves = []
    touched = {}
    for v in vouchers:
        if not isinstance(v, dict) or sorted(v) != ["amount", "counter", "device", "payee", "signature", "time_ms"]:
            reject_arguments("a voucher has exactly amount, counter, device, payee, signature, time_ms")
        _text("device", v["device"])
        _text("payee", v["payee"])
        _amount("amount", v["amount"])
        _positive("counter", v["counter"], 1, 2 ** 62)
        _positive("time_ms", v["time_ms"], 0, 2 ** 62)
        _signature(v["signature"])
        d = touched.get(v["device"])
        if d is None:
            d = devices.get(v["device"])
            if d is None:
                results.append(_voucher_result(v, "unknown_device"))
                continue
            touched[v["device"]] = d
        if v["payee"] != payee:
            results.append(_voucher_result(v, "wrong_payee"))
            continue
        text = _statement("voucher", v["device"], v["counter"], [v["payee"], v["amount"], v["time_ms"]])
        digest = hash(text).hex()
        counter = str(v["counter"])
        if d["settled"].get(counter) == digest:
            results.append(_voucher_result(v, "duplicate"))
            continue
        if not verify_signature(d["key"], text, v["signature"]):
            results.append(_voucher_result(v, "bad_signature"))
            continue
        if counter in d["settled"]:
            _attribute(d, "double_spend", {"kind": "double_spend", "counter": v["counter"],
                                           "first": d["settled"][counter], "second": digest, "voucher": v,
                                           "height": context.height})
            results.append(_voucher_result(v, "double_spend"))
            continue
        if not d["from_ms"] <= v["time_ms"] <= d["until_ms"]:
            results.append(_voucher_result(v, "out_of_window"))
            continue
        if now > d["until_ms"] + limits["grace_ms"] or d["status"] == "reclaimed":
            results.append(_voucher_result(v, "late"))
            continue
        if v["amount"] > limits["voucher_max"] or d["count"] >= limits["vouchers_max"]:
            results.append(_voucher_result(v, "over_limit"))
            continue
        if v["amount"] > d["balance"]:
            _attribute(d, "overspend", {"kind": "overspend", "counter": v["counter"], "first": "", "second": digest,
                                        "voucher": v, "height": context.height})
            results.append(_voucher_result(v, "overspend"))
            continue
        cap = _limits(s, target)["balance_max"]
        if (target["status"] != "active" and target["status"] != "receive_only") or (
                cap is not None and target["balance"] + target["held"] + v["amount"] > cap):
            results.append(_voucher_result(v, "cannot_receive"))
            continue
        _receive(s, target, v["amount"])
        d["balance"] = d["balance"] - v["amount"]
        d["spent"] = d["spent"] + v["amount"]
        d["count"] = d["count"] + 1
        d["settled"][counter] = digest
        _move(moves, "voucher", "offline:" + v["device"], "wallet:" + payee, v["amount"],
              v["device"] + "#" + counter)
        results.append(_voucher_result(v, "settled"))
    for device_id in touched:
        devices.set(device_id, touched[device_id])
    wallets.set(payee, target)
    _record(moves)
    return results


def offline_reclaim(device):
    """After the device's validity and the grace period for settling its vouchers, the wallet's
    operator returns what the device did not spend to the wallet."""
    s = _settings()
    _text("device", device)
    d = devices.get(device)
    if d is None:
        reject_arguments(f"no device {device}")
    require(d["status"] != "reclaimed", f"device {device} was reclaimed already")
    record = _wallet(d["wallet"])
    _own_operator(record)
    require(context.timestamp_ms > d["until_ms"] + s["offline"]["grace_ms"],
            f"vouchers of device {device} may settle until {d['until_ms'] + s['offline']['grace_ms']}")
    amount = d["balance"]
    moves = []
    if amount > 0:
        _receive(s, record, amount)
        _move(moves, "offline_reclaim", "offline:" + device, "wallet:" + d["wallet"], amount, device)
    d["balance"] = 0
    d["status"] = "reclaimed"
    record["devices"] = record["devices"] - 1
    devices.set(device, d)
    wallets.set(d["wallet"], record)
    _record(moves)
    return {"device": device, "reclaimed": amount}


# ------------------------------------------------------------------------------ managed anonymity

def _regulator(s):
    _member()
    if context.caller.org not in s["regulators"]:
        deny("only a regulator (" + ", ".join(s["regulators"]) + ") asks for a wallet's holder")


def _grounds(record):
    grounds = []
    for name in ["large", "velocity", "structuring"]:
        if record["flags"][name] > 0:
            grounds.append(name)
    return grounds


def disclosure_request(request_id, wallet, basis, reason):
    """A regulator's officer asks for the holder behind a pseudonymous wallet, on a legal basis.
    Nothing is disclosed until another officer approves and the wallet has a ground."""
    s = _settings()
    _regulator(s)
    _text("request_id", request_id)
    _text("basis", basis)
    _note("reason", reason)
    _wallet(wallet)
    require(not disclosures.contains(request_id), f"request {request_id} exists already")
    disclosures.set(request_id, {"id": request_id, "wallet": wallet, "org": context.caller.org,
                                 "requester": context.caller.name, "basis": basis, "reason": reason,
                                 "status": "requested", "grounds": [], "approver": None, "rule": "",
                                 "until_ms": 0, "ms": context.timestamp_ms, "decided_ms": None})
    emit("disclosure_requested", {"id": request_id, "wallet": wallet, "org": context.caller.org, "basis": basis})
    return disclosures.get(request_id)


def disclosure_approve(request_id):
    """A second officer of the requesting regulator approves. The link is released only for a
    wallet with a ground — a payment at or above the large-value threshold, or an AML flag
    (velocity, structuring just under the threshold); small payments stay anonymous. Approved:
    the data exchange PERMITs the regulator to fetch the holder's KYC record from the operator's
    vault (purpose AML), and the delivery's signed receipts are anchored like every exchange."""
    s = _settings()
    _regulator(s)
    _text("request_id", request_id)
    record = disclosures.get(request_id)
    if record is None:
        reject_arguments(f"no disclosure request {request_id}")
    require(record["status"] == "requested", f"request {request_id} is {record['status']}")
    if context.caller.org != record["org"]:
        deny(f"request {request_id} is {record['org']}'s to approve")
    if context.caller.name == record["requester"]:
        deny("maker-checker: the officer who asked cannot approve; another officer must")
    w = wallets.get(record["wallet"])
    grounds = _grounds(w)
    record["grounds"] = grounds
    record["approver"] = context.caller.name
    record["decided_ms"] = context.timestamp_ms
    if not grounds:
        record["status"] = "refused"
        record["rule"] = ("no ground: no payment of " + str(s["large_value"]) + " or more and no AML flag; "
                          "small payments stay anonymous")
    else:
        require(w["kyc"] != "", f"wallet {record['wallet']} names no KYC record; its operator must register one")
        until = context.timestamp_ms + s["disclosure_ms"]
        call("dataex", "decide", {"payload_id": w["kyc"], "org": record["org"], "purpose": "AML", "until_ms": until,
                                  "rule": "disclosure:" + request_id})
        record["status"] = "approved"
        record["rule"] = "grounds: " + ", ".join(grounds)
        record["until_ms"] = until
        record["kyc"] = w["kyc"]
        record["operator"] = w["operator"]
    disclosures.set(request_id, record)
    emit("disclosure_decided", {"id": request_id, "wallet": record["wallet"], "status": record["status"],
                                "grounds": grounds})
    return record


# ------------------------------------------------------------------------------ queries

def config():
    return _settings()


def operator(org):
    return operators.get(org)


def proposal(proposal_id):
    return proposals.get(proposal_id)


def wallet(wallet_id):
    """The wallet with what is left of its limits today (Asia/Shanghai) and this year."""
    record = wallets.get(wallet_id)
    if record is None:
        return None
    s = _settings()
    view = {}
    for key in record:
        view[key] = record[key]
    probe = {"day": record["day"], "day_out": record["day_out"], "day_n": 0, "day_near": 0,
             "year": record["year"], "year_out": record["year_out"]}
    _roll(probe, context.timestamp_ms)
    limits = _limits(s, record)
    view["limits"] = limits
    view["today"] = _date(_day(context.timestamp_ms))
    view["left"] = {"daily": _left(limits["daily_max"], probe["day_out"]),
                    "annual": _left(limits["annual_max"], probe["year_out"]),
                    "balance": _left(limits["balance_max"], record["balance"] + record["held"]),
                    "payment": limits["payment_max"]}
    total = record["balance"]
    for campaign in record["envelopes"]:
        total = total + record["envelopes"][campaign]
    view["total"] = total + record["held"]
    return view


def payment(payment_id):
    return payments.get(payment_id)


def campaign(campaign_id):
    return campaigns.get(campaign_id)


def escrow(escrow_id):
    return escrows.get(escrow_id)


def held(hold_id):
    return holds.get(hold_id)


def device(device_id):
    return devices.get(device_id)


def disclosure(request_id):
    return disclosures.get(request_id)


def supply_audit():
    """The aggregates and whether they balance: issued - redeemed == the sum of the buckets."""
    totals = supply.get()
    held = totals["vaults"] + totals["wallets"] + totals["envelopes"] + totals["held"] + totals["offline"]
    out = {}
    for key in totals:
        out[key] = totals[key]
    out["outstanding"] = totals["issued"] - totals["redeemed"]
    out["balanced"] = out["outstanding"] == held
    out["history"] = history.get()
    out["height"] = context.height
    return out
