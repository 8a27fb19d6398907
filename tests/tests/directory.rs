//! Directory sign-in against a real OpenLDAP `slapd` (Debian's) started by the test, over
//! StartTLS with its own certificate: a directory account is asked for and approved through
//! `ca-cli`, enrols only its TOTP, signs in with its directory password plus TOTP, holds the
//! granted roles its groups allow, and loses them (and its sessions) when the directory takes
//! them away. An empty password (an LDAP unauthenticated bind) and a directory person with no
//! Mamori account get nowhere; an unreachable directory stops directory accounts only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mamori_e2e::*;
use serde_json::{json, Value};

const BASE: &str = "dc=example,dc=org";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PW: &str = "slapd admin secret";
const HANAKO_PW: &str = "hanako's directory password";

/// A running `slapd` on a port of its own, with its data in a temporary folder.
struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Slapd {
    /// Writes a certificate for 127.0.0.1, a `slapd.conf` (mdb, ppolicy with a default policy
    /// so that `pwdAccountLockedTime` locks binds), starts slapd and loads the people and
    /// groups.
    fn start() -> Slapd {
        assert!(
            Path::new("/usr/sbin/slapd").exists(),
            "slapd is missing: apt-get install slapd ldap-utils (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        self_signed_tls(
            dir.path(),
            "cert",
            "127.0.0.1",
            "IP:127.0.0.1,DNS:localhost",
        );
        std::fs::create_dir(path("db")).unwrap();
        let d = dir.path().display();
        std::fs::write(
            path("slapd.conf"),
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload ppolicy\n\
                 pidfile {d}/slapd.pid\n\
                 TLSCertificateFile {d}/cert.pem\nTLSCertificateKeyFile {d}/cert.key\n\
                 database mdb\nsuffix \"{BASE}\"\nrootdn \"{ADMIN_DN}\"\nrootpw \"{ADMIN_PW}\"\n\
                 directory {d}/db\n\
                 overlay ppolicy\nppolicy_default \"cn=default,ou=policies,{BASE}\"\n\
                 access to attrs=userPassword by self auth by anonymous auth by * none\n\
                 access to * by users read by * none\n"
            ),
        )
        .unwrap();
        let mut slapd = Slapd {
            child: None,
            dir,
            port: free_port(),
        };
        slapd.run();
        slapd.modify(
            "-a",
            &format!(
                "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
                 dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
                 dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
                 dn: ou=policies,{BASE}\nobjectClass: organizationalUnit\nou: policies\n\n\
                 dn: cn=default,ou=policies,{BASE}\nobjectClass: pwdPolicy\nobjectClass: device\n\
                 cn: default\npwdAttribute: userPassword\npwdLockout: TRUE\n\n\
                 dn: cn=mamori,ou=people,{BASE}\nobjectClass: inetOrgPerson\ncn: mamori\nsn: service\n\
                 uid: mamori-search\nuserPassword: search account secret\n\n\
                 dn: uid=hanako,ou=people,{BASE}\nobjectClass: inetOrgPerson\ncn: Hanako Sato\n\
                 sn: Sato\nuid: hanako\nuserPassword: {HANAKO_PW}\n\n\
                 dn: uid=taro,ou=people,{BASE}\nobjectClass: inetOrgPerson\ncn: Taro Suzuki\n\
                 sn: Suzuki\nuid: taro\nuserPassword: taro's directory password\n\n\
                 dn: cn=pki-officers,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: pki-officers\n\
                 member: uid=hanako,ou=people,{BASE}\nmember: uid=taro,ou=people,{BASE}\n\n\
                 dn: cn=pki-staff,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: pki-staff\n\
                 member: uid=hanako,ou=people,{BASE}\nmember: uid=taro,ou=people,{BASE}\n"
            ),
        );
        slapd
    }

    /// Starts slapd on the data it has and waits until it answers a StartTLS search.
    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).unwrap();
        self.child = Some(
            Command::new("/usr/sbin/slapd")
                .arg("-f")
                .arg(self.dir.path().join("slapd.conf"))
                .args(["-h", &self.url(), "-d", "0"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self
                .tool("ldapsearch")
                .args(["-b", "", "-s", "base", "(objectClass=*)"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not answer: {}",
                std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// An OpenLDAP tool over StartTLS (required), trusting slapd's certificate.
    fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(name);
        command
            .args(["-ZZ", "-x", "-H", &self.url()])
            .env("LDAPTLS_CACERT", self.ca_file());
        command
    }

    /// `ldapmodify` as the directory's administrator (`-a`: add entries).
    fn modify(&self, mode: &str, ldif: &str) {
        use std::io::Write;
        let mut child = self
            .tool("ldapmodify")
            .args(["-D", ADMIN_DN, "-w", ADMIN_PW])
            .args(if mode.is_empty() { vec![] } else { vec![mode] })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `done` every 100 ms until it holds, failing with `what` after `seconds`.
fn wait_until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn roles_of(body: &Value) -> Vec<String> {
    let mut roles: Vec<String> = body["roles"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    roles.sort();
    roles
}

#[test]
fn directory_accounts_sign_in_with_the_directory_and_lose_access_with_it() {
    directory_sign_in(Backend::Sqlite);
}

#[test]
#[cfg_attr(not(mamori_postgres), ignore = "MAMORI_TEST_POSTGRES_URL is not set")]
fn directory_accounts_sign_in_with_the_directory_and_lose_access_with_it_postgres() {
    directory_sign_in(Backend::Postgres);
}

fn directory_sign_in(backend: Backend) {
    let mut slapd = Slapd::start();
    let config_dir = tempfile::tempdir().unwrap();
    let bind_pw = config_dir.path().join("bind.pw");
    std::fs::write(&bind_pw, "search account secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bind_pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = config_dir.path().join("mamori.toml");
    std::fs::write(
        &config,
        format!(
            "[directory]\nurl = \"{url}\"\nca_file = \"{ca}\"\n\
             bind_dn = \"cn=mamori,ou=people,{BASE}\"\nbind_password_file = \"{pw}\"\n\
             user_base = \"ou=people,{BASE}\"\ngroup_base = \"ou=groups,{BASE}\"\n\
             sync_secs = 1\n\n[directory.roles]\n\
             security-officer = [\"cn=pki-officers,ou=groups,{BASE}\"]\n\
             staff-requester = [\"CN=PKI-Staff, OU=Groups, {BASE}\"]\n",
            url = slapd.url(),
            ca = slapd.ca_file().display(),
            pw = bind_pw.display(),
        ),
    )
    .unwrap();
    let server = Server::start(backend, &[("MAMORI_CONFIG", config.to_str().unwrap())]);

    // The admin asks for a directory account through ca-cli; the officer approves; each hands
    // over a half of the enrolment code; hanako enrols her TOTP only.
    let admin_home = server.path().join("cli-admin");
    let officer_home = server.path().join("cli-officer");
    server.cli_login(&admin_home, &server.admin);
    server.cli_login(&officer_home, &server.officer);
    let asked = server.cli(
        &admin_home,
        &[
            "--json",
            "user",
            "add",
            "hanako",
            "--roles",
            "security-officer,staff-requester",
            "--directory",
            "--totp",
            &server.admin.code(),
            "--comment",
            "ward 3 officer",
        ],
    );
    assert_eq!(asked.code, 0, "{asked:?}");
    let asked = asked.json();
    assert_eq!(asked["directory"], true, "{asked}");
    let id = asked["id"].as_str().unwrap();
    let approved = server.cli(
        &officer_home,
        &[
            "--json",
            "user",
            "approve",
            id,
            "--totp",
            &server.officer.code(),
        ],
    );
    assert_eq!(approved.code, 0, "{approved:?}");
    let code = format!(
        "{}-{}",
        asked["enrolment_code_part"].as_str().unwrap(),
        approved.json()["enrolment_code_part"].as_str().unwrap()
    );
    // A password sent at enrolment is refused: the directory keeps it.
    let (status, body) = server.call(
        "POST",
        "/api/v1/enrol",
        None,
        Some(
            json!({"username": "hanako", "code": code, "new_password": "a local password of hers"}),
        ),
    );
    assert_eq!(status, 400, "{body}");
    let hanako_home = server.path().join("cli-hanako");
    let enrolled = server.cli(
        &hanako_home,
        &[
            "--json",
            "enrol",
            "--username",
            "hanako",
            "--code",
            &code,
            "--directory",
        ],
    );
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    let hanako = Person::new("hanako", HANAKO_PW, totp_secret_of(&enrolled.json()));
    let users = server.cli(&admin_home, &["--json", "user", "list"]).json();
    let listed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "hanako")
        .cloned()
        .unwrap();
    assert_eq!(listed["directory"], true, "{listed}");

    // Wrong directory password, and an empty one (an unauthenticated bind in LDAP, which
    // "succeeds"): both refused, as is a directory person without a Mamori account.
    let login = |name: &str, password: &str, totp: &str| {
        server.call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"username": name, "password": password, "totp": totp})),
        )
    };
    for password in ["not her password", ""] {
        let (status, body) = login("hanako", password, "000000");
        assert_eq!(status, 401, "{password:?}: {body}");
    }
    let (status, _) = login("taro", "taro's directory password", "000000");
    assert_eq!(status, 401);

    // The directory password and a TOTP code: signed in with the granted roles both her groups
    // allow (the mapping's group DN written with other case and spaces still matches).
    server.login(&hanako);
    let (status, me) = server.call("GET", "/api/v1/me", Some(&hanako.token()), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(roles_of(&me), ["security-officer", "staff-requester"]);
    let (status, body) = server.call(
        "POST",
        "/api/v1/passwd",
        Some(&hanako.token()),
        Some(json!({"current_password": HANAKO_PW, "new_password": "a brand new password"})),
    );
    assert_eq!(status, 409, "{body}");

    // A mover: out of pki-officers in the directory, her session loses the officer role
    // within the sync interval.
    slapd.modify(
        "",
        &format!(
            "dn: cn=pki-officers,ou=groups,{BASE}\nchangetype: modify\ndelete: member\n\
             member: uid=hanako,ou=people,{BASE}\n"
        ),
    );
    wait_until(30, "the officer role stayed after the group change", || {
        let (_, me) = server.call("GET", "/api/v1/me", Some(&hanako.token()), None);
        roles_of(&me) == ["staff-requester"]
    });

    // The directory down: directory accounts get a 503 problem, local accounts still sign in,
    // and open sessions go on (an outage logs nobody out).
    slapd.stop();
    let (status, body) = login("hanako", HANAKO_PW, "000000");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("directory"),
        "{body}"
    );
    server.login(&server.officer);
    wait_until(30, "the sync never met the outage", || {
        server
            .logs()
            .contains("directory sync: the directory did not answer")
    });
    let (status, _) = server.call("GET", "/api/v1/me", Some(&hanako.token()), None);
    assert_eq!(status, 200);
    slapd.run();

    // A leaver: locked in the directory (pwdAccountLockedTime), her session ends within the
    // sync interval and she cannot sign in again.
    slapd.modify(
        "",
        &format!(
            "dn: uid=hanako,ou=people,{BASE}\nchangetype: modify\nadd: pwdAccountLockedTime\n\
             pwdAccountLockedTime: 000001010000Z\n"
        ),
    );
    wait_until(30, "the session outlived the directory lock", || {
        server
            .call("GET", "/api/v1/me", Some(&hanako.token()), None)
            .0
            == 401
    });
    let (status, _) = login("hanako", HANAKO_PW, &hanako.code());
    assert_eq!(status, 401);
    let audit = server.query(
        "SELECT action || ' ' || details FROM audit_log WHERE target = 'hanako' ORDER BY seq",
    );
    assert!(audit.contains("session.end"), "{audit}");
    assert!(audit.contains("user.directory_roles"), "{audit}");
    assert!(
        audit.contains("absent or disabled in the directory"),
        "{audit}"
    );
    assert!(audit.contains("directory unreachable"), "{audit}");
}
