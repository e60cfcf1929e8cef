//! The `notify` section: a command with the result in its environment when a run
//! finishes, stops or (the command) fails, an e-mail to a local SMTP server started here,
//! and one notification at a sweep's end.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

/// A minimal SMTP server for one session on 127.0.0.1: the whole conversation as the
/// client sent it comes back from the thread.
fn smtp_server() -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut said = String::new();
        out.write_all(b"220 localhost test SMTP\r\n").unwrap();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            said.push_str(&line);
            let reply: &[u8] = if in_data {
                if line != ".\r\n" {
                    continue;
                }
                in_data = false;
                b"250 queued\r\n"
            } else {
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                match verb.as_str() {
                    "DATA" => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    "QUIT" => {
                        out.write_all(b"221 bye\r\n").unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                }
            };
            out.write_all(reply).unwrap();
        }
        said
    });
    (port, server)
}

#[test]
fn an_email_goes_to_a_local_smtp_server() {
    let cwd = scratch("notify-smtp");
    let (port, server) = smtp_server();
    let notify = format!(
        r#"{{"smtp": {{"server": "127.0.0.1", "port": {port}, "from": "deeptrain@localhost",
            "to": ["me@example.com"]}}}}"#
    );
    std::fs::write(cwd.join("job.json"), job(&notify)).unwrap();
    let out = run(&cwd, &["train", "job.json", "--run-dir", "R"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    let said = server.join().unwrap();
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
    std::fs::write(cwd.join("job.json"), job(&notify)).unwrap();
    let out = run(&cwd, &["train", "job.json", "--run-dir", "R"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
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
