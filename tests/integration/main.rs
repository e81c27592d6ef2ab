//! Integration tests: each runs the real `razar` binary against a temporary root.

mod harness;
// The unit tests' helper for the upstream system's files, shared so both skip alike.
#[path = "../../src/testutil.rs"]
mod testutil;

mod agents;
mod analyze;
mod boot;
mod config;
mod crown;
mod crown_state;
mod export;
mod faults;
mod faults_process;
mod handover;
mod handover_agents;
mod heal;
mod layers;
mod metrics;
mod operate;
mod probe;
mod quarantine;
mod repair;
mod sdnotify;
mod secrets;
mod status;
mod supervise;
