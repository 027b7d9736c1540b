// Checks the household's balance and locked margin in the browser against what the validators
// signed, so that the reader need not trust the site's word (docs/ledger.md, "What a household's
// browser checks"). From GET /api/v1/ledger/state?key=bal/<address>&key=market/locked/<address>
// it checks, with WebCrypto only:
//   1. the block header hashes to the block hash: SHA-256 of its RFC 8785 canonical JSON
//      (ledger/blocks.py, block_hash);
//   2. the certificate: Ed25519 commit votes over {"block", "chain", "height", "kind": "commit"}
//      (commit_vote_bytes), every one valid and from a distinct validator of the page's genesis
//      keys, at least quorum(N) = N - (N - 1) // 3 of them;
//   3. each key's trie proof leads to the header's state_root (ledger/trie.py, verify);
// and then compares the proven figures (absent = 0) with the site's read model shown on the page.
//
// Markup: an element with data-state-proof holding data-address, data-chain, data-validators
// (public keys, hex, comma-separated, by index), data-balance, data-locked (the page's figures,
// minor units), data-height (the block they are of; empty if unknown), data-currency, data-api
// (the state proofs' URL), data-figures-url (a page that renders this element afresh) and
// optionally data-follows (a live region showing the figures: a change there checks again); a
// button [data-state-proof-verify] and an output [data-state-proof-result] inside it.
(function () {
  "use strict";

  var HEADER_FIELDS = [
    "chain", "events_root", "height", "previous_hash", "proposer", "results_root",
    "signatures_root", "state_root", "timestamp_ms", "tx_root",
  ];
  var HASH = /^[0-9a-f]{64}$/;
  var SIGNATURE = /^[0-9a-f]{128}$/;
  var NIBBLE = /^[0-9a-f]$/;
  var NIBBLES = 64;
  var ATTEMPTS = 3;  // to find the page's figures and a proof of the same block
  var utf8 = new TextEncoder();

  // A check that failed, in words ("Could not verify: <message>.").
  function Failed(message) { this.message = message; }
  function fail(message) { throw new Failed(message); }

  function fromHex(hex) {
    var bytes = new Uint8Array(hex.length / 2);
    for (var i = 0; i < bytes.length; i++) { bytes[i] = parseInt(hex.substr(i * 2, 2), 16); }
    return bytes;
  }

  function toHex(bytes) {
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function join(parts) {
    var length = parts.reduce(function (n, part) { return n + part.length; }, 0);
    var out = new Uint8Array(length);
    var at = 0;
    parts.forEach(function (part) { out.set(part, at); at += part.length; });
    return out;
  }

  function same(a, b) {
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }

  async function sha256(bytes) {
    return new Uint8Array(await window.crypto.subtle.digest("SHA-256", bytes));
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function hasExactly(object, names) {
    var keys = Object.keys(object).sort();
    return keys.length === names.length && keys.every(function (k, i) { return k === names[i]; });
  }

  // RFC 8785 for the ledger's values: keys sorted by UTF-16 code units (the default sort), no
  // whitespace, strings as JSON.stringify writes them (RFC 8785 adopts its escaping), integers
  // only (no floats, none beyond 2**53 - 1).
  function canonical(value) {
    if (value === null || typeof value === "boolean") { return JSON.stringify(value); }
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) { fail("the ledger's answer holds a number that is not an integer"); }
      return JSON.stringify(value);
    }
    if (typeof value === "string") {
      if (!value.isWellFormed()) { fail("the ledger's answer holds a malformed string"); }
      return JSON.stringify(value);
    }
    if (Array.isArray(value)) { return "[" + value.map(canonical).join(",") + "]"; }
    if (isObject(value)) {
      return "{" + Object.keys(value).sort().map(function (key) {
        return canonical(key) + ":" + canonical(value[key]);
      }).join(",") + "}";
    }
    fail("the ledger's answer holds a value JSON does not have");
  }

  // --- the state trie (ledger/trie.py) ----------------------------------------------------------

  function nibble(path, index) {
    var byte = path[index >> 1];
    return index & 1 ? byte & 0x0f : byte >> 4;
  }

  function leafHash(path, valueDigest) {
    return sha256(join([[0x01], path, valueDigest]));
  }

  function branchHash(prefix, children) {
    var indexes = Array.from(children.keys()).sort(function (a, b) { return a - b; });
    var bitmap = indexes.reduce(function (bits, i) { return bits | (1 << i); }, 0);
    return sha256(join([
      [0x02, prefix.length], prefix, [bitmap >> 8, bitmap & 0xff],
    ].concat(indexes.map(function (i) { return children.get(i); }))));
  }

  // Whether ``proof`` shows ``key`` holding ``value`` (null: absent) in the trie of ``rootHex``:
  // the root recomputed from the key's path and the proof's nodes, every hash a branch states for
  // the next node on the path being that node's recomputed hash. A proof that does not fit
  // together is false, as in ledger.trie.verify.
  async function verifyTrie(rootHex, key, value, proof) {
    if (typeof rootHex !== "string" || !HASH.test(rootHex) || !Array.isArray(proof)) { return false; }
    var root = fromHex(rootHex);
    var path = await sha256(utf8.encode(key));
    if (proof.length === 0) {
      return value === null && same(root, await sha256(new Uint8Array([0x00])));
    }
    var depth = 0;
    var ends = null;  // {leaf: [key hash, value hash]} or {absent: true}
    var branches = [];
    for (var position = 0; position < proof.length; position++) {
      var node = proof[position];
      var last = position === proof.length - 1;
      if (!isObject(node)) { return false; }
      if ("key_hash" in node) {
        if (!last || !hasExactly(node, ["key_hash", "value_hash"])) { return false; }
        if (typeof node.key_hash !== "string" || !HASH.test(node.key_hash)) { return false; }
        if (typeof node.value_hash !== "string" || !HASH.test(node.value_hash)) { return false; }
        ends = {leaf: [fromHex(node.key_hash), fromHex(node.value_hash)]};
        break;
      }
      if (!hasExactly(node, ["children", "prefix"])) { return false; }
      if (typeof node.prefix !== "string" || !isObject(node.children)) { return false; }
      var prefix = [];
      for (var p = 0; p < node.prefix.length; p++) {
        if (!NIBBLE.test(node.prefix[p])) { return false; }
        prefix.push(parseInt(node.prefix[p], 16));
      }
      var children = new Map();
      var names = Object.keys(node.children);
      for (var c = 0; c < names.length; c++) {
        var hash = node.children[names[c]];
        if (!NIBBLE.test(names[c]) || typeof hash !== "string" || !HASH.test(hash)) { return false; }
        children.set(parseInt(names[c], 16), fromHex(hash));
      }
      if (children.size < 2 || depth + prefix.length >= NIBBLES) { return false; }
      var onPrefix = prefix.every(function (n, k) { return nibble(path, depth + k) === n; });
      if (!onPrefix) {
        if (!last) { return false; }
        branches.push({prefix: prefix, children: children, onPath: null});
        ends = {absent: true};
        break;
      }
      var index = nibble(path, depth + prefix.length);
      branches.push({prefix: prefix, children: children, onPath: index});
      depth += prefix.length + 1;
      if (!children.has(index)) {
        if (!last) { return false; }
        ends = {absent: true};
        break;
      }
    }
    if (ends === null) { return false; }  // the proof ends inside the trie
    var below = null;
    if (ends.leaf) {
      var leafPath = ends.leaf[0];
      var leafValue = ends.leaf[1];
      if (same(leafPath, path)) {
        if (value === null || !same(leafValue, await sha256(utf8.encode(canonical(value))))) {
          return false;
        }
      } else if (value !== null) {
        return false;
      }
      below = await leafHash(leafPath, leafValue);
    } else if (value !== null) {
      return false;
    }
    for (var b = branches.length - 1; b >= 0; b--) {
      var branch = branches[b];
      if (below !== null && (branch.onPath === null || !same(branch.children.get(branch.onPath), below))) {
        return false;
      }
      below = await branchHash(branch.prefix, branch.children);
    }
    return same(below, root);
  }

  // --- blocks and certificates (ledger/blocks.py) -------------------------------------------------

  function quorum(n) { return n - Math.floor((n - 1) / 3); }

  var importedKeys = new Map();

  async function publicKey(hex, index) {
    if (!HASH.test(hex)) { fail("the page's public key of validator " + index + " is malformed"); }
    if (!importedKeys.has(hex)) {
      try {
        importedKeys.set(hex, await window.crypto.subtle.importKey(
          "raw", fromHex(hex), {name: "Ed25519"}, false, ["verify"]));
      } catch (error) {
        fail("this browser cannot check Ed25519 signatures (" + error.name + ")");
      }
    }
    return importedKeys.get(hex);
  }

  // The number of distinct validators whose commit votes for the block of ``header`` (whose hash
  // is ``hash``) verify; fails unless every vote does and they are a quorum.
  async function checkCertificate(header, hash, certificate, validators) {
    var n = validators.length;
    if (!Array.isArray(certificate)) { fail("block " + header.height + " comes without its certificate"); }
    var message = utf8.encode(canonical(
      {kind: "commit", chain: header.chain, height: header.height, block: hash}));
    var seen = new Set();
    for (var i = 0; i < certificate.length; i++) {
      var vote = certificate[i];
      if (!isObject(vote) || !Number.isSafeInteger(vote.validator) || vote.validator < 0 ||
          vote.validator >= n) {
        fail("a vote for block " + header.height + " names no validator of this network");
      }
      if (seen.has(vote.validator)) {
        fail("validator " + vote.validator + " voted twice for block " + header.height);
      }
      seen.add(vote.validator);
      var key = await publicKey(validators[vote.validator], vote.validator);
      var valid = typeof vote.signature === "string" && SIGNATURE.test(vote.signature) &&
        await window.crypto.subtle.verify("Ed25519", key, fromHex(vote.signature), message);
      if (!valid) {
        fail("the signature of validator " + vote.validator + " on block " + header.height +
             " does not verify");
      }
    }
    if (seen.size < quorum(n)) {
      fail("only " + seen.size + " of " + n + " validators signed block " + header.height +
           ", and " + quorum(n) + " must");
    }
    return seen.size;
  }

  // --- the proof and the page's figures -----------------------------------------------------------

  var LABELS = {balance: "balance", locked: "locked margin"};

  function keysOf(address) {
    return {balance: "bal/" + address, locked: "market/locked/" + address};
  }

  // The balance and locked margin the validators signed, with the block and its votes.
  async function proven(box) {
    var d = box.dataset;
    var keys = keysOf(d.address);
    var validators = d.validators ? d.validators.split(",") : [];
    var url = d.api + "?key=" + encodeURIComponent(keys.balance) +
      "&key=" + encodeURIComponent(keys.locked);
    var response;
    try {
      response = await window.fetch(url, {headers: {Accept: "application/json"}, cache: "no-store"});
    } catch (error) {
      fail("the site did not answer with a proof (" + error.message + ")");
    }
    var body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      fail("the site gave no proof (" + (body && body.message ? body.message : "HTTP " + response.status) + ")");
    }
    if (!isObject(body) || !isObject(body.header) || !hasExactly(body.header, HEADER_FIELDS)) {
      fail("the site's answer holds no block header");
    }
    var header = body.header;
    var height = header.height;
    if (!Number.isSafeInteger(height) || body.height !== height) {
      fail("the site's answer names another block than its header");
    }
    if (header.chain !== d.chain) {
      fail("block " + height + " is of another network (" + header.chain + ")");
    }
    var hash = toHex(await sha256(utf8.encode(canonical(header))));
    if (hash !== body.block_hash) {
      fail("the header of block " + height + " does not hash to the block's hash");
    }
    var votes = await checkCertificate(header, hash, body.certificate, validators);
    var figures = {height: height, votes: votes, validators: validators.length};
    var entries = Array.isArray(body.entries) ? body.entries : [];
    for (var name in keys) {
      var entry = entries.find(function (e) { return isObject(e) && e.key === keys[name]; });
      if (!entry) { fail("the site's answer holds no proof of your " + LABELS[name]); }
      var value = entry.value === undefined ? null : entry.value;
      if (entry.present !== (value !== null)) {
        fail("the site's answer says your " + LABELS[name] + " is both there and absent");
      }
      if (!await verifyTrie(header.state_root, keys[name], value, entry.proof)) {
        fail("the proof of your " + LABELS[name] + " does not lead to the state root of block " +
             height);
      }
      var amount = value === null ? 0 : value;  // absent: nothing
      if (!Number.isSafeInteger(amount) || amount < 0) {
        fail("your " + LABELS[name] + " at block " + height + " is not an amount");
      }
      figures[name] = amount;
    }
    return figures;
  }

  function amountOf(text) {
    var n = Number(text);
    if (text === "" || text === undefined || !Number.isSafeInteger(n)) {
      fail("the page's figures are not amounts");
    }
    return n;
  }

  // The read model's figures on the page, and the block they are of (null: unknown).
  function shown(box) {
    var d = box.dataset;
    return {
      height: d.height ? amountOf(d.height) : null,
      balance: amountOf(d.balance),
      locked: amountOf(d.locked),
    };
  }

  // The site's figures afresh: the page rendered again, this element read from it.
  async function reloadFigures(box) {
    var response;
    try {
      response = await window.fetch(box.dataset.figuresUrl,
                                    {headers: {Accept: "text/html"}, cache: "no-store"});
    } catch (error) {
      fail("the site's figures could not be read again (" + error.message + ")");
    }
    var page = new window.DOMParser().parseFromString(await response.text(), "text/html");
    var fresh = page.querySelector("[data-state-proof]");
    if (!response.ok || !fresh || fresh.dataset.address !== box.dataset.address) {
      fail("the site's figures could not be read again");
    }
    box.dataset.height = fresh.dataset.height;
    box.dataset.balance = fresh.dataset.balance;
    box.dataset.locked = fresh.dataset.locked;
    return shown(box);
  }

  // Minor units as the site writes them (gridplatform.money.text_from_minor): "€1,234.50".
  function money(minor, symbol) {
    var sign = minor < 0 ? "-" : "";
    var abs = Math.abs(minor);
    var major = String(Math.floor(abs / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + symbol + major + "." + ("0" + (abs % 100)).slice(-2);
  }

  // The outcome in words: {state, text}.
  async function check(box) {
    var symbol = box.dataset.currency || "";
    var figures = shown(box);
    var proof = await proven(box);
    // A block may commit between rendering the page and asking for the proof: compare only
    // figures and a proof of the same block.
    for (var attempt = 0; figures.height !== proof.height && attempt < ATTEMPTS; attempt++) {
      if (figures.height === null || figures.height < proof.height) {
        figures = await reloadFigures(box);
      } else {
        proof = await proven(box);
      }
    }
    var signed = "signed by " + proof.votes + " of " + proof.validators + " validators";
    var both = "your balance of " + money(proof.balance, symbol) + " and locked margin of " +
      money(proof.locked, symbol);
    if (figures.height !== proof.height) {
      return {
        state: "unknown",
        text: "The validators signed " + both + " at block " + proof.height + " (" +
          proof.votes + " of " + proof.validators + " signatures), but new blocks kept " +
          "arriving, so the page's figures were not compared with them: check again.",
      };
    }
    var wrong = [];
    Object.keys(LABELS).forEach(function (name) {
      if (figures[name] !== proof[name]) {
        wrong.push("The site shows a " + LABELS[name] + " of " + money(figures[name], symbol) +
          ", but the validators signed " + money(proof[name], symbol) + " at block " +
          proof.height + ": the site's figure is wrong.");
      }
    });
    if (wrong.length) { return {state: "wrong", text: wrong.join(" ")}; }
    return {
      state: "verified",
      text: "Verified against block " + proof.height + ", " + signed + ": " + both +
        " are what they signed.",
    };
  }

  function watch(box) {
    var button = box.querySelector("[data-state-proof-verify]");
    var output = box.querySelector("[data-state-proof-result]");
    var running = false;
    var again = false;

    function say(state, text) {
      output.dataset.state = state;
      output.textContent = text;
    }

    async function run() {
      if (running) { again = true; return; }
      running = true;
      button.disabled = true;
      try {
        do {
          again = false;
          say("checking", "Checking with the validators' signatures…");
          try {
            var outcome = await check(box);
            say(outcome.state, outcome.text);
          } catch (error) {
            var reason = error instanceof Failed
              ? error.message
              : "the site's answer is not a proof (" + (error && error.message) + ")";
            say("unverified", "Could not verify: " + reason + ".");
          }
        } while (again);
      } finally {
        running = false;
        button.disabled = false;
      }
    }

    button.addEventListener("click", run);
    // The live region re-fetches the figures after every block: when what it shows changes,
    // the mark would speak of figures no longer on the page, so check again.
    var follows = box.dataset.follows ? document.querySelector(box.dataset.follows) : null;
    if (follows) {
      var seen = follows.textContent;
      follows.addEventListener("htmx:afterSettle", function () {
        if (follows.textContent !== seen) {
          seen = follows.textContent;
          run();
        }
      });
    }
    run();
  }

  window.gridStateProof = {verifyTrie: verifyTrie, canonical: canonical, quorum: quorum};

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-state-proof]").forEach(watch);
  });
})();
