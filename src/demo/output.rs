//! How the demo talks: one line per event with its time, tinted on a terminal, and a live
//! spinner line while it waits (on a terminal only; a log or a pipe gets plain lines).

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::status::progress::{paint, Tone};

#[derive(Debug, Clone)]
pub struct Out {
    pub color: bool,
    pub tty: bool,
    started: Instant,
}

/// `1.23 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl Out {
    pub fn new(color: bool, tty: bool) -> Out {
        Out {
            color,
            tty,
            started: Instant::now(),
        }
    }

    fn clear_live(&self) {
        if self.tty {
            print!("\r\x1b[2K");
        }
    }

    fn line(&self, text: &str) {
        self.clear_live();
        println!("{text}");
        let _ = std::io::stdout().flush();
    }

    /// A section title.
    pub fn title(&self, text: &str) {
        self.line("");
        self.line(
            &paint(&format!("== {text}"), Tone::Pending, self.color).replace("\x1b[33m", "\x1b[1m"),
        );
    }

    pub fn info(&self, text: &str) {
        self.line(&format!("   {text}"));
    }

    /// Something reached, `after` since its phase began.
    pub fn done(&self, text: &str, after: Duration) {
        let mark = paint("✔", Tone::Good, self.color);
        self.line(&format!(" {mark} {text:<66} {:>8}", secs(after)));
    }

    /// Something injected or broken.
    pub fn fault(&self, text: &str) {
        let mark = paint("✘", Tone::Bad, self.color);
        self.line(&format!(" {mark} {text}"));
    }

    pub fn failed(&self, text: &str) {
        self.line(&paint(&format!(" ✘ {text}"), Tone::Bad, self.color));
    }

    /// The live line while waiting (a terminal only): replaced by the next output.
    pub fn live(&self, text: &str, waited: Duration) {
        if !self.tty {
            return;
        }
        const SPIN: [char; 4] = ['|', '/', '-', '\\'];
        let i = usize::try_from(waited.as_millis() / 150).unwrap_or(0) % SPIN.len();
        let mut shown: String = text.chars().take(70).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        print!(
            "\r\x1b[2K {} {shown} {:>6.1} s",
            SPIN[i],
            waited.as_secs_f64()
        );
        let _ = std::io::stdout().flush();
    }

    /// Time since the demo began.
    pub fn total(&self) -> Duration {
        self.started.elapsed()
    }
}
