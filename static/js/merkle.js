// Checks a transaction's inclusion proof in the browser, so that the reader need not trust the
// server's word: RFC 9162 section 2.1.3.2 (the same audit paths as RFC 6962), with SHA-256 from
// WebCrypto. The leaf is the raw 32-byte transaction id; the root is the block's tx_root.
//
// Markup: an element with data-merkle-proof holding data-leaf, data-index, data-tree-size,
// data-root (hex) and data-path (hex hashes, comma-separated), a button [data-merkle-verify]
// inside it and an output [data-merkle-result].
(function () {
  "use strict";

  function fromHex(hex) {
    var bytes = new Uint8Array(hex.length / 2);
    for (var i = 0; i < bytes.length; i++) { bytes[i] = parseInt(hex.substr(i * 2, 2), 16); }
    return bytes;
  }

  function toHex(bytes) {
    return Array.prototype.map.call(new Uint8Array(bytes), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function concat(prefix, a, b) {
    var out = new Uint8Array(1 + a.length + (b ? b.length : 0));
    out[0] = prefix;
    out.set(a, 1);
    if (b) { out.set(b, 1 + a.length); }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await window.crypto.subtle.digest("SHA-256", bytes));
  }

  async function verifyInclusion(leafHex, index, treeSize, pathHex, rootHex) {
    if (index >= treeSize) { return false; }
    var fn = index;
    var sn = treeSize - 1;
    var r = await sha256(concat(0, fromHex(leafHex)));
    for (var i = 0; i < pathHex.length; i++) {
      var p = fromHex(pathHex[i]);
      if (sn === 0) { return false; }
      if ((fn & 1) === 1 || fn === sn) {
        r = await sha256(concat(1, p, r));
        while ((fn & 1) === 0 && fn !== 0) { fn >>= 1; sn >>= 1; }
      } else {
        r = await sha256(concat(1, r, p));
      }
      fn >>= 1;
      sn >>= 1;
    }
    return sn === 0 && toHex(r) === rootHex;
  }

  window.gridMerkle = { verifyInclusion: verifyInclusion };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-merkle-proof]").forEach(function (box) {
      var button = box.querySelector("[data-merkle-verify]");
      var output = box.querySelector("[data-merkle-result]");
      button.addEventListener("click", async function () {
        var d = box.dataset;
        var path = d.path ? d.path.split(",") : [];
        var ok = false;
        try {
          ok = await verifyInclusion(d.leaf, parseInt(d.index, 10), parseInt(d.treeSize, 10),
                                     path, d.root);
        } catch (error) { ok = false; }
        output.dataset.state = ok ? "valid" : "invalid";
        output.textContent = ok
          ? "Verified in your browser: this transaction is in the block's Merkle root."
          : "Proof does NOT verify against the block's Merkle root.";
      });
    });
  });
})();
