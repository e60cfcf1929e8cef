//! Stop anywhere, resume, and end bit-for-bit where an uninterrupted run ends.

use std::sync::atomic::Ordering;

use crate::common::{interrupt_after, scratch, small_job, state_bytes, tensor_bytes};
use deeptrain::{Outcome, Trainer};

struct Reference {
    state: Vec<u8>,
    tensors: Vec<(String, Vec<u8>)>,
    transitions: usize,
}

fn reference(name: &str) -> Reference {
    let dir = scratch(name);
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    let count = interrupt_after(&mut trainer, usize::MAX);
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let s = &trainer.state;
    // 2 epochs x 23 batches; validations every 10 batches and after the last epoch.
    assert_eq!((s.epoch, s.batches_fit, s.global_step), (2, 46, 46));
    assert_eq!(s.times_validated, 5);
    assert_eq!(s.val_history.at_batches_fit, vec![10, 20, 30, 40, 46]);
    assert_eq!(s.batches_validated, 15);
    assert_eq!(s.epoch_ends, vec![23, 46]);
    Reference {
        state: state_bytes(s),
        tensors: tensor_bytes(&dir),
        transitions: count.load(Ordering::SeqCst),
    }
}

#[test]
fn stop_at_every_transition_and_resume_is_bitwise_identical() {
    let reference = reference("resume-reference");
    // 2 x (1 epoch begin + 23 batches + 1 epoch end) + 5 validations x (3 batches + end).
    assert_eq!(reference.transitions, 2 * 25 + 5 * 4);
    let dir = scratch("resume-every");
    let mut mid_validation = 0;
    for k in 1..reference.transitions {
        let run = dir.join(format!("k{k:03}"));
        let mut trainer = small_job(&run).build_trainer().unwrap();
        interrupt_after(&mut trainer, k);
        let outcome = trainer.fit().unwrap();
        let Outcome::Interrupted { checkpoint } = outcome else {
            panic!("k={k}: expected an interrupt, got {outcome:?}");
        };
        if matches!(trainer.state.phase, deeptrain::Phase::Validate { .. }) {
            mid_validation += 1;
        }
        drop(trainer);
        let mut resumed = Trainer::resume(&run).unwrap();
        assert_eq!(resumed.last_checkpoint(), Some(checkpoint.as_path()));
        assert_eq!(resumed.fit().unwrap(), Outcome::Finished, "k={k}");
        assert!(
            state_bytes(&resumed.state) == reference.state,
            "k={k}: state differs"
        );
        assert!(
            tensor_bytes(&run) == reference.tensors,
            "k={k}: weights or optimizer differ"
        );
        std::fs::remove_dir_all(&run).unwrap();
    }
    // Stops inside every validation pass were exercised: 0, 1, 2 and 3 batches done.
    assert_eq!(mid_validation, 5 * 4);
}

#[test]
fn stopped_many_times_still_bitwise_identical() {
    let reference = reference("resume-many-reference");
    let run = scratch("resume-many");
    let mut trainer = small_job(&run).build_trainer().unwrap();
    interrupt_after(&mut trainer, 7);
    let mut stops = 0;
    while let Outcome::Interrupted { .. } = trainer.fit().unwrap() {
        stops += 1;
        trainer = Trainer::resume(&run).unwrap();
        interrupt_after(&mut trainer, 7);
    }
    // A stop asked for on the very last transition finds the run already done.
    assert_eq!(stops, (reference.transitions - 1) / 7);
    assert!(state_bytes(&trainer.state) == reference.state);
    assert!(tensor_bytes(&run) == reference.tensors);
}

#[test]
fn same_seed_same_weights_other_seed_different() {
    let a = scratch("seed-a");
    let b = scratch("seed-b");
    let c = scratch("seed-c");
    for (dir, seed) in [(&a, 3), (&b, 3), (&c, 4)] {
        let mut job = small_job(dir);
        job.train.epochs = 1;
        job.train.seed = seed;
        job.build_trainer().unwrap().fit().unwrap();
    }
    assert!(tensor_bytes(&a) == tensor_bytes(&b));
    assert!(tensor_bytes(&a) != tensor_bytes(&c));
}
