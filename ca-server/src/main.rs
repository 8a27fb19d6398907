//! `ca-server`: run Mamori (`serve`), create its CA hierarchy (`init`), apply migrations
//! (`migrate`), or start a local instance for a newcomer (`dev`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ca_server::bootstrap;
use ca_server::config::Config;
use ca_server::secrets::{read_passphrase, PassphraseSource};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the request threads allocate what the group-commit writer
/// frees, and under issuance load glibc spent about 12 % of the server's CPU in malloc and free
/// (perf, bench/RESULTS.md "Session 12"). The `system-allocator` feature leaves glibc's in place,
/// for heap profilers that see only malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mamori, a private certificate authority for hospital groups.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML); every key can also be set as MAMORI_<KEY>.
    #[arg(long, short, global = true, env = "MAMORI_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the CA hierarchy and store its keys encrypted; or, with an offline root, write
    /// the issuing CA's request for the ceremony (--issuing-csr) and then import what the
    /// ceremony signed (--import-issuing).
    ///
    /// Example: ca-server init --config mamori.toml --passphrase-file /root/ca-pass
    /// Example: ca-server init --issuing-csr /media/usb/requests   (then the ceremony, then)
    /// Example: ca-server init --import-issuing /media/usb/out
    Init(InitArgs),
    /// The offline root's ceremony, on a machine that is never on the network: create the root
    /// once, sign the issuing CA's and the root responder's requests, revoke CA certificates,
    /// issue the root CRL, and write a transcript with every hash (docs/CEREMONY.md).
    ///
    /// Example: ca-server ceremony --script ceremony.toml --passphrase-file /media/vault-pass
    Ceremony {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// The ceremony script (TOML).
        #[arg(long)]
        script: PathBuf,
    },
    /// Import a later ceremony's output on the online server: a new root CRL, a renewed root
    /// responder certificate.
    ///
    /// Example: ca-server ceremony-import --config mamori.toml /media/usb/out
    CeremonyImport {
        /// The ceremony's output folder.
        dir: PathBuf,
    },
    /// Run the public (CRL, OCSP) and API listeners.
    ///
    /// Example: MAMORI_CA_PASSPHRASE_FILE=/root/ca-pass ca-server serve --config mamori.toml
    Serve(PassphraseArgs),
    /// Run an OCSP-only responder: no API, no CA keys, only the delegated responder keys, from
    /// the shared database; keeps answering from its cache while the database is unreachable.
    ///
    /// Example: MAMORI_DATABASE_URL=postgres://ca@db/mamori ca-server ocsp --passphrase-file /root/ca-pass
    Ocsp(PassphraseArgs),
    /// Apply database migrations (they also run at start).
    ///
    /// Example: ca-server migrate --config mamori.toml
    Migrate,
    /// Write an encrypted, consistent snapshot (database, configuration, root certificate) while
    /// the server runs. It is sealed with the CA passphrase.
    ///
    /// Example: ca-server backup --config mamori.toml --passphrase-file /root/ca-pass --out /backup/mamori-2026-11-23.bak
    Backup {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Where to write the backup (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Bring a backup back into the configured database. Stop the server first. cRLNumbers
    /// continue above anything published before, so nothing published is ever reused.
    ///
    /// Example: ca-server restore --config mamori.toml --passphrase-file /root/ca-pass --from /backup/mamori-2026-11-23.bak
    Restore {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// On the server itself, with the CA passphrase: lift a user's step-up lock and login
    /// lockout when nobody who could do it through the API is left unlocked (audited). The
    /// server may keep running.
    ///
    /// Example: ca-server unlock --config mamori.toml --passphrase-file /root/ca-pass --username alice
    Unlock {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// The user to unlock.
        #[arg(long)]
        username: String,
    },
    /// On the server itself, with the CA passphrase: create the first accounts after `init`, or
    /// reset one when no admin is left to ask or approve through the API (audited). Prints the
    /// whole one-time enrolment code; the account's holder sets their own password and TOTP
    /// with `ca-cli enrol`.
    ///
    /// Example: ca-server user add --config mamori.toml --passphrase-file /root/ca-pass --username alice --roles admin,security-officer
    #[command(subcommand)]
    User(UserCommand),
    /// k-of-n custody of the CA keys: `split` puts them under an activation secret dealt to
    /// named custodians as share files (the server then starts locked until k of them run
    /// `ca-cli activate`); `reshare` deals a new secret to a new set from k current shares.
    ///
    /// Example: ca-server quorum split --passphrase-file /root/ca-pass --threshold 2 --custodian alice --custodian bob --custodian carol --out /media/usb
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// When a custodian leaves or joins: from k current shares, deal a new activation secret
    /// to a new set of custodians (the same as `ca-server quorum reshare`). The CA keys stay
    /// the same; the old shares open nothing.
    ///
    /// Example: ca-server reshare --share share-alice.json --share share-bob.json --threshold 2 --custodian alice --custodian bob --custodian dave --out /media/usb
    Reshare(ReshareArgs),
    /// A local instance for trying Mamori: data in ./mamori-dev, and two trial accounts (`admin`,
    /// admin and security officer; `officer`, security officer) whose passwords and TOTP URIs
    /// are printed once and written to <data dir>/dev-admin.json and dev-officer.json.
    ///
    /// Example: ca-server dev
    Dev,
}

/// `ca-server user ...`.
#[derive(Subcommand)]
enum UserCommand {
    /// Create an account waiting for enrolment.
    ///
    /// Example: ca-server user add --passphrase-file /root/ca-pass --username bob --roles admin
    Add {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// User name.
        #[arg(long)]
        username: String,
        /// Roles, comma-separated: admin, security-officer, auditor, device-enroller, staff-requester, vendor.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// The organization registered on the account (a vendor's company).
        #[arg(long)]
        organization: Option<String>,
        /// The e-mail domain registered on the account.
        #[arg(long)]
        email_domain: Option<String>,
        /// The holder signs in with their directory password (`[directory]`); they enrol only
        /// their TOTP.
        #[arg(long)]
        directory: bool,
        /// Print JSON (`username`, `enrolment_code`, `expires_at`).
        #[arg(long)]
        json: bool,
    },
    /// Put an account into enrolment: its holder sets a new password and TOTP.
    ///
    /// Example: ca-server user reset --passphrase-file /root/ca-pass --username alice
    Reset {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// User name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `ca-server quorum ...`.
#[derive(Subcommand)]
enum QuorumCommand {
    /// Put the CA keys (now under the CA passphrase) under a new k-of-n activation secret.
    ///
    /// Example: ca-server quorum split --threshold 2 --custodian alice --custodian bob=/root/bob-pass --custodian carol --out /media/usb
    Split {
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// How many custodians must give their share to unlock (k).
        #[arg(long)]
        threshold: usize,
        /// A custodian's user name, or name=passphrase-file; otherwise their passphrase is typed.
        #[arg(long = "custodian", required = true)]
        custodians: Vec<String>,
        /// Where the share files go (one per custodian, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// From k current shares, deal a new secret to a new set of custodians (one left, one
    /// joined); the CA keys stay the same, the old shares open nothing.
    ///
    /// Example: ca-server quorum reshare --share share-alice.json --share share-bob.json --threshold 2 --custodian alice --custodian bob --custodian dave --out /media/usb
    Reshare(ReshareArgs),
}

/// `ca-server reshare` and `ca-server quorum reshare`.
#[derive(clap::Args)]
struct ReshareArgs {
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// A current share file, or share-file=passphrase-file; at least k.
    #[arg(long = "share", required = true)]
    shares: Vec<String>,
    /// How many custodians of the new set must give their share (k).
    #[arg(long)]
    threshold: usize,
    /// A custodian of the new set (name or name=passphrase-file).
    #[arg(long = "custodian", required = true)]
    custodians: Vec<String>,
    /// Where the new share files go.
    #[arg(long)]
    out: PathBuf,
}

/// `ca-server init`.
#[derive(clap::Args)]
struct InitArgs {
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Offline root, step 1: make the issuing CA's key and write its request (and the root
    /// OCSP responder's) to this folder for the ceremony.
    #[arg(long, conflicts_with = "import_issuing")]
    issuing_csr: Option<PathBuf>,
    /// Offline root, step 2: import the ceremony's output folder (root-ca.pem, issuing-*.pem,
    /// root-ocsp-*.pem, root.crl).
    #[arg(long)]
    import_issuing: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PassphraseArgs {
    /// Read the CA passphrase from this file (first line). Otherwise MAMORI_CA_PASSPHRASE, or a prompt.
    #[arg(long, env = "MAMORI_CA_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    fn source(&self) -> PassphraseSource {
        match &self.passphrase_file {
            Some(path) => PassphraseSource::File(path.clone()),
            None if std::env::var_os("MAMORI_CA_PASSPHRASE").is_some() => PassphraseSource::Env,
            None => PassphraseSource::Prompt,
        }
    }
}

/// Logs to standard error: `MAMORI_LOG` picks the level; `MAMORI_LOG_FORMAT=json` writes one
/// JSON object per line for a log collector; otherwise plain text, coloured only on a terminal,
/// so a log file or journald gets no escape codes.
fn init_logging() {
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAMORI_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A log on a full disk must not take the server down: by default a failed write is
        // reported with eprintln!, which panics when standard error cannot be written, and
        // the panicking request's connection is dropped.
        .log_internal_errors(false);
    match std::env::var("MAMORI_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(_) => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => {
            logs.with_ansi(false).init();
            tracing::warn!(
                format = other,
                "MAMORI_LOG_FORMAT is text or json; using text"
            );
        }
    }
}

fn main() {
    init_logging();
    if let Err(error) = run(Cli::parse()) {
        eprintln!("ca-server: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => {
            let config = Config::load(cli.config.as_deref())?;
            let import = args.import_issuing.is_some();
            let passphrase = read_passphrase(&args.passphrase.source(), !import)?;
            if let Some(dir) = &args.issuing_csr {
                let pool = bootstrap::open_pool(&config)?;
                let mut conn = pool.get()?;
                for path in
                    ca_server::custody::offline_root::request(&config, &mut conn, &passphrase, dir)?
                {
                    println!("wrote {}", path.display());
                }
                println!("take these to the offline root's ceremony, then run ca-server init --import-issuing <its output>");
                return Ok(());
            }
            match &args.import_issuing {
                Some(dir) => bootstrap::init_offline_import(&config, &passphrase, dir)?,
                None => bootstrap::init(&config, &passphrase, &ca_core::random::OsRandom)?,
            }
            println!(
                "initialized; root certificate in {}",
                config.data_dir.join("root-ca.pem").display()
            );
            Ok(())
        }
        Command::Ceremony { passphrase, script } => {
            // With the root's key in a token the token's PIN protects it: no vault passphrase.
            let secret = if ca_server::custody::ceremony::uses_token(&script)? {
                zeroize::Zeroizing::new(String::new())
            } else {
                read_passphrase(&passphrase.source(), false)?
            };
            let transcript = ca_server::custody::ceremony::run(&script, &secret)?;
            println!("ceremony done; transcript in {}", transcript.display());
            Ok(())
        }
        Command::CeremonyImport { dir } => {
            let config = Config::load(cli.config.as_deref())?;
            let pool = bootstrap::open_pool(&config)?;
            let changed = ca_server::custody::offline_root::update(&mut *pool.get()?, &dir)?;
            if changed.is_empty() {
                println!("nothing newer than what the server has");
            }
            for what in changed {
                println!("imported {what}; restart the server to serve it");
            }
            Ok(())
        }
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            bootstrap::open_pool(&config)?;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve(args) => {
            let config = Config::load(cli.config.as_deref())?;
            let passphrase = read_passphrase(&args.source(), false)?;
            serve(config, passphrase, false)
        }
        Command::Ocsp(args) => {
            let config = Config::load(cli.config.as_deref())?;
            let passphrase = read_passphrase(&args.source(), false)?;
            let authority = bootstrap::open_ocsp_only(config.clone(), passphrase)?;
            println!("OCSP-only responder: http://{}", config.http_addr);
            run_server(authority, None)
        }
        Command::Backup { passphrase, out } => {
            let config = Config::load(cli.config.as_deref())?;
            let secret = read_passphrase(&passphrase.source(), false)?;
            ca_server::backup::backup(&config, cli.config.as_deref(), &secret, &out)?;
            println!("backup written to {}", out.display());
            Ok(())
        }
        Command::Restore { passphrase, from } => {
            let config = Config::load(cli.config.as_deref())?;
            let secret = read_passphrase(&passphrase.source(), false)?;
            let written = ca_server::backup::restore(&config, &secret, &from)?;
            println!("restored {} into {}", from.display(), config.database_url());
            for path in written {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Reshare(args) => run(Cli {
            config: cli.config,
            command: Command::Quorum(QuorumCommand::Reshare(args)),
        }),
        Command::Quorum(command) => {
            let config = Config::load(cli.config.as_deref())?;
            let pool = bootstrap::open_pool(&config)?;
            let mut conn = pool.get()?;
            use ca_server::custody::quorum;
            let (files, what) = match command {
                QuorumCommand::Split {
                    passphrase,
                    threshold,
                    custodians,
                    out,
                } => {
                    let secret = read_passphrase(&passphrase.source(), false)?;
                    let custodians = quorum::parse_custodians(&custodians)?;
                    let files = quorum::split(
                        &mut conn,
                        &secret,
                        threshold,
                        &custodians,
                        &out,
                        config.pkcs11.as_ref(),
                    )?;
                    if config.pkcs11.is_some() {
                        println!("the token's PIN is sealed under the quorum too: remove pin_file and MAMORI_PKCS11_PIN from the server now");
                    }
                    (
                        files,
                        "the CA keys are now under the quorum; the server starts locked",
                    )
                }
                QuorumCommand::Reshare(ReshareArgs {
                    passphrase,
                    shares,
                    threshold,
                    custodians,
                    out,
                }) => {
                    let secret = read_passphrase(&passphrase.source(), false)?;
                    let shares = shares
                        .iter()
                        .map(|s| quorum::parse_share(s))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let custodians = quorum::parse_custodians(&custodians)?;
                    let files =
                        quorum::reshare(&mut conn, &secret, &shares, threshold, &custodians, &out)?;
                    (
                        files,
                        "new shares dealt; the old ones open nothing; restart the server",
                    )
                }
            };
            for file in files {
                println!("wrote {}", file.display());
            }
            println!("{what}");
            Ok(())
        }
        Command::Unlock {
            passphrase,
            username,
        } => {
            let config = Config::load(cli.config.as_deref())?;
            let secret = read_passphrase(&passphrase.source(), false)?;
            bootstrap::unlock_user_locally(&config, &secret, &username)?;
            println!("unlocked {username}");
            Ok(())
        }
        Command::User(command) => {
            let config = Config::load(cli.config.as_deref())?;
            let (username, enrolment, json) = match command {
                UserCommand::Add {
                    passphrase,
                    username,
                    roles,
                    organization,
                    email_domain,
                    directory,
                    json,
                } => {
                    let secret = read_passphrase(&passphrase.source(), false)?;
                    let enrolment = ca_server::accounts::local::add_user_locally(
                        &config,
                        &secret,
                        &username,
                        &roles,
                        (organization, email_domain),
                        directory,
                    )?;
                    (username, enrolment, json)
                }
                UserCommand::Reset {
                    passphrase,
                    username,
                    json,
                } => {
                    let secret = read_passphrase(&passphrase.source(), false)?;
                    let enrolment = ca_server::accounts::local::reset_user_locally(
                        &config, &secret, &username,
                    )?;
                    (username, enrolment, json)
                }
            };
            let expires = ca_core::time::UnixTime(enrolment.expires_at.max(0) as u64).to_rfc3339();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"username": username, "enrolment_code": enrolment.code, "expires_at": expires})
                );
            } else {
                println!("enrolment code for {username} (works once, until {expires}):");
                println!("  {}", enrolment.code);
                println!(
                    "hand it to {username} in person; they run: ca-cli enrol --username {username}"
                );
                println!("{username} のための登録コード ({expires} まで一回限り有効)。本人に直接渡し、本人が ca-cli enrol を実行します。");
            }
            Ok(())
        }
        Command::Dev => {
            let mut config = Config::load(cli.config.as_deref())?;
            // dev is for trying Mamori: the walk-throughs create officers who approve at once.
            if std::env::var_os("MAMORI_APPROVAL_COOLING_OFF_SECS").is_none() {
                config.approval_cooling_off_secs = 0;
            }
            if std::env::var_os("MAMORI_DATA_DIR").is_none() && cli.config.is_none() {
                config.data_dir = PathBuf::from("mamori-dev");
            }
            // ...and devices: EST, renewal and SCEP on their listeners.
            if std::env::var_os("MAMORI_ENROLL_ADDR").is_none() && config.enroll_addr.is_none() {
                config.enroll_addr = Some("127.0.0.1:8444".into());
            }
            if std::env::var_os("MAMORI_SCEP_HTTP_ADDR").is_none()
                && config.scep_http_addr.is_none()
            {
                config.scep_http_addr = Some("127.0.0.1:8081".into());
            }
            // ...and ACME clients on this machine: names under hospital.example are validated
            // at 127.0.0.1, http-01 on port 8402 (certbot --http-01-port 8402, no root needed).
            if std::env::var_os("MAMORI_ACME_RESOLVE").is_none() && config.acme_resolve.is_empty() {
                config.acme_resolve = "hospital.example=127.0.0.1".into();
            }
            if std::env::var_os("MAMORI_ACME_HTTP01_PORT").is_none()
                && config.acme_http01_port == 80
            {
                config.acme_http01_port = 8402;
            }
            if std::env::var_os("MAMORI_ACME_TLS_ALPN01_PORT").is_none()
                && config.acme_tls_alpn01_port == 443
            {
                config.acme_tls_alpn01_port = 8403;
            }
            let passphrase = bootstrap::dev(&config)?;
            serve(config, passphrase, true)
        }
    }
}

fn serve(config: Config, passphrase: zeroize::Zeroizing<String>, dev: bool) -> anyhow::Result<()> {
    let authority = bootstrap::open(config.clone(), passphrase.clone())?;
    if dev {
        bootstrap::dev_admin(&config, &authority)?;
    }
    let pool = bootstrap::open_pool(&config)?;
    let (chain, key) = bootstrap::api_tls_material(&config, &pool, &passphrase)?;
    drop(passphrase);
    println!(
        "public listener: http://{}  (CRL, OCSP, CA certificates)",
        config.http_addr
    );
    println!(
        "API listener:    https://{}  (trust {})",
        config.api_addr,
        config.data_dir.join("root-ca.pem").display()
    );
    println!(
        "web console:     https://{}/  (open in a browser; sign in with a user's password and TOTP code / ブラウザで開いてください)",
        config.api_addr
    );
    if let Some(addr) = &config.enroll_addr {
        println!(
            "enrollment:      https://{addr}  (EST /.well-known/est/<profile>/, SCEP /scep/<profile>, POST /api/v1/renew)"
        );
    }
    if let Some(addr) = &config.scep_http_addr {
        println!("SCEP over HTTP:  http://{addr}/scep/<profile>");
    }
    run_server(authority, Some((chain, key)))
}

fn run_server(
    authority: ca_server::ra::Authority,
    tls: Option<(String, zeroize::Zeroizing<Vec<u8>>)>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let system = actix_web::rt::System::with_tokio_rt(|| runtime);
    system.block_on(ca_server::http::serve(Arc::new(authority), tls))
}
