"""A multi-party approval workflow: a request passes when enough of its named organisations
approve it; any one of them may reject it while it is open.

    create(request_id, description, approvers, threshold)    any member
    approve(request_id) / reject(request_id, reason)          admins or clients of a named org
    status(request_id) -> the request record | None

One vote per organisation; the requester's organisation does not vote unless named.
"""

from pilotchain.contracts.api import Map, context, deny, emit, reject_arguments, require

requests = Map("requests")

APPROVERS_MAX = 32
TEXT_CHARS_MAX = 512


def create(request_id, description, approvers, threshold):
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
        reject_arguments("request_id is 1..64 characters")
    if not isinstance(description, str) or len(description) > TEXT_CHARS_MAX:
        reject_arguments(f"description is at most {TEXT_CHARS_MAX} characters")
    if not isinstance(approvers, list) or not 1 <= len(approvers) <= APPROVERS_MAX:
        reject_arguments(f"approvers is a list of 1..{APPROVERS_MAX} organisations")
    unique = []
    for org in approvers:
        if not isinstance(org, str) or org in unique:
            reject_arguments("approvers are distinct organisation ids")
        unique.append(org)
    if not isinstance(threshold, int) or not 1 <= threshold <= len(unique):
        reject_arguments(f"threshold is 1..{len(unique)}")
    require(not requests.contains(request_id), f"request {request_id} already exists")
    requests.set(
        request_id,
        {
            "description": description,
            "requester": context.caller.name,
            "requester_org": context.caller.org,
            "approvers": unique,
            "threshold": threshold,
            "approvals": [],
            "status": "open",
            "created_height": context.height,
            "reason": "",
        },
    )
    emit("created", {"request_id": request_id, "threshold": threshold})
    return request_id


def _load_open(request_id):
    request = requests.get(request_id)
    require(request is not None, f"no request {request_id}")
    require(request["status"] == "open", f"request {request_id} is {request['status']}")
    org = context.caller.org
    if org not in request["approvers"]:
        deny(f"organisation {org} is not an approver of {request_id}")
    if "admin" not in context.caller.roles and "client" not in context.caller.roles:
        deny("approving needs an admin or client identity")
    return request


def approve(request_id):
    request = _load_open(request_id)
    org = context.caller.org
    require(org not in request["approvals"], f"{org} already approved {request_id}")
    request["approvals"].append(org)
    if len(request["approvals"]) >= request["threshold"]:
        request["status"] = "approved"
        emit("approved", {"request_id": request_id, "approvals": request["approvals"]})
    requests.set(request_id, request)
    return request["status"]


def reject(request_id, reason=""):
    request = _load_open(request_id)
    if not isinstance(reason, str) or len(reason) > TEXT_CHARS_MAX:
        reject_arguments(f"reason is at most {TEXT_CHARS_MAX} characters")
    request["status"] = "rejected"
    request["reason"] = f"{context.caller.org}: {reason}"
    requests.set(request_id, request)
    emit("rejected", {"request_id": request_id, "org": context.caller.org})
    return "rejected"


def status(request_id):
    return requests.get(request_id)
