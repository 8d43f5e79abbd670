//! Colours, or none: `--no-color` and the NO_COLOR variable give a theme
//! that marks things with bold and reverse video only.

use ratatui::style::{Color, Modifier, Style};

/// The styles the dashboard draws with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Theme {
    /// Whether colours are used.
    pub color: bool,
}

impl Theme {
    /// A theme with colours or without.
    pub fn new(color: bool) -> Theme {
        Theme { color }
    }

    /// Colours unless `--no-color` was given or NO_COLOR is set and non-empty.
    pub fn from_env(no_color_flag: bool) -> Theme {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme::new(!(no_color_flag || no_color_env))
    }

    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// A probability bar.
    pub fn bar(&self) -> Style {
        self.fg(Color::Cyan)
    }

    /// The bar and label of the sign being held.
    pub fn decision(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }

    /// The threshold marker on a bar.
    pub fn threshold(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Secondary text.
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// A part found (detection status).
    pub fn found(&self) -> Style {
        if self.color {
            self.fg(Color::Green)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// A warning (frozen, ended, drops).
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Panel titles.
    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Skeleton colours: pose, left hand, right hand, face.
    pub fn skeleton(&self) -> [Color; 4] {
        if self.color {
            [Color::White, Color::Magenta, Color::Cyan, Color::DarkGray]
        } else {
            [Color::Reset; 4]
        }
    }
}
