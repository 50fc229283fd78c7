//! The dashboard's stylesheet, script and icon, compiled into the binary and
//! served by Headcount (no CDN, nothing fetched by the browser from elsewhere).
//!
//! Bar widths in breakdown tables are classes `w0`…`w100` generated here,
//! because the Content-Security-Policy forbids inline `style` attributes.

use std::sync::LazyLock;

const BASE_CSS: &str = include_str!("assets/dashboard.css");
pub const JS: &str = include_str!("assets/dashboard.js");
pub const ICON: &str = include_str!("assets/icon.svg");

pub static CSS: LazyLock<String> = LazyLock::new(|| {
    let mut css = String::with_capacity(BASE_CSS.len() + 101 * 90);
    css.push_str(BASE_CSS);
    css.push_str("/* Bar widths (the CSP allows no inline styles). */\n");
    for w in 0..=100 {
        css.push_str(&format!(
            ".w{w} {{ background-image: linear-gradient(to right, var(--bar) {w}%, transparent {w}%); }}\n"
        ));
    }
    css
});
