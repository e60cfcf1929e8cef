//! The `notify` section of a job or sweep file: what to do when the run (or the sweep)
//! ends, stops or fails. Only the settings and their checks live here, so that job and
//! sweep files can hold them; sending is `crate::notify`, above both.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a run or sweep ended, as a notifier sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyStatus {
    /// Trained to its end (an early stop included).
    Finished,
    /// Stopped by Ctrl-C or SIGTERM with a checkpoint to resume from.
    Stopped,
    /// Ended with an error.
    Failed,
}

impl NotifyStatus {
    /// `finished`, `stopped` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyStatus::Finished => "finished",
            NotifyStatus::Stopped => "stopped",
            NotifyStatus::Failed => "failed",
        }
    }
}

/// `{"command": "...", "smtp": {...}, "on": ["finished", "stopped", "failed"]}`: a
/// shell command, an e-mail, or both, when the run or sweep ends in one of `on`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Run with `sh -c`, the result in its environment (`DEEPTRAIN_STATUS`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// An e-mail with the result in its subject and body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    /// The endings that notify (default: all three).
    pub on: Vec<NotifyStatus>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            command: None,
            smtp: None,
            on: vec![
                NotifyStatus::Finished,
                NotifyStatus::Stopped,
                NotifyStatus::Failed,
            ],
        }
    }
}

/// How the e-mail leaves: the server, the sender, the recipients, the encryption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name or address of the SMTP server; with TLS, the name its certificate must
    /// carry.
    pub server: String,
    /// Its port (default by `tls`: 25 for `none`, 587 for `starttls`, 465 for `tls`; see
    /// [`SmtpConfig::port`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The sender, `name@host` or `Name <name@host>`.
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// `none` (plain SMTP, the default), `starttls` (plain, then upgraded: required, never
    /// falls back to plain) or `tls` (TLS from the start).
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file of CA certificates to trust besides the built-in (Mozilla) roots, for a
    /// server with a private CA or a self-signed certificate; relative to the working
    /// directory. Read when the mail is sent. Only with `tls` `starttls` or `tls`.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Log in as this user (with `password_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The environment variable holding the password (never the password itself, which
    /// would be copied into the run's config and checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

impl SmtpConfig {
    /// The port to connect to: `port`, else the usual one for `tls` (25 plain, 587
    /// STARTTLS submission, 465 implicit-TLS submission).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

/// Encryption of the SMTP connection (`tls`), checked against the built-in (Mozilla)
/// roots and `ca_file`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text: for a relay on the same host or network. The default.
    #[default]
    None,
    /// Plain, then upgraded with STARTTLS before anything else is sent; a server that
    /// does not offer it is a failure (never a plain fallback). Default port 587.
    Starttls,
    /// TLS from the start (implicit TLS, "SMTPS"). Default port 465.
    Tls,
}

impl NotifyConfig {
    /// Checks the section; `field` is where it is (`notify`), for the error.
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.command.is_none() && self.smtp.is_none() {
            return Err(Error::config(
                field,
                "give a `command`, an `smtp` section or both",
            ));
        }
        if let Some(c) = &self.command {
            if c.trim().is_empty() {
                return Err(Error::config(format!("{field}.command"), "is empty"));
            }
        }
        if let Some(s) = &self.smtp {
            if s.server.trim().is_empty() {
                return Err(Error::config(format!("{field}.smtp.server"), "is empty"));
            }
            if s.to.is_empty() {
                return Err(Error::config(
                    format!("{field}.smtp.to"),
                    "needs at least one recipient",
                ));
            }
            for (name, addr) in
                std::iter::once(("from", &s.from)).chain(s.to.iter().map(|t| ("to", t)))
            {
                if addr.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(Error::config(
                        format!("{field}.smtp.{name}"),
                        format!("`{addr}` is not an e-mail address"),
                    ));
                }
            }
            if s.port == Some(0) {
                return Err(Error::config(format!("{field}.smtp.port"), "0 is no port"));
            }
            if s.tls == SmtpTls::None && s.ca_file.is_some() {
                return Err(Error::config(
                    format!("{field}.smtp.ca_file"),
                    "needs `tls` `starttls` or `tls` (the connection is plain)",
                ));
            }
            if s.user.is_some() != s.password_env.is_some() {
                return Err(Error::config(
                    format!("{field}.smtp"),
                    "give `user` and `password_env` together",
                ));
            }
        }
        Ok(())
    }
}
