//! Optimizers: agreement with candle-nn, PyTorch semantics checked by hand, exact state
//! export/import keyed by name, gradient clipping, and import errors.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use deeptrain::optim::{clip_scale, grad_sq_norms, NamedVar};
use deeptrain::{Adam, AdamConfig, AdamW, Sgd, SgdConfig, TrainOptimizer};

fn var(values: &[f32], shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_slice(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn values(v: &Var) -> Vec<f32> {
    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
}

fn bits(v: &Var) -> Vec<u32> {
    values(v).iter().map(|x| x.to_bits()).collect()
}

fn named(name: &str, var: &Var) -> NamedVar {
    NamedVar {
        name: name.into(),
        var: var.clone(),
    }
}

const ALPHA0: [f32; 4] = [1.0, -2.0, 0.5, 3.0];
const BETA0: [f32; 3] = [0.7, -1.3, 2.2];

/// Two variables `alpha` ([2, 2]) and `beta` ([3]) at their fixed start values.
fn problem_vars() -> (Var, Var) {
    (var(&ALPHA0, &[2, 2]), var(&BETA0, &[3]))
}

/// A quadratic loss with different curvatures per element, so the gradient depends on
/// the weights: sum(A * (alpha - T)^2) + 2 * sum((beta - c)^2) + sum(beta)^2 / 4.
fn quadratic_grads(alpha: &Var, beta: &Var) -> GradStore {
    let dev = Device::Cpu;
    let a = Tensor::new(&[[1.0f32, 3.0], [0.5, 2.0]], &dev).unwrap();
    let t = Tensor::new(&[[3.0f32, 1.0], [-1.0, 4.5]], &dev).unwrap();
    let c = Tensor::new(&[2.0f32, 1.0, -0.5], &dev).unwrap();
    let la = (alpha.as_tensor() - &t)
        .unwrap()
        .sqr()
        .unwrap()
        .mul(&a)
        .unwrap()
        .sum_all()
        .unwrap();
    let lb = ((beta.as_tensor() - &c)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        * 2.0)
        .unwrap();
    let lc = (beta.as_tensor().sum_all().unwrap().sqr().unwrap() * 0.25).unwrap();
    (la + lb + lc).unwrap().backward().unwrap()
}

/// `|a - b| <= tol * max(|a|, |b|)` element-wise.
fn assert_rel_close(ours: &[f32], theirs: &[f32], tol: f32, what: &str) {
    assert_eq!(ours.len(), theirs.len());
    let worst = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs() / a.abs().max(b.abs()))
        .fold(0f32, f32::max);
    println!("{what}: largest relative difference {worst:e}");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let scale = a.abs().max(b.abs());
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}[{i}]: ours {a} vs candle-nn {b} (relative difference {})",
            (a - b).abs() / scale
        );
    }
}

#[test]
fn adamw_matches_candle_nn_adamw() {
    let (lr, beta1, beta2, eps, weight_decay) = (0.05, 0.9, 0.999, 1e-8, 0.1);
    let (a1, b1) = problem_vars();
    let (a2, b2) = problem_vars();
    let mut ours = AdamW::from_named(
        vec![named("alpha", &a1), named("beta", &b1)],
        AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        },
    );
    let mut theirs = candle_nn::AdamW::new(
        vec![a2.clone(), b2.clone()],
        ParamsAdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        },
    )
    .unwrap();
    for _ in 0..5 {
        ours.step_scaled(&quadratic_grads(&a1, &b1), 1.0).unwrap();
        theirs.step(&quadratic_grads(&a2, &b2)).unwrap();
    }
    // The weights really moved (about lr per step), so agreeing is not trivial.
    assert!((values(&a1)[0] - ALPHA0[0]).abs() > 0.2);
    assert_rel_close(&values(&a1), &values(&a2), 1e-6, "alpha");
    assert_rel_close(&values(&b1), &values(&b2), 1e-6, "beta");
    assert_eq!(TrainOptimizer::steps(&ours), 5);
}

#[test]
fn sgd_without_momentum_matches_candle_nn_sgd() {
    let lr = 0.05;
    let (a1, b1) = problem_vars();
    let (a2, b2) = problem_vars();
    // Through candle-nn's own trait, as a candle user would drive it.
    let mut ours = <Sgd as Optimizer>::new(
        vec![a1.clone(), b1.clone()],
        SgdConfig {
            lr,
            ..SgdConfig::default()
        },
    )
    .unwrap();
    let mut theirs = candle_nn::SGD::new(vec![a2.clone(), b2.clone()], lr).unwrap();
    for _ in 0..5 {
        Optimizer::step(&mut ours, &quadratic_grads(&a1, &b1)).unwrap();
        theirs.step(&quadratic_grads(&a2, &b2)).unwrap();
    }
    assert!((values(&a1)[0] - ALPHA0[0]).abs() > 0.2);
    assert_rel_close(&values(&a1), &values(&a2), 1e-6, "alpha");
    assert_rel_close(&values(&b1), &values(&b2), 1e-6, "beta");
}

// ---- PyTorch semantics, by hand -------------------------------------------------------

/// Gradients the hand-computed tests feed, one per step.
const GRADS: [f32; 3] = [1.0, 2.0, -1.0];

/// Runs `opt` over a 1-element parameter starting at 1.0, feeding `GRADS` (the loss is
/// `g * p`, whose gradient is exactly `g`); returns the parameter after each step.
fn run_1d(make: impl FnOnce(Vec<NamedVar>) -> Box<dyn TrainOptimizer>) -> Vec<f32> {
    let p = var(&[1.0], &[1]);
    let mut opt = make(vec![named("p", &p)]);
    GRADS
        .iter()
        .map(|&g| {
            let grads = (p.as_tensor() * g as f64)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step_scaled(&grads, 1.0).unwrap();
            values(&p)[0]
        })
        .collect()
}

fn sgd_1d(config: SgdConfig) -> Vec<f32> {
    run_1d(|vars| Box::new(Sgd::from_named(vars, config)))
}

fn assert_close(got: &[f32], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (*g as f64 - e).abs() < 1e-6,
            "{what}: after step {} got {g}, expected {e}",
            i + 1
        );
    }
}

#[test]
fn sgd_momentum_by_hand() {
    // lr 0.1, momentum 0.9, p0 = 1. PyTorch: the first buffer is the gradient itself.
    // step 1: buf = 1                      p = 1    - 0.1 * 1    = 0.9
    // step 2: buf = 0.9 * 1    + 2  = 2.9  p = 0.9  - 0.1 * 2.9  = 0.61
    // step 3: buf = 0.9 * 2.9  - 1  = 1.61 p = 0.61 - 0.1 * 1.61 = 0.449
    let got = sgd_1d(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..SgdConfig::default()
    });
    assert_close(&got, &[0.9, 0.61, 0.449], "momentum");
}

#[test]
fn sgd_nesterov_by_hand() {
    // lr 0.1, momentum 0.9, nesterov: the step is d = g + 0.9 * buf.
    // step 1: buf = 1;    d =  1 + 0.9 * 1    = 1.9    p = 1     - 0.19   = 0.81
    // step 2: buf = 2.9;  d =  2 + 0.9 * 2.9  = 4.61   p = 0.81  - 0.461  = 0.349
    // step 3: buf = 1.61; d = -1 + 0.9 * 1.61 = 0.449  p = 0.349 - 0.0449 = 0.3041
    let got = sgd_1d(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::default()
    });
    assert_close(&got, &[0.81, 0.349, 0.3041], "nesterov");
}

#[test]
fn sgd_dampening_by_hand() {
    // lr 0.1, momentum 0.9, dampening 0.5; the first buffer is undamped.
    // step 1: buf = 1                              p = 1    - 0.1       = 0.9
    // step 2: buf = 0.9 * 1   + 0.5 * 2    = 1.9   p = 0.9  - 0.19      = 0.71
    // step 3: buf = 0.9 * 1.9 + 0.5 * (-1) = 1.21  p = 0.71 - 0.121     = 0.589
    let got = sgd_1d(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.5,
        ..SgdConfig::default()
    });
    assert_close(&got, &[0.9, 0.71, 0.589], "dampening");
}

#[test]
fn sgd_weight_decay_by_hand() {
    // lr 0.1, weight decay 0.1, no momentum: d = g + 0.1 * p.
    // step 1: d =  1 + 0.1    =  1.1      p = 1      - 0.11     = 0.89
    // step 2: d =  2 + 0.089  =  2.089    p = 0.89   - 0.2089   = 0.6811
    // step 3: d = -1 + 0.06811 = -0.93189 p = 0.6811 + 0.093189 = 0.774289
    let got = sgd_1d(SgdConfig {
        lr: 0.1,
        weight_decay: 0.1,
        ..SgdConfig::default()
    });
    assert_close(&got, &[0.89, 0.6811, 0.774289], "weight decay");

    // The same with momentum 0.9: the decayed gradient goes into the buffer.
    // step 1: d = 1.1;      buf = 1.1                         p = 1      - 0.11     = 0.89
    // step 2: d = 2.089;    buf = 0.99   + 2.089   = 3.079    p = 0.89   - 0.3079   = 0.5821
    // step 3: d = -0.94179; buf = 2.7711 - 0.94179 = 1.82931  p = 0.5821 - 0.182931 = 0.399169
    let got = sgd_1d(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.1,
        ..SgdConfig::default()
    });
    assert_close(&got, &[0.89, 0.5821, 0.399169], "weight decay + momentum");
}

#[test]
fn adam_l2_by_hand() {
    // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1 added to the gradient (L2).
    // p_t = p - lr * m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - 0.9^t), v_hat = v / (1 - 0.999^t)
    // step 1: g' = 1 + 0.1*1 = 1.1;  m = 0.11;  v = 0.001 * 1.21 = 0.00121
    //         m_hat = 1.1, v_hat = 1.21, sqrt = 1.1  ->  p = 1 - 0.1 * 1.1/1.1 = 0.9 (+9.1e-10)
    // step 2: g' = 2 + 0.09 = 2.09;  m = 0.099 + 0.209 = 0.308
    //         v = 0.999 * 0.00121 + 0.001 * 4.3681 = 0.00557689
    //         m_hat = 0.308 / 0.19 = 1.6210526;  v_hat = 0.00557689 / 0.001999 = 2.7898399
    //         sqrt = 1.6702814  ->  p = 0.9 - 0.1 * 0.9705263 = 0.8029473
    // step 3: g' = -1 + 0.08029473 = -0.91970527;  m = 0.2772 - 0.09197053 = 0.18522947
    //         v = 0.999 * 0.00557689 + 0.001 * 0.84585778 = 0.00641717
    //         m_hat = 0.18522947 / 0.271 = 0.6835036;  v_hat = 0.00641717 / 0.002997001 = 2.1411974
    //         sqrt = 1.4632831  ->  p = 0.8029473 - 0.1 * 0.4671027 = 0.7562371
    let config = AdamConfig {
        lr: 0.1,
        weight_decay: 0.1,
        ..AdamConfig::default()
    };
    let got = run_1d(|vars| Box::new(Adam::from_named(vars, config)));
    assert_close(
        &got,
        &[0.900_000_000_9, 0.802_947_334_7, 0.756_237_058],
        "adam",
    );
}

// ---- state export / import ------------------------------------------------------------

fn fresh_copy(v: &Var) -> Var {
    var(&values(v), v.dims())
}

fn export_map(opt: &dyn TrainOptimizer) -> HashMap<String, Tensor> {
    opt.state_tensors().unwrap().into_iter().collect()
}

/// Runs 3 steps, moves the state into an optimizer over fresh vars listed in the other
/// order, runs 3 more steps on both and demands bitwise-equal weights.
fn check_export_import(make: &dyn Fn(Vec<NamedVar>) -> Box<dyn TrainOptimizer>) {
    let (a, b) = problem_vars();
    let mut first = make(vec![named("alpha", &a), named("beta", &b)]);
    for _ in 0..3 {
        first.step_scaled(&quadratic_grads(&a, &b), 1.0).unwrap();
    }
    let state = export_map(first.as_ref());
    assert!(state.contains_key("step"));

    // Same weights, vars created and listed in the opposite order.
    let b2 = fresh_copy(&b);
    let a2 = fresh_copy(&a);
    let mut second = make(vec![named("beta", &b2), named("alpha", &a2)]);
    second.load_state_tensors(&state).unwrap();
    assert_eq!(second.steps(), 3);

    // Control: without the import the same 3 steps end elsewhere.
    let (a3, b3) = (fresh_copy(&a), fresh_copy(&b));
    let mut fresh = make(vec![named("alpha", &a3), named("beta", &b3)]);

    for _ in 0..3 {
        first.step_scaled(&quadratic_grads(&a, &b), 1.0).unwrap();
        second.step_scaled(&quadratic_grads(&a2, &b2), 1.0).unwrap();
        fresh.step_scaled(&quadratic_grads(&a3, &b3), 1.0).unwrap();
    }
    let name = first.name();
    assert_eq!(bits(&a), bits(&a2), "{name}: alpha differs after import");
    assert_eq!(bits(&b), bits(&b2), "{name}: beta differs after import");
    assert_ne!(
        bits(&a),
        bits(&a3),
        "{name}: state made no difference (test would not catch a broken import)"
    );
    // The exported states agree too, by name.
    let (s1, s2) = (export_map(first.as_ref()), export_map(second.as_ref()));
    assert_eq!(s1.len(), s2.len());
    for (k, t) in &s1 {
        let t2 = &s2[k];
        let flat = |t: &Tensor| -> Vec<u8> {
            let t = t.flatten_all().unwrap();
            match t.dtype() {
                candle_core::DType::I64 => t
                    .to_vec1::<i64>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                _ => t
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            }
        };
        assert_eq!(flat(t), flat(t2), "{name}: state tensor {k} differs");
    }
}

#[test]
fn export_import_is_exact_and_keyed_by_name() {
    check_export_import(&|vars| {
        Box::new(AdamW::from_named(
            vars,
            AdamConfig {
                lr: 0.05,
                weight_decay: 0.1,
                ..AdamConfig::default()
            },
        ))
    });
    check_export_import(&|vars| {
        Box::new(Adam::from_named(
            vars,
            AdamConfig {
                lr: 0.05,
                weight_decay: 0.1,
                ..AdamConfig::default()
            },
        ))
    });
    check_export_import(&|vars| {
        Box::new(Sgd::from_named(
            vars,
            SgdConfig {
                lr: 0.02,
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
                weight_decay: 0.01,
            },
        ))
    });
}

#[test]
fn import_errors_name_the_tensor() {
    let (a, b) = problem_vars();
    let mut opt = AdamW::from_named(
        vec![named("alpha", &a), named("beta", &b)],
        AdamConfig::default(),
    );
    opt.step_scaled(&quadratic_grads(&a, &b), 1.0).unwrap();
    let good = export_map(&opt);
    for key in ["exp_avg.alpha", "exp_avg_sq.beta", "step"] {
        assert!(good.contains_key(key), "export lacks {key}");
    }

    let mut missing = good.clone();
    missing.remove("exp_avg_sq.beta");
    let err = opt.load_state_tensors(&missing).unwrap_err().to_string();
    assert!(err.contains("exp_avg_sq.beta"), "{err}");

    // All or nothing: alpha's (different) buffers before the missing one are not taken.
    let mut half = missing.clone();
    half.insert(
        "exp_avg.alpha".into(),
        (good["exp_avg.alpha"].clone() + 1.0).unwrap(),
    );
    assert!(opt.load_state_tensors(&half).is_err());
    let after = export_map(&opt);
    let bits = |m: &std::collections::HashMap<String, Tensor>, k: &str| {
        m[k].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(bits(&after, "exp_avg.alpha"), bits(&good, "exp_avg.alpha"));

    let mut no_step = good.clone();
    no_step.remove("step");
    let err = opt.load_state_tensors(&no_step).unwrap_err().to_string();
    assert!(err.contains("step"), "{err}");

    let mut wrong_shape = good.clone();
    wrong_shape.insert(
        "exp_avg.alpha".into(),
        Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let err = opt
        .load_state_tensors(&wrong_shape)
        .unwrap_err()
        .to_string();
    assert!(err.contains("exp_avg.alpha"), "{err}");
    assert!(err.contains("shape"), "{err}");

    // SGD's buffer, same rules.
    let mut sgd = Sgd::from_named(
        vec![named("alpha", &a), named("beta", &b)],
        SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
    );
    let mut state = export_map(&sgd);
    state.remove("momentum_buffer.alpha");
    let err = sgd.load_state_tensors(&state).unwrap_err().to_string();
    assert!(err.contains("momentum_buffer.alpha"), "{err}");

    // The intact state still loads.
    opt.load_state_tensors(&good).unwrap();
    assert_eq!(opt.steps(), 1);
}

// ---- gradient clipping ----------------------------------------------------------------

#[test]
fn clipping_scales_global_norm_to_max() {
    // Gradients (3, 0) and (4): global norm 5 across both variables.
    let w = var(&[0.0, 0.0], &[2]);
    let u = var(&[0.0], &[1]);
    let mut grads = w.as_tensor().sum_all().unwrap().backward().unwrap();
    grads.insert(
        w.as_tensor(),
        Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap(),
    );
    grads.insert(u.as_tensor(), Tensor::new(&[4.0f32], &Device::Cpu).unwrap());
    let mut sgd = Sgd::from_named(
        vec![named("u", &u), named("w", &w)],
        SgdConfig {
            lr: 1.0,
            ..SgdConfig::default()
        },
    );
    let sq = grad_sq_norms(sgd.vars(), &grads).unwrap();
    assert_eq!(sq, vec![16.0, 9.0]);
    let global = sq.iter().sum::<f64>().sqrt();
    assert_eq!(global, 5.0);
    let scale = clip_scale(global, Some(1.0));
    sgd.step_scaled(&grads, scale).unwrap();
    // With lr 1 the update is the clipped gradient: (3, 0, 4) / 5.
    let (wv, uv) = (values(&w), values(&u));
    for (got, want) in [(wv[0], -0.6), (wv[1], 0.0), (uv[0], -0.8)] {
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }
    let norm = (wv[0] * wv[0] + wv[1] * wv[1] + uv[0] * uv[0]).sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "update norm {norm}");

    // Below the maximum or without one: untouched.
    assert_eq!(clip_scale(0.5, Some(1.0)), 1.0);
    assert_eq!(clip_scale(5.0, None), 1.0);
}
