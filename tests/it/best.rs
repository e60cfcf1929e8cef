//! `best/` holds the checkpoint with the best key metric, replaced on every improvement.

use crate::common::{scratch, small_job};
use deeptrain::checkpoint;

#[test]
fn best_dir_holds_the_best_validation() {
    let dir = scratch("best-run");
    let mut job = small_job(&dir);
    job.train.key_metric = "val_loss".into();
    let mut trainer = job.build_trainer().unwrap();
    let improvements = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = improvements.clone();
    trainer.on(deeptrain::Stage::ValEnd, move |v| {
        let b = v.state.best.as_ref().unwrap();
        if b.validation + 1 == v.state.times_validated {
            seen.lock().unwrap().push(v.state.batches_fit);
        }
        Ok(())
    });
    trainer.fit().unwrap();
    let best = trainer.state.best.clone().unwrap();
    assert!(!trainer.state.key_metric_higher_is_better);
    let losses = &trainer.state.val_history.metrics["val_loss"];
    let min = losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(best.value, min);

    let saved = checkpoint::load(&dir.join(checkpoint::BEST_DIR)).unwrap();
    let s = &saved.meta.state;
    assert_eq!(s.batches_fit, best.batches_fit);
    assert_eq!(
        saved.meta.saved_because,
        deeptrain::checkpoint::SaveReason::Best
    );
    assert_eq!(s.best.as_ref().unwrap().value, min);
    assert_eq!(
        *improvements.lock().unwrap().last().unwrap(),
        best.batches_fit
    );
    assert!(dir.join("best/report.png").exists());
    // No leftovers of the replacements.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(".tmp") || n.starts_with(".old")),
        "{names:?}"
    );
    // Resuming from best/ continues in the same run directory.
    let resumed = deeptrain::Trainer::resume(dir.join("best")).unwrap();
    assert_eq!(resumed.config.run_dir, dir);
    assert_eq!(resumed.state.batches_fit, best.batches_fit);
}
