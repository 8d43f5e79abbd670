//! The practice game as pure state: a random target sign (never the same
//! twice in a row), score, streak, per-sign tries and time to recognise,
//! measured from the capture time of the first frame after the target was
//! shown to the capture time of the frame that completed the decision.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How long the CORRECT flash stays (wall clock; the display's business).
pub const FLASH: Duration = Duration::from_millis(1200);

/// One sign's record.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SignStats {
    /// Rounds that ended with this target (recognised or skipped).
    pub tries: u32,
    /// Rounds it was recognised in.
    pub right: u32,
    /// Seconds to recognise, summed over the rounds it was.
    pub seconds: f64,
}

impl SignStats {
    /// Mean seconds to recognise, when it was recognised at least once.
    pub fn mean_seconds(&self) -> Option<f64> {
        (self.right > 0).then(|| self.seconds / f64::from(self.right))
    }
}

/// How a round ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RoundEnd {
    /// The decision matched the target.
    Correct {
        /// Round number (from 1).
        round: u32,
        /// The sign.
        sign: String,
        /// Seconds from the target's first frame to the deciding frame.
        seconds: f64,
    },
    /// The user skipped it.
    Skipped {
        /// Round number.
        round: u32,
        /// The sign.
        sign: String,
    },
}

/// The game.
#[derive(Clone, Debug)]
pub struct Game {
    /// Signs the targets are drawn from.
    pub signs: Vec<String>,
    rng: ChaCha8Rng,
    /// Index in `signs` of the target now (None once the rounds are done).
    pub target: Option<usize>,
    /// Capture time of the first frame after the target was shown.
    pub shown_at: Option<Duration>,
    /// Capture time of the newest frame.
    pub latest: Option<Duration>,
    /// Current round (from 1).
    pub round: u32,
    /// Rounds to play (None: until quit).
    pub rounds: Option<u32>,
    /// Signs recognised.
    pub score: u32,
    /// Targets recognised in a row (a skip or a wrong sign ends it).
    pub streak: u32,
    /// The longest streak.
    pub best_streak: u32,
    /// Per sign, in `signs` order.
    pub stats: Vec<SignStats>,
    /// Recent decisions, newest last.
    pub transcript: Vec<String>,
}

/// Decisions kept for display.
const TRANSCRIPT_LEN: usize = 15;

impl Game {
    /// A game over `signs` (at least one), targets drawn with `seed`.
    pub fn new(signs: Vec<String>, rounds: Option<u32>, seed: u64) -> Game {
        let n = signs.len();
        let mut game = Game {
            signs,
            rng: ChaCha8Rng::seed_from_u64(seed),
            target: None,
            shown_at: None,
            latest: None,
            round: 0,
            rounds,
            score: 0,
            streak: 0,
            best_streak: 0,
            stats: vec![SignStats::default(); n],
            transcript: Vec::new(),
        };
        game.next_target();
        game
    }

    /// The target sign's name.
    pub fn target_sign(&self) -> Option<&str> {
        self.target
            .and_then(|i| self.signs.get(i))
            .map(String::as_str)
    }

    /// Whether every round was played.
    pub fn is_over(&self) -> bool {
        self.target.is_none()
    }

    /// Seconds since the target's first frame, by capture times.
    pub fn elapsed(&self) -> Option<f64> {
        let (shown, latest) = (self.shown_at?, self.latest?);
        Some(latest.saturating_sub(shown).as_secs_f64())
    }

    /// A random sign other than the last target (the only one when there is one).
    fn next_target(&mut self) {
        if self.rounds.is_some_and(|r| self.round >= r) || self.signs.is_empty() {
            self.target = None;
            return;
        }
        let n = self.signs.len();
        let next = match self.target {
            Some(last) if n > 1 => (last + 1 + self.rng.random_range(0..n - 1)) % n,
            _ => self.rng.random_range(0..n),
        };
        self.target = Some(next);
        self.round += 1;
        self.shown_at = None;
    }

    /// A frame was shown: the first one after a new target starts its clock.
    pub fn on_frame(&mut self, captured: Duration) {
        self.latest = Some(captured);
        if self.target.is_some() && self.shown_at.is_none() {
            self.shown_at = Some(captured);
        }
    }

    /// A decision of the pipeline, completed by the frame captured at `captured`.
    pub fn on_decision(&mut self, sign: &str, captured: Duration) -> Option<RoundEnd> {
        self.transcript.push(sign.to_string());
        if self.transcript.len() > TRANSCRIPT_LEN {
            self.transcript.remove(0);
        }
        let target = self.target?;
        if self.signs[target] != sign {
            self.streak = 0;
            return None;
        }
        let shown = self.shown_at.unwrap_or(captured);
        let seconds = captured.saturating_sub(shown).as_secs_f64();
        let stats = &mut self.stats[target];
        stats.tries += 1;
        stats.right += 1;
        stats.seconds += seconds;
        self.score += 1;
        self.streak += 1;
        self.best_streak = self.best_streak.max(self.streak);
        let end = RoundEnd::Correct {
            round: self.round,
            sign: sign.to_string(),
            seconds,
        };
        self.next_target();
        Some(end)
    }

    /// Skips the target (counted as a try that was not right).
    pub fn skip(&mut self) -> Option<RoundEnd> {
        let target = self.target?;
        self.stats[target].tries += 1;
        self.streak = 0;
        let end = RoundEnd::Skipped {
            round: self.round,
            sign: self.signs[target].clone(),
        };
        self.next_target();
        Some(end)
    }

    /// Score, streak, rounds, record and transcript back to zero; a new target.
    pub fn reset(&mut self) {
        self.score = 0;
        self.streak = 0;
        self.best_streak = 0;
        self.round = 0;
        self.stats.fill(SignStats::default());
        self.transcript.clear();
        self.target = None;
        self.next_target();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game(rounds: Option<u32>) -> Game {
        Game::new(
            vec!["Cow".into(), "Bird".into(), "Gorilla".into()],
            rounds,
            7,
        )
    }

    #[test]
    fn targets_never_repeat_and_follow_the_seed() {
        let mut a = game(None);
        let mut b = game(None);
        let mut last = a.target;
        for _ in 0..200 {
            assert_eq!(a.target, b.target, "same seed, same order");
            a.skip();
            b.skip();
            assert_ne!(a.target, last, "never the same twice in a row");
            last = a.target;
        }
    }

    #[test]
    fn a_matching_decision_scores_with_its_time() {
        let mut g = game(Some(2));
        let target = g.target_sign().unwrap().to_string();
        g.on_frame(Duration::from_millis(10_000));
        g.on_frame(Duration::from_millis(10_500));
        assert_eq!(g.elapsed(), Some(0.5));
        let wrong = g.signs.iter().find(|s| **s != target).unwrap().clone();
        assert_eq!(g.on_decision(&wrong, Duration::from_millis(11_000)), None);
        match g.on_decision(&target, Duration::from_millis(12_250)) {
            Some(RoundEnd::Correct { round, seconds, .. }) => {
                assert_eq!(round, 1);
                assert!((seconds - 2.25).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((g.score, g.streak, g.round), (1, 1, 2));
        let i = g.signs.iter().position(|s| *s == target).unwrap();
        assert_eq!(g.stats[i].mean_seconds(), Some(2.25));
        assert_eq!(g.shown_at, None, "the new target's clock waits for a frame");
        // Round 2 skipped: the rounds are over.
        assert!(matches!(g.skip(), Some(RoundEnd::Skipped { round: 2, .. })));
        assert!(g.is_over());
        assert_eq!(g.streak, 0);
        assert_eq!(g.stats.iter().map(|s| s.tries).sum::<u32>(), 2);
        assert_eq!(g.transcript.len(), 2);
    }

    #[test]
    fn reset_clears_score_and_transcript() {
        let mut g = game(None);
        let target = g.target_sign().unwrap().to_string();
        g.on_decision(&target, Duration::ZERO);
        g.reset();
        assert_eq!((g.score, g.streak, g.round), (0, 0, 1));
        assert!(g.transcript.is_empty());
        assert!(g.stats.iter().all(|s| *s == SignStats::default()));
    }

    #[test]
    fn one_sign_is_the_target_every_round() {
        let mut g = Game::new(vec!["Cow".into()], Some(3), 1);
        for _ in 0..3 {
            assert_eq!(g.target_sign(), Some("Cow"));
            g.skip();
        }
        assert!(g.is_over());
    }
}
