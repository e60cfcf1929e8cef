//! The `notify` section: a command with the result in its environment when a run
//! finishes, stops or (the command) fails, an e-mail to a local SMTP server started here
//! (plain, STARTTLS and implicit TLS with a self-signed certificate made here), and one
//! notification at a sweep's end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use rustls::pki_types::PrivatePkcs8KeyDer;

use crate::common::{scratch, Proc};

/// A job of a fraction of a second; `notify` is spliced in.
fn job(notify: &str) -> String {
    format!(
        r#"{{"model": {{"hidden": [16]}}, "logging": {{"progress": false}},
  "train": {{"epochs": 1, "validate_every": {{"batches": 10}}}},
  "notify": {notify}}}"#
    )
}

fn deeptrain(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deeptrain"));
    c.current_dir(cwd)
        .args(args)
        .env_remove("DEEPTRAIN_TEST_PAUSE")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("CANDLE_NUM_THREADS")
        .stdin(Stdio::null());
    c
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    let out = deeptrain(cwd, args).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{out:?}"
    );
    out
}

/// `NAME=value` lines of a file the notify command wrote with `env`.
fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {env:?}"))
}

const ENV_TO_FILE: &str = r#"{"command": "env | grep ^DEEPTRAIN_ | sort > env.txt"}"#;

#[test]
fn a_finished_run_runs_the_command_with_its_result() {
    let cwd = scratch("notify-finished");
    std::fs::write(cwd.join("job.json"), job(ENV_TO_FILE)).unwrap();
    let out = run(&cwd, &["train", "job.json", "--run-dir", "R"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let env = env_file(&cwd.join("env.txt"));
    assert_eq!(value(&env, "DEEPTRAIN_EVENT"), "run");
    assert_eq!(value(&env, "DEEPTRAIN_STATUS"), "finished");
    assert_eq!(value(&env, "DEEPTRAIN_RUN_DIR"), "R");
    assert_eq!(value(&env, "DEEPTRAIN_NAME"), "R");
    assert_eq!(value(&env, "DEEPTRAIN_KEY_METRIC"), "val_accuracy");
    let best: f64 = value(&env, "DEEPTRAIN_BEST").parse().unwrap();
    assert!(best > 0.1 && best <= 1.0, "{best}");
    assert!(env.iter().all(|(k, _)| k != "DEEPTRAIN_ERROR"), "{env:?}");
    // The section is part of the run's recorded config (resume notifies too).
    let config = std::fs::read_to_string(cwd.join("R/config.json")).unwrap();
    assert!(config.contains("env.txt"), "{config}");
}

#[test]
fn a_stopped_run_says_stopped_and_its_resume_says_finished() {
    let cwd = scratch("notify-stopped");
    let command = r#"{"command": "echo $DEEPTRAIN_STATUS $DEEPTRAIN_RUN_DIR >> statuses.txt"}"#;
    std::fs::write(cwd.join("job.json"), job(command)).unwrap();
    let mut cmd = deeptrain(&cwd, &["train", "job.json", "--run-dir", "R"]);
    cmd.env("DEEPTRAIN_TEST_PAUSE", "before_fit");
    let mut p = Proc::start(cmd);
    p.wait_for_line("paused at before_fit");
    p.signal("-INT");
    let ran = p.finish();
    // It paused once, and the signal stopped it there.
    assert_eq!(
        ran.stdout.matches("paused at before_fit").count(),
        1,
        "{ran}"
    );
    assert_eq!(ran.code, Some(130), "{ran}");
    assert_eq!(
        std::fs::read_to_string(cwd.join("statuses.txt")).unwrap(),
        "stopped R\n"
    );
    let out = run(&cwd, &["resume", "R"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(cwd.join("statuses.txt")).unwrap(),
        "stopped R\nfinished R\n"
    );
}

#[test]
fn a_failing_command_is_a_warning_and_on_filters_the_endings() {
    let cwd = scratch("notify-failing");
    std::fs::write(cwd.join("job.json"), job(r#"{"command": "exit 3"}"#)).unwrap();
    let out = run(&cwd, &["train", "job.json", "--run-dir", "R"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: notify.command `exit 3`: exited with exit status: 3"),
        "{stderr}"
    );
    assert!(std::fs::read_dir(cwd.join("R")).is_ok());

    // `on` without `finished`: a finished run runs nothing.
    let quiet = r#"{"command": "touch ran.txt", "on": ["stopped", "failed"]}"#;
    std::fs::write(cwd.join("quiet.json"), job(quiet)).unwrap();
    let out = run(&cwd, &["train", "quiet.json", "--run-dir", "Q"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!cwd.join("ran.txt").exists());

    // A bad section is refused before anything runs, naming the field.
    let bad = r#"{"smtp": {"server": "h", "from": "a@b", "to": ["not an address"]}}"#;
    std::fs::write(cwd.join("bad.json"), job(bad)).unwrap();
    let out = run(&cwd, &["train", "bad.json", "--run-dir", "B"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("notify.smtp.to"), "{stderr}");
    assert!(!cwd.join("B").exists());
}

/// How the test SMTP server encrypts: not at all, after STARTTLS, or from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Encryption {
    None,
    Starttls,
    Implicit,
}

/// What the test SMTP server saw of one session.
#[derive(Debug, Default)]
struct Session {
    /// What the client said in the clear (all of it without TLS).
    plain: String,
    /// What it said inside TLS, decrypted.
    secure: String,
    /// Every byte that came from the client over TCP, as it came (ciphertext under TLS).
    wire: Vec<u8>,
    /// The TLS version of the session, once a handshake began.
    tls_version: Option<rustls::ProtocolVersion>,
    /// Why the session broke off, when not by QUIT or the client hanging up.
    error: Option<String>,
}

/// A TCP stream that keeps a copy of what it reads: the client's bytes as sent.
struct Tap {
    stream: TcpStream,
    wire: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.wire.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A self-signed certificate for 127.0.0.1 (rcgen, ring): its PEM for the client's
/// `ca_file` and a rustls server configuration that presents it.
fn self_signed() -> (String, Arc<rustls::ServerConfig>) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let private = PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], private.into())
        .unwrap();
    (key.cert.pem(), Arc::new(config))
}

/// Answers SMTP on `stream` until QUIT, the client hanging up, or STARTTLS (offered in
/// the EHLO reply when `offer_starttls`; answered `220`, then true comes back); what the
/// client said is appended to `said`. `greet`: send the `220` greeting first.
fn converse(
    stream: &mut impl ReadWrite,
    said: &mut String,
    greet: bool,
    offer_starttls: bool,
) -> std::io::Result<bool> {
    let mut reader = BufReader::new(stream);
    if greet {
        reader.get_mut().write_all(b"220 localhost test SMTP\r\n")?;
    }
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        said.push_str(&line);
        let reply: &[u8] = if in_data {
            if line != ".\r\n" {
                continue;
            }
            in_data = false;
            b"250 queued\r\n"
        } else {
            let verb = line.trim_end().to_ascii_uppercase();
            let verb = verb.split(' ').next().unwrap_or("");
            match verb {
                "EHLO" if offer_starttls => b"250-localhost\r\n250 STARTTLS\r\n",
                "STARTTLS" if offer_starttls => {
                    reader.get_mut().write_all(b"220 go ahead\r\n")?;
                    return Ok(true);
                }
                "DATA" => {
                    in_data = true;
                    b"354 go on\r\n"
                }
                "QUIT" => {
                    reader.get_mut().write_all(b"221 bye\r\n")?;
                    return Ok(false);
                }
                _ => b"250 ok\r\n",
            }
        };
        reader.get_mut().write_all(reply)?;
    }
}

/// What [`converse`] talks over: the TCP stream or the TLS stream on it.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A minimal SMTP server for one session on 127.0.0.1, encrypted as `encryption` says
/// with `tls` (needed unless `Encryption::None`); the session comes back from the
/// thread.
fn smtp_server(
    encryption: Encryption,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, std::thread::JoinHandle<Session>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut tap = Tap {
            stream,
            wire: Vec::new(),
        };
        let mut session = Session::default();
        let upgrade = match encryption {
            Encryption::Implicit => true,
            _ => converse(
                &mut tap,
                &mut session.plain,
                true,
                encryption == Encryption::Starttls,
            )
            .unwrap_or_else(|e| {
                session.error = Some(e.to_string());
                false
            }),
        };
        if upgrade {
            let connection = rustls::ServerConnection::new(tls.unwrap()).unwrap();
            let mut stream = rustls::StreamOwned::new(connection, tap);
            let greet = encryption == Encryption::Implicit;
            if let Err(e) = converse(&mut stream, &mut session.secure, greet, false) {
                session.error = Some(e.to_string());
            }
            session.tls_version = stream.conn.protocol_version();
            tap = stream.sock;
        }
        session.wire = tap.wire;
        session
    });
    (port, server)
}

/// A notify section for the test server on `port`, `extra` spliced into `smtp`.
fn smtp_notify(port: u16, extra: &str) -> String {
    format!(
        r#"{{"smtp": {{"server": "127.0.0.1", "port": {port}, "from": "deeptrain@localhost",
            "to": ["me@example.com"]{extra}}}}}"#
    )
}

/// Trains a job with `notify` in `cwd` (run `R`, made anew); the run itself must succeed.
fn train_with(cwd: &Path, notify: &str) -> Output {
    std::fs::write(cwd.join("job.json"), job(notify)).unwrap();
    let _ = std::fs::remove_dir_all(cwd.join("R"));
    let out = run(cwd, &["train", "job.json", "--run-dir", "R"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    out
}

/// `said` holds the whole e-mail of a finished run `R`, ended by QUIT.
fn assert_mail(said: &str) {
    assert!(said.contains("MAIL FROM:<deeptrain@localhost>"), "{said}");
    assert!(said.contains("RCPT TO:<me@example.com>"), "{said}");
    assert!(said.contains("To: me@example.com"), "{said}");
    assert!(
        said.contains("Subject: deeptrain run R finished (val_accuracy 0."),
        "{said}"
    );
    // The body may come quoted-printable: soft breaks and `=3D` undone.
    let body = said.replace("=\r\n", "").replace("=3D", "=");
    assert!(body.contains("DEEPTRAIN_STATUS=finished\r\n"), "{said}");
    assert!(body.contains("DEEPTRAIN_RUN_DIR=R\r\n"), "{said}");
    assert!(said.ends_with("QUIT\r\n"), "{said}");
}

/// Whether `needle` occurs in the bytes `wire`.
fn on_wire(wire: &[u8], needle: &str) -> bool {
    wire.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn an_email_goes_to_a_local_smtp_server() {
    let (port, server) = smtp_server(Encryption::None, None);
    let out = train_with(&scratch("notify-smtp"), &smtp_notify(port, ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    let session = server.join().unwrap();
    assert_mail(&session.plain);
    assert_eq!(session.secure, "");
    assert_eq!(session.tls_version, None);
    // Plain SMTP: the mail is readable on the wire (what the TLS tests check is absent).
    assert!(on_wire(&session.wire, "MAIL FROM:<deeptrain@localhost>"));
    assert!(on_wire(&session.wire, "Subject: deeptrain run R"));
}

#[test]
fn starttls_upgrades_before_anything_else_is_sent() {
    let (pem, tls) = self_signed();
    let (port, server) = smtp_server(Encryption::Starttls, Some(tls));
    let cwd = scratch("notify-starttls");
    std::fs::write(cwd.join("ca.pem"), pem).unwrap();
    let notify = smtp_notify(port, r#", "tls": "starttls", "ca_file": "ca.pem""#);
    let out = train_with(&cwd, &notify);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    let session = server.join().unwrap();
    assert_eq!(session.error, None);
    // In the clear: the greeting exchange and STARTTLS, nothing of the mail.
    let plain: Vec<&str> = session.plain.lines().collect();
    assert_eq!(plain.len(), 2, "{}", session.plain);
    assert!(plain[0].starts_with("EHLO "), "{}", session.plain);
    assert_eq!(plain[1], "STARTTLS");
    assert!(session.tls_version.is_some());
    assert!(session.secure.starts_with("EHLO "), "{}", session.secure);
    assert_mail(&session.secure);
    for secret in [
        "MAIL FROM",
        "deeptrain@localhost",
        "me@example.com",
        "DEEPTRAIN_",
    ] {
        assert!(
            !on_wire(&session.wire, secret),
            "{secret} sent in the clear"
        );
    }
    assert!(on_wire(&session.wire, "STARTTLS\r\n"));
}

#[test]
fn implicit_tls_encrypts_the_whole_session() {
    let (pem, tls) = self_signed();
    let (port, server) = smtp_server(Encryption::Implicit, Some(tls));
    let cwd = scratch("notify-tls");
    std::fs::write(cwd.join("ca.pem"), pem).unwrap();
    let notify = smtp_notify(port, r#", "tls": "tls", "ca_file": "ca.pem""#);
    let out = train_with(&cwd, &notify);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    let session = server.join().unwrap();
    assert_eq!(session.error, None);
    assert_eq!(session.plain, "");
    assert!(session.tls_version.is_some());
    assert_mail(&session.secure);
    for secret in ["EHLO", "MAIL FROM", "deeptrain@localhost", "DEEPTRAIN_"] {
        assert!(
            !on_wire(&session.wire, secret),
            "{secret} sent in the clear"
        );
    }
}

/// `out` finished its run (the checkpoint is there) and warned once, about the e-mail to
/// `port`, with `expected` in the line; the line comes back.
fn smtp_warning(cwd: &Path, out: &Output, port: u16, expected: &str) -> String {
    assert!(cwd.join("R/checkpoints").is_dir(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let prefix = format!("warning: notify.smtp (127.0.0.1:{port}): ");
    assert!(warnings[0].starts_with(&prefix), "{stderr}");
    assert!(warnings[0].contains(expected), "{stderr}");
    warnings[0].to_string()
}

#[test]
fn an_untrusted_certificate_or_no_starttls_is_a_warning_and_nothing_is_sent() {
    // The server's certificate is not the one in ca_file (nor under a built-in root).
    let (_, tls) = self_signed();
    let (other_pem, _) = self_signed();
    let (port, server) = smtp_server(Encryption::Starttls, Some(tls));
    let cwd = scratch("notify-wrong-ca");
    std::fs::write(cwd.join("ca.pem"), other_pem).unwrap();
    let notify = smtp_notify(port, r#", "tls": "starttls", "ca_file": "ca.pem""#);
    let out = train_with(&cwd, &notify);
    smtp_warning(&cwd, &out, port, "invalid peer certificate");
    let session = server.join().unwrap();
    assert!(session.error.is_some(), "{session:?}");
    assert_eq!(session.secure, "");
    assert!(!on_wire(&session.wire, "MAIL FROM"));

    // `starttls` is required: a server without it gets nothing, not a plain fallback.
    let (port, server) = smtp_server(Encryption::None, None);
    let notify = smtp_notify(port, r#", "tls": "starttls", "ca_file": "ca.pem""#);
    let out = train_with(&cwd, &notify);
    smtp_warning(&cwd, &out, port, "STARTTLS");
    let session = server.join().unwrap();
    assert!(!session.plain.contains("MAIL FROM"), "{}", session.plain);
    assert!(session.plain.starts_with("EHLO "), "{}", session.plain);
}

#[test]
fn a_bad_ca_file_is_named() {
    // Read when the mail goes out (a run stays readable anywhere): a warning naming it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cwd = scratch("notify-ca-file");
    let notify = smtp_notify(port, r#", "tls": "tls", "ca_file": "missing.pem""#);
    let out = train_with(&cwd, &notify);
    smtp_warning(&cwd, &out, port, "ca_file `missing.pem`: No such file");

    std::fs::write(cwd.join("empty.pem"), "not a certificate\n").unwrap();
    let notify = smtp_notify(port, r#", "tls": "tls", "ca_file": "empty.pem""#);
    let out = train_with(&cwd, &notify);
    smtp_warning(&cwd, &out, port, "ca_file `empty.pem`: no PEM certificate");

    let garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::write(cwd.join("garbled.pem"), garbled).unwrap();
    let notify = smtp_notify(port, r#", "tls": "starttls", "ca_file": "garbled.pem""#);
    let out = train_with(&cwd, &notify);
    let line = smtp_warning(&cwd, &out, port, "ca_file `garbled.pem`: ");
    assert!(!line.contains("Connection"), "{line}");

    // A ca_file on a plain connection is refused before anything runs.
    let notify = smtp_notify(port, r#", "ca_file": "empty.pem""#);
    std::fs::write(cwd.join("job.json"), job(&notify)).unwrap();
    let out = run(&cwd, &["train", "job.json", "--run-dir", "B"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("notify.smtp.ca_file"), "{stderr}");
    assert!(!cwd.join("B").exists());
}

#[test]
fn an_unreachable_smtp_server_is_a_warning() {
    let cwd = scratch("notify-smtp-down");
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let notify = format!(
        r#"{{"smtp": {{"server": "127.0.0.1", "port": {port}, "from": "a@localhost", "to": ["b@localhost"]}}}}"#
    );
    let out = train_with(&cwd, &notify);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("warning: notify.smtp (127.0.0.1:{port}): ")),
        "{stderr}"
    );
}

#[test]
fn a_sweep_notifies_once_at_its_end() {
    let cwd = scratch("notify-sweep");
    let sweep = r#"{
  "name": "n",
  "grid": { "optimizer.lr": [0.003, 0.001] },
  "set": { "train.epochs": 1, "model.hidden": [16], "logging.progress": false,
           "train.validate_every": {"batches": 10} },
  "metric": "val_accuracy",
  "notify": {"command": "echo $DEEPTRAIN_EVENT $DEEPTRAIN_STATUS $DEEPTRAIN_PROGRESS $DEEPTRAIN_KEY_METRIC $DEEPTRAIN_SWEEP_DIR $DEEPTRAIN_SUMMARY $DEEPTRAIN_BEST_RUN_DIR >> n.txt"}
}"#;
    std::fs::write(cwd.join("s.json"), sweep).unwrap();
    let out = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(cwd.join("n.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        words[..7],
        [
            "sweep",
            "finished",
            "2/2",
            "trials",
            "val_accuracy",
            "runs/sweep-n",
            "runs/sweep-n/sweep/summary.csv"
        ],
        "{text}"
    );
    assert!(cwd.join(words[6]).is_file(), "{text}");
    assert!(words[7].starts_with("runs/sweep-n/t00"), "{text}");
    assert!(cwd.join(words[7]).is_dir(), "{text}");
}
