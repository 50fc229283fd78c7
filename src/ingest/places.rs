//! What a request's page URL and referrer contribute to an event, cached.
//!
//! Why: parsing the page URL and the referrer with the `url` crate,
//! percent-decoding their paths, classifying the traffic source and checking
//! the spam list was 6–7 % of the CPU per pixel request under load, and real
//! traffic repeats itself — a site's popular pages, reached from the same
//! few referrers. The answer is a pure function of (site, hash-routing
//! flag, raw URL, raw referrer), so it is computed once and shared.
//!
//! Privacy: the cache is keyed by a 128-bit keyed BLAKE3 hash of those
//! inputs under a random per-process key, so raw URLs — whose query strings
//! may carry e-mail addresses or reset tokens — are never kept as keys; the
//! values hold only what is stored anyway (host, path, campaign parameters,
//! referrer host and path). Bounded in items, in memory only.

use crate::enrich::source::{Acquisition, Referrers};
use crate::enrich::url::{self, PageUrl, Referrer, UrlError};
use quick_cache::sync::Cache;
use std::sync::Arc;

/// The parsed page and referrer of one (site, URL, referrer) combination.
#[derive(Debug)]
pub struct Place {
    pub page: PageUrl,
    pub referrer: Referrer,
    /// The referrer is on the spam list.
    pub spam: bool,
    pub acquisition: Acquisition,
}

/// Why a URL or referrer was refused (cached like a success: a bad URL
/// sent again is refused again without parsing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    Url(UrlError),
    Referrer(UrlError),
}

type Answer = Arc<Result<Place, PlaceError>>;

/// The bounded cache of [`Place`]s.
pub struct Places {
    /// `None`: caching disabled.
    cache: Option<Cache<u128, Answer>>,
    key: [u8; 32],
}

/// What identifies one answer.
pub struct Inputs<'a> {
    pub site: &'a str,
    pub url: &'a str,
    pub referrer: &'a str,
    pub hash_mode: bool,
    pub max_len: usize,
}

impl Places {
    /// A cache of up to `capacity` answers (0 disables caching).
    pub fn new(capacity: usize) -> Places {
        let mut key = [0u8; 32];
        // Without an OS random source the key is fixed: keys are then still
        // hashes, just predictable ones; answers stay correct.
        let _ = getrandom::fill(&mut key);
        Places { cache: (capacity > 0).then(|| Cache::new(capacity)), key }
    }

    /// The answer for `inputs`, computed once per distinct inputs.
    pub fn get(&self, inputs: &Inputs<'_>, referrers: &Referrers) -> Answer {
        let Some(cache) = &self.cache else {
            return Arc::new(compute(inputs, referrers));
        };
        let key = self.key_of(inputs);
        if let Some(hit) = cache.get(&key) {
            return hit;
        }
        let answer = Arc::new(compute(inputs, referrers));
        cache.insert(key, answer.clone());
        answer
    }

    fn key_of(&self, i: &Inputs<'_>) -> u128 {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        // Lengths first: no two different inputs hash the same bytes.
        for part in [i.site, i.url, i.referrer] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(&[u8::from(i.hash_mode)]);
        h.update(&(i.max_len as u64).to_le_bytes());
        let mut out = [0u8; 16];
        h.finalize_xof().fill(&mut out);
        u128::from_le_bytes(out)
    }

    /// Answers cached now.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parse and classify, uncached.
pub fn compute(i: &Inputs<'_>, referrers: &Referrers) -> Result<Place, PlaceError> {
    let page = url::page_url(i.url, i.max_len, i.hash_mode).map_err(PlaceError::Url)?;
    let referrer = url::referrer(i.referrer, i.max_len, &page.hostname, i.site).map_err(PlaceError::Referrer)?;
    let spam = referrers.is_spam(&referrer.host);
    let acquisition = referrers.classify(&referrer.host, &page.campaign);
    Ok(Place { page, referrer, spam, acquisition })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(url: &'a str, referrer: &'a str) -> Inputs<'a> {
        Inputs { site: "example.com", url, referrer, hash_mode: false, max_len: 2048 }
    }

    #[test]
    fn a_cached_answer_equals_a_fresh_one_and_is_shared() {
        let referrers = Referrers::new(&[], &["spam.example".to_string()]);
        let places = Places::new(16);
        let i =
            inputs("https://example.com/blog/post?utm_source=news&token=secret", "https://www.google.com/search?q=x");
        let first = places.get(&i, &referrers);
        let second = places.get(&i, &referrers);
        assert!(Arc::ptr_eq(&first, &second), "the second request is a hit");
        let fresh = compute(&i, &referrers).expect("valid");
        let cached = first.as_ref().as_ref().expect("valid");
        assert_eq!(
            (&cached.page, &cached.referrer, &cached.acquisition),
            (&fresh.page, &fresh.referrer, &fresh.acquisition)
        );
        assert_eq!(cached.page.pathname, "/blog/post");
        assert_eq!(cached.page.campaign.utm_source, "news");
        assert_eq!(cached.referrer.host, "google.com");
        assert!(!cached.spam);
        assert_eq!(places.len(), 1);
    }

    #[test]
    fn inputs_that_differ_in_any_part_are_different_answers() {
        let referrers = Referrers::new(&[], &["spam.example".to_string()]);
        let places = Places::new(64);
        let a = places.get(&inputs("https://example.com/a", ""), &referrers);
        let b = places.get(&inputs("https://example.com/b", ""), &referrers);
        let spam = places.get(&inputs("https://example.com/a", "https://spam.example/"), &referrers);
        let hash = places.get(&Inputs { hash_mode: true, ..inputs("https://example.com/a#/x", "") }, &referrers);
        // Same bytes split differently between URL and referrer.
        let shifted = places.get(&inputs("https://example.com/ab", ""), &referrers);
        assert_eq!(places.len(), 5);
        let path = |p: &Answer| p.as_ref().as_ref().map(|p| p.page.pathname.clone()).expect("valid");
        assert_eq!(
            (path(&a), path(&b), path(&hash), path(&shifted)),
            ("/a".into(), "/b".into(), "/a#/x".into(), "/ab".into())
        );
        assert!(spam.as_ref().as_ref().expect("valid").spam);
    }

    #[test]
    fn refusals_are_cached_as_refusals() {
        let referrers = Referrers::new(&[], &[]);
        let places = Places::new(16);
        for _ in 0..2 {
            let bad = places.get(&inputs("javascript:alert(1)", ""), &referrers);
            assert_eq!(bad.as_ref().as_ref().err(), Some(&PlaceError::Url(UrlError::ForbiddenScheme)));
            let bad_ref = places.get(&inputs("https://example.com/", "not a url"), &referrers);
            assert_eq!(bad_ref.as_ref().as_ref().err(), Some(&PlaceError::Referrer(UrlError::Malformed)));
        }
        assert_eq!(places.len(), 2);
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let referrers = Referrers::new(&[], &[]);
        let places = Places::new(0);
        let i = inputs("https://example.com/a", "");
        assert!(!Arc::ptr_eq(&places.get(&i, &referrers), &places.get(&i, &referrers)));
        assert!(places.is_empty());
    }
}
