//! Country names in English and Russian, from an embedded ISO 3166-1 table
//! (`data/countries.tsv`), so the dashboard needs no locale data at run time.
//! Events store only the alpha-2 code; names are a matter of display.

use super::i18n::Lang;
use std::collections::HashMap;
use std::sync::LazyLock;

const TABLE: &str = include_str!("../../data/countries.tsv");

static NAMES: LazyLock<HashMap<&'static str, (&'static str, &'static str)>> = LazyLock::new(|| {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?, (f.next()?, f.next()?)))
        })
        .collect()
});

/// The country's name in `lang`, if `code` is a known alpha-2 code.
pub fn name(code: &str, lang: Lang) -> Option<&'static str> {
    let code = code.trim();
    if code.len() != 2 {
        return None;
    }
    let upper = code.to_ascii_uppercase();
    NAMES.get(upper.as_str()).map(|(en, ru)| match lang {
        Lang::En => *en,
        Lang::Ru => *ru,
    })
}

/// The flag emoji of an alpha-2 code (regional indicator symbols).
pub fn flag(code: &str) -> Option<String> {
    let code = code.trim();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    code.to_ascii_uppercase().bytes().map(|b| char::from_u32(0x1F1E6 + u32::from(b - b'A'))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_both_languages() {
        assert_eq!(name("RU", Lang::En), Some("Russia"));
        assert_eq!(name("ru", Lang::Ru), Some("Россия"));
        assert_eq!(name("DE", Lang::Ru), Some("Германия"));
        assert_eq!(name("US", Lang::Ru), Some("США"));
        assert_eq!(name("XX", Lang::En), None);
        assert_eq!(name("", Lang::En), None);
        assert!(NAMES.len() >= 249);
        for (code, (en, ru)) in NAMES.iter() {
            assert!(code.len() == 2 && !en.is_empty() && !ru.is_empty(), "{code}");
        }
    }

    #[test]
    fn flags() {
        assert_eq!(flag("RU").as_deref(), Some("🇷🇺"));
        assert_eq!(flag("r1"), None);
    }
}
