//! Writes "shapes", a small synthetic CIFAR-style data set for the `resnet` example job
//! (`examples/configs/resnet_cifar.json`): no CIFAR is bundled, and a job that trains the
//! zoo's ResNet on 3x32x32 colour images needs some.
//!
//! Ten classes of 32x32 RGB images, each a figure in one random colour on a background
//! of another, at a random place and size, with per-pixel noise: disc, square, triangle,
//! cross, ring (figures), horizontal, vertical and diagonal stripes, checkerboard and a
//! grid of dots (textures, at a random period and phase). Colours carry no class
//! information, so the network has to learn shapes. Everything is drawn from a ChaCha8
//! stream seeded per set: the same arguments write the same bytes.
//!
//! Layout (what AutoData reads, see `deeptrain data DIR/train`): `DIR/train/images.npy`
//! (`uint8`, `[N, 3, 32, 32]`) with `DIR/train/labels.npy` (`uint8`, `[N]`), the same
//! under `DIR/val`. Classes take turns, so every set is balanced.
//!
//! ```text
//! cargo run --release --example make_shapes -- [DIR (data/shapes)] [TRAIN (5000)] [VAL (1000)]
//! ```

use std::path::{Path, PathBuf};

use deeptrain::data_loaders::array::DType;
use deeptrain::data_loaders::npy::write_npy;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Side of the square images, in pixels.
pub const SIDE: usize = 32;

/// The class names, by class id.
pub const CLASS_NAMES: [&str; 10] = [
    "disc",
    "square",
    "triangle",
    "cross",
    "ring",
    "h_stripes",
    "v_stripes",
    "diagonal",
    "checker",
    "dots",
];

/// Seed of the train set; the validation set uses the next one.
pub const SEED: u64 = 2024;

/// A uniform draw in `[lo, hi)` (`hi > lo`) from the stream: the set's only source of
/// randomness (a float from the top 24 bits, as many samplers do; no `rand` dependency
/// needed for that).
fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    lo + unit * (hi - lo)
}

/// A random colour, and another one that differs from it clearly (so figures stay
/// visible through the noise).
fn colours(rng: &mut ChaCha8Rng) -> ([f32; 3], [f32; 3]) {
    let draw = |rng: &mut ChaCha8Rng| [0; 3].map(|_: u8| uniform(rng, 0.0, 255.0));
    let bg = draw(rng);
    loop {
        let fg = draw(rng);
        let contrast: f32 = fg.iter().zip(&bg).map(|(a, b)| (a - b).abs()).sum();
        if contrast > 180.0 {
            return (bg, fg);
        }
    }
}

/// Whether pixel (`x`, `y`) belongs to the figure or pattern of `class`, drawn with
/// centre (`cx`, `cy`), radius `r`, period `p` and phase `ph`.
fn inside(class: usize, x: f32, y: f32, (cx, cy, r): (f32, f32, f32), (p, ph): (f32, f32)) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    let dist = (dx * dx + dy * dy).sqrt();
    let band = |v: f32| ((v + ph) / p).floor().rem_euclid(2.0) == 0.0;
    match class {
        0 => dist <= r,
        1 => dx.abs() <= 0.8 * r && dy.abs() <= 0.8 * r,
        2 => dy.abs() <= r && dx.abs() <= (dy + r) / 2.0,
        3 => (dx.abs() <= r / 3.0 && dy.abs() <= r) || (dy.abs() <= r / 3.0 && dx.abs() <= r),
        4 => dist <= r && dist >= 0.55 * r,
        5 => band(y),
        6 => band(x),
        7 => band((x + y) / std::f32::consts::SQRT_2),
        8 => band(x) != band(y + p),
        _ => {
            let cell = 2.0 * p;
            let (u, v) = ((x + ph).rem_euclid(cell), (y + ph).rem_euclid(cell));
            (u - p).powi(2) + (v - p).powi(2) <= (0.45 * p).powi(2)
        }
    }
}

/// One image of `class`, `[3, 32, 32]` channel-first bytes.
pub fn image(class: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let (bg, fg) = colours(rng);
    let r = uniform(rng, 6.0, 11.0);
    let (cx, cy) = (uniform(rng, 10.0, 22.0), uniform(rng, 10.0, 22.0));
    let (p, ph) = (uniform(rng, 2.0, 4.5), uniform(rng, 0.0, 9.0));
    let mut out = vec![0u8; 3 * SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let on = inside(class, x as f32, y as f32, (cx, cy, r), (p, ph));
            let colour = if on { fg } else { bg };
            for (c, base) in colour.iter().enumerate() {
                let noise = uniform(rng, -30.0, 30.0) + uniform(rng, -30.0, 30.0);
                out[(c * SIDE + y) * SIDE + x] = (base + noise).clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Writes `n` images (classes in turn) to `dir/images.npy` and their class ids to
/// `dir/labels.npy`, drawn from a stream seeded with `seed`.
pub fn write_set(dir: &Path, n: usize, seed: u64) -> deeptrain::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| deeptrain::Error::io(dir, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * 3 * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASS_NAMES.len();
        images.extend(image(class, &mut rng));
        labels.push(class as u8);
    }
    write_npy(
        dir.join("images.npy"),
        DType::U8,
        &[n, 3, SIDE, SIDE],
        &images,
    )?;
    write_npy(dir.join("labels.npy"), DType::U8, &[n], &labels)?;
    Ok(())
}

/// Writes the train set (`train` images) to `root/train` and the validation set (`val`
/// images) to `root/val`.
pub fn write_shapes(root: &Path, train: usize, val: usize) -> deeptrain::Result<()> {
    write_set(&root.join("train"), train, SEED)?;
    write_set(&root.join("val"), val, SEED + 1)
}

fn main() -> deeptrain::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| "data/shapes".into()));
    let mut count = |name: &str, default: usize| -> deeptrain::Result<usize> {
        match args.next() {
            None => Ok(default),
            Some(s) => s.parse().map_err(|_| {
                deeptrain::Error::config(name, format!("{s:?} is not a number of images"))
            }),
        }
    };
    let (train, val) = (count("TRAIN", 5000)?, count("VAL", 1000)?);
    write_shapes(&root, train, val)?;
    println!(
        "wrote {train} train and {val} validation images of {} classes to {}/{{train,val}}",
        CLASS_NAMES.len(),
        root.display()
    );
    Ok(())
}
