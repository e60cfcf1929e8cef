//! Notifications when a run or a sweep ends, stops or fails: the `notify` section's
//! command (`sh -c`, the result in its environment) and e-mail (SMTP through `lettre`).
//!
//! Above `job` and `sweep` (it reads a finished trainer and a sweep's summary), below
//! the command line, which calls it once a run or sweep is over and prints what failed:
//! a notifier that fails never changes how the run ended or the exit status.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::job::{NotifyConfig, NotifyStatus, SmtpConfig, SmtpTls};
use crate::sweep::plan::Plan;
use crate::sweep::summary::Summary;
use crate::sweep::Sweep;
use crate::trainer::Trainer;

/// How long the SMTP exchange may take before it counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What ended and how: everything a notifier passes on.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `run` or `sweep`.
    pub kind: &'static str,
    /// How it ended.
    pub status: NotifyStatus,
    /// The run's or sweep's name.
    pub name: String,
    /// The run directory, or the sweep directory.
    pub dir: PathBuf,
    /// The metric the result is judged by (empty when unknown).
    pub key_metric: String,
    /// Its best value so far (over all trials for a sweep), if any.
    pub best: Option<f64>,
    /// The run directory of the best trial (sweeps only).
    pub best_run: Option<PathBuf>,
    /// Training steps done (runs), or trials ended out of all (`3/8`, sweeps).
    pub progress: String,
    /// The sweep's summary.csv (sweeps only).
    pub summary: Option<PathBuf>,
    /// The error, when it failed.
    pub error: Option<String>,
}

impl Event {
    /// The event of a run that ended as `status` (`error` when it failed).
    pub fn for_run(trainer: &Trainer, status: NotifyStatus, error: Option<String>) -> Event {
        let s = &trainer.state;
        let key = s.key_metric.clone();
        let best = s.val_history.metrics.get(&key).and_then(|values| {
            let finite = values.iter().copied().filter(|v| v.is_finite());
            match s.key_metric_higher_is_better {
                true => finite.reduce(f64::max),
                false => finite.reduce(f64::min),
            }
        });
        let dir = trainer.config.run_dir.clone();
        Event {
            kind: "run",
            status,
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir,
            key_metric: key,
            best,
            best_run: None,
            progress: format!("{} steps", s.global_step),
            summary: None,
            error,
        }
    }

    /// The event of a sweep that ended as `status`, from its trials' results on disk.
    pub fn for_sweep(sweep: &Sweep, plan: &Plan, status: NotifyStatus) -> Event {
        let dir = sweep.dir();
        let summary = Summary::collect(&dir, plan);
        let best = summary.best().map(|i| &summary.results[i]);
        Event {
            kind: "sweep",
            status,
            name: sweep.name(),
            key_metric: summary.metric.clone(),
            best: best.and_then(|r| r.best),
            best_run: best.map(|r| r.run_dir.clone()),
            progress: format!("{}/{} trials", summary.done(), summary.results.len()),
            summary: Some(dir.join("sweep").join("summary.csv")),
            dir,
            error: None,
        }
    }

    /// The environment of the notify command: `DEEPTRAIN_EVENT` (`run`/`sweep`),
    /// `DEEPTRAIN_STATUS`, `DEEPTRAIN_NAME`, `DEEPTRAIN_RUN_DIR` (runs) or
    /// `DEEPTRAIN_SWEEP_DIR` (sweeps), `DEEPTRAIN_KEY_METRIC`, `DEEPTRAIN_BEST` (empty when
    /// none), `DEEPTRAIN_PROGRESS`, and where they apply `DEEPTRAIN_BEST_RUN_DIR`,
    /// `DEEPTRAIN_SUMMARY` and `DEEPTRAIN_ERROR`.
    pub fn env(&self) -> Vec<(String, String)> {
        let dir_var = match self.kind {
            "sweep" => "DEEPTRAIN_SWEEP_DIR",
            _ => "DEEPTRAIN_RUN_DIR",
        };
        let mut env = vec![
            ("DEEPTRAIN_EVENT", self.kind.to_string()),
            ("DEEPTRAIN_STATUS", self.status.as_str().to_string()),
            ("DEEPTRAIN_NAME", self.name.clone()),
            (dir_var, self.dir.display().to_string()),
            ("DEEPTRAIN_KEY_METRIC", self.key_metric.clone()),
            (
                "DEEPTRAIN_BEST",
                self.best.map(|b| b.to_string()).unwrap_or_default(),
            ),
            ("DEEPTRAIN_PROGRESS", self.progress.clone()),
        ];
        if let Some(r) = &self.best_run {
            env.push(("DEEPTRAIN_BEST_RUN_DIR", r.display().to_string()));
        }
        if let Some(s) = &self.summary {
            env.push(("DEEPTRAIN_SUMMARY", s.display().to_string()));
        }
        if let Some(e) = &self.error {
            env.push(("DEEPTRAIN_ERROR", e.clone()));
        }
        env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The e-mail's subject: `deeptrain run NAME finished (val_accuracy 0.97)`.
    pub fn subject(&self) -> String {
        let best = match self.best {
            Some(b) if !self.key_metric.is_empty() => format!(" ({} {b})", self.key_metric),
            _ => String::new(),
        };
        format!(
            "deeptrain {} {} {}{best}",
            self.kind,
            self.name,
            self.status.as_str()
        )
    }

    /// The e-mail's body: the command's environment, one `NAME=value` a line.
    pub fn body(&self) -> String {
        self.env()
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }
}

/// Sends `event` as `config` says (nothing when its status is not in `on`); the
/// returned lines say what failed, one per notifier (empty: all went out).
pub fn send(config: &NotifyConfig, event: &Event) -> Vec<String> {
    let mut failures = Vec::new();
    if !config.on.contains(&event.status) {
        return failures;
    }
    if let Some(command) = &config.command {
        if let Err(e) = run_command(command, event) {
            failures.push(format!("notify.command `{command}`: {e}"));
        }
    }
    if let Some(smtp) = &config.smtp {
        if let Err(e) = send_mail(smtp, event) {
            failures.push(format!(
                "notify.smtp ({}:{}): {e}",
                smtp.server,
                smtp.port()
            ));
        }
    }
    failures
}

/// `sh -c COMMAND` with the event in its environment, waited for.
fn run_command(command: &str, event: &Event) -> Result<(), String> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(event.env())
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("exited with {status}")),
    }
}

/// The e-mail, over the connection `smtp.tls` asks for (rustls; the certificate checked
/// against the built-in roots and `ca_file`).
fn send_mail(smtp: &SmtpConfig, event: &Event) -> Result<(), String> {
    let mut message = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(event.subject());
    for to in &smtp.to {
        message = message.to(to.parse().map_err(|e| format!("to `{to}`: {e}"))?);
    }
    let message = message.body(event.body()).map_err(|e| e.to_string())?;
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters(smtp)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(smtp)?),
    };
    let mut transport = SmtpTransport::builder_dangerous(&smtp.server)
        .port(smtp.port())
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(var)) = (&smtp.user, &smtp.password_env) {
        let password =
            std::env::var(var).map_err(|_| format!("${var} (password_env) is not set"))?;
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    transport
        .build()
        .send(&message)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// What the TLS client checks: the server's certificate names `smtp.server` and chains
/// to a built-in root or to a certificate of `smtp.ca_file`.
fn tls_parameters(smtp: &SmtpConfig) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.server.clone());
    // Only a certificate of ca_file can make `build` fail (rustls refusing it as a root).
    let mut field = "tls".to_string();
    if let Some(path) = &smtp.ca_file {
        field = format!("ca_file `{}`", path.display());
        let pem = std::fs::read(path).map_err(|e| format!("{field}: {e}"))?;
        // lettre takes a file without certificates as an empty list, silently.
        if !pem
            .windows(CERT_LABEL.len())
            .any(|w| w == CERT_LABEL.as_bytes())
        {
            return Err(format!(
                "{field}: no PEM certificate (`{CERT_LABEL}`) in it"
            ));
        }
        let certs = Certificate::from_pem(&pem).map_err(|e| format!("{field}: {e}"))?;
        builder = builder.add_root_certificate(certs);
    }
    builder.build().map_err(|e| format!("{field}: {e}"))
}

/// How a PEM certificate begins.
const CERT_LABEL: &str = "-----BEGIN CERTIFICATE-----";
