//! Which landmarks are joined by a line when a skeleton is drawn: MediaPipe's
//! pose (33 points) and hand (21 points) topologies, from their public
//! landmark definitions.

/// Pose connections (33 landmarks): face outline, mouth, arms with their hand
/// points, torso, legs and feet.
///
/// Indices: 0 nose; 1-3 left eye inner/centre/outer, 4-6 right eye; 7, 8 ears;
/// 9, 10 mouth corners; 11, 12 shoulders; 13, 14 elbows; 15, 16 wrists;
/// 17, 18 pinkies; 19, 20 index fingers; 21, 22 thumbs; 23, 24 hips;
/// 25, 26 knees; 27, 28 ankles; 29, 30 heels; 31, 32 foot indices
/// (odd = the person's left, even = right).
pub const POSE_CONNECTIONS: [(usize, usize); 35] = [
    // Face: nose to each eye and on to the ear; the mouth.
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 7),
    (0, 4),
    (4, 5),
    (5, 6),
    (6, 8),
    (9, 10),
    // Shoulders, arms and the hand points on the wrists.
    (11, 12),
    (11, 13),
    (13, 15),
    (15, 17),
    (15, 19),
    (15, 21),
    (17, 19),
    (12, 14),
    (14, 16),
    (16, 18),
    (16, 20),
    (16, 22),
    (18, 20),
    // Torso.
    (11, 23),
    (12, 24),
    (23, 24),
    // Legs and feet.
    (23, 25),
    (25, 27),
    (27, 29),
    (29, 31),
    (27, 31),
    (24, 26),
    (26, 28),
    (28, 30),
    (30, 32),
    (28, 32),
];

/// Hand connections (21 landmarks): 0 wrist; 1-4 thumb (CMC, MCP, IP, tip);
/// 5-8 index, 9-12 middle, 13-16 ring, 17-20 pinky (MCP, PIP, DIP, tip); the
/// palm joins the wrist and the finger bases.
pub const HAND_CONNECTIONS: [(usize, usize); 21] = [
    // Thumb.
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    // Index finger.
    (5, 6),
    (6, 7),
    (7, 8),
    // Middle finger.
    (9, 10),
    (10, 11),
    (11, 12),
    // Ring finger.
    (13, 14),
    (14, 15),
    (15, 16),
    // Pinky.
    (17, 18),
    (18, 19),
    (19, 20),
    // Palm.
    (0, 5),
    (5, 9),
    (9, 13),
    (13, 17),
    (0, 17),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::landmarks::keypoints::{HAND_LANDMARKS, POSE_LANDMARKS};

    fn check_edges(edges: &[(usize, usize)], points: usize) {
        let mut seen = HashSet::new();
        for &(a, b) in edges {
            assert!(a < points && b < points, "({a}, {b}) out of range");
            assert_ne!(a, b, "self loop at {a}");
            assert!(seen.insert((a.min(b), a.max(b))), "({a}, {b}) twice");
        }
    }

    /// Points reachable from `start` along `edges`.
    fn reachable(edges: &[(usize, usize)], start: usize) -> HashSet<usize> {
        let mut seen = HashSet::from([start]);
        let mut todo = vec![start];
        while let Some(p) = todo.pop() {
            for &(a, b) in edges {
                let next = if a == p {
                    b
                } else if b == p {
                    a
                } else {
                    continue;
                };
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        seen
    }

    #[test]
    fn hand_edges_join_every_point_to_the_wrist_as_a_tree() {
        check_edges(&HAND_CONNECTIONS, HAND_LANDMARKS);
        assert_eq!(reachable(&HAND_CONNECTIONS, 0).len(), HAND_LANDMARKS);
        // Each fingertip (4, 8, 12, 16, 20) ends a chain: one edge only.
        for tip in [4, 8, 12, 16, 20] {
            let degree = HAND_CONNECTIONS
                .iter()
                .filter(|&&(a, b)| a == tip || b == tip)
                .count();
            assert_eq!(degree, 1, "tip {tip}");
        }
    }

    #[test]
    fn pose_edges_form_head_mouth_and_body() {
        check_edges(&POSE_CONNECTIONS, POSE_LANDMARKS);
        let head = reachable(&POSE_CONNECTIONS, 0);
        assert_eq!(head, (0..=8).collect());
        assert_eq!(reachable(&POSE_CONNECTIONS, 9), HashSet::from([9, 10]));
        assert_eq!(reachable(&POSE_CONNECTIONS, 11), (11..33).collect());
    }

    #[test]
    fn pose_edges_are_left_right_symmetric() {
        // Odd/even trade places in a mirror image (the head's 1-3/4-6 as well).
        let swap = |i: usize| match i {
            0 => 0,
            1..=3 => i + 3,
            4..=6 => i - 3,
            _ if i % 2 == 1 => i + 1,
            _ => i - 1,
        };
        let edges: HashSet<_> = POSE_CONNECTIONS
            .iter()
            .map(|&(a, b)| (a.min(b), a.max(b)))
            .collect();
        for &(a, b) in &POSE_CONNECTIONS {
            let (c, d) = (swap(a), swap(b));
            assert!(
                edges.contains(&(c.min(d), c.max(d))),
                "mirror of ({a}, {b})"
            );
        }
    }
}
