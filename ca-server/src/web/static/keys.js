// SPDX-License-Identifier: Apache-2.0 — part of Mamori (this repository), not third-party code.
// Mamori console: keys that never leave the browser. With WebCrypto this page makes an ECDSA
// P-256 key, keeps it in this browser's IndexedDB (origin-bound), builds the PKCS#10 CSR that
// the form sends, and once the certificate is issued bundles key + chain as a PKCS#12 file
// encrypted with a passphrase (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC; MAC HMAC-SHA256), all
// here. The server only ever sees the CSR. Our own code (no third-party library).
(function () {
  "use strict";
  var subtle = window.crypto && window.crypto.subtle;
  if (!subtle || !window.indexedDB) { return; }

  // --- DER -------------------------------------------------------------------------------
  function concat(parts) {
    var n = 0, i, out, at = 0;
    for (i = 0; i < parts.length; i++) { n += parts[i].length; }
    out = new Uint8Array(n);
    for (i = 0; i < parts.length; i++) { out.set(parts[i], at); at += parts[i].length; }
    return out;
  }
  function len(n) {
    if (n < 128) { return new Uint8Array([n]); }
    var bytes = [];
    while (n > 0) { bytes.unshift(n & 255); n = Math.floor(n / 256); }
    return new Uint8Array([128 | bytes.length].concat(bytes));
  }
  function tlv(tag, body) { return concat([new Uint8Array([tag]), len(body.length), body]); }
  function seq() { return tlv(0x30, concat(Array.prototype.slice.call(arguments))); }
  function set() { return tlv(0x31, concat(Array.prototype.slice.call(arguments))); }
  function ctx(n, body) { return tlv(0xa0 + n, body); }
  function octets(bytes) { return tlv(0x04, bytes); }
  function nul() { return new Uint8Array([5, 0]); }
  function utf8(text) { return tlv(0x0c, new TextEncoder().encode(text)); }
  function ia5(text) { return tlv(0x16, new TextEncoder().encode(text)); }
  function bits(bytes) { return tlv(0x03, concat([new Uint8Array([0]), bytes])); }
  function uint(bytes) {
    var i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) { i++; }
    bytes = bytes.slice(i);
    if (bytes[0] & 128) { bytes = concat([new Uint8Array([0]), bytes]); }
    return tlv(0x02, bytes);
  }
  function small(n) {
    var bytes = [];
    do { bytes.unshift(n & 255); n = Math.floor(n / 256); } while (n > 0);
    return uint(new Uint8Array(bytes));
  }
  function oid(text) {
    var arcs = text.split(".").map(Number), out = [40 * arcs[0] + arcs[1]], i, a, chunk;
    for (i = 2; i < arcs.length; i++) {
      a = arcs[i]; chunk = [a & 127]; a = Math.floor(a / 128);
      while (a > 0) { chunk.unshift(128 | (a & 127)); a = Math.floor(a / 128); }
      out = out.concat(chunk);
    }
    return tlv(0x06, new Uint8Array(out));
  }
  function b64(bytes) {
    var s = "", i;
    for (i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s);
  }
  function unb64(text) {
    var s = atob(text), out = new Uint8Array(s.length), i;
    for (i = 0; i < s.length; i++) { out[i] = s.charCodeAt(i); }
    return out;
  }
  function pem(label, bytes) {
    return "-----BEGIN " + label + "-----\n" + b64(bytes).replace(/(.{64})/g, "$1\n").replace(/\n$/, "") +
      "\n-----END " + label + "-----\n";
  }
  function pemBlocks(text) {
    var re = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g, m, out = [];
    while ((m = re.exec(text)) !== null) { out.push(unb64(m[1].replace(/\s+/g, ""))); }
    return out;
  }
  // The SubjectPublicKeyInfo inside a certificate: tbs is the first element of the outer
  // SEQUENCE; in it, after version [0], serial, signature, issuer, validity and subject.
  function children(der, at) {
    var out = [], end, tag, n, i, head, lenBytes;
    end = der.length;
    while (at < end) {
      tag = der[at]; n = der[at + 1]; head = 2;
      if (n & 128) { lenBytes = n & 127; n = 0; for (i = 0; i < lenBytes; i++) { n = n * 256 + der[at + 2 + i]; } head += lenBytes; }
      out.push({ tag: tag, start: at, body: at + head, end: at + head + n });
      at += head + n;
    }
    return out;
  }
  function spkiOf(cert) {
    var outer = children(cert, 0)[0];
    var tbs = children(cert.subarray(0, outer.end), outer.body)[0];
    var fields = children(cert.subarray(0, tbs.end), tbs.body);
    var k = fields[0].tag === 0xa0 ? 6 : 5;
    return cert.slice(fields[k].start, fields[k].end);
  }

  // --- keys in IndexedDB -------------------------------------------------------------------
  function db() {
    return new Promise(function (ok, fail) {
      var open = indexedDB.open("mamori-keys", 1);
      open.onupgradeneeded = function () { open.result.createObjectStore("keys"); };
      open.onsuccess = function () { ok(open.result); };
      open.onerror = function () { fail(open.error); };
    });
  }
  function store(id, pair) {
    return db().then(function (d) {
      return new Promise(function (ok, fail) {
        var tx = d.transaction("keys", "readwrite");
        tx.objectStore("keys").put(pair, id);
        tx.oncomplete = function () { ok(); };
        tx.onerror = function () { fail(tx.error); };
      });
    });
  }
  function load(id) {
    return db().then(function (d) {
      return new Promise(function (ok, fail) {
        var get = d.transaction("keys").objectStore("keys").get(id);
        get.onsuccess = function () { ok(get.result); };
        get.onerror = function () { fail(get.error); };
      });
    });
  }

  // --- CSR ---------------------------------------------------------------------------------
  function ecdsaDer(raw) {
    return seq(uint(raw.slice(0, 32)), uint(raw.slice(32)));
  }
  // An ECDSA P-256 key and a CSR for `fields` (o, cn, email, uri); resolves {csr, pair, spki}.
  function makeKeyAndCsr(fields) {
    var pair;
    return subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])
      .then(function (p) { pair = p; return subtle.exportKey("spki", p.publicKey); })
      .then(function (spki) {
        spki = new Uint8Array(spki);
        var rdns = [];
        if (fields.o) { rdns.push(set(seq(oid("2.5.4.10"), utf8(fields.o)))); }
        rdns.push(set(seq(oid("2.5.4.3"), utf8(fields.cn))));
        var attributes = new Uint8Array(0), names = [];
        if (fields.email) { names.push(tlv(0x81, new TextEncoder().encode(fields.email))); }
        if (fields.uri) { names.push(tlv(0x86, new TextEncoder().encode(fields.uri))); }
        if (names.length) {
          var san = seq(oid("2.5.29.17"), octets(seq.apply(null, names)));
          attributes = seq(oid("1.2.840.113549.1.9.14"), set(seq(san)));
        }
        var info = seq(small(0), seq.apply(null, rdns), spki, ctx(0, attributes));
        return subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, info).then(function (sig) {
          var csr = seq(info, seq(oid("1.2.840.10045.4.3.2")), bits(ecdsaDer(new Uint8Array(sig))));
          return { csr: pem("CERTIFICATE REQUEST", csr), pair: pair, spki: spki };
        });
      });
  }
  // A vendor's key and CSR; the key stays in this browser's IndexedDB for the PKCS#12 later.
  function makeCsr(fields) {
    return makeKeyAndCsr(fields).then(function (made) {
      return store(b64(made.spki), made.pair).then(function () { return made.csr; });
    });
  }

  // --- PKCS#12 -------------------------------------------------------------------------------
  function random(n) { return window.crypto.getRandomValues(new Uint8Array(n)); }
  function bmp(text) {
    var out = new Uint8Array(text.length * 2 + 2), i;
    for (i = 0; i < text.length; i++) { out[2 * i] = text.charCodeAt(i) >> 8; out[2 * i + 1] = text.charCodeAt(i) & 255; }
    return out;
  }
  function repeatTo(bytes, v) {
    if (bytes.length === 0) { return bytes; }
    var n = v * Math.ceil(bytes.length / v), out = new Uint8Array(n), i;
    for (i = 0; i < n; i++) { out[i] = bytes[i % bytes.length]; }
    return out;
  }
  // RFC 7292 appendix B.2 with SHA-256 (u = 32, v = 64), for one 32-byte MAC key (id 3).
  function pkcs12Kdf(password, salt, iterations) {
    var d = new Uint8Array(64).fill(3);
    var input = concat([d, repeatTo(salt, 64), repeatTo(bmp(password), 64)]);
    var round = function (bytes, left) {
      return subtle.digest("SHA-256", bytes).then(function (h) {
        h = new Uint8Array(h);
        return left > 1 ? round(h, left - 1) : h;
      });
    };
    return round(input, iterations);
  }
  function pbes2(password, plain) {
    var salt = random(16), iv = random(16), iterations = 100000;
    return subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveKey"])
      .then(function (base) {
        return subtle.deriveKey({ name: "PBKDF2", salt: salt, iterations: iterations, hash: "SHA-256" },
          base, { name: "AES-CBC", length: 256 }, false, ["encrypt"]);
      })
      .then(function (key) { return subtle.encrypt({ name: "AES-CBC", iv: iv }, key, plain); })
      .then(function (cipher) {
        var algorithm = seq(oid("1.2.840.113549.1.5.13"), seq(
          seq(oid("1.2.840.113549.1.5.12"), seq(octets(salt), small(iterations), seq(oid("1.2.840.113549.2.9"), nul()))),
          seq(oid("2.16.840.1.101.3.4.1.42"), octets(iv))));
        return seq(algorithm, octets(new Uint8Array(cipher)));
      });
  }
  function pkcs12(password, privateKey, chain) {
    var keyId;
    return subtle.digest("SHA-256", chain[0])
      .then(function (h) { keyId = new Uint8Array(h).slice(0, 20); return subtle.exportKey("pkcs8", privateKey); })
      .then(function (pkcs8) { return pbes2(password, new Uint8Array(pkcs8)); })
      .then(function (encrypted) {
        var idAttribute = set(seq(oid("1.2.840.113549.1.9.21"), set(octets(keyId))));
        var bags = [seq(oid("1.2.840.113549.1.12.10.1.2"), ctx(0, encrypted), idAttribute)];
        chain.forEach(function (cert, i) {
          var bag = ctx(0, seq(oid("1.2.840.113549.1.9.22.1"), ctx(0, octets(cert))));
          bags.push(i === 0 ? seq(oid("1.2.840.113549.1.12.10.1.3"), bag, idAttribute)
                            : seq(oid("1.2.840.113549.1.12.10.1.3"), bag));
        });
        var safe = seq.apply(null, bags);
        var authSafe = seq(seq(oid("1.2.840.113549.1.7.1"), ctx(0, octets(safe))));
        var macSalt = random(16), iterations = 2048;
        return pkcs12Kdf(password, macSalt, iterations)
          .then(function (k) { return subtle.importKey("raw", k, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]); })
          .then(function (k) { return subtle.sign("HMAC", k, authSafe); })
          .then(function (mac) {
            var macData = seq(seq(seq(oid("2.16.840.1.101.3.4.2.1"), nul()), octets(new Uint8Array(mac))),
              octets(macSalt), small(iterations));
            return seq(small(3), seq(oid("1.2.840.113549.1.7.1"), ctx(0, octets(authSafe))), macData);
          });
      });
  }

  // --- the pages ------------------------------------------------------------------------------
  function say(el, text) { el.textContent = text; el.hidden = false; }

  var keygen = document.getElementById("keygen");
  if (keygen) {
    keygen.hidden = false;
    document.getElementById("keygen-button").addEventListener("click", function () {
      var status = document.getElementById("keygen-status");
      var fields = {
        cn: document.getElementById("keygen-cn").value.trim(),
        o: document.getElementById("keygen-o").value.trim(),
        email: document.getElementById("keygen-email").value.trim()
      };
      if (!fields.cn) { say(status, keygen.dataset.needCn); return; }
      makeCsr(fields).then(function (csr) {
        document.getElementById("csr").value = csr;
        say(status, keygen.dataset.done);
      }, function (e) { say(status, String(e)); });
    });
  }

  var importer = document.getElementById("import");
  if (importer) {
    document.getElementById("import-button").addEventListener("click", function () {
      var file = document.getElementById("csv").files[0];
      var status = document.getElementById("import-status");
      var bar = document.getElementById("import-progress");
      if (!file) { return; }
      file.text().then(function (text) {
        var rows = text.split(/\r?\n/).map(function (l) { return l.split(",")[0].trim(); })
          .filter(function (id, i) { return id && !(i === 0 && id.toLowerCase() === "id"); });
        var seen = {}, report = ["id,status,serial,duplicates,error"], keys = [];
        var counts = { issued: 0, skipped: 0, failed: 0 }, started = Date.now(), i = 0;
        var reissue = document.getElementById("reissue").checked;
        bar.max = Math.max(rows.length, 1); bar.value = 0;
        var quote = function (t) { return '"' + String(t || "").replace(/"/g, '""') + '"'; };
        var record = function (id, result) {
          counts[result.status] = (counts[result.status] || 0) + 1;
          report.push([quote(id), result.status, result.serial || "", quote((result.duplicates || []).join(" ")),
                       quote(result.error || result.detail || "")].join(","));
          i += 1; bar.value = i;
          var seconds = (Date.now() - started) / 1000, rate = i / Math.max(seconds, 0.001);
          var d = importer.dataset;
          status.textContent = i + " / " + rows.length + " — " + d.issued + " " + counts.issued + ", " +
            d.skipped + " " + counts.skipped + ", " + d.failed + " " + counts.failed + " — " +
            rate.toFixed(1) + "/s, " + Math.round((rows.length - i) / rate) + " " + d.left;
        };
        var next = function () {
          if (i >= rows.length) {
            status.textContent += " — " + importer.dataset.done;
            var link = document.getElementById("import-report");
            link.href = URL.createObjectURL(new Blob([report.join("\n") + "\n"], { type: "text/csv" }));
            link.hidden = false;
            if (keys.length) {
              var k = document.getElementById("import-keys");
              k.href = URL.createObjectURL(new Blob([keys.join("")], { type: "application/x-pem-file" }));
              k.hidden = false;
            }
            importer.dataset.finished = "1";
            return Promise.resolve();
          }
          var id = rows[i];
          if (!/^[a-z0-9-]{1,40}$/.test(id)) { record(id, { status: "failed", error: importer.dataset.badId }); return next(); }
          if (seen[id]) { record(id, { status: "failed", error: importer.dataset.repeated }); return next(); }
          seen[id] = true;
          return makeKeyAndCsr({ cn: "amb-" + id, uri: "urn:mamori:device:ambulance:" + id }).then(function (made) {
            return fetch("/devices/request", {
              method: "POST", credentials: "same-origin",
              headers: { "content-type": "application/json", "x-csrf-token": importer.dataset.csrf },
              body: JSON.stringify({ id: id, csr: made.csr, reissue: reissue })
            }).then(function (r) { return r.json(); }).then(function (result) {
              if (!result.status || result.status === "about:blank") { result = { status: "failed", error: result.detail || result.title }; }
              if (result.status === "issued") {
                return subtle.exportKey("pkcs8", made.pair.privateKey).then(function (p8) {
                  keys.push("# amb-" + id + "\n" + pem("PRIVATE KEY", new Uint8Array(p8)) + (result.chain || ""));
                  record(id, result);
                });
              }
              record(id, result);
            });
          }).catch(function (e) { record(id, { status: "failed", error: String(e) }); }).then(next);
        };
        return next();
      });
    });
  }

  var bundle = document.getElementById("bundle");
  if (bundle) {
    var status = document.getElementById("bundle-status");
    fetch(bundle.dataset.chain, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (text) {
        var chain = pemBlocks(text);
        return load(b64(spkiOf(chain[0]))).then(function (pair) {
          if (!pair) { say(status, bundle.dataset.noKey); return; }
          bundle.hidden = false;
          document.getElementById("bundle-button").addEventListener("click", function () {
            var pass = document.getElementById("bundle-pass").value;
            if (pass.length < 8) { say(status, bundle.dataset.shortPass); return; }
            pkcs12(pass, pair.privateKey, chain).then(function (pfx) {
              var link = document.getElementById("bundle-link");
              link.href = URL.createObjectURL(new Blob([pfx], { type: "application/x-pkcs12" }));
              link.hidden = false;
              say(status, bundle.dataset.done);
            }, function (e) { say(status, String(e)); });
          });
        });
      })
      .catch(function (e) { say(status, String(e)); });
  }
})();
