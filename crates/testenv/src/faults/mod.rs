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
/// as Lambda stops a function at its deadline. Returns whether the signal was delivered, once
/// the process has died: a signal is delivered asynchronously, and a process still dying when
/// the next invocation looks would take that invocation down with it.
pub fn kill_process(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill(2) with a pid the caller owns; no memory is shared.
    let delivered = unsafe { libc::kill(raw, libc::SIGKILL) == 0 };
    if delivered {
        wait_until_dead(pid);
    }
    delivered
}

/// Until the process is a zombie (dead, not yet reaped by its owner) or gone; bounded, since a
/// SIGKILLed process dies within milliseconds unless it is stuck in the kernel.
fn wait_until_dead(pid: u32) {
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..5_000 {
        let Ok(text) = std::fs::read_to_string(&stat) else { return };
        // The state follows the command name, which is in parentheses and may hold spaces.
        let state = text.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some("Z" | "X") | None) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
