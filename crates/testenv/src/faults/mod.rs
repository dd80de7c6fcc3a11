//! Fault injection from outside the code under test (nothing in the functions knows about it):
//!
//! - [`TcpFaultProxy`]: between a function and a database server; cuts a connection in the
//!   middle of a statement or right after it, blackholes it, delays it, or refuses connections.
//! - [`AwsCallCounter`]: in front of moto; counts every AWS call per API action (issue 8's
//!   benchmarks read it).
//! - [`HttpFaultProxy`]: in front of that counter; throttles, answers 5xx, hangs, and loses the
//!   answer of a call that was applied.
//! - [`Prng`]: the seeded generator fault schedules are drawn from, replayable from the seed a
//!   run prints (`DBCREDS_FAULT_SEED`).
//!
//! The other faults need no proxy: a database is killed with [`crate::DatabaseServer::kill`] and
//! brought back with `restart`, and a function process is killed at its deadline by the
//! [`crate::LambdaFunction`] emulator (or mid-step with [`kill_process`]).

mod aws_calls;
mod http_proxy;
pub mod prng;
mod tcp_proxy;

pub use aws_calls::{AwsCallCounter, AwsCalls};
pub use http_proxy::{HttpFault, HttpFaultProxy, HttpRule};
pub use prng::{Prng, fresh_seed, format_seed, parse_seed, seed_from_env};
pub use tcp_proxy::{TcpFault, TcpFaultProxy, TcpRule};

/// SIGKILL to one process the test started (a function's pid from [`crate::LambdaFunction::pid`]),
/// as Lambda stops a function at its deadline. Returns whether the signal was delivered.
pub fn kill_process(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill(2) with a pid the caller owns; no memory is shared.
    unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
}
