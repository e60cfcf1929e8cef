//! How numbers read on the report: values, counts and axis tick labels.

/// Formats a value with ~4 significant digits; scientific only for extreme magnitudes.
pub(super) fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return trim_exp(format!("{v:.2e}"));
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// Batches / steps are integers; print them without a fraction when they are whole.
pub(super) fn fmt_count(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        fmt_value(v)
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn trim_exp(s: String) -> String {
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{}", trim_zeros(m.to_string()), e),
        None => s,
    }
}

/// Tick formatter with a precision matched to the axis span, so ticks read
/// "0.25 0.5 0.75" rather than "0.2500000001".
pub(super) fn tick_formatter(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let mag = lo.abs().max(hi.abs());
    let step = (hi - lo).abs() / 8.0;
    let sci = mag >= 1e6 || (mag > 0.0 && mag < 1e-3);
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 8.0) as usize
    } else {
        2
    };
    move |v: &f64| {
        let v = if step > 0.0 && v.abs() < step * 1e-6 {
            0.0
        } else {
            *v
        };
        if sci {
            trim_exp(format!("{v:.2e}"))
        } else {
            trim_zeros(format!("{v:.decimals$}"))
        }
    }
}
