//! Entering and leaving the full-screen terminal: one `restore` reached from
//! the guard's Drop, the error path and the panic hook.

use std::io::{Stdout, Write};

use ratatui::Terminal;
use ratatui::prelude::CrosstermBackend;

/// Leaves raw mode and the alternate screen and shows the cursor (errors ignored:
/// there is nothing better to do while leaving).
pub fn restore() {
    let _ = ratatui::try_restore();
    let mut out = std::io::stdout();
    let _ = crossterm::execute!(out, crossterm::cursor::Show);
    let _ = out.flush();
}

/// The terminal in full-screen mode; restored when dropped.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen and installs a panic hook:
    /// a panic on this (the drawing) thread restores the terminal before the
    /// usual message is printed; a panic on another thread goes to the log
    /// only (printing it would scribble over the dashboard), and the pipeline
    /// reports it as that stage's failure, which the dashboard shows.
    pub fn enter() -> std::io::Result<TerminalGuard> {
        let terminal = ratatui::try_init().inspect_err(|_| restore())?;
        let drawing_thread = std::thread::current().id();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::error!("{info}");
            if std::thread::current().id() == drawing_thread {
                restore();
                previous(info);
            }
        }));
        Ok(TerminalGuard { terminal })
    }

    /// The terminal to draw on.
    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}
