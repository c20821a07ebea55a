//! `--wait`: polling an object until it is done, with a one-line progress display.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Calls `poll` every second until it returns a result; each time the progress line it returns
/// changes, shows it (rewritten in place on a terminal, one line per change otherwise, so logs
/// of CI runs stay readable).
pub async fn until_done<T, F, Fut>(mut poll: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(String, Option<T>)>>,
{
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let (line, done) = poll().await?;
        if line != last {
            if tty {
                print!("\r\x1b[2K{line}");
            } else {
                println!("{line}");
            }
            let _ = std::io::stdout().flush();
            last = line;
        }
        if let Some(done) = done {
            return Ok(done);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
