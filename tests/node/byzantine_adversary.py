"""A byzantine validator process, for tests only: a real node whose consensus traffic an adversary rewrites.

TEST-ONLY. This file lives under ``tests/`` and is not part of the installed package: nothing in
``pilotchain`` imports it or can start it, so no deployed node can be switched into it. It is run
as its own process with a validator's real home (its real key, ledger, WAL and gateway)::

    .venv/bin/python tests/node/byzantine_adversary.py --home NET/nodes/NAME \\
        --behaviours equivocate-proposals,equivocate-votes,bad-signatures,replay,future,oversized-frames

Theory of operation
-------------------
The process runs :class:`ByzantineNode`, a :class:`~pilotchain.node.daemon.ConsensusNode` whose
P2P links are wrapped by :class:`AdversaryLinks`. The node's own replica keeps following the
chain (it commits, catches up, proposes when its turn comes), so everything the adversary sends
is built from the real protocol state and signed with the validator's real key where it should
be; the wrapper rewrites each outgoing consensus message and a side task adds unsolicited ones.
Peers are the honest validators in name order ``p0, p1, p2, ...``; ``p0`` is the *witness*.

Behaviours (each selectable; the set in force is re-read from ``HOME/byzantine.behaviours``,
comma-separated, whenever that file changes, so a test moves a running adversary between phases):

``equivocate-proposals``  when it proposes a fresh block: a second valid block for the same
                          height and round (one transaction fewer, 1 ms later), re-signed; ``p1``
                          gets the real one, ``p2...`` the other, the witness both.
``equivocate-votes``      every own prevote/precommit: a conflicting one (nil <-> a block) for the
                          same height, round and type; split the same way.
``bad-signatures``        before each own vote and proposal: a copy with a garbage signature and
                          one signed by a key that is not the validator's; periodically a vote in
                          another validator's name and a proposal in the real proposer's name,
                          both signed with its own key (the wrong key for that index), and bytes
                          that are no consensus message at all.
``replay``                re-sends messages received and sent earlier (old heights, other
                          validators' votes) to every peer.
``future``                own-signed votes for the next height, a far height and a far round, and
                          a proposal for a far height.
``oversized-frames``      in rotation, writes to one peer's link a frame header announcing more
                          than any node accepts (the link is dropped by the honest side).
``flood``                 FLOOD_PER_TICK votes per peer per tick for the current height and round,
                          each for a random block with a random signature: every one costs
                          the receiver a signature check before it is refused.
``withhold``              sends no consensus message and no transaction at all (a silent
                          validator; the links stay up through the transport's keepalives).

What it did is counted per behaviour (and per peer for oversized frames) in
``HOME/byzantine.stats.json`` (replaced atomically about twice a second), so a test can tell an
attack that was refused from one that never happened.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

from pilotchain.codec import CodecError, encode
from pilotchain.consensus import (
    BLOCK_HASH_NIL,
    ConsensusBlock,
    ConsensusHeader,
    Proposal,
    Vote,
    VoteType,
    compute_block_hash,
    decode_message,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
)
from pilotchain.ledger.block import block_hash as ledger_block_hash
from pilotchain.node.daemon import ConsensusNode, run_node
from pilotchain.p2p import MessageKind
from pilotchain.p2p.framing import FRAME_BYTES_MAX_LIMIT, encode_length

BEHAVIOURS = (
    "equivocate-proposals",
    "equivocate-votes",
    "bad-signatures",
    "replay",
    "future",
    "oversized-frames",
    "flood",
    "withhold",
)
CONTROL_FILE = "byzantine.behaviours"
STATS_FILE = "byzantine.stats.json"
#: messages remembered for replay
REPLAY_BUFFER_MAX = 512
#: replayed messages per peer per tick
REPLAY_PER_TICK = 8
TICK_S = 0.5
#: an oversized frame every this many ticks (it costs the adversary that link for a moment)
OVERSIZED_EVERY_TICKS = 3
#: badly signed votes per peer per tick for "flood" (each costs the receiver a signature check)
FLOOD_PER_TICK = 2_000
#: heights ahead of its own for the "far future" messages
FAR_HEIGHTS = 1_000
FAR_ROUNDS = 100

_log = logging.getLogger("pilotchain.byzantine")


def read_behaviours(home: Path, default: frozenset[str]) -> frozenset[str]:
    path = home / CONTROL_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = chosen - set(BEHAVIOURS)
    if unknown:
        raise SystemExit(f"{path}: unknown behaviours {sorted(unknown)}; choose from {', '.join(BEHAVIOURS)}")
    return chosen


class Adversary:
    """Decides what the byzantine node really sends (see the module docstring)."""

    def __init__(self, node: ConsensusNode, behaviours: frozenset[str]) -> None:
        self.node = node
        self.behaviours = behaviours
        self.suite = node.suite
        self.key = node.identity.private_key
        self.chain_id = node.ledger.genesis.chain_id.encode()
        #: a key of the suite that is nobody's: "signed by the wrong key"
        self.stranger_key = self.suite.generate_private_key()
        self.random = random.Random()
        self.stats: collections.Counter[str] = collections.Counter()
        self.replay_buffer: collections.deque[bytes] = collections.deque(maxlen=REPLAY_BUFFER_MAX)
        self._conflicting_proposals: dict[bytes, Proposal] = {}
        self._control_mtime_ns: int | None = None
        self._oversized_rotation = 0

    # ------------------------------------------------------------------ who gets what

    def peers(self) -> list[str]:
        """The honest validators' names in order; the first is the witness."""
        return sorted(self.node.config.peers)

    def rewrite(self, to: str | None, payload: bytes) -> list[tuple[str, bytes]]:
        """What goes out instead of ``payload`` (to ``to``, or to everyone when None)."""
        targets = self.peers() if to is None else [to]
        if "withhold" in self.behaviours:
            self.stats["withhold"] += 1
            return []
        try:
            message = decode_message(payload)
        except CodecError:
            return [(peer, payload) for peer in targets]
        out: list[tuple[str, bytes]] = []
        if "bad-signatures" in self.behaviours and isinstance(message, (Vote, Proposal)):
            for forged in self._forged_copies(message):
                out.extend((peer, encode(forged)) for peer in targets)
        conflicting = self._conflicting(message) if to is None else None
        if conflicting is None:
            return out + [(peer, payload) for peer in targets]
        witness, *others = targets
        out += [(witness, payload), (witness, encode(conflicting))]
        for position, peer in enumerate(others):
            out.append((peer, payload if position % 2 == 0 else encode(conflicting)))
        return out

    def _conflicting(self, message: Any) -> Vote | Proposal | None:
        if isinstance(message, Vote) and "equivocate-votes" in self.behaviours:
            other = BLOCK_HASH_NIL if message.block_hash != BLOCK_HASH_NIL else self.random.randbytes(32)
            self.stats["equivocate-votes"] += 1
            return self._sign_vote(message.vote_type, message.height, message.round, other, message.validator_index)
        if isinstance(message, Proposal) and message.valid_round == -1 and "equivocate-proposals" in self.behaviours:
            block_hash = compute_block_hash(self.suite, message.block.header)
            known = self._conflicting_proposals.get(block_hash)
            if known is None:
                known = self._second_proposal(message)
                if known is None:
                    return None
                self._conflicting_proposals = {block_hash: known}  # retransmits get the same one
                self.stats["equivocate-proposals"] += 1
            return known
        return None

    def _second_proposal(self, message: Proposal) -> Proposal | None:
        """Another valid block for the proposal's height and round: one transaction fewer, 1 ms later."""
        core = self.node.core
        if core.ledger.height != message.height - 1:
            return None
        block = core.block_of(message.block.payload)
        timestamp_ms = message.block.header.timestamp_ms + 1
        other = core.ledger.build_block(list(block.txs)[:-1], proposer=block.header.proposer, timestamp_ms=timestamp_ms)
        header = message.block.header
        forged = ConsensusHeader(header.chain_id, header.height, header.round, header.parent_hash,
                                 header.proposer_index, timestamp_ms, header.validator_set_hash,
                                 ledger_block_hash(self.suite, other.header))
        block_hash = compute_block_hash(self.suite, forged)
        signature = self.key.sign(get_proposal_signing_bytes(self.chain_id, message.height, message.round,
                                                             block_hash, -1))
        return Proposal(message.height, message.round, ConsensusBlock(forged, encode(other)), -1, (),
                        message.proposer_index, signature)

    def _forged_copies(self, message: Vote | Proposal) -> list[Vote | Proposal]:
        """A garbage signature and one by a stranger's key; sent *before* the real message, which a
        peer would otherwise already hold (a copy of a held vote is a duplicate, not checked)."""
        garbage = self.random.randbytes(len(message.signature))
        if isinstance(message, Vote):
            signing = get_vote_signing_bytes(self.chain_id, message.vote_type, message.height, message.round,
                                             message.block_hash)
        else:
            signing = get_proposal_signing_bytes(self.chain_id, message.height, message.round,
                                                 compute_block_hash(self.suite, message.block.header),
                                                 message.valid_round)
        self.stats["bad-signatures"] += 2
        return [_with_signature(message, garbage), _with_signature(message, self.stranger_key.sign(signing))]

    def _sign_vote(self, vote_type: int, height: int, round_: int, block_hash: bytes, index: int,
                   key: Any = None) -> Vote:
        signature = (key or self.key).sign(get_vote_signing_bytes(self.chain_id, vote_type, height, round_, block_hash))
        return Vote(vote_type, height, round_, block_hash, index, signature)

    # ------------------------------------------------------------------ unsolicited messages

    def remember(self, payload: bytes) -> None:
        if "replay" in self.behaviours:
            self.replay_buffer.append(payload)

    def tick(self, links: AdversaryLinks) -> None:
        """One round of unsolicited misbehaviour (what the behaviours in force add)."""
        self.reload()
        replica = self.node.replica
        index = replica.validator_index
        peers = [peer for peer in self.peers() if peer in links.inner.connected_peers()]
        if index is None or not peers or "withhold" in self.behaviours:
            return
        height, round_ = replica.height, max(replica.round, 0)
        if "bad-signatures" in self.behaviours:
            others = [i for i in range(len(replica.validators)) if i != index]
            impostor = self._sign_vote(VoteType.PREVOTE, height, round_, self.random.randbytes(32),
                                       self.random.choice(others))
            proposer = replica.validators.get_proposer_index(height, round_)
            header = ConsensusHeader(self.chain_id, height, round_, replica.chain_tip.block_hash, proposer,
                                     replica.chain_tip.timestamp_ms + 1, replica.validators.hash,
                                     self.suite.hash(b"no such payload"))
            block_hash = compute_block_hash(self.suite, header)
            # in the real proposer's name (unless that is itself), signed with its own key
            fake = Proposal(height, round_, ConsensusBlock(header, b"no such payload"), -1, (), proposer,
                            self.key.sign(get_proposal_signing_bytes(self.chain_id, height, round_, block_hash, -1)))
            for peer in peers:
                links.send_raw(peer, encode(impostor))
                if proposer != index:
                    links.send_raw(peer, encode(fake))
                links.send_raw(peer, self.random.randbytes(200))  # not a consensus message at all
            self.stats["bad-signatures"] += len(peers) * (2 + (proposer != index))
        if "future" in self.behaviours:
            future: list[Vote | Proposal] = [
                self._sign_vote(VoteType.PREVOTE, height + 1, 0, BLOCK_HASH_NIL, index),
                self._sign_vote(VoteType.PRECOMMIT, height + FAR_HEIGHTS, 0, BLOCK_HASH_NIL, index),
                self._sign_vote(VoteType.PREVOTE, height, round_ + FAR_ROUNDS, BLOCK_HASH_NIL, index),
            ]
            far = ConsensusHeader(self.chain_id, height + FAR_HEIGHTS, 0, replica.chain_tip.block_hash, index,
                                  replica.chain_tip.timestamp_ms + 1, replica.validators.hash, self.suite.hash(b""))
            far_hash = compute_block_hash(self.suite, far)
            future.append(Proposal(height + FAR_HEIGHTS, 0, ConsensusBlock(far, b""), -1, (), index,
                                   self.key.sign(get_proposal_signing_bytes(self.chain_id, height + FAR_HEIGHTS, 0,
                                                                            far_hash, -1))))
            for peer in peers:
                for message in future:
                    links.send_raw(peer, encode(message))
            self.stats["future"] += len(peers) * len(future)
        if "replay" in self.behaviours and self.replay_buffer:
            old = list(self.replay_buffer)
            for peer in peers:
                for payload in self.random.sample(old, min(REPLAY_PER_TICK, len(old))):
                    links.send_raw(peer, payload)
            self.stats["replay"] += len(peers) * min(REPLAY_PER_TICK, len(old))
        if "flood" in self.behaviours:
            for peer in peers:
                for _ in range(FLOOD_PER_TICK):
                    links.send_raw(peer, encode(Vote(VoteType.PREVOTE, height, round_, self.random.randbytes(32), index,
                                                     self.random.randbytes(64))))
            self.stats["flood"] += len(peers) * FLOOD_PER_TICK
        if "oversized-frames" in self.behaviours:
            self._oversized_rotation += 1
            if self._oversized_rotation % OVERSIZED_EVERY_TICKS == 0:
                peer = peers[(self._oversized_rotation // OVERSIZED_EVERY_TICKS) % len(peers)]
                if links.write_oversized_header(peer):
                    self.stats["oversized-frames"] += 1
                    self.stats[f"oversized-frames:{peer}"] += 1

    def reload(self) -> None:
        path = self.node.home / CONTROL_FILE
        with contextlib.suppress(FileNotFoundError):
            mtime_ns = path.stat().st_mtime_ns
            if mtime_ns != self._control_mtime_ns:
                self._control_mtime_ns = mtime_ns
                behaviours = read_behaviours(self.node.home, self.behaviours)
                if behaviours != self.behaviours:
                    _log.warning("behaviours now %s", ",".join(sorted(behaviours)),
                                 extra={"event": "byzantine.behaviours", "behaviours": ",".join(sorted(behaviours))})
                self.behaviours = behaviours

    def write_stats(self) -> None:
        path = self.node.home / STATS_FILE
        document = {"behaviours": sorted(self.behaviours), "height": self.node.replica.height, "counts": self.stats}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, sort_keys=True))
        os.replace(tmp, path)


def _with_signature(message: Vote | Proposal, signature: bytes) -> Vote | Proposal:
    if isinstance(message, Vote):
        return Vote(message.vote_type, message.height, message.round, message.block_hash, message.validator_index,
                    signature)
    return Proposal(message.height, message.round, message.block, message.valid_round, message.polka,
                    message.proposer_index, signature)


class AdversaryLinks:
    """The node's :class:`~pilotchain.p2p.PeerNetwork` with its consensus (and, when withholding,
    transaction) traffic rewritten by the :class:`Adversary`; everything else is the real thing."""

    def __init__(self, inner: Any, adversary: Adversary) -> None:
        self.inner = inner
        self.adversary = adversary

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, peer_name: str, kind: int, payload: bytes) -> Any:
        if kind == MessageKind.CONSENSUS:
            for peer, data in self.adversary.rewrite(peer_name, payload):
                self.adversary.remember(data)
                self.inner.send(peer, kind, data)
            return None
        if kind == MessageKind.MEMPOOL and "withhold" in self.adversary.behaviours:
            return None
        return self.inner.send(peer_name, kind, payload)

    def broadcast(self, kind: int, payload: bytes) -> dict[str, Any]:
        if kind == MessageKind.CONSENSUS:
            for peer, data in self.adversary.rewrite(None, payload):
                self.adversary.remember(data)
                self.inner.send(peer, kind, data)
            return {}
        if kind == MessageKind.MEMPOOL and "withhold" in self.adversary.behaviours:
            return {}
        return dict(self.inner.broadcast(kind, payload))

    async def receive(self) -> Any:
        message = await self.inner.receive()
        if message.kind == MessageKind.CONSENSUS:
            self.adversary.remember(message.payload)
        return message

    def send_raw(self, peer: str, payload: bytes) -> None:
        self.inner.send(peer, MessageKind.CONSENSUS, payload)

    def write_oversized_header(self, peer: str) -> bool:
        """Write, on ``peer``'s live link, a frame header announcing more bytes than any node accepts."""
        state = self.inner._peers.get(peer)
        link = getattr(state, "link", None)
        if link is None or link.writer.is_closing():
            return False
        link.writer.write(encode_length(FRAME_BYTES_MAX_LIMIT + 1))
        return True


class ByzantineNode(ConsensusNode):
    """A validator node whose P2P traffic goes through an :class:`Adversary`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        behaviours = read_behaviours(self.home, frozenset())
        self.adversary = Adversary(self, behaviours)
        self.p2p = AdversaryLinks(self.p2p, self.adversary)  # type: ignore[assignment]

    async def start(self) -> None:
        await super().start()
        _log.warning("byzantine node started (TEST-ONLY)", extra={
            "event": "byzantine.started", "behaviours": ",".join(sorted(self.adversary.behaviours))})
        self._tasks.append(asyncio.create_task(self._adversary_loop(), name=f"{self.name}-adversary"))

    async def _adversary_loop(self) -> None:
        links = self.p2p
        if not isinstance(links, AdversaryLinks):
            raise TypeError("the adversary needs its links")
        while True:
            await asyncio.sleep(TICK_S)
            self.adversary.tick(links)
            self.adversary.write_stats()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TEST-ONLY: run a validator home as a byzantine node.")
    parser.add_argument("--home", type=Path, required=True, help="the validator's home (network init made it)")
    parser.add_argument("--behaviours", default="",
                        help=f"comma-separated, any of: {', '.join(BEHAVIOURS)} (written to HOME/{CONTROL_FILE})")
    arguments = parser.parse_args(argv)
    home: Path = arguments.home.resolve()
    if arguments.behaviours:
        (home / CONTROL_FILE).write_text(arguments.behaviours)
    read_behaviours(home, frozenset())  # refuse unknown names before starting anything
    return run_node(home, node_class=ByzantineNode)


if __name__ == "__main__":
    sys.exit(main())
