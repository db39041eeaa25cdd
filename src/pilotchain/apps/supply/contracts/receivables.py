"""receivables — supply-chain receivables (S4): confirmed by the buyer, split down the tiers with value
conserved, financed once, settled at maturity; the documents behind them stay in the vaults.

A car maker (the debtor) confirms a payable to its tier-1 supplier: a receivable with an amount (an
integer in the currency's minor unit), a maturity, the data-exchange payloads of the invoice and the
delivery note (registered in ``dataex`` with ``policy="receivables"``: this contract decides who
receives them, their salted commitments are copied here) and the part batches it pays for.

    issue(receivable_id, creditor, amount, maturity_ms, invoice, delivery_note, batches, currency="CNY")
                                          the debtor; the creditor holds it
    split(receivable_id, pieces)          the holder: [{"id", "holder", "amount"}, ...], amounts > 0
                                          adding up to exactly the receivable's; the receivable closes
    transfer(receivable_id, to)           the holder passes the whole receivable on
    offer(receivable_id, bank, terms)     the holder offers it to a bank for financing; ``terms`` is the
                                          agreed terms' payload (price, discount rate) — the bank may
                                          fetch it, and the invoice and delivery note
    finance(receivable_id, kind="discount", registration_no="")
                                          a bank the holder offered it to: the first one wins, every
                                          other attempt fails; a discounted receivable passes to the bank
    record_registration(receivable_id, registration_no)
                                          the financing bank: the statutory registration number
    settle(receivable_id, payment_ref)    the debtor pays: the receivable and every piece of it close
    request_terms(receivable_id, reason)  a regulator organisation: PERMITs for the terms, invoice and
                                          delivery note through the data exchange, logged

No double financing, by construction: a receivable is financed only while it is ``active`` (never
split, financed or settled) and financing makes it ``financed``, a state in which it can be neither
split, transferred, offered nor financed again; a split closes the original, so a piece of a
financed receivable cannot exist and the original of a piece cannot be financed. Transactions run
one after another in block order on every validator, so of two conflicting ones — in one block or
not — the second sees the first's effect and fails.

Conservation: an issue adds its amount to ``issued``; a split replaces a receivable by pieces whose
amounts add up to it; a settlement adds the settled pieces to ``settled``. The leaves of every tree
add up to its root at all times; ``supply()`` (and ``supply_at(height)``, from the recorded history)
gives issued, settled, outstanding = issued - settled, and financed.

Queries: receivable(receivable_id), lineage(receivable_id), holdings(org), offers(receivable_id),
supply(), supply_at(height), config().
"""

from pilotchain.contracts.api import (
    Map,
    Variable,
    call,
    context,
    deny,
    emit,
    reject_arguments,
    require,
)

receivables = Map("receivables")
offers = Map("offers")
holdings = Map("holdings")
registrations = Map("registrations")
totals = Variable("totals")
history = Variable("history")
settings = Variable("settings")

ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
PIECES_MAX = 16
TREE_MAX = 256
BATCHES_MAX = 64
HOLDINGS_MAX = 4096
HISTORY_MAX = 20000
AMOUNT_MAX = 10 ** 15
KINDS = ["discount", "pledge"]
PURPOSE = "FINANCE"
SUPERVISION = "SUPERVISION"
ACCESS_MS = 5 * 365 * 86400000


def init(args=None):
    _configure(args)


def upgrade(args=None):
    _configure(args)


def _configure(args):
    if args is None:
        args = {}
    if not isinstance(args, dict):
        reject_arguments('init takes {"regulator_orgs": [...], "bank_orgs": [...]}')
    for name in ("regulator_orgs", "bank_orgs"):
        orgs = args.get(name, [])
        if not isinstance(orgs, list) or len(orgs) > 16:
            reject_arguments(f"{name} is a list of at most 16 organisations")
        for org in orgs:
            _text(name, org, 64)
    settings.set({"regulator_orgs": args.get("regulator_orgs", []), "bank_orgs": args.get("bank_orgs", [])})


def _settings():
    return settings.get({"regulator_orgs": [], "bank_orgs": []})


def _text(name, value, limit):
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        reject_arguments(f"{name} is a text of 1..{limit} characters")


def _id(name, value):
    _text(name, value, 128)
    for char in value:
        if char not in ID_CHARS:
            reject_arguments(f"{name} uses only letters, digits and . _ : -")


def _amount(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= AMOUNT_MAX:
        reject_arguments(f"{name} is a positive integer (the currency's minor unit) up to {AMOUNT_MAX}")


def _get(receivable_id):
    _id("receivable_id", receivable_id)
    record = receivables.get(receivable_id)
    if record is None:
        reject_arguments(f"no receivable {receivable_id}")
    return record


def _stamp(what, extra=None):
    entry = {"what": what, "org": context.caller.org, "by": context.caller.name, "height": context.height,
             "ms": context.timestamp_ms, "tx": context.tx_id}
    if extra is not None:
        for key in extra:
            entry[key] = extra[key]
    return entry


def _document(name, payload_id, parties):
    """A dataex payload governed by this contract, owned by one of ``parties``: its commitment."""
    _id(name, payload_id)
    payload = call("dataex", "payload", {"payload_id": payload_id})
    if payload is None:
        reject_arguments(f"{name} {payload_id} is not registered in the data exchange")
    require(payload["policy"] == "receivables",
            f"{name} {payload_id} must be registered with policy receivables (this contract decides who receives it)")
    require(payload["owner"] in parties, f"{name} {payload_id} belongs to {payload['owner']}, not to a party")
    require(payload["purged"] is None, f"{name} {payload_id} was purged")
    return {"payload_id": payload_id, "owner": payload["owner"], "commitment": payload["commitment"]}


def _permit(document, org, purpose):
    if document is None or document["owner"] == org:
        return
    call("dataex", "decide", {"payload_id": document["payload_id"], "org": org, "purpose": purpose,
                              "until_ms": context.timestamp_ms + ACCESS_MS, "rule": "receivables:" + purpose})


def _hold(org, receivable_id, add):
    ids = holdings.get(org, [])
    if add:
        require(len(ids) < HOLDINGS_MAX, f"{org} holds too many receivables")
        ids.append(receivable_id)
    else:
        ids = [r for r in ids if r != receivable_id]
    holdings.set(org, ids)


def _record_totals(issued, settled, financed):
    current = totals.get({"issued": 0, "settled": 0, "financed": 0})
    current["issued"] = current["issued"] + issued
    current["settled"] = current["settled"] + settled
    current["financed"] = current["financed"] + financed
    require(current["issued"] >= current["settled"] >= 0 and current["financed"] >= 0, "totals would go negative")
    totals.set(current)
    log = history.get([])
    if log and log[-1][0] == context.height:
        log[-1] = [context.height, current["issued"], current["settled"], current["financed"]]
    else:
        if len(log) >= HISTORY_MAX:
            log = log[1:]
        log.append([context.height, current["issued"], current["settled"], current["financed"]])
    history.set(log)


def issue(receivable_id, creditor, amount, maturity_ms, invoice, delivery_note, batches, currency="CNY"):
    _id("receivable_id", receivable_id)
    _text("creditor", creditor, 64)
    _amount("amount", amount)
    if not isinstance(maturity_ms, int) or isinstance(maturity_ms, bool) or maturity_ms <= context.timestamp_ms:
        reject_arguments("maturity_ms is a time in the future (ms since 1970)")
    _text("currency", currency, 8)
    if not isinstance(batches, list) or not 1 <= len(batches) <= BATCHES_MAX:
        reject_arguments(f"batches lists 1..{BATCHES_MAX} part batch identifiers (GS1 Digital Link URIs)")
    for batch in batches:
        _text("batch", batch, 256)
        if not batch.startswith("https://id.gs1.org/"):
            reject_arguments("a batch is a canonical GS1 Digital Link URI (https://id.gs1.org/...)")
    debtor = context.caller.org
    require(creditor != debtor, "a receivable is owed to another organisation")
    require(not receivables.contains(receivable_id), f"receivable {receivable_id} exists already")
    parties = [debtor, creditor]
    documents = {"invoice": _document("invoice", invoice, parties),
                 "delivery_note": _document("delivery_note", delivery_note, parties)}
    for name in documents:
        for org in parties:
            _permit(documents[name], org, PURPOSE)
    record = {"id": receivable_id, "root": receivable_id, "parent": None, "children": [], "debtor": debtor,
              "creditor": creditor, "holder": creditor, "amount": amount, "currency": currency,
              "maturity_ms": maturity_ms, "status": "active", "documents": documents, "batches": batches,
              "financing": None, "terms": None, "settlement": None, "tree_size": 1,
              "events": [_stamp("issued", {"amount": amount, "holder": creditor})]}
    receivables.set(receivable_id, record)
    _hold(creditor, receivable_id, True)
    _record_totals(amount, 0, 0)
    emit("issued", {"id": receivable_id, "debtor": debtor, "creditor": creditor, "amount": amount,
                    "currency": currency, "maturity_ms": maturity_ms, "batches": batches})
    return {"id": receivable_id, "invoice": documents["invoice"]["commitment"],
            "delivery_note": documents["delivery_note"]["commitment"]}


def _must_hold(record):
    if record["holder"] != context.caller.org:
        deny(f"only the holder ({record['holder']}) may do this with receivable {record['id']}")
    require(record["status"] == "active", f"receivable {record['id']} is {record['status']}, not active")


def split(receivable_id, pieces):
    record = _get(receivable_id)
    _must_hold(record)
    if not isinstance(pieces, list) or not 2 <= len(pieces) <= PIECES_MAX:
        reject_arguments(f"pieces is a list of 2..{PIECES_MAX} {{id, holder, amount}}")
    root = receivables.get(record["root"])
    require(root["tree_size"] + len(pieces) <= TREE_MAX, f"a receivable splits into at most {TREE_MAX} records")
    total = 0
    seen = []
    for piece in pieces:
        if not isinstance(piece, dict) or sorted(piece) != ["amount", "holder", "id"]:
            reject_arguments("each piece is {id, holder, amount}")
        _id("piece id", piece["id"])
        _text("holder", piece["holder"], 64)
        _amount("piece amount", piece["amount"])
        require(piece["id"] not in seen and not receivables.contains(piece["id"]), f"receivable {piece['id']} exists already")
        require(piece["holder"] != record["debtor"], "the debtor cannot hold its own payable")
        seen.append(piece["id"])
        total = total + piece["amount"]
    require(total == record["amount"], f"pieces add up to {total}, the receivable is {record['amount']}: value is conserved")
    for piece in pieces:
        child = {"id": piece["id"], "root": record["root"], "parent": receivable_id, "children": [],
                 "debtor": record["debtor"], "creditor": record["creditor"], "holder": piece["holder"],
                 "amount": piece["amount"], "currency": record["currency"], "maturity_ms": record["maturity_ms"],
                 "status": "active", "documents": record["documents"], "batches": record["batches"],
                 "financing": None, "terms": None, "settlement": None, "tree_size": 0,
                 "events": [_stamp("split from " + receivable_id, {"amount": piece["amount"], "holder": piece["holder"]})]}
        receivables.set(piece["id"], child)
        _hold(piece["holder"], piece["id"], True)
    record["status"] = "split"
    record["children"] = seen
    record["events"].append(_stamp("split", {"into": seen}))
    if record["root"] == receivable_id:
        record["tree_size"] = record["tree_size"] + len(pieces)
    else:
        root["tree_size"] = root["tree_size"] + len(pieces)
        receivables.set(record["root"], root)
    receivables.set(receivable_id, record)
    _hold(record["holder"], receivable_id, False)
    emit("split", {"id": receivable_id, "pieces": pieces})
    return seen


def transfer(receivable_id, to):
    record = _get(receivable_id)
    _must_hold(record)
    _text("to", to, 64)
    require(to != record["holder"], "the receivable is already held by " + to)
    require(to != record["debtor"], "the debtor cannot hold its own payable")
    _hold(record["holder"], receivable_id, False)
    record["events"].append(_stamp("transferred", {"from": record["holder"], "to": to}))
    record["holder"] = to
    receivables.set(receivable_id, record)
    _hold(to, receivable_id, True)
    emit("transferred", {"id": receivable_id, "to": to})


def offer(receivable_id, bank, terms):
    record = _get(receivable_id)
    _must_hold(record)
    _text("bank", bank, 64)
    banks = _settings()["bank_orgs"]
    if banks and bank not in banks:
        reject_arguments(f"{bank} is not one of the financing banks ({', '.join(banks)})")
    require(bank != record["holder"], "a holder does not finance itself")
    document = _document("terms", terms, [record["holder"], bank])
    key = receivable_id + "/" + bank
    require(not offers.contains(key), f"receivable {receivable_id} is offered to {bank} already")
    _permit(document, bank, PURPOSE)
    _permit(document, record["holder"], PURPOSE)
    _permit(record["documents"]["invoice"], bank, PURPOSE)
    _permit(record["documents"]["delivery_note"], bank, PURPOSE)
    offers.set(key, {"receivable_id": receivable_id, "bank": bank, "terms": document, "holder": record["holder"],
                     "height": context.height, "ms": context.timestamp_ms, "tx": context.tx_id})
    emit("offered", {"id": receivable_id, "bank": bank, "terms_commitment": document["commitment"]})


def finance(receivable_id, kind="discount", registration_no=""):
    record = _get(receivable_id)
    bank = context.caller.org
    if record["financing"] is not None:
        fail_msg = (f"receivable {receivable_id} is already financed by {record['financing']['bank']} "
                    f"(block {record['financing']['height']}): no double financing")
        require(False, fail_msg)
    require(record["status"] == "active", f"receivable {receivable_id} is {record['status']}: only an active "
                                          "receivable (never split, financed or settled) can be financed")
    if kind not in KINDS:
        reject_arguments("kind is discount or pledge")
    proposal = offers.get(receivable_id + "/" + bank)
    if proposal is None or proposal["holder"] != record["holder"]:
        deny(f"{record['holder']} has not offered receivable {receivable_id} to {bank}")
    if registration_no != "":
        _register(receivable_id, registration_no)
    record["financing"] = {"bank": bank, "kind": kind, "by": context.caller.name, "registration_no": registration_no,
                           "height": context.height, "ms": context.timestamp_ms, "tx": context.tx_id,
                           "from": record["holder"]}
    record["terms"] = proposal["terms"]
    record["status"] = "financed"
    record["events"].append(_stamp("financed", {"bank": bank, "kind": kind}))
    if kind == "discount":
        _hold(record["holder"], receivable_id, False)
        record["holder"] = bank
        _hold(bank, receivable_id, True)
    receivables.set(receivable_id, record)
    _record_totals(0, 0, record["amount"])
    emit("financed", {"id": receivable_id, "bank": bank, "kind": kind, "amount": record["amount"],
                      "registration_no": registration_no})


def _register(receivable_id, registration_no):
    _text("registration_no", registration_no, 64)
    existing = registrations.get(registration_no)
    require(existing is None or existing == receivable_id,
            f"registration {registration_no} is recorded for receivable {existing}")
    registrations.set(registration_no, receivable_id)


def record_registration(receivable_id, registration_no):
    record = _get(receivable_id)
    require(record["financing"] is not None, f"receivable {receivable_id} is not financed")
    if context.caller.org != record["financing"]["bank"]:
        deny("only the financing bank records the registration of its financing")
    require(record["financing"]["registration_no"] == "", "the registration number is recorded already")
    _register(receivable_id, registration_no)
    record["financing"]["registration_no"] = registration_no
    record["events"].append(_stamp("registered", {"registration_no": registration_no}))
    receivables.set(receivable_id, record)
    emit("registered", {"id": receivable_id, "registration_no": registration_no})


def _leaves(receivable_id):
    """The pieces of a tree that are not split (iterative, bounded by TREE_MAX)."""
    found = []
    todo = [receivable_id]
    while todo:
        require(len(found) + len(todo) <= TREE_MAX, "tree too large")
        current = receivables.get(todo.pop())
        if current["status"] == "split":
            todo = todo + current["children"]
        else:
            found.append(current)
    return found


def settle(receivable_id, payment_ref):
    record = _get(receivable_id)
    _text("payment_ref", payment_ref, 128)
    if context.caller.org != record["debtor"]:
        deny(f"only the debtor ({record['debtor']}) settles receivable {receivable_id}")
    require(record["root"] == receivable_id, f"settle the whole receivable {record['root']}: every piece is paid at once")
    require(record["settlement"] is None, f"receivable {receivable_id} is settled already")
    settled = 0
    released = 0
    paid = []
    for leaf in _leaves(receivable_id):
        if leaf["status"] == "settled":
            continue
        if leaf["status"] == "financed":
            released = released + leaf["amount"]
        leaf["status"] = "settled"
        leaf["settlement"] = {"paid_to": leaf["holder"], "payment_ref": payment_ref, "height": context.height,
                              "ms": context.timestamp_ms, "tx": context.tx_id,
                              "on_time": context.timestamp_ms >= leaf["maturity_ms"]}
        leaf["events"].append(_stamp("settled", {"paid_to": leaf["holder"], "amount": leaf["amount"]}))
        receivables.set(leaf["id"], leaf)
        _hold(leaf["holder"], leaf["id"], False)
        paid.append({"id": leaf["id"], "holder": leaf["holder"], "amount": leaf["amount"]})
        settled = settled + leaf["amount"]
    record = receivables.get(receivable_id)
    record["settlement"] = {"payment_ref": payment_ref, "height": context.height, "ms": context.timestamp_ms,
                            "tx": context.tx_id, "paid": paid}
    receivables.set(receivable_id, record)
    require(settled == record["amount"], "the settled pieces add up to the receivable")
    _record_totals(0, settled, -released)
    emit("settled", {"id": receivable_id, "amount": settled, "payment_ref": payment_ref, "paid": paid})
    return paid


def request_terms(receivable_id, reason):
    record = _get(receivable_id)
    _text("reason", reason, 512)
    org = context.caller.org
    if org not in _settings()["regulator_orgs"]:
        deny("only a regulator organisation requests the terms of a financing")
    granted = []
    for document in [record["terms"], record["documents"]["invoice"], record["documents"]["delivery_note"]]:
        if document is not None:
            _permit(document, org, SUPERVISION)
            granted.append(document["payload_id"])
    record["events"].append(_stamp("terms requested", {"reason": reason, "payloads": granted}))
    receivables.set(receivable_id, record)
    emit("terms_requested", {"id": receivable_id, "org": org, "reason": reason, "payloads": granted})
    return granted


def receivable(receivable_id):
    _id("receivable_id", receivable_id)
    return receivables.get(receivable_id)


def lineage(receivable_id):
    """Every record of the receivable's tree (root first, then pieces in split order)."""
    record = _get(receivable_id)
    found = []
    todo = [record["root"]]
    while todo:
        require(len(found) <= TREE_MAX, "tree too large")
        current = receivables.get(todo[0])
        todo = todo[1:] + current["children"]
        found.append(current)
    return found


def holdings_of(org):
    return [receivables.get(r) for r in holdings.get(org, [])]


def offers_of(receivable_id, bank):
    return offers.get(receivable_id + "/" + bank)


def supply():
    current = totals.get({"issued": 0, "settled": 0, "financed": 0})
    return {"issued": current["issued"], "settled": current["settled"],
            "outstanding": current["issued"] - current["settled"], "financed": current["financed"],
            "height": context.height}


def supply_at(height):
    if not isinstance(height, int) or isinstance(height, bool) or height < 0:
        reject_arguments("height is a block height")
    found = [0, 0, 0, 0]
    for entry in history.get([]):
        if entry[0] > height:
            break
        found = entry
    return {"issued": found[1], "settled": found[2], "outstanding": found[1] - found[2], "financed": found[3],
            "height": height}


def config():
    return _settings()
