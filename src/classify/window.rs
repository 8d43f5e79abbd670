//! The sliding window of the last N keypoint feature vectors fed to the sign model.
//!
//! Frames are kept oldest first; `as_flat` lays them out row-major as
//! frames x features, ready to become a (1, N, F) tensor.

use std::collections::VecDeque;

use crate::landmarks::keypoints::{Keypoints, Layout};

/// Frames per window in SignPose (`sequence_length = 30`).
pub const DEFAULT_WINDOW_LEN: usize = 30;

/// Errors of the window.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    /// A pushed feature vector does not match the window's layout.
    #[error("the window holds {layout} keypoint vectors of {expected} values, got {got}")]
    WrongLength {
        /// The window's layout.
        layout: Layout,
        /// Features per frame of that layout.
        expected: usize,
        /// Length of the vector pushed.
        got: usize,
    },
}

/// The last `len` frames of keypoint features in one layout.
#[derive(Clone, Debug)]
pub struct Window {
    layout: Layout,
    capacity: usize,
    frames: VecDeque<Vec<f32>>,
}

impl Window {
    /// An empty window of `len` frames (at least one) in `layout`.
    pub fn new(layout: Layout, len: usize) -> Window {
        let capacity = len.max(1);
        Window {
            layout,
            capacity,
            frames: VecDeque::with_capacity(capacity),
        }
    }

    /// An empty window of SignPose's 30 frames.
    pub fn with_default_len(layout: Layout) -> Window {
        Window::new(layout, DEFAULT_WINDOW_LEN)
    }

    /// The layout of every frame in the window.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Frames the window holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames held now.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether the window holds `capacity` frames (ready for the model).
    pub fn is_full(&self) -> bool {
        self.frames.len() == self.capacity
    }

    /// Appends a frame's keypoints, dropping the oldest frame when full.
    pub fn push(&mut self, keypoints: &Keypoints) {
        let mut features = self.recycled_row();
        features.resize(self.layout.features(), 0.0);
        keypoints.write_features(self.layout, &mut features);
        self.frames.push_back(features);
    }

    /// Appends a ready feature vector, which must have the layout's length.
    pub fn push_features(&mut self, features: &[f32]) -> Result<(), WindowError> {
        let expected = self.layout.features();
        if features.len() != expected {
            return Err(WindowError::WrongLength {
                layout: self.layout,
                expected,
                got: features.len(),
            });
        }
        let mut row = self.recycled_row();
        row.extend_from_slice(features);
        self.frames.push_back(row);
        Ok(())
    }

    /// Drops every frame (e.g. after a gap in the input).
    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// The frames oldest first, row-major (frames x features).
    pub fn as_flat(&self) -> Vec<f32> {
        let mut flat = Vec::with_capacity(self.frames.len() * self.layout.features());
        for frame in &self.frames {
            flat.extend_from_slice(frame);
        }
        flat
    }

    /// Makes room for one frame and returns an empty buffer, reusing the
    /// oldest frame's allocation when the window is full.
    fn recycled_row(&mut self) -> Vec<f32> {
        if self.frames.len() >= self.capacity
            && let Some(mut oldest) = self.frames.pop_front()
        {
            oldest.clear();
            return oldest;
        }
        Vec::with_capacity(self.layout.features())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::keypoints::Landmark;

    fn row(layout: Layout, value: f32) -> Vec<f32> {
        vec![value; layout.features()]
    }

    #[test]
    fn fills_up_to_len_then_slides() {
        let layout = Layout::PoseHands;
        let mut window = Window::new(layout, 3);
        assert!(window.is_empty());
        for i in 0..3 {
            assert!(!window.is_full());
            window.push_features(&row(layout, i as f32)).unwrap();
        }
        assert!(window.is_full());
        assert_eq!(window.len(), 3);
        window.push_features(&row(layout, 3.0)).unwrap();
        assert_eq!(window.len(), 3);
        let flat = window.as_flat();
        assert_eq!(flat.len(), 3 * 258);
        // Oldest first: frame 0 was dropped, rows are 1, 2, 3.
        assert_eq!(flat[0], 1.0);
        assert_eq!(flat[258], 2.0);
        assert_eq!(flat[2 * 258 + 257], 3.0);
    }

    #[test]
    fn default_len_is_signposes_thirty() {
        let window = Window::with_default_len(Layout::PoseFaceHands);
        assert_eq!(window.capacity(), 30);
        assert_eq!(window.layout(), Layout::PoseFaceHands);
    }

    #[test]
    fn wrong_length_is_an_error_naming_both_sizes() {
        let mut window = Window::new(Layout::PoseHands, 30);
        let err = window.push_features(&[0.0; 1662]).unwrap_err();
        assert_eq!(
            err,
            WindowError::WrongLength {
                layout: Layout::PoseHands,
                expected: 258,
                got: 1662
            }
        );
        let message = err.to_string();
        assert!(message.contains("258"), "{message}");
        assert!(message.contains("1662"), "{message}");
        assert!(window.is_empty());
    }

    #[test]
    fn push_writes_the_layouts_features() {
        let layout = Layout::PoseHands;
        let keypoints = Keypoints {
            right_hand: Some(vec![Landmark::xyz(0.25, 0.5, -0.1); 21]),
            ..Keypoints::default()
        };
        let mut window = Window::new(layout, 2);
        window.push(&Keypoints::default());
        window.push(&keypoints);
        window.push(&keypoints);
        let flat = window.as_flat();
        let expected = keypoints.to_features(layout);
        assert_eq!(&flat[..258], expected.as_slice());
        assert_eq!(&flat[258..], expected.as_slice());
        assert_eq!(flat[layout.right_hand().start], 0.25);
    }

    #[test]
    fn clear_empties_the_window() {
        let mut window = Window::new(Layout::PoseHands, 2);
        window.push(&Keypoints::default());
        window.push(&Keypoints::default());
        assert!(window.is_full());
        window.clear();
        assert_eq!(window.len(), 0);
        assert!(window.as_flat().is_empty());
    }

    #[test]
    fn zero_len_is_raised_to_one_frame() {
        let mut window = Window::new(Layout::PoseHands, 0);
        window.push(&Keypoints::default());
        assert!(window.is_full());
        assert_eq!(window.capacity(), 1);
    }
}
