//! Integration tests: each runs the real `razar` binary against a temporary root.

mod harness;

mod agents;
mod analyze;
mod boot;
mod config;
mod crown;
mod faults;
mod layers;
mod quarantine;
mod status;
mod supervise;
