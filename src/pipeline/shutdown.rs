//! The stop flag every pipeline thread watches, raised by the consumer (q),
//! by the end of the input, or by SIGINT/SIGTERM (signal-hook).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "please stop" flag.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A lowered flag.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// A flag that SIGINT and SIGTERM raise.
    pub fn on_signals() -> std::io::Result<StopFlag> {
        let flag = StopFlag::new();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&flag.0))?;
        }
        Ok(flag)
    }

    /// Asks everyone to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_sees_the_request() {
        let flag = StopFlag::new();
        let other = flag.clone();
        assert!(!other.is_requested());
        flag.request();
        assert!(other.is_requested());
    }
}

#[cfg(test)]
mod signal_tests {
    use super::*;

    #[test]
    fn sigterm_raises_the_flag_instead_of_killing() {
        let flag = StopFlag::on_signals().unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        assert!(flag.is_requested());
    }
}
