//! Turns the model's per-window probabilities into stable sign decisions:
//! a confidence threshold, a real debounce (the last N argmaxes must agree)
//! and a cooldown after each decision.
//!
//! SignPose checked `np.unique(predictions[-10:])[0] == argmax`, which only
//! compares the smallest recent class (np.unique sorts) with the current one,
//! so disagreeing windows passed. Here every one of the last `debounce`
//! confident argmaxes must be the same class.

use std::collections::VecDeque;

/// Settings of the smoother.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothingConfig {
    /// Minimum probability for an argmax to count (0..=1).
    pub threshold: f32,
    /// How many consecutive confident argmaxes must agree before a decision.
    pub debounce: usize,
    /// Updates after a decision during which no new decision is emitted.
    pub cooldown: usize,
}

impl Default for SmoothingConfig {
    /// SignPose's threshold 0.5 and 10-window check, with a short cooldown.
    fn default() -> Self {
        SmoothingConfig {
            threshold: 0.5,
            debounce: 10,
            cooldown: 5,
        }
    }
}

/// A stable recognition: the class index and its probability in the last window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Index of the recognised class in the model's labels.
    pub index: usize,
    /// Probability of that class in the window that completed the decision.
    pub probability: f32,
}

/// Debounces the model's outputs into decisions.
#[derive(Clone, Debug)]
pub struct Smoother {
    config: SmoothingConfig,
    /// The last `debounce` argmaxes; `None` where the window was not confident.
    recent: VecDeque<Option<usize>>,
    /// Updates still to wait before another decision may be emitted.
    cooling: usize,
}

impl Smoother {
    /// A smoother with `config` (threshold clamped to 0..=1, debounce at least 1).
    pub fn new(config: SmoothingConfig) -> Smoother {
        let config = SmoothingConfig {
            threshold: clamp_threshold(config.threshold),
            debounce: config.debounce.max(1),
            cooldown: config.cooldown,
        };
        Smoother {
            config,
            recent: VecDeque::with_capacity(config.debounce),
            cooling: 0,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> SmoothingConfig {
        self.config
    }

    /// Changes the confidence threshold, clamped to 0..=1 (NaN keeps the old one).
    pub fn set_threshold(&mut self, threshold: f32) {
        if !threshold.is_nan() {
            self.config.threshold = clamp_threshold(threshold);
        }
    }

    /// Forgets the recent argmaxes and any cooldown.
    pub fn reset(&mut self) {
        self.recent.clear();
        self.cooling = 0;
    }

    /// Feeds one window's probabilities; returns a decision when the last
    /// `debounce` confident argmaxes agree and no cooldown is running.
    /// Empty or NaN probabilities count as "not confident" and yield `None`.
    pub fn update(&mut self, probabilities: &[f32]) -> Option<Decision> {
        let top = argmax(probabilities).filter(|&(_, p)| p >= self.config.threshold);
        if self.recent.len() == self.config.debounce {
            self.recent.pop_front();
        }
        self.recent.push_back(top.map(|(index, _)| index));
        if self.cooling > 0 {
            self.cooling -= 1;
            return None;
        }
        let (index, probability) = top?;
        if !self.recent_agree_on(index) {
            return None;
        }
        self.cooling = self.config.cooldown;
        Some(Decision { index, probability })
    }

    /// Whether the window of recent argmaxes is full and all equal `index`.
    fn recent_agree_on(&self, index: usize) -> bool {
        self.recent.len() == self.config.debounce
            && self.recent.iter().all(|&seen| seen == Some(index))
    }
}

/// Keeps a threshold inside 0..=1 (NaN becomes 1: nothing passes).
fn clamp_threshold(threshold: f32) -> f32 {
    if threshold.is_nan() {
        1.0
    } else {
        threshold.clamp(0.0, 1.0)
    }
}

/// Index and value of the largest probability (the first on a tie); `None`
/// if empty or any is NaN.
pub(crate) fn argmax(probabilities: &[f32]) -> Option<(usize, f32)> {
    if probabilities.iter().any(|p| p.is_nan()) {
        return None;
    }
    probabilities
        .iter()
        .copied()
        .enumerate()
        .fold(None, |best, (i, p)| match best {
            Some((_, bp)) if bp >= p => best,
            _ => Some((i, p)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities with `p` on `class` of 4 and the rest shared out.
    fn probs(class: usize, p: f32) -> Vec<f32> {
        let mut v = vec![(1.0 - p) / 3.0; 4];
        v[class] = p;
        v
    }

    fn smoother(threshold: f32, debounce: usize, cooldown: usize) -> Smoother {
        Smoother::new(SmoothingConfig {
            threshold,
            debounce,
            cooldown,
        })
    }

    /// SignPose's check: the smallest class seen in the last `n` equals the current argmax.
    fn signpose_check(history: &[usize], n: usize) -> bool {
        let start = history.len().saturating_sub(n);
        let recent = &history[start..];
        let smallest = recent.iter().min();
        smallest == history.last()
    }

    #[test]
    fn emits_once_the_last_debounce_argmaxes_agree() {
        let mut s = smoother(0.5, 3, 0);
        assert_eq!(s.update(&probs(2, 0.9)), None);
        assert_eq!(s.update(&probs(2, 0.8)), None);
        assert_eq!(
            s.update(&probs(2, 0.7)),
            Some(Decision {
                index: 2,
                probability: 0.7
            })
        );
    }

    #[test]
    fn disagreement_that_signposes_unique_check_lets_through_is_rejected() {
        // Class 0 windows with a stray class 3 among them: np.unique sorts,
        // so np.unique([0, 0, 3, 0, 0])[0] == 0 == argmax and SignPose fires.
        let classes = [0, 0, 3, 0, 0];
        assert!(signpose_check(&classes, 5));
        let mut s = smoother(0.5, 5, 10);
        let decisions: Vec<_> = classes
            .iter()
            .filter_map(|&c| s.update(&probs(c, 0.9)))
            .collect();
        assert!(decisions.is_empty(), "{decisions:?}");
        // Five agreeing windows later it does fire.
        let later: Vec<_> = (0..5).filter_map(|_| s.update(&probs(0, 0.9))).collect();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].index, 0);
    }

    #[test]
    fn below_threshold_windows_break_the_run() {
        let mut s = smoother(0.6, 3, 0);
        assert_eq!(s.update(&probs(1, 0.9)), None);
        assert_eq!(s.update(&probs(1, 0.55)), None);
        assert_eq!(s.update(&probs(1, 0.9)), None);
        assert_eq!(s.update(&probs(1, 0.9)), None);
        assert_eq!(s.update(&probs(1, 0.9)).map(|d| d.index), Some(1));
    }

    #[test]
    fn cooldown_holds_back_the_next_decisions() {
        let mut s = smoother(0.5, 2, 3);
        let fired: Vec<bool> = (0..10)
            .map(|_| s.update(&probs(1, 0.9)).is_some())
            .collect();
        // Fires at update 2, then 3 updates of cooldown, then fires again.
        assert_eq!(
            fired,
            [
                false, true, false, false, false, true, false, false, false, true
            ]
        );
    }

    #[test]
    fn threshold_is_clamped() {
        let mut s = smoother(1.5, 1, 0);
        assert_eq!(s.config().threshold, 1.0);
        s.set_threshold(-0.2);
        assert_eq!(s.config().threshold, 0.0);
        s.set_threshold(f32::NAN);
        assert_eq!(s.config().threshold, 0.0);
        s.set_threshold(0.75);
        assert_eq!(s.config().threshold, 0.75);
        assert_eq!(s.update(&probs(3, 0.7)), None);
        assert_eq!(s.update(&probs(3, 0.8)).map(|d| d.index), Some(3));
    }

    #[test]
    fn empty_and_nan_probabilities_yield_none() {
        let mut s = smoother(0.0, 1, 0);
        assert_eq!(s.update(&[]), None);
        assert_eq!(s.update(&[f32::NAN, 0.2]), None);
        assert_eq!(s.update(&[0.1, f32::NAN]), None);
        assert_eq!(s.update(&[0.2, 0.8]).map(|d| d.index), Some(1));
    }

    #[test]
    fn zero_debounce_acts_as_one() {
        let mut s = smoother(0.5, 0, 0);
        assert_eq!(s.config().debounce, 1);
        assert_eq!(s.update(&probs(0, 0.9)).map(|d| d.index), Some(0));
    }

    #[test]
    fn reset_forgets_the_run() {
        let mut s = smoother(0.5, 2, 0);
        assert_eq!(s.update(&probs(2, 0.9)), None);
        s.reset();
        assert_eq!(s.update(&probs(2, 0.9)), None);
        assert!(s.update(&probs(2, 0.9)).is_some());
    }
}
