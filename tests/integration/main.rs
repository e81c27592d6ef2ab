//! Integration tests: each runs the real `razar` binary against a temporary root.

mod harness;

mod boot;
mod config;
