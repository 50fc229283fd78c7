//! Screen class: the layout a visitor's viewport gets.
//!
//! Responsive sites are designed for breakpoints, not devices, so owners ask
//! "how many visitors see the mobile layout?". The tracker reports the
//! viewport width (`w`); Plausible's classes are kept so reports compare:
//! under 576 px `mobile`, under 992 px `tablet`, under 1440 px `laptop`,
//! else `desktop`.
//!
//! The User-Agent's device type fills the gaps and corrects the one case the
//! width gets wrong: with no width (pixel without `w`), the device type
//! decides; and a phone or tablet is never a `laptop` or `desktop` even when
//! it reports a wide viewport ("request desktop site", an iPad Pro in
//! landscape) — it is classed `tablet` at most.

use super::ua::DeviceType;

/// The screen class of one visit; empty when neither width nor device is known.
pub fn class(width: u16, device: DeviceType) -> &'static str {
    let handheld = matches!(device, DeviceType::Mobile | DeviceType::Tablet);
    match width {
        0 => match device {
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Desktop => "desktop",
            DeviceType::Other => "",
        },
        1..576 => "mobile",
        576..992 => "tablet",
        _ if handheld => "tablet",
        992..1440 => "laptop",
        _ => "desktop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceType::*;

    #[test]
    fn width_decides_and_the_device_fills_in() {
        let cases = [
            (375, Mobile, "mobile"),
            (575, Desktop, "mobile"),
            (576, Desktop, "tablet"),
            (844, Mobile, "tablet"),
            (991, Tablet, "tablet"),
            (992, Desktop, "laptop"),
            (1439, Desktop, "laptop"),
            (1440, Desktop, "desktop"),
            (2560, Other, "desktop"),
            (1366, Tablet, "tablet"),
            (1280, Mobile, "tablet"),
            (0, Mobile, "mobile"),
            (0, Tablet, "tablet"),
            (0, Desktop, "desktop"),
            (0, Other, ""),
        ];
        for (w, d, want) in cases {
            assert_eq!(class(w, d), want, "w={w} {d:?}");
        }
    }
}
