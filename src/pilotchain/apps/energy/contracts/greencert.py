"""greencert — green-power certificates (S5): issued against signed meter readings, never more than
metered, never twice for the same device and period; transferred, retired once, cancelled when they
expire.

    register_device(device_id, owner, meter_org, technology, capacity_kw, location)
                                          a power-exchange organisation (init: exchange_orgs)
    record_reading(reading_id, device_id, start_ms, end_ms, kwh, payload_id)
                                          the device's meter operator: a reading whose document stays
                                          in its vault (registered in dataex by the operator; its salted
                                          commitment is copied here). Readings of a device never overlap,
                                          and never exceed capacity x hours.
    issue(batch_id, device_id, start_ms, end_ms, count=0)
                                          a power exchange: certificates for the device and the period,
                                          at most the readings inside it / kwh_per_certificate (count 0:
                                          that many); no period of the device is certified twice
                                          (overlaps included). One lot, serials first..last, owned by the
                                          device's owner, valid until end_ms + validity_ms.
    transfer(lot_id, to, count)           the owner: ``count`` certificates (the lot splits by serials)
    retire(lot_id, count, beneficiary, year, retirement_id)
                                          the owner claims them for a beneficiary and a reporting year;
                                          retired certificates never move or retire again
    cancel_expired(lot_id)                anyone: records an expired lot as cancelled (an expired lot is
                                          refused for transfer and retirement either way)

A lot is a range of certificate serials ``<batch>:<first>-<last>``; a partial transfer or retirement
closes it and opens the two sub-ranges, so every certificate (one per ``kwh_per_certificate``, China's
GEC: 1,000 kWh) is in exactly one open or retired lot. Accounting: issued = outstanding + retired +
cancelled (expired lots not yet recorded count as cancelled in ``supply``); ``supply_at(height)``
reads the recorded history.

Queries: device(device_id), reading(reading_id), batch(batch_id), lot(lot_id), holdings(org),
trace(lot_id) (the lot's line back to its device, with the transactions of each step),
retirement(retirement_id), retirements_of(beneficiary), supply(), supply_at(height), config().
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

devices = Map("devices")
readings = Map("readings")
batches = Map("batches")
lots = Map("lots")
owners = Map("owners")
retirements = Map("retirements")
beneficiaries = Map("beneficiaries")
open_lots = Variable("open_lots")
serial = Variable("serial")
totals = Variable("totals")
history = Variable("history")
settings = Variable("settings")

ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
HOUR_MS = 3600000
DAY_MS = 86400000
PERIODS_MAX = 4096
READINGS_PER_ISSUE_MAX = 1024
OPEN_LOTS_MAX = 20000
HOLDINGS_MAX = 4096
HISTORY_MAX = 20000


def init(args=None):
    _configure(args)


def upgrade(args=None):
    _configure(args)


def _configure(args):
    if args is None:
        args = {}
    if not isinstance(args, dict):
        reject_arguments('init takes {"exchange_orgs": [...], "kwh_per_certificate": 1000, "validity_days": 730}')
    exchange_orgs = args.get("exchange_orgs", [])
    if not isinstance(exchange_orgs, list) or not 1 <= len(exchange_orgs) <= 8:
        reject_arguments("exchange_orgs lists the 1..8 organisations that register devices and issue")
    for org in exchange_orgs:
        _text("exchange org", org, 64)
    unit = args.get("kwh_per_certificate", 1000)
    days = args.get("validity_days", 730)
    if not isinstance(unit, int) or isinstance(unit, bool) or not 1 <= unit <= 10000000:
        reject_arguments("kwh_per_certificate is 1..10,000,000")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 36500:
        reject_arguments("validity_days is 1..36,500")
    validity_ms = args.get("validity_ms", days * DAY_MS)
    if not isinstance(validity_ms, int) or isinstance(validity_ms, bool) or not 60000 <= validity_ms <= 36500 * DAY_MS:
        reject_arguments("validity_ms is a minute .. 100 years")
    settings.set({"exchange_orgs": exchange_orgs, "kwh_per_certificate": unit, "validity_ms": validity_ms})


def _settings():
    return settings.get()


def _text(name, value, limit):
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        reject_arguments(f"{name} is a text of 1..{limit} characters")


def _id(name, value):
    _text(name, value, 128)
    for char in value:
        if char not in ID_CHARS:
            reject_arguments(f"{name} uses only letters, digits and . _ : -")


def _int(name, value, low):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        reject_arguments(f"{name} is an integer of at least {low}")


def _stamp(what, extra=None):
    entry = {"what": what, "org": context.caller.org, "by": context.caller.name, "height": context.height,
             "ms": context.timestamp_ms, "tx": context.tx_id}
    if extra is not None:
        for key in extra:
            entry[key] = extra[key]
    return entry


def _exchange():
    if context.caller.org not in _settings()["exchange_orgs"]:
        deny("only a power exchange (" + ", ".join(_settings()["exchange_orgs"]) + ") does this")


def _overlaps(periods, start_ms, end_ms):
    for period in periods:
        if start_ms < period[1] and period[0] < end_ms:
            return period
    return None


def _record_totals(issued, retired, cancelled):
    current = totals.get({"issued": 0, "retired": 0, "cancelled": 0})
    current["issued"] = current["issued"] + issued
    current["retired"] = current["retired"] + retired
    current["cancelled"] = current["cancelled"] + cancelled
    require(current["issued"] >= current["retired"] + current["cancelled"], "more retired than issued")
    totals.set(current)
    log = history.get([])
    row = [context.height, current["issued"], current["retired"], current["cancelled"]]
    if log and log[-1][0] == context.height:
        log[-1] = row
    else:
        if len(log) >= HISTORY_MAX:
            log = log[1:]
        log.append(row)
    history.set(log)


def register_device(device_id, owner, meter_org, technology, capacity_kw, location):
    _exchange()
    _id("device_id", device_id)
    _text("owner", owner, 64)
    _text("meter_org", meter_org, 64)
    _text("technology", technology, 32)
    _text("location", location, 128)
    _int("capacity_kw", capacity_kw, 1)
    require(not devices.contains(device_id), f"device {device_id} is registered already")
    devices.set(device_id, {"id": device_id, "owner": owner, "meter_org": meter_org, "technology": technology,
                            "capacity_kw": capacity_kw, "location": location, "readings": [], "issued": [],
                            "registered": _stamp("registered")})
    emit("device", {"device_id": device_id, "owner": owner, "meter_org": meter_org, "technology": technology,
                    "capacity_kw": capacity_kw, "location": location})


def _device(device_id):
    _id("device_id", device_id)
    record = devices.get(device_id)
    if record is None:
        reject_arguments(f"no device {device_id}")
    return record


def record_reading(reading_id, device_id, start_ms, end_ms, kwh, payload_id):
    device = _device(device_id)
    if context.caller.org != device["meter_org"]:
        deny(f"only the meter operator of {device_id} ({device['meter_org']}) records its readings")
    _id("reading_id", reading_id)
    _int("start_ms", start_ms, 0)
    _int("end_ms", end_ms, start_ms + 1)
    _int("kwh", kwh, 1)
    require(end_ms <= context.timestamp_ms, "a reading ends in the past")
    require(kwh * HOUR_MS <= device["capacity_kw"] * (end_ms - start_ms),
            f"{kwh} kWh is more than {device_id} ({device['capacity_kw']} kW) can produce in that period")
    require(not readings.contains(reading_id), f"reading {reading_id} exists already")
    clash = _overlaps(device["readings"], start_ms, end_ms)
    require(clash is None, f"the period overlaps reading {clash[3] if clash else ''} of {device_id}")
    certified = _overlaps(device["issued"], start_ms, end_ms)
    require(certified is None, f"the period overlaps certified batch {certified[2] if certified else ''}")
    require(len(device["readings"]) < PERIODS_MAX, "too many readings for one device")
    payload = call("dataex", "payload", {"payload_id": payload_id})
    if payload is None:
        reject_arguments(f"meter reading document {payload_id} is not registered in the data exchange")
    require(payload["owner"] == context.caller.org, "the reading document is the meter operator's own")
    readings.set(reading_id, {"id": reading_id, "device": device_id, "start_ms": start_ms, "end_ms": end_ms,
                              "kwh": kwh, "payload_id": payload_id, "commitment": payload["commitment"],
                              "batch": None, "recorded": _stamp("reading")})
    device["readings"].append([start_ms, end_ms, kwh, reading_id])
    devices.set(device_id, device)
    emit("reading", {"reading_id": reading_id, "device_id": device_id, "start_ms": start_ms, "end_ms": end_ms,
                     "kwh": kwh, "payload_id": payload_id, "commitment": payload["commitment"]})
    return payload["commitment"]


def _lot_id(batch_id, first, last):
    return batch_id + ":" + str(first) + "-" + str(last)


def _open(lot, add):
    current = open_lots.get([])
    if add:
        require(len(current) < OPEN_LOTS_MAX, "too many open lots")
        current.append(lot["id"])
    else:
        current = [x for x in current if x != lot["id"]]
    open_lots.set(current)
    held = owners.get(lot["owner"], [])
    if add:
        require(len(held) < HOLDINGS_MAX, f"{lot['owner']} holds too many lots")
        held.append(lot["id"])
    else:
        held = [x for x in held if x != lot["id"]]
    owners.set(lot["owner"], held)


def issue(batch_id, device_id, start_ms, end_ms, count=0):
    _exchange()
    device = _device(device_id)
    _id("batch_id", batch_id)
    _int("start_ms", start_ms, 0)
    _int("end_ms", end_ms, start_ms + 1)
    _int("count", count, 0)
    require(not batches.contains(batch_id), f"batch {batch_id} exists already")
    require(end_ms <= context.timestamp_ms, "certificates are issued for energy already produced")
    twice = _overlaps(device["issued"], start_ms, end_ms)
    require(twice is None, f"{device_id} is certified already for an overlapping period (batch "
                           f"{twice[2] if twice else ''}): never twice for the same energy")
    used = [r for r in device["readings"] if start_ms <= r[0] and r[1] <= end_ms]
    require(len(used) <= READINGS_PER_ISSUE_MAX, "too many readings in one period")
    metered = 0
    for row in used:
        metered = metered + row[2]
    unit = _settings()["kwh_per_certificate"]
    covered = metered // unit
    if count == 0:
        count = covered
    require(count >= 1, f"the readings of {device_id} in that period cover {metered} kWh: not one certificate "
                        f"of {unit} kWh")
    require(count <= covered, f"{count} certificates need {count * unit} kWh, the signed readings cover {metered} kWh:"
                              " never more than metered")
    first = serial.get(1)
    serial.set(first + count)
    expires = end_ms + _settings()["validity_ms"]
    require(expires > context.timestamp_ms, "certificates for that period would be expired already")
    lot = {"id": _lot_id(batch_id, first, first + count - 1), "batch": batch_id, "first": first, "count": count,
           "owner": device["owner"], "status": "active", "parent": None, "children": [], "expires_ms": expires,
           "events": [_stamp("issued", {"owner": device["owner"], "count": count})], "retirement": None}
    batches.set(batch_id, {"id": batch_id, "device": device_id, "start_ms": start_ms, "end_ms": end_ms,
                           "count": count, "metered_kwh": metered, "kwh_per_certificate": unit,
                           "readings": [r[3] for r in used], "first": first, "lot": lot["id"],
                           "expires_ms": expires, "issued": _stamp("issued")})
    for row in used:
        reading = readings.get(row[3])
        reading["batch"] = batch_id
        readings.set(row[3], reading)
    device["issued"].append([start_ms, end_ms, batch_id])
    devices.set(device_id, device)
    lots.set(lot["id"], lot)
    _open(lot, True)
    _record_totals(count, 0, 0)
    emit("issued", {"batch_id": batch_id, "device_id": device_id, "start_ms": start_ms, "end_ms": end_ms,
                    "count": count, "metered_kwh": metered, "kwh_per_certificate": unit, "lot": lot["id"],
                    "owner": device["owner"], "readings": [r[3] for r in used], "expires_ms": expires})
    return lot["id"]


def _lot(lot_id):
    _text("lot_id", lot_id, 200)
    lot = lots.get(lot_id)
    if lot is None:
        reject_arguments(f"no lot {lot_id}")
    return lot


def _movable(lot):
    if lot["owner"] != context.caller.org:
        deny(f"lot {lot['id']} belongs to {lot['owner']}")
    if lot["status"] == "retired":
        require(False, f"lot {lot['id']} is retired ({lot['retirement']}): a certificate is claimed once")
    require(lot["status"] == "active", f"lot {lot['id']} is {lot['status']}")
    require(context.timestamp_ms < lot["expires_ms"], f"lot {lot['id']} expired: it can be neither transferred "
                                                      "nor retired")


def _split(lot, count, what, extra):
    """``count`` certificates of ``lot`` as a lot of their own (the lot itself when all): (taken, rest)."""
    _int("count", count, 1)
    require(count <= lot["count"], f"lot {lot['id']} holds {lot['count']} certificates, not {count}")
    if count == lot["count"]:
        return lot, None
    first = lot["first"]
    taken = {"id": _lot_id(lot["batch"], first, first + count - 1), "batch": lot["batch"], "first": first,
             "count": count, "owner": lot["owner"], "status": "active", "parent": lot["id"], "children": [],
             "expires_ms": lot["expires_ms"], "events": [_stamp(what, extra)], "retirement": None}
    rest = {"id": _lot_id(lot["batch"], first + count, first + lot["count"] - 1), "batch": lot["batch"],
            "first": first + count, "count": lot["count"] - count, "owner": lot["owner"], "status": "active",
            "parent": lot["id"], "children": [], "expires_ms": lot["expires_ms"],
            "events": [_stamp("rest after " + what, extra)], "retirement": None}
    lot["status"] = "split"
    lot["children"] = [taken["id"], rest["id"]]
    lot["events"].append(_stamp("split", {"into": lot["children"]}))
    lots.set(lot["id"], lot)
    _open(lot, False)
    lots.set(rest["id"], rest)
    _open(rest, True)
    _open(taken, True)
    lots.set(taken["id"], taken)
    return taken, rest


def transfer(lot_id, to, count):
    lot = _lot(lot_id)
    _movable(lot)
    _text("to", to, 64)
    require(to != lot["owner"], "the certificates are " + to + "'s already")
    taken, rest = _split(lot, count, "transfer", {"to": to})
    _open(taken, False)
    taken["owner"] = to
    taken["events"].append(_stamp("transferred", {"from": lot["owner"], "to": to, "count": count}))
    lots.set(taken["id"], taken)
    _open(taken, True)
    emit("transferred", {"from_lot": lot_id, "lot": taken["id"], "rest": rest["id"] if rest else None,
                         "from": lot["owner"], "to": to, "count": count})
    return {"lot": taken["id"], "rest": rest["id"] if rest else None}


def retire(lot_id, count, beneficiary, year, retirement_id):
    lot = _lot(lot_id)
    _movable(lot)
    _text("beneficiary", beneficiary, 128)
    _int("year", year, 2000)
    _id("retirement_id", retirement_id)
    require(not retirements.contains(retirement_id), f"retirement {retirement_id} exists already")
    taken, rest = _split(lot, count, "retirement", {"retirement": retirement_id})
    taken["status"] = "retired"
    taken["retirement"] = retirement_id
    taken["events"].append(_stamp("retired", {"beneficiary": beneficiary, "year": year, "count": count}))
    lots.set(taken["id"], taken)
    _open(taken, False)
    unit = batches.get(taken["batch"])["kwh_per_certificate"]
    record = {"id": retirement_id, "lot": taken["id"], "from_lot": lot_id, "batch": taken["batch"],
              "first": taken["first"], "count": count, "kwh": count * unit, "beneficiary": beneficiary,
              "year": year, "owner": lot["owner"], "retired": _stamp("retired")}
    retirements.set(retirement_id, record)
    listed = beneficiaries.get(beneficiary, [])
    require(len(listed) < HOLDINGS_MAX, "too many retirements for one beneficiary")
    listed.append(retirement_id)
    beneficiaries.set(beneficiary, listed)
    _record_totals(0, count, 0)
    emit("retired", {"retirement_id": retirement_id, "from_lot": lot_id, "lot": taken["id"],
                     "rest": rest["id"] if rest else None, "count": count, "kwh": count * unit,
                     "beneficiary": beneficiary, "year": year, "owner": lot["owner"]})
    return record


def cancel_expired(lot_id):
    lot = _lot(lot_id)
    require(lot["status"] == "active", f"lot {lot_id} is {lot['status']}")
    require(context.timestamp_ms >= lot["expires_ms"], f"lot {lot_id} is valid until {lot['expires_ms']}")
    lot["status"] = "cancelled"
    lot["events"].append(_stamp("cancelled (expired)"))
    lots.set(lot_id, lot)
    _open(lot, False)
    _record_totals(0, 0, lot["count"])
    emit("cancelled", {"lot": lot_id, "count": lot["count"]})


def device(device_id):
    _id("device_id", device_id)
    return devices.get(device_id)


def reading(reading_id):
    _id("reading_id", reading_id)
    return readings.get(reading_id)


def batch(batch_id):
    _id("batch_id", batch_id)
    return batches.get(batch_id)


def lot(lot_id):
    _text("lot_id", lot_id, 200)
    found = lots.get(lot_id)
    if found is not None and found["status"] == "active" and context.timestamp_ms >= found["expires_ms"]:
        found["status"] = "expired"
    return found


def holdings(org):
    return [lot(x) for x in owners.get(org, [])]


def trace(lot_id):
    """The lot's line back to its device: lots (newest first), batch, readings, device — each with
    the transactions that made it (``tx``)."""
    current = _lot(lot_id)
    line = [current]
    while current["parent"] is not None:
        require(len(line) <= 256, "lineage too long")
        current = lots.get(current["parent"])
        line.append(current)
    issued = batches.get(current["batch"])
    used = [readings.get(r) for r in issued["readings"]]
    return {"lots": line, "batch": issued, "readings": used, "device": devices.get(issued["device"])}


def retirement(retirement_id):
    _id("retirement_id", retirement_id)
    return retirements.get(retirement_id)


def retirements_of(beneficiary):
    return [retirements.get(r) for r in beneficiaries.get(beneficiary, [])]


def _expired_open():
    count = 0
    for lot_id in open_lots.get([]):
        found = lots.get(lot_id)
        if context.timestamp_ms >= found["expires_ms"]:
            count = count + found["count"]
    return count


def supply():
    current = totals.get({"issued": 0, "retired": 0, "cancelled": 0})
    expired = _expired_open()
    cancelled = current["cancelled"] + expired
    return {"issued": current["issued"], "retired": current["retired"], "cancelled": cancelled,
            "outstanding": current["issued"] - current["retired"] - cancelled,
            "kwh_per_certificate": _settings()["kwh_per_certificate"], "height": context.height}


def supply_at(height):
    _int("height", height, 0)
    found = [0, 0, 0, 0]
    for entry in history.get([]):
        if entry[0] > height:
            break
        found = entry
    return {"issued": found[1], "retired": found[2], "cancelled": found[3],
            "outstanding": found[1] - found[2] - found[3], "height": height,
            "note": "expiries are counted when recorded (cancel_expired)"}


def config():
    return _settings()
