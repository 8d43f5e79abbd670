//! How an error is told to the user: its message and its causes, each said
//! once.
//!
//! signtop's own error types leave their cause out of their message and
//! return it as `source()`. Some crates' errors say their cause in their
//! message and return it as well (the image crate: "Format error decoding
//! Gif: Unexpected End of File", then "Unexpected End of File"), so a cause
//! already said is skipped.

use std::error::Error;

/// The message of `err` and of each cause after it, joined by ": ", leaving
/// out a cause whose message was already said.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut told = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let message = next.to_string();
        if !message.is_empty() && !told.contains(&message) {
            told.push_str(": ");
            told.push_str(&message);
        }
        cause = next.source();
    }
    told
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("decoding clip.gif")]
    struct Decoding {
        source: image::ImageError,
    }

    fn truncated_gif_error() -> image::ImageError {
        let mut gif = Vec::new();
        image::RgbImage::new(8, 8)
            .write_to(&mut std::io::Cursor::new(&mut gif), image::ImageFormat::Gif)
            .unwrap();
        gif.truncate(gif.len() / 2);
        image::load_from_memory_with_format(&gif, image::ImageFormat::Gif).unwrap_err()
    }

    #[test]
    fn a_cause_the_message_already_said_is_not_repeated() {
        let source = truncated_gif_error();
        // The image crate says its cause and returns it too.
        let inner = source.source().map(|s| s.to_string()).unwrap_or_default();
        assert!(!inner.is_empty() && source.to_string().contains(&inner));
        let told = chain(&Decoding { source });
        assert_eq!(told.matches(&inner).count(), 1, "{told}");
        assert!(told.starts_with("decoding clip.gif: "), "{told}");
    }

    #[test]
    fn every_new_cause_is_told_in_order() {
        let err = anyhow::anyhow!("innermost")
            .context("middle")
            .context("outer");
        assert_eq!(chain(err.as_ref()), "outer: middle: innermost");
    }
}
