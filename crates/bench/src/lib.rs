//! The benchmark harness of issue 8 (BENCHMARKS.md), as a library: the `dbcreds-bench` binary
//! runs the scenarios on the release binaries, and the CI budget tests (tests/budgets_*.rs)
//! drive the debug binaries through the same fixture, so calls and connections are counted the
//! same way in both: at proxies, never by the code under test.
//!
//! - [`fixture`]: moto behind the AWS call counter, servers behind connection-counting proxies.
//! - [`rotation`]: a four-step rotation through the `rotator`, step by step, with what each step
//!   cost (time, calls per API, time in calls, new connections).
//! - [`scenarios`], [`aws_latency`]: the benchmark's sections; [`report`], [`stats`],
//!   [`process`]: the results, medians and p95s, and what the kernel says about a process.

pub mod aws_latency;
pub mod fixture;
pub mod process;
pub mod report;
pub mod rotation;
pub mod scenarios;
pub mod stats;
