// pilotchain explorer: the browser checks what the page shows, byte for byte as the platform does.
//
// The explorer's server serves proof material as JSON (/api/proof/tx/ID, /api/proof/block/H); this
// file recomputes, with WebCrypto, what pilotchain.ledger and pilotchain.consensus compute in Python:
//   - canonical MessagePack (pilotchain.codec): integers in their shortest form, str, bin, arrays;
//     decoding refuses any bytes that do not re-encode to themselves;
//   - the block hash  SHA-256("pilotchain/block/v1\0" || header bytes)        (ledger/block.py);
//   - a transaction id SHA-256("pilotchain/txid/v1\0" || body bytes)         (ledger/tx.py);
//   - RFC 6962 Merkle trees, leaves H(0x00||leaf), nodes H(0x01||l||r), and RFC 9162 inclusion
//     proofs                                                                   (ledger/merkle.py);
//   - a commit record [consensus header, certificate]: the consensus header names the block hash
//     as its payload, the validator set by hash; >2/3 of the voting power signed a PRECOMMIT
//     vote body over the consensus header's hash with Ed25519     (ledger/commit.py, consensus/).
// The validator set in force is what the explorer's server read (the genesis file, then the
// changes governance recorded); the header names it by its roster hash, which is checked here.
// Only the intl suite (SHA-256, Ed25519) can be checked in a browser: WebCrypto has no SM2/SM3.
"use strict";
(function (global) {
  var enc = new TextEncoder();
  var dec = new TextDecoder("utf-8", { fatal: true });

  var BLOCK_HASH_DOMAIN = enc.encode("pilotchain/block/v1\u0000");
  var TX_ID_DOMAIN = enc.encode("pilotchain/txid/v1\u0000");
  var ROSTER_DOMAIN = enc.encode("pilotchain/validators/v1\u0000");
  var VOTE_DOMAIN = enc.encode("pilotchain/consensus/vote/v1");
  var PRECOMMIT = 2;
  var PROOF_LENGTH_MAX = 40;
  var HEADER_FIELDS = 12;

  // ------------------------------------------------------------------ messages

  var messages = null;

  // The page's message ``key`` (its language's, from the JSON the server put in #messages) with
  // its ``{names}`` filled in from ``values``; the key itself when the page carries no table.
  function M(key, values) {
    if (messages === null) {
      var element = global.document && global.document.getElementById("messages");
      try { messages = element ? JSON.parse(element.textContent) : {}; } catch (e) { messages = {}; }
    }
    var template = messages[key] || key;
    return template.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  // ------------------------------------------------------------------ bytes

  function unhex(text) {
    if (typeof text !== "string" || text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
      throw new Error("not hex: " + String(text).slice(0, 20));
    }
    var out = new Uint8Array(text.length / 2);
    for (var i = 0; i < out.length; i++) { out[i] = parseInt(text.substr(2 * i, 2), 16); }
    return out;
  }

  function hex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) { out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16); }
    return out;
  }

  function concat() {
    var total = 0, i;
    for (i = 0; i < arguments.length; i++) { total += arguments[i].length; }
    var out = new Uint8Array(total), at = 0;
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }

  function equal(a, b) {
    if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array) || a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }

  // ------------------------------------------------------------------ canonical MessagePack

  function encodeInto(out, value) {
    if (value === null) { out.push(0xc0); return; }
    if (value === true || value === false) { out.push(value ? 0xc3 : 0xc2); return; }
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) { throw new Error("only integers are encoded (no floats): " + value); }
      value = BigInt(value);
    }
    if (typeof value === "bigint") { encodeInt(out, value); return; }
    if (typeof value === "string") { var text = enc.encode(value); header(out, text.length, 0xa0, 31, 0xd9, 0xda, 0xdb); pushAll(out, text); return; }
    if (value instanceof Uint8Array) { header(out, value.length, -1, -1, 0xc4, 0xc5, 0xc6); pushAll(out, value); return; }
    if (Array.isArray(value)) {
      if (value.length < 16) { out.push(0x90 | value.length); } else { header(out, value.length, -1, -1, -1, 0xdc, 0xdd); }
      value.forEach(function (item) { encodeInto(out, item); });
      return;
    }
    throw new Error("no canonical encoding for " + typeof value);
  }

  function pushAll(out, bytes) { for (var i = 0; i < bytes.length; i++) { out.push(bytes[i]); } }

  function header(out, length, fix, fixMax, lead8, lead16, lead32) {
    if (fix >= 0 && length <= fixMax) { out.push(fix | length); }
    else if (lead8 >= 0 && length < 0x100) { out.push(lead8, length); }
    else if (length < 0x10000) { out.push(lead16, length >> 8, length & 0xff); }
    else { out.push(lead32, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff); }
  }

  function bigBytes(value, size) {
    var out = [];
    var v = BigInt.asUintN(size * 8, value);
    for (var i = size - 1; i >= 0; i--) { out.push(Number((v >> BigInt(8 * i)) & 0xffn)); }
    return out;
  }

  function encodeInt(out, value) {
    if (value >= 0n) {
      if (value < 0x80n) { out.push(Number(value)); }
      else if (value < 0x100n) { out.push(0xcc, Number(value)); }
      else if (value < 0x10000n) { out.push(0xcd); pushAll(out, bigBytes(value, 2)); }
      else if (value < 0x100000000n) { out.push(0xce); pushAll(out, bigBytes(value, 4)); }
      else if (value < 0x10000000000000000n) { out.push(0xcf); pushAll(out, bigBytes(value, 8)); }
      else { throw new Error("integer too large"); }
    } else if (value >= -32n) { out.push(Number(BigInt.asUintN(8, value))); }
    else if (value >= -0x80n) { out.push(0xd0); pushAll(out, bigBytes(value, 1)); }
    else if (value >= -0x8000n) { out.push(0xd1); pushAll(out, bigBytes(value, 2)); }
    else if (value >= -0x80000000n) { out.push(0xd2); pushAll(out, bigBytes(value, 4)); }
    else if (value >= -0x8000000000000000n) { out.push(0xd3); pushAll(out, bigBytes(value, 8)); }
    else { throw new Error("integer too small"); }
  }

  function encode(value) { var out = []; encodeInto(out, value); return new Uint8Array(out); }

  // Decodes one value at ``at``: [value, end]. Integers come back as Number when safe, else BigInt;
  // str as string, bin as Uint8Array, arrays as arrays. Maps, floats and extensions are refused:
  // nothing this file checks contains one.
  function decodeAt(bytes, at, depth) {
    if (depth > 64) { throw new Error("values nest too deep"); }
    if (at >= bytes.length) { throw new Error("truncated MessagePack value"); }
    var lead = bytes[at];
    function need(n) { if (at + 1 + n > bytes.length) { throw new Error("truncated MessagePack value"); } }
    function uint(n) { need(n); var v = 0n; for (var i = 1; i <= n; i++) { v = (v << 8n) | BigInt(bytes[at + i]); } return v; }
    function number(v) { return (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)) ? Number(v) : v; }
    function sized(n, skip) { var end = at + 1 + skip + n; if (end > bytes.length) { throw new Error("truncated MessagePack value"); } return [at + 1 + skip, end]; }
    function items(count, start) {
      var list = [], pos = start;
      for (var i = 0; i < count; i++) { var r = decodeAt(bytes, pos, depth + 1); list.push(r[0]); pos = r[1]; }
      return [list, pos];
    }
    if (lead <= 0x7f) { return [lead, at + 1]; }
    if (lead >= 0xe0) { return [lead - 0x100, at + 1]; }
    if (lead >= 0x90 && lead <= 0x9f) { return items(lead & 0x0f, at + 1); }
    if (lead >= 0xa0 && lead <= 0xbf) { var s = sized(lead & 0x1f, 0); return [dec.decode(bytes.subarray(s[0], s[1])), s[1]]; }
    var span;
    switch (lead) {
      case 0xc0: return [null, at + 1];
      case 0xc2: return [false, at + 1];
      case 0xc3: return [true, at + 1];
      case 0xc4: case 0xc5: case 0xc6:
        var w = lead === 0xc4 ? 1 : lead === 0xc5 ? 2 : 4;
        span = sized(Number(uint(w)), w); return [bytes.slice(span[0], span[1]), span[1]];
      case 0xd9: case 0xda: case 0xdb:
        var ws = lead === 0xd9 ? 1 : lead === 0xda ? 2 : 4;
        span = sized(Number(uint(ws)), ws); return [dec.decode(bytes.subarray(span[0], span[1])), span[1]];
      case 0xcc: return [number(uint(1)), at + 2];
      case 0xcd: return [number(uint(2)), at + 3];
      case 0xce: return [number(uint(4)), at + 5];
      case 0xcf: return [number(uint(8)), at + 9];
      case 0xd0: return [number(BigInt.asIntN(8, uint(1))), at + 2];
      case 0xd1: return [number(BigInt.asIntN(16, uint(2))), at + 3];
      case 0xd2: return [number(BigInt.asIntN(32, uint(4))), at + 5];
      case 0xd3: return [number(BigInt.asIntN(64, uint(8))), at + 9];
      case 0xdc: return items(Number(uint(2)), at + 3);
      case 0xdd: return items(Number(uint(4)), at + 5);
      default: throw new Error("byte 0x" + lead.toString(16) + " starts no value pilotchain encodes here");
    }
  }

  // The value in ``bytes``, refused unless ``bytes`` is exactly its canonical encoding.
  function decode(bytes) {
    var result = decodeAt(bytes, 0, 0);
    if (result[1] !== bytes.length) { throw new Error("bytes after the MessagePack value"); }
    if (!equal(encode(result[0]), bytes)) { throw new Error("not the canonical encoding"); }
    return result[0];
  }

  // The byte spans of a top-level array's items (to hash an item as it was encoded).
  function itemSpans(bytes) {
    var lead = bytes[0], count, pos;
    if (lead >= 0x90 && lead <= 0x9f) { count = lead & 0x0f; pos = 1; }
    else if (lead === 0xdc) { count = (bytes[1] << 8) | bytes[2]; pos = 3; }
    else { throw new Error("not an array"); }
    var spans = [];
    for (var i = 0; i < count; i++) { var end = decodeAt(bytes, pos, 1)[1]; spans.push(bytes.subarray(pos, end)); pos = end; }
    return spans;
  }

  // ------------------------------------------------------------------ hashes and Merkle trees

  function available() {
    return !!(global.crypto && global.crypto.subtle);
  }

  async function sha256(bytes) {
    return new Uint8Array(await global.crypto.subtle.digest("SHA-256", bytes));
  }

  function leafHash(leaf) { return sha256(concat(new Uint8Array([0]), leaf)); }
  function nodeHash(left, right) { return sha256(concat(new Uint8Array([1]), left, right)); }

  async function rootFromLeafHashes(hashes) {
    if (hashes.length === 0) { return sha256(new Uint8Array(0)); }
    var level = hashes.slice();
    while (level.length > 1) {
      var paired = [];
      for (var i = 0; i + 1 < level.length; i += 2) { paired.push(await nodeHash(level[i], level[i + 1])); }
      if (level.length % 2) { paired.push(level[level.length - 1]); }
      level = paired;
    }
    return level[0];
  }

  // RFC 9162 §2.1.3.2, as pilotchain.ledger.merkle.verify_inclusion (never throws on bad input).
  async function verifyInclusion(root, leaf, index, count, path) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(count)) || index < 0 || index >= count || path.length > PROOF_LENGTH_MAX) { return false; }
    var fn = index, sn = count - 1;
    var computed = await leafHash(leaf);
    for (var i = 0; i < path.length; i++) {
      if (sn === 0) { return false; }
      if (fn % 2 === 1 || fn === sn) {
        computed = await nodeHash(path[i], computed);
        if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        computed = await nodeHash(computed, path[i]);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(computed, root);
  }

  // ------------------------------------------------------------------ headers and certificates

  function readHeader(bytes) {
    var h = decode(bytes);
    if (!Array.isArray(h) || h.length !== HEADER_FIELDS) { throw new Error("not a block header (" + HEADER_FIELDS + " fields)"); }
    return { version: h[0], chainId: h[1], height: h[2], parentHash: h[3], proposer: h[4], timestampMs: h[5],
             txCount: h[6], txRoot: h[7], receiptRoot: h[8], stateRoot: h[9], validatorSetHash: h[10] };
  }

  function blockHash(headerBytes) { return sha256(concat(BLOCK_HASH_DOMAIN, headerBytes)); }

  function voteSigningBytes(chainId, height, round, hash) {
    return encode([VOTE_DOMAIN, chainId, PRECOMMIT, height, round, hash]);
  }

  function rosterHash(validators) {
    return sha256(concat(ROSTER_DOMAIN, encode(validators.map(function (v) {
      return [v.name, v.org, unhex(v.public_key), v.power];
    }))));
  }

  function validatorSetHash(validators) {
    return sha256(encode([validators.map(function (v) { return [unhex(v.public_key), v.power]; })]));
  }

  var ed25519Support = null;

  // Whether this browser's WebCrypto verifies Ed25519 (Chromium does; some browsers do not).
  async function ed25519Available() {
    if (ed25519Support === null) {
      try {
        // the RFC 8032 test 1 public key, as SubjectPublicKeyInfo DER
        await global.crypto.subtle.importKey("spki", unhex("302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
                                             { name: "Ed25519" }, false, ["verify"]);
        ed25519Support = true;
      } catch (e) {
        ed25519Support = false;
      }
    }
    return ed25519Support;
  }

  async function verifyEd25519(publicKeyDer, message, signature) {
    var key = await global.crypto.subtle.importKey("spki", publicKeyDer, { name: "Ed25519" }, false, ["verify"]);
    return global.crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  // Throws an Error saying what does not hold, as pilotchain.ledger.commit.verify_header_commit.
  async function checkCommit(header, headerHash, recordBytes, validators) {
    var spans = itemSpans(recordBytes);
    var record = decode(recordBytes);
    if (!Array.isArray(record) || record.length !== 2 || spans.length !== 2) { throw new Error(M("js.c.not_record")); }
    var consensus = record[0], certificate = record[1];
    if (!Array.isArray(consensus) || consensus.length !== 8 || !Array.isArray(certificate) || certificate.length !== 5) { throw new Error(M("js.c.not_record")); }
    if (!validators.length) { throw new Error(M("js.c.no_validators")); }
    if (consensus[1] !== header.height) { throw new Error(M("js.c.record_height", { record: consensus[1], block: header.height })); }
    if (!equal(consensus[0], enc.encode(header.chainId))) { throw new Error(M("js.c.record_chain")); }
    if (consensus[5] !== header.timestampMs) { throw new Error(M("js.c.record_time")); }
    if (!equal(consensus[7], headerHash)) { throw new Error(M("js.c.record_header")); }
    if (!equal(header.validatorSetHash, await rosterHash(validators))) { throw new Error(M("js.c.roster")); }
    if (!equal(consensus[6], await validatorSetHash(validators))) { throw new Error(M("js.c.set")); }
    var consensusHash = await sha256(spans[0]);
    var chainId = certificate[0], height = certificate[1], round = certificate[2], certified = certificate[3], signatures = certificate[4];
    if (!equal(certified, consensusHash)) { throw new Error(M("js.c.other_block")); }
    if (!equal(chainId, consensus[0])) { throw new Error(M("js.c.other_chain")); }
    if (height !== consensus[1]) { throw new Error(M("js.c.height", { height: height, expected: consensus[1] })); }
    if (!Number.isSafeInteger(round) || round < 0) { throw new Error(M("js.c.range")); }
    if (signatures.length > validators.length) { throw new Error(M("js.c.too_many")); }
    var message = voteSigningBytes(chainId, height, round, certified);
    var total = validators.reduce(function (sum, v) { return sum + v.power; }, 0);
    var power = 0, previous = -1, signers = [];
    signatures.forEach(function (entry) {
      var index = entry[0];
      if (!Number.isSafeInteger(index) || index <= previous) { throw new Error(M("js.c.order")); }
      if (index >= validators.length) { throw new Error(M("js.c.unknown", { index: index })); }
      previous = index;
      power += validators[index].power;
    });
    if (!(3 * power > 2 * total)) { throw new Error(M("js.c.quorum", { power: power, total: total })); }
    for (var i = 0; i < signatures.length; i++) {
      var v = validators[signatures[i][0]];
      if (!(await verifyEd25519(unhex(v.public_key), message, signatures[i][1]))) { throw new Error(M("js.c.signature", { index: signatures[i][0], name: v.name })); }
      signers.push(v.name + " (" + v.org + ")");
    }
    return { signers: signers, power: power, total: total };
  }

  // ------------------------------------------------------------------ what a page checks

  // Each check returns {state: "ok" | "failed" | "unavailable" | "absent", steps: [{ok, text}], reason}.
  function Report() { this.steps = []; }
  Report.prototype.pass = function (text) { this.steps.push({ ok: true, text: text }); };
  Report.prototype.fail = function (text) { this.steps.push({ ok: false, text: text }); this.state = "failed"; this.reason = text; return this.done(); };
  Report.prototype.done = function () { this.state = this.state || "ok"; return { state: this.state, steps: this.steps, reason: this.reason || "" }; };

  async function unavailable(doc) {
    if (doc.suite !== "intl") {
      return { state: "unavailable", steps: [], reason: M("js.v.suite", { suite: doc.suite }) };
    }
    if (!available()) {
      return { state: "unavailable", steps: [], reason: M("js.v.no_webcrypto") };
    }
    if (!(await ed25519Available())) {
      return { state: "unavailable", steps: [], reason: M("js.v.no_ed25519") };
    }
    return null;
  }

  async function checkHeaderAndCommit(report, doc) {
    var headerBytes = unhex(doc.header);
    var header;
    try { header = readHeader(headerBytes); } catch (e) { report.fail(M("js.v.bad_header", { error: e.message })); return null; }
    var hash = await blockHash(headerBytes);
    if (hex(hash) !== doc.block_hash) { report.fail(M("js.v.header_hash")); return null; }
    report.pass(M("js.v.header_ok", { height: header.height, hash: hex(hash).slice(0, 16) }));
    if (!doc.certificate) {
      report.absent = true;
      report.pass(M("js.v.no_certificate"));
      return header;
    }
    try {
      var certified = await checkCommit(header, hash, unhex(doc.certificate), doc.validators);
      report.pass(M("js.v.certificate_ok", { signed: certified.signers.length, count: doc.validators.length,
                                               power: certified.power, total: certified.total, names: certified.signers.join(", ") }));
    } catch (e) {
      report.fail(M("js.v.certificate_bad", { error: e.message }));
      return null;
    }
    return header;
  }

  // The header and its certificate, then ``body(report, header)``: what a page checks.
  async function check(doc, body) {
    var missing = await unavailable(doc);
    if (missing) { return missing; }
    var report = new Report();
    var header = await checkHeaderAndCommit(report, doc);
    if (!header) { return report.done(); }
    try {
      var failed = await body(report, header);
      if (failed) { return failed; }
    } catch (e) {
      return report.fail(M("js.v.undecodable", { error: e.message }));
    }
    var result = report.done();
    if (report.absent && result.state === "ok") { result.state = "absent"; }
    return result;
  }

  function checkTx(doc) {
    return check(doc, async function (report, header) {
      var raw = unhex(doc.tx), receiptBytes = unhex(doc.receipt);
      var envelope = decode(raw), receipt = decode(receiptBytes);
      if (!Array.isArray(envelope) || envelope.length !== 2 || !(envelope[0] instanceof Uint8Array)) { return report.fail(M("js.v.not_envelope")); }
      var txId = await sha256(concat(TX_ID_DOMAIN, envelope[0]));
      if (hex(txId) !== doc.tx_id) { return report.fail(M("js.v.tx_id_bad", { hash: hex(txId).slice(0, 16) })); }
      if (!Array.isArray(receipt) || !equal(receipt[0], txId)) { return report.fail(M("js.v.receipt_other")); }
      report.pass(M("js.v.tx_id_ok", { id: doc.tx_id.slice(0, 16) }));
      if (doc.tx_count !== header.txCount) { return report.fail(M("js.v.count_bad", { proof: doc.tx_count, header: header.txCount })); }
      var txPath = doc.tx_path.map(unhex), receiptPath = doc.receipt_path.map(unhex);
      if (!(await verifyInclusion(header.txRoot, raw, doc.index, doc.tx_count, txPath))) { return report.fail(M("js.v.tx_path_bad")); }
      report.pass(M("js.v.tx_path_ok", { index: doc.index, count: doc.tx_count }));
      if (!(await verifyInclusion(header.receiptRoot, receiptBytes, doc.index, doc.tx_count, receiptPath))) { return report.fail(M("js.v.receipt_path_bad")); }
      report.pass(M("js.v.receipt_path_ok"));
    });
  }

  function checkBlock(doc) {
    return check(doc, async function (report, header) {
      if (doc.tx_leaves.length !== header.txCount || doc.receipt_leaves.length !== header.txCount) {
        return report.fail(M("js.v.body_count", { header: header.txCount, txs: doc.tx_leaves.length, receipts: doc.receipt_leaves.length }));
      }
      var txLeaves = [], receiptLeaves = [], redacted = 0;
      for (var i = 0; i < doc.tx_leaves.length; i++) {
        var t = doc.tx_leaves[i], r = doc.receipt_leaves[i];
        if (t.leaf_hash) { redacted += 1; }
        txLeaves.push(t.leaf_hash ? unhex(t.leaf_hash) : await leafHash(unhex(t.raw)));
        receiptLeaves.push(r.leaf_hash ? unhex(r.leaf_hash) : await leafHash(unhex(r.raw)));
      }
      if (!equal(await rootFromLeafHashes(txLeaves), header.txRoot)) { return report.fail(M("js.v.tx_root_bad")); }
      if (!equal(await rootFromLeafHashes(receiptLeaves), header.receiptRoot)) { return report.fail(M("js.v.receipt_root_bad")); }
      report.pass(redacted ? M("js.v.roots_redacted", { count: header.txCount, redacted: redacted })
                           : M("js.v.roots_ok", { count: header.txCount }));
    });
  }

  function compareBytes(a, b) {
    for (var i = 0; i < Math.min(a.length, b.length); i++) { if (a[i] !== b[i]) { return a[i] - b[i]; } }
    return a.length - b.length;
  }

  // pilotchain.ledger.commitment.verify_state_proof: the key's whole bucket (sorted, so absence is
  // proven too), its leaf hash H(0x00 || encode(entries)), then the siblings up to the state root.
  function checkState(doc) {
    return check(doc, async function (report, header) {
      var key = concat(enc.encode(doc.contract), new Uint8Array([0]), unhex(doc.key));
      var bits = doc.bucket_bits;
      if (!Number.isSafeInteger(bits) || bits < 1 || bits > 20 || doc.siblings.length !== bits) { return report.fail(M("js.s.shape")); }
      var top = await sha256(key);
      var bucket = Math.floor((((top[0] << 24) >>> 0) + (top[1] << 16) + (top[2] << 8) + top[3]) / Math.pow(2, 32 - bits));
      if (bucket !== doc.bucket) { return report.fail(M("js.s.bucket")); }
      var entries = doc.entries.map(function (e) { return [unhex(e[0]), unhex(e[1])]; });
      var found = null;
      for (var i = 0; i < entries.length; i++) {
        if (i > 0 && compareBytes(entries[i][0], entries[i - 1][0]) <= 0) { return report.fail(M("js.s.unsorted")); }
        if (equal(entries[i][0], key)) { found = entries[i][1]; }
      }
      var value = doc.value === null ? null : unhex(doc.value);
      if (!(found === null && value === null) && !(found !== null && value !== null && equal(found, value))) {
        return report.fail(M("js.s.value"));
      }
      report.pass(M(value === null ? "js.s.absent_ok" : "js.s.value_ok", { bucket: bucket, count: entries.length }));
      var digest = await sha256(concat(new Uint8Array([0]), encode(entries)));
      var index = bucket;
      for (var j = 0; j < doc.siblings.length; j++) {
        digest = index % 2 === 1 ? await nodeHash(unhex(doc.siblings[j]), digest) : await nodeHash(digest, unhex(doc.siblings[j]));
        index = Math.floor(index / 2);
      }
      if (!equal(digest, header.stateRoot)) { return report.fail(M("js.s.root_bad")); }
      report.pass(M("js.s.root_ok", { height: header.height }));
    });
  }

  global.PilotchainVerify = {
    hex: hex, unhex: unhex, encode: encode, decode: decode, sha256: sha256, leafHash: leafHash,
    rootFromLeafHashes: rootFromLeafHashes, verifyInclusion: verifyInclusion, blockHash: blockHash,
    readHeader: readHeader, voteSigningBytes: voteSigningBytes, rosterHash: rosterHash,
    validatorSetHash: validatorSetHash, ed25519Available: ed25519Available, verifyEd25519: verifyEd25519,
    checkCommit: checkCommit, checkTx: checkTx, checkBlock: checkBlock, checkState: checkState, message: M
  };
}(window));
