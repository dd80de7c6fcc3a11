//! Randomized fault injection through the real `rotator` binary: real MariaDB and PostgreSQL
//! with verified TLS behind a TCP fault proxy, moto behind an HTTP fault proxy, both strategies.
//! Each schedule (a fresh user and secret, one or two rotations under faults, then a clean one)
//! is drawn from a seed; the invariants are checked after every step (see
//! `faults_support/mod.rs`).
//!
//! - CI runs the fixed sample below (a few schedules per engine and strategy).
//! - `DBCREDS_FAULT_SEED=0x...` replays one schedule (the seed a failure printed), in every test
//!   of this file: pick the one that failed with a filter.
//! - `scripts/faults-long` runs `DBCREDS_FAULTS_LONG=<n>` fresh seeds per test and adds up the
//!   figures.

mod faults_support;

use faults_support::{EngineKind, Strategy, run, seeds};

/// The CI sample: fixed seeds, so CI runs the same schedules on every push.
const CI_SAMPLE: [u64; 4] = [0x5eed_0000_0000_0001, 0x5eed_0000_0000_0002, 0x5eed_0000_0000_0003, 0x5eed_0000_0000_0004];

#[tokio::test]
async fn mariadb_single_user_rotations_survive_random_faults() {
    run(EngineKind::MariaDb, Strategy::SingleUser, &seeds(&CI_SAMPLE)).await;
}

#[tokio::test]
async fn mariadb_alternating_users_rotations_survive_random_faults() {
    run(EngineKind::MariaDb, Strategy::Alternating, &seeds(&CI_SAMPLE)).await;
}

#[tokio::test]
async fn postgres_single_user_rotations_survive_random_faults() {
    run(EngineKind::Postgres, Strategy::SingleUser, &seeds(&CI_SAMPLE)).await;
}

#[tokio::test]
async fn postgres_alternating_users_rotations_survive_random_faults() {
    run(EngineKind::Postgres, Strategy::Alternating, &seeds(&CI_SAMPLE)).await;
}
