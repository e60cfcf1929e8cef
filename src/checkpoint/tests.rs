//! Pruning stopped half way, as a kill would stop it: what the loader sees, and that
//! the next prune or start removes the rest.

use std::path::Path;

use super::*;

const FILES: [&str; 4] = [STATE_FILE, MODEL_FILE, OPTIMIZER_FILE, CARRIED_FILE];

/// A run directory with checkpoints `ckpt-000001` to `ckpt-00000{n}` (files only named).
fn run_with(n: u64) -> tempfile::TempDir {
    let run = tempfile::tempdir().unwrap();
    for i in 1..=n {
        let d = run
            .path()
            .join(CHECKPOINTS_DIR)
            .join(format!("ckpt-{i:06}"));
        fs::create_dir_all(&d).unwrap();
        for f in FILES {
            fs::write(d.join(f), b"x").unwrap();
        }
    }
    run
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Deletes one file of the directory, then fails: a kill in the middle of the deletion.
fn killed_half_way(dir: &Path) -> std::io::Result<()> {
    fs::remove_file(dir.join(MODEL_FILE))?;
    Err(std::io::Error::other("killed"))
}

#[test]
fn a_prune_stopped_half_way_leaves_no_half_deleted_checkpoint() {
    let run = run_with(3);
    let _ = prune_with(run.path(), 1, &killed_half_way);
    // Every directory the loader lists is whole.
    let listed = list(run.path()).unwrap();
    assert!(!listed.is_empty());
    for d in &listed {
        for f in FILES {
            assert!(d.join(f).is_file(), "{} lacks {f}", d.display());
        }
    }
    assert_eq!(
        listed.last().unwrap().file_name().unwrap(),
        "ckpt-000003",
        "the newest is kept"
    );
    let parent = run.path().join(CHECKPOINTS_DIR);
    assert!(names(&parent).iter().any(|n| n.starts_with(".tmp-pruned-")));
    // The next prune removes what is left of it.
    prune(run.path(), 1).unwrap();
    assert_eq!(names(&parent), ["ckpt-000003"]);
}

#[test]
fn a_half_deleted_pruned_checkpoint_is_cleaned_at_the_next_start() {
    let run = run_with(2);
    let parent = run.path().join(CHECKPOINTS_DIR);
    let trash = parent.join(".tmp-pruned-ckpt-000001");
    fs::rename(parent.join("ckpt-000001"), &trash).unwrap();
    fs::remove_file(trash.join(MODEL_FILE)).unwrap();
    assert_eq!(list(run.path()).unwrap(), [parent.join("ckpt-000002")]);
    clean_stale(run.path()).unwrap();
    assert_eq!(names(&parent), ["ckpt-000002"]);
}

#[test]
fn pruning_a_name_pruned_before_replaces_the_leftover() {
    let run = run_with(3);
    let parent = run.path().join(CHECKPOINTS_DIR);
    // A leftover of the same name (a killed prune of an earlier run of that number).
    fs::create_dir_all(parent.join(".tmp-pruned-ckpt-000001")).unwrap();
    prune(run.path(), 2).unwrap();
    assert_eq!(names(&parent), ["ckpt-000002", "ckpt-000003"]);
}
