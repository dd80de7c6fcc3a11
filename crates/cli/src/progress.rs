//! A spinner on the terminal while a step waits on the network. Only when both stdout and stderr
//! are terminals (never in a pipe, a file, CI or `--json | jq`), and always on stderr, so it can
//! never get into the output. It is erased when the step ends.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);

/// Decides once, at start-up, whether spinners are shown.
pub fn init() {
    let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
    ENABLED.store(std::io::stdout().is_terminal() && std::io::stderr().is_terminal() && !dumb, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs `work`, showing `label` with a spinner meanwhile when [`enabled`].
pub async fn during<T>(label: &str, work: impl Future<Output = T>) -> T {
    if !enabled() {
        return work.await;
    }
    let label = label.to_owned();
    let spinner = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(TICK);
        for frame in FRAMES.iter().cycle() {
            ticks.tick().await;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{frame} {label}");
            let _ = err.flush();
        }
    });
    let result = work.await;
    spinner.abort();
    let _ = spinner.await;
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
    result
}
