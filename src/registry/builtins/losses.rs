//! The built-in losses; their argument types live beside them in [`crate::losses`].

use crate::losses::{
    BinaryCrossEntropy, BinaryCrossEntropyArgs, CrossEntropy, CrossEntropyArgs, Huber, HuberArgs,
    Loss, Mae, MaeArgs, Mse, MseArgs,
};
use crate::registry::Registry;

/// Registers the built-in losses.
pub(super) fn register(r: &mut Registry) {
    r.loss("cross_entropy", |a: CrossEntropyArgs, ctx| {
        let classes = ctx.num_classes.unwrap_or(ctx.outputs);
        let loss = CrossEntropy::new(a, classes, ctx.class_counts)?;
        Ok(Box::new(loss) as Box<dyn Loss>)
    });
    r.loss("binary_cross_entropy", |a: BinaryCrossEntropyArgs, ctx| {
        Ok(Box::new(BinaryCrossEntropy::new(a, ctx.outputs)?) as Box<dyn Loss>)
    });
    r.loss("mse", |a: MseArgs, _| {
        Ok(Box::new(Mse::new(a)) as Box<dyn Loss>)
    });
    r.loss("mae", |a: MaeArgs, _| {
        Ok(Box::new(Mae::new(a)) as Box<dyn Loss>)
    });
    r.loss("huber", |a: HuberArgs, _| {
        Ok(Box::new(Huber::new(a)?) as Box<dyn Loss>)
    });
}
