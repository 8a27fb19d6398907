#!/usr/bin/env python3
"""Writes the hostile-input corpus in this folder and its MANIFEST.tsv.

Each case is one file and one MANIFEST line: file, target, what it is. The targets (how
tests/tests/hostile.rs sends a file) are:

  ocsp-post            POST /ocsp, Content-Type application/ocsp-request, body = file
  ocsp-post-as:<type>  POST /ocsp with another Content-Type
  ocsp-get             GET /ocsp/<base64 of the file, URL-encoded>
  ocsp-get-raw         GET /ocsp/<file content, as is>
  submit-csr           POST /api/v1/requests as a device enroller, the file as the "csr" field
  api:<M>:<path>:<who> <M> <path> with the file as a JSON body (who: none, enroller, officer, admin)
  api-as:<type>:<M>:<path>:<who>  the same with another Content-Type
  api-path:<who>       GET /api/v1/<file content>
  token                GET /api/v1/me with "Authorization: Bearer <file content>"
  login-totp           login as the enroller with the right password and the file as the code
  cli:<args>           ca-cli with these arguments, {} replaced by the file's path
  huge:<M>:<path>      a body of (the number in the file) bytes of "A"
  scep-post:<profile>  POST /scep/<profile>?operation=PKIOperation on the SCEP listener, body = file
  scep-get:<profile>   GET /scep/<profile>?operation=PKIOperation&message=<base64 of the file>
  est-enroll:<profile> POST /.well-known/est/<profile>/simpleenroll with a fresh one-time code
  est-reenroll:<profile> the same to simplereenroll, without a client certificate

SCEP cases start from tests/data/scep/pkcsreq-scepclient-foreign-ra.der, a real PKCSReq that
Debian's micromdm scepclient sent to another Mamori (so it is encrypted to a foreign RA).

Run it from anywhere: python3 tests/data/bad/generate.py (needs openssl on PATH). It writes
new random bytes and keys each time; the committed files are the corpus.
"""
import base64
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
cases = []


def case(name, data, target, what):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    cases.append((name, target, what))


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


tmp = tempfile.mkdtemp()
key = os.path.join(tmp, "k.pem")
openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
subj = "/CN=amb-corpus"
san = "subjectAltName=URI:urn:mamori:device:ambulance:corpus"
csr_der = openssl("req", "-new", "-key", key, "-subj", subj, "-addext", san, "-outform", "DER")
csr_pem = openssl("req", "-in", "/dev/stdin", "-inform", "DER", stdin=csr_der)
ca_key = os.path.join(tmp, "ca.pem")
openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
cert_pem = openssl("req", "-new", "-x509", "-key", ca_key, "-subj", "/CN=foreign", "-days", "1")
cert_der = openssl("x509", "-in", "/dev/stdin", "-outform", "DER", stdin=cert_pem)
cert_file = os.path.join(tmp, "foreign.pem")
with open(cert_file, "wb") as f:
    f.write(cert_pem)
req_file = os.path.join(tmp, "req.der")
openssl("ocsp", "-issuer", cert_file, "-serial", "0x1234", "-no_nonce", "-reqout", req_file)
req_der = open(req_file, "rb").read()


def pem(label, der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def nested(depth, tag=0x30):
    body = b"\x05\x00"
    for _ in range(depth):
        n = len(body)
        if n < 128:
            body = bytes([tag, n]) + body
        elif n < 256:
            body = bytes([tag, 0x81, n]) + body
        else:
            body = bytes([tag, 0x82, n >> 8, n & 0xff]) + body
    return body


# --- OCSP requests (POST) -------------------------------------------------------------------
case("ocsp-empty.bin", b"", "ocsp-post", "empty OCSP request body")
case("ocsp-garbage.bin", os.urandom(64), "ocsp-post", "64 random bytes")
case("ocsp-text.bin", "hello, responder", "ocsp-post", "plain text instead of DER")
for cut in (1, 2, 5, 10, 20, len(req_der) // 2, len(req_der) - 1):
    case(f"ocsp-truncated-{cut}.der", req_der[:cut], "ocsp-post", f"a real OCSP request cut after {cut} bytes")
case("ocsp-trailing.der", req_der + b"\x00\x00", "ocsp-post", "a real OCSP request with trailing bytes")
case("ocsp-nested-1000.der", nested(1000), "ocsp-post", "SEQUENCE nested 1000 deep")
case("ocsp-nested-headers.der", b"\x30\x82\xff\xff" * 2000, "ocsp-post", "2000 SEQUENCE headers each claiming 64 KiB, no content")
case("ocsp-huge-length.der", b"\x30\x84\x7f\xff\xff\xff\x30\x00", "ocsp-post", "SEQUENCE claiming 2 GiB of content")
case("ocsp-indefinite.der", b"\x30\x80\x30\x00\x00\x00", "ocsp-post", "BER indefinite length (not DER)")
case("ocsp-long-form-small.der", b"\x30\x81\x02\x30\x00", "ocsp-post", "non-minimal length encoding")
case("ocsp-wrong-tag.der", b"\x31" + req_der[1:], "ocsp-post", "SET where the request SEQUENCE belongs")
case("ocsp-certificate.der", cert_der, "ocsp-post", "a certificate instead of a request")
case("ocsp-csr.der", csr_der, "ocsp-post", "a CSR instead of a request")
case("ocsp-foreign-issuer.der", req_der, "ocsp-post", "a well-formed request for an issuer this CA is not")
flip = bytearray(req_der)
flip[len(flip) // 2] ^= 0xff
case("ocsp-bitflip.der", bytes(flip), "ocsp-post", "a real request with one byte inverted")
case("ocsp-zeros.bin", b"\x00" * 512, "ocsp-post", "512 zero bytes")
case("ocsp-ff.bin", b"\xff" * 512, "ocsp-post", "512 0xff bytes")
case("ocsp-sql.txt", "' OR 1=1; DROP TABLE certificates; --", "ocsp-post", "SQL injection as the body")
case("ocsp-as-json.bin", req_der, "ocsp-post-as:application/json", "a real OCSP request sent as JSON")
case("ocsp-as-text.bin", req_der, "ocsp-post-as:text/plain", "a real OCSP request sent as text/plain")
case("ocsp-as-form.bin", req_der, "ocsp-post-as:application/x-www-form-urlencoded", "a real OCSP request sent as a form")
case("ocsp-big.bin", os.urandom(70000), "ocsp-post", "70,000 random bytes, over the OCSP request limit")

# --- OCSP requests (GET) --------------------------------------------------------------------
case("ocsp-get-garbage.bin", os.urandom(40), "ocsp-get", "random bytes, base64 in the URL")
case("ocsp-get-truncated.der", req_der[:15], "ocsp-get", "a truncated request in the URL")
case("ocsp-get-nested.der", nested(500), "ocsp-get", "deep nesting in the URL")
case("ocsp-get-not-base64.txt", "!!!not*base64!!!", "ocsp-get-raw", "characters outside base64 in the URL")
case("ocsp-get-traversal.txt", "..%2F..%2F..%2Fetc%2Fpasswd", "ocsp-get-raw", "path traversal in the OCSP URL")
case("ocsp-get-null.txt", "MAo%00AAA", "ocsp-get-raw", "an encoded NUL in the OCSP URL")
case("ocsp-get-utf8.txt", "%C3%28%A0%A1", "ocsp-get-raw", "invalid UTF-8, percent-encoded")
case("ocsp-get-long.txt", "A" * 7000, "ocsp-get-raw", "a 7000-character OCSP URL")
case("ocsp-get-empty.txt", "%20", "ocsp-get-raw", "a blank OCSP request in the URL")

# --- CSRs (API submit and ca-cli request submit) --------------------------------------------
csr_cases = []


def csr_case(name, data, what):
    case(name, data, "submit-csr", what)
    csr_cases.append((name, what))


def make_csr(subject, extension, k=key):
    return openssl("req", "-new", "-key", k, "-subj", subject, "-addext", extension)


csr_case("csr-empty.pem", "", "empty CSR")
csr_case("csr-garbage.pem", "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n",
         "PEM armour around garbage")
csr_case("csr-no-armour.txt", base64.b64encode(csr_der).decode(), "base64 without PEM armour")
for cut in (4, 30, len(csr_der) // 2, len(csr_der) - 3):
    csr_case(f"csr-truncated-{cut}.pem", pem("CERTIFICATE REQUEST", csr_der[:cut]), f"a real CSR cut after {cut} bytes")
bad_sig = bytearray(csr_der)
bad_sig[-5] ^= 0x55
csr_case("csr-bad-signature.pem", pem("CERTIFICATE REQUEST", bytes(bad_sig)),
         "a real CSR with its signature altered (no proof of possession)")
tampered = csr_der.replace(b"amb-corpus", b"amb-corpux")
csr_case("csr-tampered-subject.pem", pem("CERTIFICATE REQUEST", tampered), "a real CSR whose subject was edited after signing")
csr_case("csr-nested.pem", pem("CERTIFICATE REQUEST", nested(2000)), "2000-deep nesting in PEM armour")
csr_case("csr-huge-length.pem", pem("CERTIFICATE REQUEST", b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 10), "a CSR claiming 2 GiB")
csr_case("csr-certificate.pem", cert_pem, "a certificate instead of a CSR")
csr_case("csr-private-key.pem", open(key, "rb").read(), "a private key instead of a CSR")
csr_case("csr-two.pem", csr_pem + csr_pem, "two CSRs in one")
csr_case("csr-wrong-label.pem", pem("X509 CRL", csr_der), "a CSR under a CRL label")
csr_case("csr-invalid-utf8.pem", b"\xc3\x28\xa0\xa1\xff\xfe", "invalid UTF-8")
csr_case("csr-null-bytes.pem", csr_pem.replace(b"\n", b"\x00"), "NUL bytes instead of newlines")
csr_case("csr-sql.pem", "'; DELETE FROM certificates; --", "SQL injection as the CSR")
rsa = os.path.join(tmp, "rsa.pem")
openssl("genrsa", "-out", rsa, "1024")
csr_case("csr-rsa-1024.pem", make_csr(subj, san, rsa), "RSA 1024 key (too weak)")
sec = os.path.join(tmp, "secp256k1.pem")
openssl("ecparam", "-name", "secp256k1", "-genkey", "-noout", "-out", sec)
csr_case("csr-secp256k1.pem", make_csr(subj, san, sec), "an unsupported curve (secp256k1)")
many = ",".join(f"URI:urn:mamori:device:ambulance:d{i}" for i in range(300))
csr_case("csr-300-sans.pem", make_csr(subj, f"subjectAltName={many}"), "300 URI SANs (profile allows one)")
dns = ",".join(f"DNS:h{i}.evil.example" for i in range(200))
csr_case("csr-200-dns.pem", make_csr(subj, f"subjectAltName={dns}"), "200 DNS SANs on a device profile")
csr_case("csr-evil-cn.pem", make_csr("/CN=amb-x' OR '1'='1", san), "SQL injection in the CN")
csr_case("csr-traversal-uri.pem", make_csr(subj, "subjectAltName=URI:urn:mamori:device:ambulance:../../etc/passwd"),
         "path traversal in the device URI")
csr_case("csr-long-cn.pem", make_csr("/CN=amb-" + "a" * 60, san), "a 64-character CN beyond the pattern")


# --- JSON bodies ----------------------------------------------------------------------------
def api(name, data, method, path, who, what, ctype=None):
    target = f"api:{method}:{path}:{who}" if ctype is None else f"api-as:{ctype}:{method}:{path}:{who}"
    case(name, data, target, what)


submit = ("POST", "/api/v1/requests", "enroller")
api("json-empty.json", "", *submit, "empty body")
api("json-not-json.json", "profile=ambulance-terminal", *submit, "form data instead of JSON")
api("json-truncated.json", '{"profile": "ambulance-terminal", "csr": "', *submit, "JSON cut mid-string")
api("json-array.json", "[1, 2, 3]", *submit, "an array instead of an object")
api("json-null.json", "null", *submit, "null")
api("json-number.json", "12345678901234567890123456789", *submit, "a huge number")
api("json-wrong-types.json", '{"profile": 7, "csr": true, "justification": []}', *submit, "wrong types for every field")
api("json-unknown-field.json", '{"profile": "ambulance-terminal", "csr": "x", "justification": "j", "approved": true}', *submit,
    "an unknown field (approved: true)")
api("json-missing-fields.json", "{}", *submit, "no fields at all")
api("json-unknown-profile.json", '{"profile": "root-ca", "csr": "x", "justification": "j"}', *submit, "a profile that does not exist")
api("json-traversal-profile.json", '{"profile": "../../etc/passwd", "csr": "x", "justification": "j"}', *submit,
    "path traversal as the profile id")
api("json-sql-profile.json", '{"profile": "x\' OR 1=1 --", "csr": "x", "justification": "j"}', *submit, "SQL injection as the profile id")
api("json-invalid-utf8.json", b'{"profile": "\xff\xfe", "csr": "x", "justification": "j"}', *submit, "invalid UTF-8 inside a string")
api("json-deep.json", "[" * 5000 + "]" * 5000, *submit, "arrays nested 5000 deep")
api("json-duplicate-keys.json", '{"profile": "a", "profile": "b", "csr": "x", "justification": "j"}', *submit, "duplicate keys")
api("json-bad-escape.json", '{"profile": "\\uZZZZ", "csr": "x", "justification": "j"}', *submit, "an invalid \\u escape")
api("json-lone-surrogate.json", '{"profile": "\\ud800", "csr": "x", "justification": "j"}', *submit, "a lone UTF-16 surrogate")
api("json-vendor-wrong-role.json", '{"profile": "vendor-maintenance", "csr": "x", "justification": "j"}', *submit,
    "a profile the caller's role may not request")
api("json-window-garbage.json",
    '{"profile": "ambulance-terminal", "csr": "x", "justification": "j", "not_before": "yesterday", "not_after": "never"}',
    *submit, "unparseable maintenance window")
api("json-as-text.json", '{"profile": "ambulance-terminal", "csr": "x", "justification": "j"}', *submit,
    "valid JSON sent as text/plain", ctype="text/plain")
api("json-as-xml.json", "<request><profile>ambulance-terminal</profile></request>", *submit, "XML", ctype="application/xml")
api("json-as-ocsp.json", req_der, *submit, "an OCSP request sent to the API as ocsp-request", ctype="application/ocsp-request")
login = ("POST", "/api/v1/login", "none")
api("login-empty.json", "{}", *login, "login without fields")
api("login-sql.json", '{"username": "admin\' --", "password": "x", "totp": "000000"}', *login, "SQL injection as the user name")
api("login-long-user.json", '{"username": "' + "u" * 5000 + '", "password": "x", "totp": "000000"}', *login,
    "a 5000-character user name")
api("login-long-password.json", '{"username": "admin", "password": "' + "p" * 100000 + '", "totp": "000000"}', *login,
    "a 100,000-character password")
api("login-types.json", '{"username": ["admin"], "password": {"$ne": null}, "totp": 123456}', *login, "NoSQL-style operator objects")
api("login-unknown-user.json", '{"username": "nobody", "password": "x", "totp": "123456"}', *login, "an unknown user")
api("login-invalid-utf8.json", b'{"username": "\xc3\x28", "password": "x", "totp": "123456"}', *login, "invalid UTF-8 user name")
api("login-null.json", '{"username": null, "password": null, "totp": null}', *login, "nulls")
users = ("POST", "/api/v1/users", "admin")
api("user-bad-role.json", '{"username": "mallory", "password": "long enough password", "roles": ["root"]}', *users,
    "a role that does not exist")
api("user-sql-name.json", '{"username": "x\'); DROP TABLE users; --", "password": "long enough password", "roles": ["auditor"]}',
    *users, "SQL injection as a new user name")
api("user-short-password.json", '{"username": "shorty", "password": "a", "roles": ["auditor"]}', *users, "a one-character password")
api("user-by-officer.json", '{"username": "mallory", "password": "long enough password", "roles": ["admin"]}', "POST",
    "/api/v1/users", "officer", "a security officer trying to create an admin")
api("user-self-roles.json", '{"roles": ["admin"]}', "PUT", "/api/v1/users/enroller/roles", "enroller",
    "an enroller granting itself admin")
api("revoke-bad-reason.json", '{"reason": "because", "totp": "000000"}', "POST", "/api/v1/certificates/issuing/01/revoke", "officer",
    "an unknown revocation reason")
api("revoke-unknown-serial.json", '{"reason": "key-compromise", "totp": "000000"}', "POST",
    "/api/v1/certificates/issuing/ffffffffffffffffffffffffffffffff/revoke", "officer", "revoking a serial that does not exist")
api("revoke-by-enroller.json", '{"reason": "key-compromise", "totp": "000000"}', "POST", "/api/v1/certificates/issuing/01/revoke",
    "enroller", "an enroller trying to revoke")
api("revoke-sql-serial.json", '{"reason": "key-compromise", "totp": "000000"}', "POST",
    "/api/v1/certificates/issuing/1'%20OR%20'1'='1/revoke", "officer", "SQL injection as the serial")
api("revoke-future-invalidity.json", '{"reason": "key-compromise", "totp": "000000", "invalidity_date": "2999-01-01T00:00:00Z"}',
    "POST", "/api/v1/certificates/issuing/01/revoke", "officer", "an invalidity date in the future")
api("approve-unknown.json", '{"totp": "000000", "comment": "ok"}', "POST",
    "/api/v1/requests/00000000-0000-0000-0000-000000000000/approve", "officer", "approving a request that does not exist")
api("approve-bad-id.json", '{"totp": "000000", "comment": "ok"}', "POST", "/api/v1/requests/..%2F..%2Fusers/approve", "officer",
    "path traversal as the request id")
api("approve-no-totp.json", '{"comment": "ok"}', "POST", "/api/v1/requests/x/approve", "officer", "approving without a TOTP code")
api("approve-by-enroller.json", '{"totp": "000000", "comment": "ok"}', "POST", "/api/v1/requests/x/approve", "enroller",
    "an enroller trying to approve")
for i, (code, what) in enumerate((("", "empty"), ("12345", "five digits"), ("1234567", "seven digits"), ("abcdef", "letters"),
                                  ("12 456", "a space"), ("999999999999999999999", "a huge number"), ("-12345", "a negative number"),
                                  ("１２３４５６", "full-width digits"))):
    api(f"approve-totp-{i:02}.json", '{"totp": "%s", "comment": "ok"}' % code, "POST", "/api/v1/requests/x/approve", "officer",
        f"a malformed TOTP code in a step-up ({what})")
case("huge-submit.txt", str(4 * 1024 * 1024), "huge:POST:/api/v1/requests", "a 4 MiB request body")
case("huge-login.txt", str(2 * 1024 * 1024), "huge:POST:/api/v1/login", "a 2 MiB login body")
case("huge-ocsp.txt", str(1024 * 1024), "huge:POST:/ocsp", "a 1 MiB OCSP request")

# --- paths ----------------------------------------------------------------------------------
for i, (p, what) in enumerate((
        ("certificates/issuing/' OR 1=1 --", "SQL injection in a serial"),
        ("certificates/../../../etc/passwd/x", "path traversal"),
        ("certificates/issuing/%00", "an encoded NUL as the serial"),
        ("certificates/root/01", "a certificate of another CA that does not exist"),
        ("requests/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "encoded traversal as a request id"),
        ("requests/" + "9" * 3000, "a 3000-character request id"),
        ("certificates/issuing/zzzz?format=../../etc/passwd", "a bad format parameter"),
        ("certificates/issuing/zzzz?format=der", "a non-hex serial"),
        ("audit?limit=-1&after=-5", "negative audit paging (as an enroller)"),
        ("audit?limit=99999999999999999999", "an audit limit that overflows"),
        ("certificates?status=' OR 1=1 --", "SQL injection in a filter"),
        ("certificates?expiring_within_days=-3", "a negative day count"),
        ("users/admin/totp", "another user's TOTP reset with GET"),
        ("%C3%28", "invalid UTF-8 in the path"),
        ("openapi.json/../../../../etc/shadow", "traversal after a real route"),
)):
    case(f"path-{i:02}.txt", p, "api-path:enroller", what)

# --- tokens ---------------------------------------------------------------------------------
for i, (t, what) in enumerate((
        ("", "an empty bearer token"),
        ("A" * 43, "a well-formed but unknown token"),
        ("x" * 10000, "a 10,000-character token"),
        ("' OR 1=1 --", "SQL injection as a token"),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.", "a forged unsigned JWT"),
        ("{logged-out}", "a token that was valid until logout"),
        ("{other-user}", "another user's token used for the enroller's request"),
        ("\u00e9\u00e8", "non-ASCII token"),
)):
    case(f"token-{i:02}.txt", t, "token", what)

# --- TOTP at login --------------------------------------------------------------------------
for i, (c, what) in enumerate((
        ("{replay}", "the code just used to log in, replayed"),
        ("000000", "a wrong code"),
        ("", "no code"),
        ("12345", "five digits"),
        ("1234567", "seven digits"),
        ("abcdef", "letters"),
        ("{previous-window}", "a code from ten minutes ago"),
        ("123456\n", "a trailing newline"),
)):
    case(f"totp-{i:02}.txt", c, "login-totp", what)

# --- files the CLI reads ---------------------------------------------------------------------
for name, what in csr_cases[:12]:
    cases.append((name, "cli:request submit --profile ambulance-terminal --justification corpus --csr {}", f"ca-cli: {what}"))
for i, (content, what) in enumerate((
        ("", "an empty key file"),
        ("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "PEM armour around garbage"),
        (cert_pem, "a certificate instead of a key"),
        (os.urandom(300), "random bytes"),
        (b"\xff\xfe\x00invalid utf8", "invalid UTF-8"),
        (openssl("ecparam", "-name", "secp256k1", "-genkey", "-noout"), "an EC key on an unsupported curve"),
)):
    case(f"cli-key-{i:02}.pem", content, "cli:csr create --key {} --cn amb-x --uri urn:mamori:device:ambulance:x --out /dev/null",
         f"ca-cli csr create: {what}")
for i, (content, what) in enumerate((
        ("", "an empty certificate file"),
        ("not a certificate", "text"),
        (csr_pem, "a CSR instead of a certificate"),
        (os.urandom(500), "random bytes"),
        (pem("CERTIFICATE", nested(1500)), "deep nesting in a certificate"),
        (cert_pem, "a certificate from a foreign CA without an OCSP URL"),
)):
    case(f"cli-cert-{i:02}.pem", content, "cli:ocsp check {}", f"ca-cli ocsp check: {what}")
for i, (content, what) in enumerate((
        ("", "an empty fleet file"),
        ("id\n", "a header and no rows"),
        ("name,color\nx,y\n", "unknown columns"),
        (b"id\n\xff\xfe\n", "invalid UTF-8 in a row"),
        ("id\n" + "a" * 5000 + "\n", "a 5000-character device id"),
        ("id,csr\nd1,/etc/shadow\n", "a row pointing at a file that is not a CSR"),
        ("id\n../../etc\n", "a path as the device id"),
        ('id\n"unterminated\n', "an unterminated quote"),
)):
    case(f"cli-fleet-{i:02}.csv", content, "cli:device import {} --keys-dir {}.keys", f"ca-cli device import: {what}")
for i, (content, what) in enumerate((
        ("", "an empty password file"),
        (b"\xff\xfe\xfd\n", "invalid UTF-8 password file"),
)):
    case(f"cli-password-{i:02}.txt", content, "cli:login --username enroller --totp 000000 --password-file {}",
         f"ca-cli login: {what}")

scep = open(os.path.join(HERE, "..", "scep", "pkcsreq-scepclient-foreign-ra.der"), "rb").read()
for cut in (1, 2, 10, 100, len(scep) // 2, len(scep) - 1):
    case(f"scep-truncated-{cut}.der", scep[:cut], "scep-post:mdm-tablet",
         f"a real SCEP PKCSReq cut after {cut} bytes")
flipped = bytearray(scep)
flipped[-10] ^= 0x55
case("scep-bad-signature.der", bytes(flipped), "scep-post:mdm-tablet",
     "a real SCEP PKCSReq with a byte of its signature changed")
body = bytearray(scep)
at = scep.find(b"\x04\x82", 600)
body[at + 40] ^= 0x55
case("scep-tampered-content.der", bytes(body), "scep-post:mdm-tablet",
     "a real SCEP PKCSReq with a byte of its signed envelope changed")
case("scep-foreign-recipient.der", scep, "scep-post:mdm-tablet",
     "a real SCEP PKCSReq encrypted to another server's RA (signed failure, nothing stored)")
case("scep-foreign-recipient-get.der", scep, "scep-get:mdm-tablet",
     "the same over GET, base64 in the query")
case("scep-trailing.der", scep + b"\x00" * 8, "scep-post:mdm-tablet",
     "a real SCEP PKCSReq with trailing bytes")
case("scep-unknown-profile.der", scep, "scep-post:no-such-profile", "a SCEP message for a profile that does not exist")
case("scep-no-scep-profile.der", scep, "scep-post:ambulance-terminal",
     "a SCEP message for a profile without [enrollment] scep")
case("scep-empty.der", b"", "scep-post:mdm-tablet", "an empty PKIOperation body")
case("scep-garbage.der", os.urandom(512), "scep-post:mdm-tablet", "512 random bytes as a pkiMessage")
case("scep-nested.der", nested(1000), "scep-post:mdm-tablet", "SEQUENCE nested 1000 deep as a pkiMessage")
case("scep-csr.der", csr_der, "scep-post:mdm-tablet", "a bare CSR instead of a pkiMessage")
case("scep-certificate.der", cert_der, "scep-post:mdm-tablet", "a certificate instead of a pkiMessage")
case("scep-oversize.der", scep + os.urandom(70 * 1024), "scep-post:mdm-tablet",
     "a pkiMessage with 70 KiB appended (over the 64 KiB limit)")
case("scep-get-not-base64.txt", "%%%not base64%%%", "scep-get:mdm-tablet", "a PKIOperation GET whose message is not base64")

gw_key = os.path.join(tmp, "gw.pem")
openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", gw_key)
gw_csr = openssl("req", "-new", "-key", gw_key, "-subj", "/O=Mamori Hospital/CN=gw9.ward3.hospital.example",
                 "-addext", "subjectAltName=DNS:gw9.ward3.hospital.example", "-outform", "DER")
gw_csr_b64 = base64.encodebytes(gw_csr)
bad_sig = bytearray(gw_csr)
bad_sig[-5] ^= 0x55
wrong_dns = openssl("req", "-new", "-key", gw_key, "-subj", "/O=Mamori Hospital/CN=gw9.evil.example",
                    "-addext", "subjectAltName=DNS:gw9.evil.example", "-outform", "DER")
for name, data, what in (
        ("est-empty.b64", b"", "an empty simpleenroll body"),
        ("est-not-base64.b64", b"%%% not base64 %%%", "a body that is not base64"),
        ("est-pem.b64", openssl("req", "-in", "/dev/stdin", "-inform", "DER", stdin=gw_csr), "a PEM CSR instead of base64 DER"),
        ("est-garbage.b64", base64.encodebytes(os.urandom(300)), "base64 of random bytes"),
        ("est-truncated.b64", base64.encodebytes(gw_csr[:len(gw_csr) // 2]), "base64 of a CSR cut in half"),
        ("est-bad-signature.b64", base64.encodebytes(bytes(bad_sig)), "base64 of a CSR whose signature was changed"),
        ("est-foreign-domain.b64", base64.encodebytes(wrong_dns), "a CSR for a domain the profile does not allow"),
        ("est-nested.b64", base64.encodebytes(nested(1000)), "base64 of SEQUENCE nested 1000 deep"),
        ("est-certificate.b64", base64.encodebytes(cert_der), "base64 of a certificate instead of a CSR"),
):
    case(name, data, "est-enroll:network-gateway", f"EST simpleenroll: {what}")
case("est-no-such-profile.b64", gw_csr_b64, "est-enroll:no-such-profile", "EST simpleenroll for a profile that does not exist")
case("est-reenroll-no-certificate.b64", gw_csr_b64, "est-reenroll:network-gateway",
     "EST simplereenroll without a TLS client certificate")

with open(os.path.join(HERE, "MANIFEST.tsv"), "w") as f:
    f.write("# file\ttarget\twhat it is (written by generate.py; targets are explained there)\n")
    for name, target, what in cases:
        f.write(f"{name}\t{target}\t{what}\n")
print(f"{len(cases)} cases")
