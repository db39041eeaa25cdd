"""GS1 EPCIS 2.0 events (JSON-LD binding) and their Event Hash ID (GS1 CBV 2.0, "EPCIS Event Hash ID").

Theory of operation
-------------------
The *Event Hash ID* names an EPCIS event by what it says, not by how it is written: the same event in
another field order, another time-zone notation, with EPC URNs instead of GS1 Digital Link URIs or
bare CBV words instead of full URIs gives the same id, whoever computes it. The algorithm builds a
*pre-hash string* and embeds its SHA-256 in an RFC 6920 ``ni`` URI::

    ni:///sha-256;<hex digest of the UTF-8 pre-hash string>?ver=CBV2.0

The pre-hash string concatenates, without separators, ``eventType=<type>`` and then the event's
fields in the canonical property order (:data:`PROPERTY_ORDER`): a value as ``key=value``, a list
as its name followed by its elements sorted by code point (each element a ``key=value`` string, or
for structured elements the concatenation of their fields — a ``type`` before the value it
qualifies), ILMD and user-extension fields as ``{namespace}local=value``, sorted, extensions last.
Values are canonicalised first:

* times → UTC with millisecond precision and ``Z`` (a 4th decimal of 5-9 rounds up);
* quantities → no trailing zeros (``2.50`` → ``2.5``, ``600.0`` → ``600``);
* EPC URNs (``urn:epc:id:``, ``urn:epc:class:``, ``urn:epc:idpat:``) → canonical GS1 Digital Link
  URIs (check digits computed); Digital Link URIs → ``https://id.gs1.org``, no query string, only
  the most fine-grained key (e.g. ``01/…/21/…`` drops a ``10`` lot);
* CBV values — bare words (``shipping``), CURIEs (``cbv:BizStep-shipping``) and URNs
  (``urn:epcglobal:cbv:bizstep:shipping``) → ``https://ref.gs1.org/cbv/BizStep-shipping``;
* values and keys with a prefix of the event's ``@context`` → full namespace.

Conformance (tests/apps/supply/test_epcis.py): the published vectors of the GS1 reference
implementation (epcis-event-hash-generator) and, for generated events, the reference package
itself. One documented difference: this module follows the canonical property order of the
algorithm's specification (``bizTransactionList``, ``sourceList``, ``destinationList``, ``ilmd``,
then extensions; ``epcList`` before ``parentID``), where the reference implementation 1.9.3 emits
the lists after ``bizLocation`` in lexical order with ILMD (``destinationList`` before ``sourceList``).
Events with at most one of those lists and no ILMD beside them hash identically under both.

Profile: ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent and AssociationEvent
with the fields of :data:`PROPERTY_ORDER`, ILMD and user extensions. ``sensorElementList``,
``errorDeclaration`` and ``certificationInfo`` are refused (:class:`EpcisError`) rather than hashed
in a way nobody else would. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pilotchain.errors import CoreError

__all__ = [
    "CBV_VERSION",
    "EVENT_TYPES",
    "PROPERTY_ORDER",
    "EpcisError",
    "EventIdentifiers",
    "canonical_digital_link",
    "canonical_time",
    "epc_to_digital_link",
    "event_hash_id",
    "gs1_check_digit",
    "identifiers_of",
    "normalise_identifiers",
    "pre_hash_segments",
    "pre_hash_string",
]

CBV_VERSION = "CBV2.0"
EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")
GS1_RESOLVER = "https://id.gs1.org"
CBV_BASE = "https://ref.gs1.org/cbv/"
#: bounds: an event is a small document
EVENT_FIELDS_MAX = 64
LIST_ITEMS_MAX = 10_000
VALUE_CHARS_MAX = 2048
NESTING_MAX = 8

# the canonical property order; a tuple names a list field and how each element is written
PROPERTY_ORDER: tuple[str, ...] = (
    "eventTime", "eventTimeZoneOffset", "epcList", "parentID", "inputEPCList", "childEPCs", "quantityList",
    "childQuantityList", "inputQuantityList", "outputEPCList", "outputQuantityList", "action", "transformationID",
    "bizStep", "disposition", "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList",
    "sourceList", "destinationList", "ilmd",
)
_EPC_LISTS = ("epcList", "inputEPCList", "childEPCs", "outputEPCList")
_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
_TYPED_LISTS = {"bizTransactionList": ("bizTransaction", "BTT-"), "sourceList": ("source", "SDT-"),
                "destinationList": ("destination", "SDT-")}
_IGNORED = {"type", "eventID", "recordTime", "@context", "rdfs:comment", "comment"}
_REFUSED = {"sensorElementList": "sensor data", "errorDeclaration": "error declarations",
            "certificationInfo": "certification information"}
_ACTIONS = ("ADD", "OBSERVE", "DELETE")

# CBV 2.0 vocabularies (bare words the JSON-LD context maps to https://ref.gs1.org/cbv/<prefix><word>)
BIZ_STEPS = frozenset(["accepting", "arriving", "assembling", "collecting", "commissioning", "consigning", "creating_class_instance", "cycle_counting", "decommissioning", "departing", "destroying", "disassembling", "dispensing", "encoding", "entering_exiting", "holding", "inspecting", "installing", "killing", "loading", "other", "packing", "picking", "receiving", "removing", "repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling", "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing", "transporting", "unloading", "unpacking", "void_shipping"])
DISPOSITIONS = frozenset(["active", "available", "completeness_inferred", "completeness_verified", "conformant", "container_closed", "container_open", "damaged", "destroyed", "dispensed", "disposed", "encoded", "expired", "in_progress", "in_transit", "inactive", "mismatch_class", "mismatch_instance", "mismatch_quantity", "needs_replacement", "no_pedigree_match", "non_conformant", "non_sellable_other", "partially_dispensed", "recalled", "reserved", "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen", "unavailable", "unknown"])
BIZ_TRANSACTION_TYPES = frozenset(["bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma", "testprd", "testres", "upevt"])
SOURCE_DESTINATION_TYPES = frozenset(["location", "owning_party", "possessing_party"])
_VOCABULARIES = {"BizStep-": BIZ_STEPS, "Disp-": DISPOSITIONS, "BTT-": BIZ_TRANSACTION_TYPES,
                 "SDT-": SOURCE_DESTINATION_TYPES}
_CBV_URNS = {"urn:epcglobal:cbv:bizstep:": "BizStep-", "urn:epcglobal:cbv:disp:": "Disp-",
             "urn:epcglobal:cbv:btt:": "BTT-", "urn:epcglobal:cbv:sdt:": "SDT-", "urn:epcglobal:cbv:er:": "ER-"}
_DEFAULT_PREFIXES = {"cbv": CBV_BASE, "gs1": "https://gs1.org/voc/", "epcis": "https://ref.gs1.org/epcis/"}

_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z")
#: the last component of an EPC URN (serial, lot, extension): TDS's GS3A3 characters or %-escapes —
#: a '?', '/' or '#' there would become a query or path of the Digital Link and change the hash id
_URN_COMPONENT = re.compile(r"(?:[0-9A-Za-z!'()*+,\-:;=_]|%[0-9A-Fa-f]{2})*")
_DL = re.compile(r"^https?://[^/?#]+((?:/[^/?#]+)+)/?(?:\?[^#]*)?\Z")


class EpcisError(CoreError):
    """An event outside the EPCIS 2.0 profile this module hashes, or a malformed value."""


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of ``digits`` (weights 3, 1, 3, ... from the right)."""
    if not digits.isdigit():
        raise EpcisError(f"{digits!r} is not a string of digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


# ------------------------------------------------------------------------- identifiers


def _parts(urn: str, prefix: str, count: int) -> list[str]:
    parts = urn[len(prefix):].split(".")
    if len(parts) != count or not all(parts[:-1]) or any(not p.isdigit() for p in parts[:count - 1]) \
            or _URN_COMPONENT.fullmatch(parts[-1]) is None:
        raise EpcisError(f"malformed EPC URI {urn!r}")
    return parts


def _gtin(company: str, item: str) -> str:
    if not (company.isdigit() and item.isdigit()) or len(company) + len(item) != 13:
        raise EpcisError("a GTIN's company prefix and item reference have 13 digits together")
    body = item[0] + company + item[1:]
    return body + gs1_check_digit(body)


def _with_check(company: str, rest: str, total: int) -> str:
    body = company + rest
    if not body.isdigit() or len(body) != total - 1:
        raise EpcisError(f"a key of {total} digits needs {total - 1} digits before its check digit")
    return body + gs1_check_digit(body)


def epc_to_digital_link(uri: str) -> str | None:
    """The canonical GS1 Digital Link URI of an EPC URN (pure identity, class or ``sgtin`` pattern);
    None when ``uri`` is not an EPC URN. Raises :class:`EpcisError` for an EPC scheme this module
    does not convert (hashing it unconverted would give an id no one else computes)."""
    if not uri.startswith(("urn:epc:id:", "urn:epc:class:", "urn:epc:idpat:")):
        return None
    scheme = uri.split(":")[3] if uri.count(":") >= 4 else ""
    head = ":".join(uri.split(":")[:4]) + ":"
    if uri.startswith("urn:epc:id:"):
        if scheme == "sgtin":
            company, item, serial = _parts(uri, head, 3)
            return f"{GS1_RESOLVER}/01/{_gtin(company, item)}/21/{serial}"
        if scheme == "sscc":
            company, serial = _parts(uri, head, 2)
            return f"{GS1_RESOLVER}/00/{_with_check(serial[:1] + company, serial[1:], 18)}"
        if scheme in ("sgln", "pgln"):
            company, location, *extension = _parts(uri, head, 3 if scheme == "sgln" else 2)
            gln = _with_check(company, location, 13)
            if scheme == "pgln":
                return f"{GS1_RESOLVER}/417/{gln}"
            return f"{GS1_RESOLVER}/414/{gln}" + ("" if extension[0] == "0" else f"/254/{extension[0]}")
        if scheme in ("grai", "gdti", "sgcn"):
            company, kind, serial = _parts(uri, head, 3)
            ai = {"grai": "8003", "gdti": "253", "sgcn": "255"}[scheme]
            key = _with_check(company, kind, 13)
            return f"{GS1_RESOLVER}/{ai}/{'0' + key if scheme == 'grai' else key}{serial}"
        if scheme == "giai":
            company, asset = _parts(uri, head, 2)
            return f"{GS1_RESOLVER}/8004/{company}{asset}"
        if scheme in ("gsrn", "gsrnp"):
            company, service = _parts(uri, head, 2)
            return f"{GS1_RESOLVER}/{'8018' if scheme == 'gsrn' else '8017'}/{_with_check(company, service, 18)}"
    if uri.startswith("urn:epc:class:") and scheme == "lgtin":
        company, item, lot = _parts(uri, head, 3)
        return f"{GS1_RESOLVER}/01/{_gtin(company, item)}/10/{lot}"
    if uri.startswith("urn:epc:idpat:") and scheme == "sgtin":
        company, item, serial = _parts(uri, head, 3)
        if serial != "*":
            raise EpcisError(f"only whole-GTIN patterns (serial *) are converted: {uri!r}")
        return f"{GS1_RESOLVER}/01/{_gtin(company, item)}"
    raise EpcisError(f"EPC URI scheme {head!r} is not converted by this profile; use a GS1 Digital Link URI")


# primary key → the qualifiers kept, most fine-grained first (the others are dropped)
_DL_KEYS: dict[str, tuple[str, ...]] = {
    "00": (), "01": ("21", "10", "235"), "253": (), "255": (), "401": (), "402": (), "414": ("254",),
    "417": (), "8003": (), "8004": (), "8006": ("21", "10"), "8010": ("8011",), "8017": (), "8018": (),
}


def canonical_digital_link(uri: str) -> str | None:
    """The constrained canonical form of a GS1 Digital Link URI (``https://id.gs1.org``, no query,
    only the finest key); None when ``uri`` is not one (another http URI stays as it is)."""
    match = _DL.match(uri)
    if match is None:
        return None
    segments = match.group(1).strip("/").split("/")
    for start in range(0, len(segments) - 1):  # a Digital Link may have a path prefix before its key
        primary = segments[start]
        if primary in _DL_KEYS and len(segments[start:]) % 2 == 0:
            pairs = dict(zip(segments[start::2], segments[start + 1::2], strict=True))
            value = pairs[primary]
            if primary == "01" and value.isdigit() and len(value) in (8, 12, 13):
                value = value.zfill(14)
            path = f"/{primary}/{value}"
            for qualifier in _DL_KEYS[primary]:
                if qualifier in pairs:
                    path += f"/{qualifier}/{pairs[qualifier]}"
                    break
            return GS1_RESOLVER + path
    return None


def canonical_identifier(value: str) -> str:
    """An EPC, class or location as the hash algorithm writes it."""
    converted = epc_to_digital_link(value)
    if converted is not None:
        return converted
    return canonical_digital_link(value) or value


def canonical_time(value: str) -> str:
    """An ``xsd:dateTimeStamp`` in UTC with millisecond precision and ``Z``."""
    match = _TIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise EpcisError(f"{value!r} is not a date-time with a time zone (YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm))")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:
        raise EpcisError(f"{value!r} is not a valid date-time: {exc}") from exc
    millis = 0
    if fraction:
        padded = (fraction + "000")[:4]
        millis = int(padded[:3]) + (1 if int(padded[3]) >= 5 else 0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    moment += timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def canonical_quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise EpcisError(f"quantity {value!r} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise EpcisError(f"quantity {value!r} is not a number") from exc
    if not number.is_finite():
        raise EpcisError(f"quantity {value!r} is not a finite number")
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


# ------------------------------------------------------------------------- the pre-hash string


@dataclass(frozen=True, slots=True)
class _Context:
    prefixes: Mapping[str, str]

    def expand(self, name: str) -> str | None:
        """A CURIE ``prefix:local`` with a known prefix → the full URI; else None."""
        prefix, sep, local = name.partition(":")
        if sep and prefix in self.prefixes and not local.startswith("//"):
            return self.prefixes[prefix] + local
        return None

    def key(self, name: str) -> str:
        prefix, sep, local = name.partition(":")
        if sep and prefix in self.prefixes:
            return "{" + self.prefixes[prefix] + "}" + local
        if name.startswith("{") and "}" in name:
            return name
        raise EpcisError(f"field {name!r} is neither an EPCIS field nor an extension with a namespace prefix "
                         "declared in @context")


def _context(event: Mapping[str, Any], extra: Any) -> _Context:
    prefixes = dict(_DEFAULT_PREFIXES)
    for source in (extra, event.get("@context")):
        items = source if isinstance(source, list) else [source]
        for item in items:
            if isinstance(item, Mapping):
                for prefix, uri in item.items():
                    if isinstance(uri, str) and not prefix.startswith("@"):
                        prefixes[str(prefix)] = uri
    return _Context(prefixes)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise EpcisError(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > VALUE_CHARS_MAX:
        raise EpcisError(f"{name} is longer than {VALUE_CHARS_MAX} characters")
    return value.strip()


def _vocabulary(name: str, value: Any, prefix: str, context: _Context) -> str:
    text = _text(name, value)
    for urn, term_prefix in _CBV_URNS.items():
        if text.startswith(urn):
            return CBV_BASE + term_prefix + text[len(urn):]
    expanded = context.expand(text)
    if expanded is not None:
        return expanded
    if ":" in text:
        return text  # a full URI of the organisation's own vocabulary
    if text not in _VOCABULARIES[prefix]:
        raise EpcisError(f"{name} {text!r} is not a CBV 2.0 term ({prefix}…); use a full URI for your own vocabulary")
    return CBV_BASE + prefix + text


def _value(name: str, value: Any, context: _Context) -> str:
    if isinstance(value, bool):
        raise EpcisError(f"{name}: booleans are outside this profile")
    if isinstance(value, int | float | Decimal):
        return canonical_quantity(value)
    text = _text(name, value)
    for urn, term_prefix in _CBV_URNS.items():
        if text.startswith(urn):
            return CBV_BASE + term_prefix + text[len(urn):]
    expanded = context.expand(text)
    return canonical_identifier(expanded if expanded is not None else text)


def _extension(name: str, value: Any, context: _Context, depth: int = 0) -> list[str]:
    """One extension field as pre-hash pieces (a list value repeats the key)."""
    if depth > NESTING_MAX:
        raise EpcisError(f"{name}: extensions nest at most {NESTING_MAX} levels")
    key = context.key(name)
    if isinstance(value, list):
        if len(value) > LIST_ITEMS_MAX:
            raise EpcisError(f"{name}: more than {LIST_ITEMS_MAX} items")
        return [piece for item in value for piece in _extension(name, item, context, depth + 1)]
    if isinstance(value, Mapping):
        children = sorted(piece for child, item in value.items() if child not in _IGNORED
                          for piece in _extension(str(child), item, context, depth + 1))
        return [key + "".join(children)] if children else []
    text = _value(name, value, context)
    return [key + ("=" + text if text else "")]


def _list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise EpcisError(f"{name} must be a list")
    if len(value) > LIST_ITEMS_MAX:
        raise EpcisError(f"{name} has more than {LIST_ITEMS_MAX} items")
    return value


def _place(name: str, value: Any, context: _Context) -> str:
    if not isinstance(value, Mapping) or "id" not in value:
        raise EpcisError(f"{name} is an object with an id")
    extensions = sorted(piece for key, item in value.items() if key != "id" and key not in _IGNORED
                        for piece in _extension(str(key), item, context))
    return name + "id=" + canonical_identifier(_text(f"{name}.id", value["id"])) + "".join(extensions)


def _quantity_element(name: str, element: Any) -> str:
    if not isinstance(element, Mapping) or "epcClass" not in element or not set(element) <= {"epcClass", "quantity", "uom"}:
        raise EpcisError(f"each element of {name} is {{epcClass, quantity?, uom?}}")
    text = "quantityElement" + "epcClass=" + canonical_identifier(_text(f"{name}.epcClass", element["epcClass"]))
    if "quantity" in element:
        text += "quantity=" + canonical_quantity(element["quantity"])
    if "uom" in element:
        text += "uom=" + _text(f"{name}.uom", element["uom"])
    return text


def _field(name: str, value: Any, context: _Context) -> str:
    """One standard field's piece of the pre-hash string ('' when it adds nothing)."""
    if name == "eventTime":
        return "eventTime=" + canonical_time(value)
    if name == "eventTimeZoneOffset":
        return "eventTimeZoneOffset=" + _text(name, value)
    if name in _EPC_LISTS:
        return (name + "".join(sorted("epc=" + canonical_identifier(_text(name, e)) for e in _list(name, value)))
                if value else "")
    if name in _QUANTITY_LISTS:
        return name + "".join(sorted(_quantity_element(name, e) for e in _list(name, value))) if value else ""
    if name in ("parentID", "transformationID"):
        return name + "=" + canonical_identifier(_text(name, value))
    if name == "action":
        if value not in _ACTIONS:
            raise EpcisError(f"action is one of {', '.join(_ACTIONS)}")
        return "action=" + str(value)
    if name == "bizStep":
        return "bizStep=" + _vocabulary(name, value, "BizStep-", context)
    if name == "disposition":
        return "disposition=" + _vocabulary(name, value, "Disp-", context)
    if name == "persistentDisposition":
        if not isinstance(value, Mapping) or not set(value) <= {"set", "unset"}:
            raise EpcisError("persistentDisposition is {set: [...], unset: [...]}")
        pieces = "".join(part + "=" + term for part in ("set", "unset")
                         for term in sorted(_vocabulary(f"persistentDisposition.{part}", v, "Disp-", context)
                                            for v in _list(part, value.get(part, []))))
        return name + pieces if pieces else ""
    if name in ("readPoint", "bizLocation"):
        return _place(name, value, context)
    if name in _TYPED_LISTS:
        item_key, prefix = _TYPED_LISTS[name]
        elements = []
        for element in _list(name, value):
            if not isinstance(element, Mapping) or item_key not in element or not set(element) <= {item_key, "type"}:
                raise EpcisError(f"each element of {name} is {{{item_key}, type?}}")
            typed = ("type=" + _vocabulary(f"{name}.type", element["type"], prefix, context)) if "type" in element else ""
            elements.append(typed + item_key + "=" + _value(name, element[item_key], context))
        return name + "".join(sorted(elements)) if elements else ""
    if name == "ilmd":
        if not isinstance(value, Mapping):
            raise EpcisError("ilmd is an object of extension fields")
        fields = sorted(piece for key, item in value.items() for piece in _extension(str(key), item, context))
        return "ilmd" + "".join(fields) if fields else ""
    raise EpcisError(f"unknown field {name}")  # not reached: PROPERTY_ORDER lists what _field handles


def pre_hash_segments(event: Mapping[str, Any], *, context: Any = None) -> list[str]:
    """The pre-hash string in pieces: ``eventType=…``, one per standard field present (canonical
    order), then one per user extension (sorted). ``context`` adds namespace prefixes of the
    enclosing EPCIS document's ``@context`` (the event's own ``@context`` is read too)."""
    if not isinstance(event, Mapping):
        raise EpcisError("an event is a JSON object")
    if len(event) > EVENT_FIELDS_MAX:
        raise EpcisError(f"an event has at most {EVENT_FIELDS_MAX} fields")
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise EpcisError(f"type is one of {', '.join(EVENT_TYPES)}")
    for name, what in _REFUSED.items():
        if name in event:
            raise EpcisError(f"{name}: {what} are outside this profile")
    for required in ("eventTime", "eventTimeZoneOffset"):
        if required not in event:
            raise EpcisError(f"an event needs {required}")
    scope = _context(event, context)
    segments = ["eventType=" + kind]
    for name in PROPERTY_ORDER:
        if name in event:
            piece = _field(name, event[name], scope)
            if piece:
                segments.append(piece)
    extensions = sorted(piece for name, value in event.items()
                        if name not in PROPERTY_ORDER and name not in _IGNORED
                        for piece in _extension(str(name), value, scope))
    return segments + extensions


def pre_hash_string(event: Mapping[str, Any], *, context: Any = None) -> str:
    return "".join(pre_hash_segments(event, context=context))


def event_hash_id(event: Mapping[str, Any], *, context: Any = None) -> str:
    """The EPCIS Event Hash ID: ``ni:///sha-256;<hex>?ver=CBV2.0``."""
    digest = hashlib.sha256(pre_hash_string(event, context=context).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver={CBV_VERSION}"


# ------------------------------------------------------------------------- what an event links


@dataclass(frozen=True, slots=True)
class EventIdentifiers:
    """The objects an event is about, canonical (Digital Link URIs): what traceability follows."""

    kind: str
    action: str | None
    #: the objects observed (epcList + quantityList classes)
    objects: tuple[str, ...]
    parent: str | None
    #: children of an aggregation or association (childEPCs + childQuantityList classes)
    children: tuple[str, ...]
    #: transformation inputs and outputs
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        found = [*self.objects, *self.children, *self.inputs, *self.outputs]
        if self.parent:
            found.append(self.parent)
        return tuple(dict.fromkeys(found))


def _ids(event: Mapping[str, Any], epc_field: str | None, quantity_field: str | None) -> tuple[str, ...]:
    found: list[str] = []
    if epc_field and isinstance(event.get(epc_field), list):
        found += [canonical_identifier(_text(epc_field, e)) for e in event[epc_field]]
    if quantity_field and isinstance(event.get(quantity_field), list):
        found += [canonical_identifier(_text(quantity_field, e.get("epcClass", "")))
                  for e in event[quantity_field] if isinstance(e, Mapping)]
    return tuple(dict.fromkeys(found))


def identifiers_of(event: Mapping[str, Any]) -> EventIdentifiers:
    """What ``event`` (checked with :func:`pre_hash_segments` first) links, canonical."""
    pre_hash_segments(event)
    parent = event.get("parentID")
    return EventIdentifiers(
        kind=str(event["type"]), action=event.get("action"),
        objects=_ids(event, "epcList", "quantityList"),
        parent=canonical_identifier(_text("parentID", parent)) if isinstance(parent, str) else None,
        children=_ids(event, "childEPCs", "childQuantityList"),
        inputs=_ids(event, "inputEPCList", "inputQuantityList"),
        outputs=_ids(event, "outputEPCList", "outputQuantityList"),
    )


def normalise_identifiers(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` with every EPC, class, parent, transformation id and place written as its
    canonical GS1 Digital Link URI — the same event (the same Event Hash ID), in the one form the
    ``trace`` contract indexes."""
    pre_hash_segments(event)
    copy: dict[str, Any] = dict(event)
    for name in _EPC_LISTS:
        if isinstance(copy.get(name), list):
            copy[name] = [canonical_identifier(_text(name, e)) for e in copy[name]]
    for name in _QUANTITY_LISTS:
        if isinstance(copy.get(name), list):
            copy[name] = [{**e, "epcClass": canonical_identifier(_text(name, e["epcClass"]))} for e in copy[name]]
    for name in ("parentID", "transformationID"):
        if isinstance(copy.get(name), str):
            copy[name] = canonical_identifier(copy[name])
    for name in ("readPoint", "bizLocation"):
        if isinstance(copy.get(name), Mapping):
            copy[name] = {**copy[name], "id": canonical_identifier(_text(name, copy[name]["id"]))}
    return copy


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
