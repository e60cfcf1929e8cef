//! The README's promises stay true.

use std::path::Path;

use deeptrain::JobConfig;

#[test]
fn readme_starts_with_the_two_setup_commands() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert_eq!(commands.len(), 2);
    assert!(commands[0].starts_with("cargo run --release"));
    assert!(commands[1].starts_with("cargo test --release"));
}

#[test]
fn readme_job_config_parses_with_every_field_it_shows() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```json\n").unwrap() + 8;
    let end = start + readme[start..].find("```").unwrap();
    let job = JobConfig::from_json_str(&readme[start..end], Path::new("README.md")).unwrap();
    assert_eq!(job.train.epochs, 15);
    assert_eq!(job.train.clip_grad_norm, Some(5.0));
    assert_eq!(
        job.train.metrics,
        vec!["accuracy", "top3_accuracy", "f1_macro"]
    );
    assert!(matches!(
        job.train.schedule,
        deeptrain::optim::Schedule::Cosine {
            warmup_steps: 50,
            ..
        }
    ));
    assert_eq!(job.early_stopping.unwrap().patience, 5);
}

#[test]
fn readme_shows_the_real_help() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for args in [&["--help"][..], &["train", "--help"], &["resume", "--help"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        let shown = format!(
            "$ deeptrain {}\n{}```",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            readme.contains(&shown),
            "README.md does not show the output of `deeptrain {}`:\n{shown}",
            args.join(" ")
        );
    }
}
