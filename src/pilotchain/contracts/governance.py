"""The ``gov`` system contract: proposals, approvals by organisations, and what they change.

Theory of operation
-------------------
Everything the consortium decides together is a *proposal* in the ``gov`` namespace: deploying
or upgrading a Python contract, freezing / unfreezing one, adding / removing an organisation,
rotating an org CA, revoking an identity, adding / removing a validator, changing chain
parameters, naming the auditor organisations and changing a kind's approval policy
(:data:`PROPOSAL_KINDS`).

* ``propose {kind, payload, expires_in_ms?}`` — an admin of a member organisation files it. The
  payload is checked in full *now* (the code compiles in the sandbox, the certificate verifies,
  the validator key is new, ...), so approvers vote on something that can be applied. The
  proposer's organisation approves it at once.
* ``approve {id}`` — an admin of another member organisation adds that organisation's vote (one
  vote per organisation; a second vote is refused).
* When the votes meet the kind's :class:`Policy` (ANY, ALL, MAJORITY or K_OF_N over the member
  organisations, or over a listed subset; approvers must hold the policy's role, ``admin`` by
  default), the proposal is applied *in that same transaction*; if applying fails the
  transaction fails and nothing changes (the proposal stays open).
* Proposals expire (block time) and can be withdrawn by the proposing organisation.

Everything is a pure function of the state the transaction sees and the transaction's context.
State layout (keys inside the ``gov`` namespace)::

    p/next                     next proposal id (int)
    p/<id: 8 bytes>            GovernanceProposal
    policy/<kind>              Policy (absent: DEFAULT_POLICIES[kind])
    c/<name>                   DeployedContract (see pilotchain.contracts.runtime)
    code/<hash>                contract source (UTF-8)
    m/head, m/<seq: 8 bytes>   membership log (see pilotchain.contracts.membership)
    v/index                    effective heights of validator-set changes (sorted, bounded)
    v/<height: 8 bytes>        ValidatorSchedule: the set in force from that height on
    params                     governed parameter overrides (str -> int)
    auditors                   organisations whose ``auditor`` identities read every contract (sorted list)

Pure: no I/O, clock or randomness (time is the block timestamp in the context).
"""

from __future__ import annotations

import builtins
import re
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.contracts.membership import (
    ADD_ORG,
    EMPTY_HEAD,
    GOV_PREFIX,
    MEMBERSHIP_LOG_MAX,
    REMOVE_ORG,
    REVOKE,
    ROTATE_CA,
    MembershipCache,
    MembershipChange,
    MembershipHead,
    apply_membership_change,
    membership_entry_key,
    membership_head_key,
    next_digest,
    read_membership_head,
)
from pilotchain.contracts.runtime import (
    DeployedContract,
    MethodRule,
    PythonContract,
    StateView,
    child_state,
    merge_child,
)
from pilotchain.contracts.sandbox import CodeRejected, SandboxLimits, scrub_message
from pilotchain.crypto import get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.identity.errors import UpdateRejected
from pilotchain.identity.membership import Membership
from pilotchain.identity.records import CaRotation, OrgCertificate, Revocation, decode_record
from pilotchain.ledger.execution import ContractError, ContractState, StateReader, TxContext
from pilotchain.ledger.genesis import ChainParams, Genesis, ValidatorInfo
from pilotchain.ledger.tx import RejectCode

if TYPE_CHECKING:
    from pilotchain.contracts.resolver import ChainContracts

__all__ = [
    "GOV_CONTRACT",
    "Policy",
    "GovernanceProposal",
    "ValidatorSchedule",
    "PROPOSAL_KINDS",
    "DEFAULT_POLICIES",
    "PARAM_BOUNDS",
    "GovernanceContract",
    "read_deployed",
    "read_code",
    "read_params",
    "read_auditors",
    "READ_PERMISSION",
    "SET_AUDITORS",
    "governed_chain_params",
    "contract_limits",
    "validator_set_at",
    "validator_schedule",
    "VALIDATOR_CHANGE_DELAY_BLOCKS",
]

GOV_CONTRACT = "gov"

DEPLOY_CONTRACT = "deploy_contract"
FREEZE_CONTRACT = "freeze_contract"
UNFREEZE_CONTRACT = "unfreeze_contract"
ADD_VALIDATOR = "add_validator"
REMOVE_VALIDATOR = "remove_validator"
SET_PARAMS = "set_params"
SET_POLICY = "set_policy"
SET_AUDITORS = "set_auditors"

PROPOSAL_KINDS = (
    DEPLOY_CONTRACT, FREEZE_CONTRACT, UNFREEZE_CONTRACT,
    ADD_ORG, REMOVE_ORG, ROTATE_CA, REVOKE,
    ADD_VALIDATOR, REMOVE_VALIDATOR, SET_PARAMS, SET_POLICY, SET_AUDITORS,
)  # fmt: skip

#: The reserved permissions entry that says who may read a contract's state, its transactions'
#: arguments and its events (absent: every member; auditors named by governance always may).
READ_PERMISSION = "@read"
AUDITOR_ORGS_MAX = 64

ANY, ALL, MAJORITY, K_OF_N = "ANY", "ALL", "MAJORITY", "K_OF_N"
RULES = (ANY, ALL, MAJORITY, K_OF_N)

#: Proposals live this long unless the proposer asks for less (block time).
PROPOSAL_TTL_MS_DEFAULT = 7 * 24 * 3600 * 1000
PROPOSAL_TTL_MS_MAX = 30 * 24 * 3600 * 1000
#: A validator-set change takes effect this many blocks after the block that approves it.
VALIDATOR_CHANGE_DELAY_BLOCKS = 2
#: Validator-set changes remembered (the index of effective heights).
VALIDATOR_SCHEDULE_MAX = 1_000
VALIDATORS_MAX = 100
#: Proposals one ``list`` call returns at most.
LIST_LIMIT_MAX = 256
REASON_CHARS_MAX = 256
PERMISSION_RULES_MAX = 64

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
_VERSION_RE = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}\Z")
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")

#: Governed parameters: name -> (minimum, maximum). ``contract_*`` apply to Python contracts
#: immediately; the others are read by the node at its configuration boundary.
PARAM_BOUNDS: dict[str, tuple[int, int]] = {
    "block_txs_max": (1, 100_000),
    "block_bytes_max": (64 * 1024, 64 * 1024 * 1024),
    "timeout_propose_ms": (100, 600_000),
    "timeout_vote_ms": (50, 600_000),
    "contract_steps_max": (1_000, 100_000_000),
    "contract_allocation_bytes_max": (1024 * 1024, 1024 * 1024 * 1024),
}


class Policy(Record, frozen=True):
    """When a proposal passes: ``rule`` over the approving organisations among ``orgs`` (every
    member organisation when empty); an approver must hold ``role``; ``k`` for K_OF_N."""

    rule: str
    k: int = 0
    orgs: tuple[str, ...] = ()
    role: str = "admin"

    def eligible(self, members: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(org for org in members if not self.orgs or org in self.orgs)

    def needed(self, members: tuple[str, ...]) -> int:
        n = len(self.eligible(members))
        if self.rule == ANY:
            return 1
        if self.rule == ALL:
            return n
        if self.rule == MAJORITY:
            return n // 2 + 1
        return self.k

    def met(self, approvals: tuple[str, ...], members: tuple[str, ...]) -> bool:
        eligible = self.eligible(members)
        count = sum(1 for org in approvals if org in eligible)
        needed = self.needed(members)
        return eligible != () and needed <= len(eligible) and count >= needed

    def describe(self) -> str:
        over = f" of [{', '.join(self.orgs)}]" if self.orgs else " of member organisations"
        rule = f"{self.k}-of-n" if self.rule == K_OF_N else self.rule
        return f"{rule}{over}, approvers need role {self.role}"


DEFAULT_POLICIES: dict[str, Policy] = {
    DEPLOY_CONTRACT: Policy(MAJORITY),
    FREEZE_CONTRACT: Policy(MAJORITY),
    UNFREEZE_CONTRACT: Policy(MAJORITY),
    ADD_ORG: Policy(MAJORITY),
    REMOVE_ORG: Policy(MAJORITY),
    # signed by the org's own CA: that organisation's decision alone
    ROTATE_CA: Policy(ANY),
    REVOKE: Policy(ANY),
    ADD_VALIDATOR: Policy(MAJORITY),
    REMOVE_VALIDATOR: Policy(MAJORITY),
    SET_PARAMS: Policy(MAJORITY),
    SET_POLICY: Policy(ALL),
    SET_AUDITORS: Policy(MAJORITY),
}

OPEN, EXECUTED, WITHDRAWN = "open", "executed", "withdrawn"


class GovernanceProposal(Record, frozen=True):
    id: int
    kind: str
    #: canonical encoding of the checked payload
    payload: bytes
    summary: str
    proposer: str
    proposer_org: str
    created_height: int
    created_ms: int
    expires_at_ms: int
    #: approving organisations, in approval order
    approvals: tuple[str, ...]
    status: str
    closed_height: int = 0


class ValidatorSchedule(Record, frozen=True):
    """The validator set in force from ``effective_height`` on (until the next schedule)."""

    effective_height: int
    validators: tuple[ValidatorInfo, ...]
    proposal_id: int


# ------------------------------------------------------------------------------ state readers
# (full keys over any StateReader: committed state, a block overlay, a transaction's view)


def _get(state: StateReader, key: bytes) -> bytes | None:
    return state.get(GOV_PREFIX + key)


def _id_key(proposal_id: int) -> bytes:
    return b"p/" + proposal_id.to_bytes(8, "big")


def read_deployed(state: StateReader, name: str) -> DeployedContract | None:
    raw = _get(state, b"c/" + name.encode())
    return None if raw is None else decode(raw, DeployedContract)


def read_auditors(state: StateReader) -> tuple[str, ...]:
    """The organisations whose ``auditor`` identities may read every contract (governed)."""
    raw = _get(state, b"auditors")
    return () if raw is None else tuple(decode(raw, list[str]))


def read_code(state: StateReader, code_hash: bytes) -> str | None:
    raw = _get(state, b"code/" + code_hash)
    return None if raw is None else raw.decode("utf-8")


def read_params(state: StateReader) -> dict[str, int]:
    raw = _get(state, b"params")
    return {} if raw is None else decode(raw, dict[str, int])


def governed_chain_params(genesis: Genesis, state: StateReader) -> ChainParams:
    """Genesis chain parameters with governance's overrides applied (for the node's
    configuration boundary)."""
    overrides = {k: v for k, v in read_params(state).items() if k in ChainParams.__struct_fields__}
    if not overrides:
        return genesis.params
    fields = {name: getattr(genesis.params, name) for name in ChainParams.__struct_fields__}
    fields.update(overrides)
    return ChainParams(**fields)


def contract_limits(state: StateReader, base: SandboxLimits | None = None) -> SandboxLimits:
    """The sandbox limits governance set (defaults where it set none)."""
    base = base or SandboxLimits()
    params = read_params(state)
    if not params:
        return base
    return SandboxLimits(
        steps_max=params.get("contract_steps_max", base.steps_max),
        allocation_bytes_max=params.get("contract_allocation_bytes_max", base.allocation_bytes_max),
        call_depth_max=base.call_depth_max,
        items_max=base.items_max,
        string_chars_max=base.string_chars_max,
        int_bits_max=base.int_bits_max,
    )


def _schedule_index(state: StateReader) -> tuple[int, ...]:
    raw = _get(state, b"v/index")
    return () if raw is None else decode(raw, tuple[int, ...])


def validator_schedule(state: StateReader) -> tuple[ValidatorSchedule, ...]:
    """Every validator-set change governance scheduled, oldest first."""
    out = []
    for height in _schedule_index(state):
        raw = _get(state, b"v/" + height.to_bytes(8, "big"))
        if not (raw is not None):
            raise InvariantBroken("validator schedule index points at a missing entry")
        out.append(decode(raw, ValidatorSchedule))
    return tuple(out)


def validator_set_at(
    genesis: Genesis, state: StateReader, height: int
) -> tuple[ValidatorInfo, ...]:
    """The validator set in force at ``height`` (genesis validators until the first change)."""
    current = genesis.validators
    for effective_height in _schedule_index(state):
        if effective_height > height:
            break
        raw = _get(state, b"v/" + effective_height.to_bytes(8, "big"))
        if not (raw is not None):
            raise InvariantBroken('invariant broken: raw is not None')
        current = decode(raw, ValidatorSchedule).validators
    return current


def _latest_validators(genesis: Genesis, state: StateReader) -> tuple[ValidatorInfo, ...]:
    index = _schedule_index(state)
    if not index:
        return genesis.validators
    raw = _get(state, b"v/" + index[-1].to_bytes(8, "big"))
    if not (raw is not None):
        raise InvariantBroken('invariant broken: raw is not None')
    return decode(raw, ValidatorSchedule).validators


# ------------------------------------------------------------------------------ the contract


def _bad(message: str) -> ContractError:
    return ContractError(message, RejectCode.BAD_ARGUMENTS)


def _field(payload: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _bad(f"payload needs {name!r}: {what}")
    return value


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class _Tx:
    """One call into gov: the context, the state, and what it derives (lazily)."""

    def __init__(self, gov: GovernanceContract, ctx: TxContext, state: ContractState) -> None:
        self.gov = gov
        self.ctx = ctx
        self.state = state
        self.view = StateView(state)
        self.genesis_raw, self.genesis = gov.membership_cache.genesis(self.view)
        self._membership: Membership | None = None

    def membership(self) -> Membership:
        if self._membership is None:
            self._membership = self.gov.membership_cache.membership(self.view)
        return self._membership

    def members(self) -> tuple[str, ...]:
        return self.membership().org_ids()

    def policy(self, kind: str) -> Policy:
        raw = self.state.get(b"policy/" + kind.encode())
        return DEFAULT_POLICIES[kind] if raw is None else decode(raw, Policy)

    def proposal(self, proposal_id: Any) -> GovernanceProposal:
        if not isinstance(proposal_id, int) or isinstance(proposal_id, bool) or proposal_id < 1:
            raise _bad("a proposal id is a positive integer (see: pilotchain gov list)")
        raw = self.state.get(_id_key(proposal_id))
        if raw is None:
            raise _bad(f"no proposal #{proposal_id} (see: pilotchain gov list)")
        return decode(raw, GovernanceProposal)

    def save(self, proposal: GovernanceProposal) -> None:
        self.state.put(_id_key(proposal.id), encode(proposal))


class GovernanceContract:
    """The ``gov`` system contract (see the module docstring)."""

    name = GOV_CONTRACT

    def __init__(self, resolver: ChainContracts) -> None:
        self.resolver = resolver
        self.membership_cache = MembershipCache()

    def call(self, method: str, args: Any, ctx: TxContext, state: ContractState) -> tuple[Any, int]:
        handler = _METHODS.get(method)
        if handler is None:
            raise ContractError(
                f"gov has no method {method!r} ({', '.join(sorted(_METHODS))})",
                RejectCode.UNKNOWN_METHOD,
            )
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise _bad("gov methods take a map of arguments")
        tx = _Tx(self, ctx, state)
        try:
            return handler(self, tx, args), 1
        except ContractError:
            raise
        except (CodecError, UpdateRejected) as exc:
            raise _bad(str(exc)) from None
        except AssertionError:
            raise  # a broken invariant of the governance state: halt rather than diverge
        except Exception as exc:  # noqa: BLE001 - odd input must fail the transaction, not the node
            raise ContractError(
                f"gov.{method} failed: {scrub_message(exc)}", RejectCode.EXECUTION_FAILED
            ) from None

    # ------------------------------------------------------------------ voting

    def _require_voter(self, tx: _Tx, policy: Policy, what: str) -> str:
        caller = tx.ctx.caller
        if caller.org not in tx.members():
            raise ContractError(
                f"{what} needs an identity of a member organisation", RejectCode.PERMISSION_DENIED
            )
        if policy.role not in caller.roles:
            raise ContractError(
                f"{what} needs role {policy.role!r}; sign with your organisation's admin identity "
                "(orgs/<org>/admin.id)",
                RejectCode.PERMISSION_DENIED,
            )
        if policy.orgs and caller.org not in policy.orgs:
            raise ContractError(
                f"{what}: organisation {caller.org!r} has no vote under this policy ({policy.describe()})",
                RejectCode.PERMISSION_DENIED,
            )
        return caller.org

    def propose(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any]:
        kind = args.get("kind")
        if kind not in PROPOSAL_KINDS:
            raise _bad(f"kind must be one of {', '.join(PROPOSAL_KINDS)}")
        payload = args.get("payload")
        if not isinstance(payload, dict):
            raise _bad("payload must be a map (see docs/contracts.md for each kind)")
        ttl_ms = args.get("expires_in_ms", PROPOSAL_TTL_MS_DEFAULT)
        if not isinstance(ttl_ms, int) or not 1 <= ttl_ms <= PROPOSAL_TTL_MS_MAX:
            raise _bad(f"expires_in_ms must be 1..{PROPOSAL_TTL_MS_MAX}")
        policy = tx.policy(kind)
        org = self._require_voter(tx, Policy(ANY, role="admin"), "proposing")
        checked, summary = _CHECKS[kind](self, tx, payload)
        raw_next = tx.state.get(b"p/next")
        proposal_id = 1 if raw_next is None else decode(raw_next, int)
        tx.state.put(b"p/next", encode(proposal_id + 1))
        approvals = (
            (org,)
            if org in policy.eligible(tx.members()) and policy.role in tx.ctx.caller.roles
            else ()
        )
        proposal = GovernanceProposal(
            id=proposal_id, kind=kind, payload=encode(checked), summary=summary,
            proposer=tx.ctx.caller.name, proposer_org=org, created_height=tx.ctx.height,
            created_ms=tx.ctx.timestamp_ms, expires_at_ms=tx.ctx.timestamp_ms + ttl_ms,
            approvals=approvals, status=OPEN,
        )  # fmt: skip
        tx.state.emit("proposed", {"id": proposal_id, "kind": kind, "summary": summary, "org": org})
        proposal = self._maybe_execute(tx, proposal, policy)
        tx.save(proposal)
        return self._document(tx, proposal)

    def approve(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any]:
        proposal = tx.proposal(args.get("id"))
        if proposal.status != OPEN:
            raise _bad(f"proposal #{proposal.id} is {proposal.status}; nothing to approve")
        if tx.ctx.timestamp_ms > proposal.expires_at_ms:
            raise _bad(f"proposal #{proposal.id} expired; propose it again")
        policy = tx.policy(proposal.kind)
        org = self._require_voter(tx, policy, f"approving proposal #{proposal.id}")
        if org in proposal.approvals:
            raise _bad(
                f"organisation {org!r} already approved proposal #{proposal.id} (one vote per organisation)"
            )
        proposal = _replace(proposal, approvals=(*proposal.approvals, org))
        tx.state.emit("approved", {"id": proposal.id, "org": org})
        proposal = self._maybe_execute(tx, proposal, policy)
        tx.save(proposal)
        return self._document(tx, proposal)

    def withdraw(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any]:
        proposal = tx.proposal(args.get("id"))
        if proposal.status != OPEN:
            raise _bad(f"proposal #{proposal.id} is {proposal.status}")
        self._require_voter(tx, Policy(ANY, role="admin"), "withdrawing")
        if tx.ctx.caller.org != proposal.proposer_org:
            raise ContractError(
                "only the proposing organisation may withdraw", RejectCode.PERMISSION_DENIED
            )
        proposal = _replace(proposal, status=WITHDRAWN, closed_height=tx.ctx.height)
        tx.save(proposal)
        tx.state.emit("withdrawn", {"id": proposal.id})
        return self._document(tx, proposal)

    def _maybe_execute(self, tx: _Tx, proposal: GovernanceProposal, policy: Policy) -> GovernanceProposal:
        members = tx.members()
        live = tuple(org for org in proposal.approvals if org in members)
        if not policy.met(live, members):
            return proposal
        payload = decode(proposal.payload, dict[str, Any])
        _APPLY[proposal.kind](self, tx, payload, proposal)
        tx.state.emit(
            "executed", {"id": proposal.id, "kind": proposal.kind, "summary": proposal.summary}
        )
        return _replace(proposal, status=EXECUTED, closed_height=tx.ctx.height)

    # ------------------------------------------------------------------ queries

    def _document(self, tx: _Tx, proposal: GovernanceProposal) -> dict[str, Any]:
        policy = tx.policy(proposal.kind)
        members = tx.members()
        status = proposal.status
        if status == OPEN and tx.ctx.timestamp_ms > proposal.expires_at_ms:
            status = "expired"
        payload = decode(proposal.payload, dict[str, Any])
        target: dict[str, Any] = {
            k: payload[k] for k in ("name", "version", "org", "kind") if k in payload
        }
        if "code_hash" in payload:
            target["code_hash"] = payload["code_hash"].hex()
        return {
            "id": proposal.id,
            "kind": proposal.kind,
            "summary": proposal.summary,
            "target": target,
            "proposer": f"{proposal.proposer_org}/{proposal.proposer}",
            "approvals": list(proposal.approvals),
            "needed": policy.needed(members),
            "eligible": list(policy.eligible(members)),
            "policy": policy.describe(),
            "status": status,
            "created_height": proposal.created_height,
            "expires_at_ms": proposal.expires_at_ms,
            "closed_height": proposal.closed_height,
        }

    def get(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any]:
        return self._document(tx, tx.proposal(args.get("id")))

    def list(self, tx: _Tx, args: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        status = args.get("status", "all")
        limit = args.get("limit", 64)
        if not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
            raise _bad(f"limit is 1..{LIST_LIMIT_MAX}")
        raw_next = tx.state.get(b"p/next")
        last = 0 if raw_next is None else decode(raw_next, int) - 1
        out = []
        for proposal_id in range(last, max(last - limit, 0), -1):
            document = self._document(tx, tx.proposal(proposal_id))
            if status in ("all", document["status"]):
                out.append(document)
        return out

    def contract(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any] | None:
        name = args.get("name")
        if not isinstance(name, str):
            raise _bad("name the contract")
        record = read_deployed(tx.view, name)
        if record is None:
            return None
        return {
            "name": record.name, "version": record.version, "code_hash": record.code_hash.hex(),
            "frozen": record.frozen, "frozen_reason": record.frozen_reason,
            "activated_height": record.activated_height, "proposal_id": record.proposal_id,
            "versions": list(record.versions),
            "permissions": {m: {"roles": list(r.roles), "orgs": list(r.orgs)} for m, r in record.permissions},
        }  # fmt: skip

    def members(self, tx: _Tx, args: dict[str, Any]) -> builtins.list[str]:
        return list(tx.members())

    def validators(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any]:
        def rows(validators: tuple[ValidatorInfo, ...]) -> builtins.list[dict[str, Any]]:
            return [{"name": v.name, "org": v.org, "power": v.power} for v in validators]

        return {
            "current": rows(validator_set_at(tx.genesis, tx.view, tx.ctx.height)),
            "scheduled": [
                {
                    "effective_height": s.effective_height,
                    "validators": rows(s.validators),
                    "proposal_id": s.proposal_id,
                }
                for s in validator_schedule(tx.view)
                if s.effective_height > tx.ctx.height
            ],
            # every change since genesis with the keys, so an auditor can check certificates
            "history": [
                {
                    "effective_height": s.effective_height,
                    "validators": [
                        {"name": v.name, "org": v.org, "power": v.power, "public_key": v.public_key}
                        for v in s.validators
                    ],
                }
                for s in validator_schedule(tx.view)
            ],
        }

    def params(self, tx: _Tx, args: dict[str, Any]) -> dict[str, int]:
        limits = contract_limits(tx.view)
        chain = governed_chain_params(tx.genesis, tx.view)
        return {
            "block_txs_max": chain.block_txs_max,
            "block_bytes_max": chain.block_bytes_max,
            "timeout_propose_ms": chain.timeout_propose_ms,
            "timeout_vote_ms": chain.timeout_vote_ms,
            "contract_steps_max": limits.steps_max,
            "contract_allocation_bytes_max": limits.allocation_bytes_max,
        }

    def policy(self, tx: _Tx, args: dict[str, Any]) -> dict[str, Any]:
        kind = args.get("kind")
        if kind not in PROPOSAL_KINDS:
            raise _bad(f"kind must be one of {', '.join(PROPOSAL_KINDS)}")
        policy = tx.policy(kind)
        return {"kind": kind, "rule": policy.rule, "k": policy.k, "orgs": list(policy.orgs),
                "role": policy.role, "describe": policy.describe()}  # fmt: skip

    # ------------------------------------------------------------------ checks (at propose)

    def check_deploy(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        name = _field(payload, "name", str, "the contract name (lower-case identifier)")
        if not _NAME_RE.match(name):
            raise _bad(
                "contract names are lower-case identifiers (a-z, 0-9, _; at most 63 characters)"
            )
        if self.resolver.is_reserved(name):
            raise _bad(f"{name!r} is a built-in or system contract; choose another name")
        version = _field(payload, "version", str, 'a dotted number such as "1" or "1.2"')
        if not _VERSION_RE.match(version):
            raise _bad('versions are dotted numbers such as "1", "2" or "1.2.0"')
        code = _field(payload, "code", str, "the contract source")
        code_hash = _field(payload, "code_hash", bytes, "the chain hash of the UTF-8 source")
        suite = get_suite(tx.genesis.suite)
        if suite.hash(code.encode("utf-8")) != code_hash:
            raise _bad(
                f"code_hash does not match the code ({tx.genesis.suite} hash of the UTF-8 source)"
            )
        try:
            compiled = self.resolver.compile(code_hash, code)
        except CodeRejected as exc:
            raise _bad(f"contract code refused: {exc}") from None
        existing = read_deployed(tx.view, name)
        if existing is not None and _version_tuple(version) <= _version_tuple(existing.version):
            raise _bad(
                f"{name} is at version {existing.version}; an upgrade needs a higher version"
            )
        init = payload.get("init")
        hook = "init" if existing is None else "upgrade"
        if init is not None and compiled.function(hook) is None:
            raise _bad(f"init arguments given but the code defines no {hook}() function")
        permissions = _check_permissions(payload.get("permissions", {}))
        checked = {
            "name": name, "version": version, "code": code, "code_hash": code_hash,
            "init": init, "permissions": permissions,
        }  # fmt: skip
        verb = "deploy" if existing is None else f"upgrade {existing.version} ->"
        return checked, f"{verb} {name} v{version} (code {code_hash.hex()[:16]})"

    def check_freeze(
        self, tx: _Tx, payload: dict[str, Any], frozen: bool
    ) -> tuple[dict[str, Any], str]:
        name = _field(payload, "name", str, "the contract name")
        reason = payload.get("reason", "")
        if not isinstance(reason, str) or len(reason) > REASON_CHARS_MAX:
            raise _bad(f"reason is text of at most {REASON_CHARS_MAX} characters")
        record = read_deployed(tx.view, name)
        if record is None:
            raise _bad(f"no deployed contract named {name!r}")
        if record.frozen == frozen:
            raise _bad(f"{name} is already {'frozen' if frozen else 'running'}")
        return {"name": name, "reason": reason}, f"{'freeze' if frozen else 'unfreeze'} {name}"

    def _trial(self, tx: _Tx) -> Membership:
        return tx.membership().copy()

    def check_add_org(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        raw = _field(payload, "certificate", bytes, "the org CA certificate (canonical bytes)")
        certificate = decode_record(raw, OrgCertificate)
        self._trial(tx).add_org(certificate)
        return {
            "certificate": raw,
            "org": certificate.org_id,
        }, f"add organisation {certificate.org_id}"

    def check_remove_org(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        org = _field(payload, "org", str, "the organisation id")
        members = tx.members()
        if org not in members:
            raise _bad(f"{org!r} is not a member organisation")
        if len(members) == 1:
            raise _bad("the last organisation cannot be removed")
        return {"org": org}, f"remove organisation {org}"

    def check_rotate(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        raw = _field(
            payload, "rotation", bytes, "the CaRotation signed by the old CA (canonical bytes)"
        )
        rotation = decode_record(raw, CaRotation)
        self._trial(tx).apply_rotation(rotation, tx.ctx.timestamp_ms)
        return {"rotation": raw, "org": rotation.org_id}, f"rotate CA of {rotation.org_id}"

    def check_revoke(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        raw = _field(
            payload, "revocation", bytes, "the Revocation signed by the org CA (canonical bytes)"
        )
        revocation = decode_record(raw, Revocation)
        self._trial(tx).apply_revocation(revocation)
        summary = f"revoke {revocation.org_id}/{revocation.serial}"
        return {"revocation": raw, "org": revocation.org_id}, summary

    def check_add_validator(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        name = _field(payload, "name", str, "the validator's node name")
        org = _field(payload, "org", str, "the validator's organisation")
        public_key = _field(
            payload, "public_key", bytes, "SubjectPublicKeyInfo DER of its consensus key"
        )
        power = payload.get("power", 1)
        if not isinstance(power, int) or not 1 <= power <= 1_000_000:
            raise _bad("power is 1..1000000")
        if org not in tx.members():
            raise _bad(f"{org!r} is not a member organisation")
        try:
            get_suite(tx.genesis.suite).public_key(public_key)
        except Exception:  # noqa: BLE001 - any failure means "not a key of this suite"
            raise _bad(f"public_key is not a {tx.genesis.suite} public key (SPKI DER)") from None
        current = _latest_validators(tx.genesis, tx.view)
        if any(v.name == name for v in current) or any(v.public_key == public_key for v in current):
            raise _bad("a validator with that name or key is already in the set")
        if len(current) >= VALIDATORS_MAX:
            raise _bad(f"at most {VALIDATORS_MAX} validators")
        checked = {"name": name, "org": org, "public_key": public_key, "power": power}
        return checked, f"add validator {name} ({org}, power {power})"

    def check_remove_validator(
        self, tx: _Tx, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        name = _field(payload, "name", str, "the validator's node name")
        current = _latest_validators(tx.genesis, tx.view)
        if not any(v.name == name for v in current):
            raise _bad(f"{name!r} is not in the validator set")
        if len(current) == 1:
            raise _bad("the last validator cannot be removed")
        return {"name": name}, f"remove validator {name}"

    def check_set_params(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        params = payload.get("params")
        if not isinstance(params, dict) or not params:
            raise _bad(f"payload needs 'params': a map of {', '.join(PARAM_BOUNDS)} to integers")
        for key, value in params.items():
            bounds = PARAM_BOUNDS.get(key)
            if bounds is None:
                raise _bad(f"unknown parameter {key!r} ({', '.join(PARAM_BOUNDS)})")
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not bounds[0] <= value <= bounds[1]
            ):
                raise _bad(f"{key} must be an integer in {bounds[0]}..{bounds[1]}")
        summary = "set " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
        return {"params": dict(sorted(params.items()))}, summary

    def check_set_auditors(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        orgs = payload.get("orgs")
        if not isinstance(orgs, list) or len(orgs) > AUDITOR_ORGS_MAX or not all(isinstance(o, str) for o in orgs):
            raise _bad(f'payload is {{"orgs": [...]}}: at most {AUDITOR_ORGS_MAX} member organisations (empty: none)')
        members = set(tx.members())
        strangers = sorted(set(orgs) - members)
        if strangers:
            raise _bad(f"not member organisations: {', '.join(strangers)} (see: pilotchain gov members)")
        chosen = sorted(set(orgs))
        summary = "auditors: " + (", ".join(chosen) if chosen else "none")
        return {"orgs": chosen}, summary

    def apply_set_auditors(self, tx: _Tx, payload: dict[str, Any], proposal: GovernanceProposal) -> None:
        tx.state.put(b"auditors", encode(list(payload["orgs"])))

    def auditors(self, tx: _Tx, args: dict[str, Any]) -> builtins.list[str]:
        return list(read_auditors(tx.view))

    def check_set_policy(self, tx: _Tx, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        kind = payload.get("kind")
        if kind not in PROPOSAL_KINDS:
            raise _bad(f"kind must be one of {', '.join(PROPOSAL_KINDS)}")
        spec = payload.get("policy")
        if not isinstance(spec, dict):
            raise _bad('policy is a map: {"rule": "MAJORITY", "k": 0, "orgs": [], "role": "admin"}')
        rule = spec.get("rule")
        k = spec.get("k", 0)
        orgs = spec.get("orgs", [])
        role = spec.get("role", "admin")
        if rule not in RULES:
            raise _bad(f"rule must be one of {', '.join(RULES)}")
        if (
            not isinstance(orgs, list)
            or not all(isinstance(o, str) for o in orgs)
            or len(set(orgs)) != len(orgs)
        ):
            raise _bad("orgs is a list of distinct organisation ids (empty: every member)")
        if not isinstance(role, str) or not _ROLE_RE.match(role):
            raise _bad("role is a role name such as admin")
        policy = Policy(
            rule=rule, k=k if rule == K_OF_N else 0, orgs=tuple(sorted(orgs)), role=role
        )
        eligible = policy.eligible(tx.members())
        if not eligible:
            raise _bad("no member organisation could approve under this policy")
        if rule == K_OF_N and (not isinstance(k, int) or not 1 <= k <= len(eligible)):
            raise _bad(f"k must be 1..{len(eligible)} (the eligible organisations)")
        checked = {
            "kind": kind,
            "policy": {"rule": policy.rule, "k": policy.k, "orgs": list(policy.orgs), "role": role},
        }
        return checked, f"policy for {kind}: {policy.describe()}"

    # ------------------------------------------------------------------ applying (when approved)

    def apply_deploy(self, tx: _Tx, payload: dict[str, Any], proposal: GovernanceProposal) -> None:
        name, version, code, code_hash = (
            payload["name"],
            payload["version"],
            payload["code"],
            payload["code_hash"],
        )
        existing = read_deployed(tx.view, name)
        if existing is not None and _version_tuple(version) <= _version_tuple(existing.version):
            raise ContractError(
                f"{name} is already at version {existing.version}", RejectCode.EXECUTION_FAILED
            )
        tx.state.put(b"code/" + code_hash, code.encode("utf-8"))
        permissions = tuple(
            sorted((method, MethodRule(roles=tuple(r["roles"]), orgs=tuple(r["orgs"])))
                   for method, r in payload["permissions"].items())
        )  # fmt: skip
        record = DeployedContract(
            name=name, version=version, code_hash=code_hash, permissions=permissions,
            activated_height=tx.ctx.height, proposal_id=proposal.id,
            versions=(*(existing.versions if existing else ()), version),
        )  # fmt: skip
        tx.state.put(b"c/" + name.encode(), encode(record))
        compiled = self.resolver.compile(code_hash, code)
        hook = "init" if existing is None else "upgrade"
        if compiled.function(hook) is not None:
            contract = PythonContract(record, compiled, self.resolver, contract_limits(tx.view))
            child = child_state(tx.state, name)
            args = payload.get("init")
            try:
                contract.run(hook, args, tx.ctx, child, governance=True)
            except ContractError as exc:
                raise ContractError(
                    f"proposal #{proposal.id} is approved but {name}.{hook} failed: {exc}; "
                    "it stays open until it expires",
                    exc.code,
                ) from None
            merge_child(tx.state, child)

    def apply_freeze(self, tx: _Tx, payload: dict[str, Any], frozen: bool) -> None:
        record = read_deployed(tx.view, payload["name"])
        if record is None:
            raise ContractError(
                f"no deployed contract named {payload['name']!r}", RejectCode.EXECUTION_FAILED
            )
        reason = payload.get("reason", "") if frozen else ""
        tx.state.put(
            b"c/" + record.name.encode(),
            encode(_replace(record, frozen=frozen, frozen_reason=reason)),
        )

    def apply_membership(
        self, tx: _Tx, kind: str, org: str, record: bytes, proposal: GovernanceProposal
    ) -> None:
        head = read_membership_head(tx.view)
        if head.count >= MEMBERSHIP_LOG_MAX:
            raise ContractError("the membership log is full", RejectCode.EXECUTION_FAILED)
        change = MembershipChange(
            seq=head.count, kind=kind, org_id=org, record=record, at_ms=tx.ctx.timestamp_ms,
            height=tx.ctx.height, proposal_id=proposal.id,
        )  # fmt: skip
        apply_membership_change(tx.membership().copy(), change)  # raises if it no longer applies
        entry = encode(change)
        tx.state.put(membership_entry_key(head.count), entry)
        new_head = MembershipHead(
            count=head.count + 1, digest=next_digest(head.digest or EMPTY_HEAD.digest, entry)
        )
        tx.state.put(membership_head_key(), encode(new_head))
        tx._membership = None

    def apply_validators(
        self, tx: _Tx, validators: tuple[ValidatorInfo, ...], proposal: GovernanceProposal
    ) -> None:
        index = _schedule_index(tx.view)
        effective = tx.ctx.height + VALIDATOR_CHANGE_DELAY_BLOCKS
        if index and index[-1] >= effective:
            effective = index[-1] + 1
        if len(index) >= VALIDATOR_SCHEDULE_MAX:
            raise ContractError("the validator schedule is full", RejectCode.EXECUTION_FAILED)
        schedule = ValidatorSchedule(
            effective_height=effective, validators=validators, proposal_id=proposal.id
        )
        tx.state.put(b"v/" + effective.to_bytes(8, "big"), encode(schedule))
        tx.state.put(b"v/index", encode((*index, effective)))
        tx.state.emit(
            "validators_scheduled", {"effective_height": effective, "count": len(validators)}
        )

    def apply_add_validator(self, tx: _Tx, payload: dict[str, Any], proposal: GovernanceProposal) -> None:
        current = _latest_validators(tx.genesis, tx.view)
        if any(v.name == payload["name"] or v.public_key == payload["public_key"] for v in current):
            raise ContractError("that validator is already in the set", RejectCode.EXECUTION_FAILED)
        added = ValidatorInfo(name=payload["name"], org=payload["org"], public_key=payload["public_key"],
                              power=payload["power"])  # fmt: skip
        self.apply_validators(tx, (*current, added), proposal)

    def apply_remove_validator(self, tx: _Tx, payload: dict[str, Any], proposal: GovernanceProposal) -> None:
        current = _latest_validators(tx.genesis, tx.view)
        remaining = tuple(v for v in current if v.name != payload["name"])
        if len(remaining) == len(current) or not remaining:
            raise ContractError(
                f"cannot remove validator {payload['name']!r} now", RejectCode.EXECUTION_FAILED
            )
        self.apply_validators(tx, remaining, proposal)

    def apply_set_params(self, tx: _Tx, payload: dict[str, Any], proposal: GovernanceProposal) -> None:
        params = read_params(tx.view)
        params.update(payload["params"])
        tx.state.put(b"params", encode(dict(sorted(params.items()))))

    def apply_set_policy(self, tx: _Tx, payload: dict[str, Any], proposal: GovernanceProposal) -> None:
        spec = payload["policy"]
        policy = Policy(rule=spec["rule"], k=spec["k"], orgs=tuple(spec["orgs"]), role=spec["role"])
        tx.state.put(b"policy/" + payload["kind"].encode(), encode(policy))


def _check_permissions(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or len(spec) > PERMISSION_RULES_MAX:
        raise _bad(
            'permissions is a map of method (or "*", or "@read" for who may read) to {"roles": [...], "orgs": [...]}, '
            f"at most {PERMISSION_RULES_MAX} entries"
        )
    out: dict[str, Any] = {}
    for method, rule in spec.items():
        if method not in ("*", READ_PERMISSION) and (not isinstance(method, str) or not _NAME_RE.match(method)):
            raise _bad(f"permissions: {method!r} is not a method name (or \"*\", or \"{READ_PERMISSION}\" for reads)")
        if not isinstance(rule, dict) or set(rule) - {"roles", "orgs"}:
            raise _bad(f'permissions[{method!r}] is {{"roles": [...], "orgs": [...]}}')
        roles, orgs = rule.get("roles", []), rule.get("orgs", [])
        for values in (roles, orgs):
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise _bad(f"permissions[{method!r}]: roles and orgs are lists of names")
        out[method] = {"roles": sorted(set(roles)), "orgs": sorted(set(orgs))}
    return dict(sorted(out.items()))


_R = TypeVar("_R", bound=msgspec.Struct)


def _replace(record: _R, **changes: Any) -> _R:
    return msgspec.structs.replace(record, **changes)


_METHODS = {
    "propose": GovernanceContract.propose,
    "approve": GovernanceContract.approve,
    "withdraw": GovernanceContract.withdraw,
    "get": GovernanceContract.get,
    "list": GovernanceContract.list,
    "contract": GovernanceContract.contract,
    "members": GovernanceContract.members,
    "validators": GovernanceContract.validators,
    "params": GovernanceContract.params,
    "policy": GovernanceContract.policy,
    "auditors": GovernanceContract.auditors,
}

_CHECKS = {
    DEPLOY_CONTRACT: GovernanceContract.check_deploy,
    FREEZE_CONTRACT: lambda gov, tx, p: gov.check_freeze(tx, p, True),
    UNFREEZE_CONTRACT: lambda gov, tx, p: gov.check_freeze(tx, p, False),
    ADD_ORG: GovernanceContract.check_add_org,
    REMOVE_ORG: GovernanceContract.check_remove_org,
    ROTATE_CA: GovernanceContract.check_rotate,
    REVOKE: GovernanceContract.check_revoke,
    ADD_VALIDATOR: GovernanceContract.check_add_validator,
    REMOVE_VALIDATOR: GovernanceContract.check_remove_validator,
    SET_PARAMS: GovernanceContract.check_set_params,
    SET_POLICY: GovernanceContract.check_set_policy,
    SET_AUDITORS: GovernanceContract.check_set_auditors,
}

_APPLY = {
    DEPLOY_CONTRACT: GovernanceContract.apply_deploy,
    FREEZE_CONTRACT: lambda gov, tx, p, proposal: gov.apply_freeze(tx, p, True),
    UNFREEZE_CONTRACT: lambda gov, tx, p, proposal: gov.apply_freeze(tx, p, False),
    ADD_ORG: lambda gov, tx, p, proposal: gov.apply_membership(
        tx, ADD_ORG, p["org"], p["certificate"], proposal
    ),
    REMOVE_ORG: lambda gov, tx, p, proposal: gov.apply_membership(
        tx, REMOVE_ORG, p["org"], b"", proposal
    ),
    ROTATE_CA: lambda gov, tx, p, proposal: gov.apply_membership(
        tx, ROTATE_CA, p["org"], p["rotation"], proposal
    ),
    REVOKE: lambda gov, tx, p, proposal: gov.apply_membership(
        tx, REVOKE, p["org"], p["revocation"], proposal
    ),
    ADD_VALIDATOR: GovernanceContract.apply_add_validator,
    REMOVE_VALIDATOR: GovernanceContract.apply_remove_validator,
    SET_PARAMS: GovernanceContract.apply_set_params,
    SET_POLICY: GovernanceContract.apply_set_policy,
    SET_AUDITORS: GovernanceContract.apply_set_auditors,
}

if not (set(_CHECKS) == set(PROPOSAL_KINDS) == set(_APPLY) == set(DEFAULT_POLICIES)):
    raise InvariantBroken('invariant broken: set(_CHECKS) == set(PROPOSAL_KINDS) == set(_APPLY) == set(DEFAULT_POLICIES)')
