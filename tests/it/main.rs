//! The integration tests, one binary so CI links candle once. Each module is one area.

mod architecture;
mod autodata;
mod autodata_train;
mod best;
mod callbacks;
mod checkpoints;
mod cli;
mod common;
mod config;
mod data_config;
mod faults;
mod fuzz_corpus;
mod init_summary;
mod mnist_job;
mod optimizers;
mod readme;
mod registry;
mod report;
mod resume;
mod runs;
mod support;
mod tensorboard;
mod training_options;
mod transforms;
mod use_model;
mod zoo;
