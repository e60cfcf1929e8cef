//! Test-only helpers that are bigger than `common.rs`'s, one file each.

pub mod tb_reader;
