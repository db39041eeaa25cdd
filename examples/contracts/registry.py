"""A shared registry with per-organisation write rights.

The owner organisation (set at activation) grants or revokes write rights per organisation.
An entry belongs to the organisation that created it: only that organisation may update or
remove it. Anyone in the consortium may read.

    init(owner_org)
    grant(org) / revoke(org)          owner organisation's admins
    put(key, value)                   organisations holding write rights
    remove(key)                       the entry's organisation
    get(key) -> {"value", "org", "updated_height"} | None
    writers() -> [org, ...]
"""

from pilotchain.contracts.api import Map, Variable, context, deny, emit, reject_arguments

entries = Map("entries")
writer = Map("writers")
owner = Variable("owner")
writer_list = Variable("writer_list")

KEY_CHARS_MAX = 128
WRITERS_MAX = 64


def init(owner_org):
    owner.set(owner_org)
    writer.set(owner_org, True)
    writer_list.set([owner_org])


def _require_owner_admin():
    caller = context.caller
    if caller.org != owner.get() or "admin" not in caller.roles:
        deny(f"only admins of {owner.get()} manage write rights")


def grant(org):
    _require_owner_admin()
    if not isinstance(org, str) or not org:
        reject_arguments("org is an organisation id")
    current = writer_list.get([])
    if org not in current:
        if len(current) >= WRITERS_MAX:
            reject_arguments(f"at most {WRITERS_MAX} writer organisations")
        current.append(org)
        writer_list.set(current)
    writer.set(org, True)
    emit("granted", {"org": org})


def revoke(org):
    _require_owner_admin()
    writer.delete(org)
    writer_list.set([o for o in writer_list.get([]) if o != org])
    emit("revoked", {"org": org})


def _check_key(key):
    if not isinstance(key, str) or not 1 <= len(key) <= KEY_CHARS_MAX:
        reject_arguments(f"keys are 1..{KEY_CHARS_MAX} characters")


def put(key, value):
    _check_key(key)
    org = context.caller.org
    if not writer.get(org, False):
        deny(f"organisation {org} has no write rights in this registry")
    existing = entries.get(key)
    if existing is not None and existing["org"] != org:
        deny(f"entry {key} belongs to {existing['org']}")
    entries.set(key, {"value": value, "org": org, "updated_height": context.height})
    emit("put", {"key": key, "org": org})


def remove(key):
    _check_key(key)
    existing = entries.get(key)
    if existing is None:
        return False
    if existing["org"] != context.caller.org:
        deny(f"entry {key} belongs to {existing['org']}")
    entries.delete(key)
    emit("removed", {"key": key})
    return True


def get(key):
    _check_key(key)
    return entries.get(key)


def writers():
    return writer_list.get([])
