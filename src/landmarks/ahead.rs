//! Model runs made ahead of the pose: a tracked part (a hand, the face) is
//! looked for in a rect built from the previous frame alone, so its landmark
//! model can run on that rect while the pose landmark model runs. Once the
//! frame's rect is known, the run is used where it was made on that very
//! rect (same crop, same model: the same result), and the model runs again
//! otherwise.

use std::time::{Duration, Instant};

use super::roi::Roi;
use crate::nn::ModelError;

/// A landmark model's run made ahead of time on one rect.
pub struct RunAhead<T> {
    roi: Roi,
    run: Result<T, ModelError>,
    took: Duration,
}

impl<T> RunAhead<T> {
    /// Runs `model` on `roi` now, timing it.
    pub fn on(roi: Roi, model: impl FnOnce(&Roi) -> Result<T, ModelError>) -> RunAhead<T> {
        let started = Instant::now();
        let run = model(&roi);
        RunAhead {
            roi,
            run,
            took: started.elapsed(),
        }
    }

    /// True when this run was made on `roi` (and so holds its result).
    pub fn ran_on(&self, roi: &Roi) -> bool {
        self.roi == *roi
    }
}

/// What a part's landmark model gave on the frame's rect, and how.
pub struct Taken<T> {
    pub run: Result<T, ModelError>,
    /// The model's time, ahead or now.
    pub took: Duration,
    /// It came from the run made ahead.
    pub ran_ahead: bool,
}

/// The model's result on `roi`: `ahead`'s when it was made on that rect,
/// else `model` run now.
pub fn take_or_run<T>(
    roi: &Roi,
    ahead: Option<RunAhead<T>>,
    model: impl FnOnce(&Roi) -> Result<T, ModelError>,
) -> Taken<T> {
    match ahead.filter(|a| a.ran_on(roi)) {
        Some(ahead) => Taken {
            run: ahead.run,
            took: ahead.took,
            ran_ahead: true,
        },
        None => {
            let now = RunAhead::on(*roi, model);
            Taken {
                run: now.run,
                took: now.took,
                ran_ahead: false,
            }
        }
    }
}
