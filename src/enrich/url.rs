//! Page URLs and referrers, reduced to what attendance statistics need.
//!
//! Query strings are where URLs leak people: search terms, e-mail addresses,
//! session tokens, password-reset links. So a page URL keeps its host and
//! path, and only the campaign parameters (`utm_*`, `ref`, `source`) survive;
//! a referrer keeps only its host and path. Fragments are dropped unless the
//! site uses hash routing (`h: 1` in the Plausible payload).

use crate::config::normalize_domain;
use crate::event::Campaign;
use percent_encoding::percent_decode_str;
use url::Url;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("URL longer than {0} bytes")]
    TooLong(usize),
    #[error("`data:`, `javascript:` and `blob:` URLs are not accepted")]
    ForbiddenScheme,
    #[error("not an absolute URL with a host")]
    Malformed,
}

/// The parts of a page URL that are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageUrl {
    pub hostname: String,
    pub pathname: String,
    pub campaign: Campaign,
}

/// The parts of a referrer that are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Referrer {
    pub host: String,
    pub path: String,
}

const MAX_PARAM: usize = 200;

fn parse(raw: &str, max_len: usize) -> Result<Url, UrlError> {
    if raw.len() > max_len {
        return Err(UrlError::TooLong(max_len));
    }
    let trimmed = raw.trim();
    let scheme = trimmed.split(':').next().unwrap_or_default().to_ascii_lowercase();
    if matches!(scheme.as_str(), "data" | "javascript" | "blob" | "vbscript") {
        return Err(UrlError::ForbiddenScheme);
    }
    let url = Url::parse(trimmed).map_err(|_| UrlError::Malformed)?;
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(url),
        _ => Err(UrlError::Malformed),
    }
}

/// Percent-decode for readability when the result is valid UTF-8 (Cyrillic
/// paths read as Cyrillic); otherwise keep the encoded form.
fn decode(s: &str) -> String {
    match percent_decode_str(s).decode_utf8() {
        Ok(d) => d.into_owned(),
        Err(_) => s.to_string(),
    }
}

fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Parse a page URL. `keep_fragment` is the tracker's hash-routing mode.
pub fn page_url(raw: &str, max_len: usize, keep_fragment: bool) -> Result<PageUrl, UrlError> {
    let url = parse(raw, max_len)?;
    let mut pathname = decode(url.path());
    if pathname.is_empty() {
        pathname.push('/');
    }
    // Hash routing keeps the route (`#/settings`) but, as for the page's own
    // query string, never what follows `?` in it: `#/reset?token=…` would
    // otherwise store a secret.
    if keep_fragment
        && let Some(f) = url.fragment().map(|f| f.split('?').next().unwrap_or_default()).filter(|f| !f.is_empty())
    {
        pathname.push('#');
        pathname.push_str(&decode(f));
    }
    let mut campaign = Campaign::default();
    for (k, v) in url.query_pairs() {
        let slot = match k.as_ref() {
            "utm_source" => &mut campaign.utm_source,
            "utm_medium" => &mut campaign.utm_medium,
            "utm_campaign" => &mut campaign.utm_campaign,
            "utm_content" => &mut campaign.utm_content,
            "utm_term" => &mut campaign.utm_term,
            "ref" => &mut campaign.ref_param,
            "source" => &mut campaign.source_param,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = clip(v.trim().to_string(), MAX_PARAM);
        }
    }
    Ok(PageUrl {
        hostname: url.host_str().map(normalize_domain).unwrap_or_default(),
        pathname: clip(pathname, max_len),
        campaign,
    })
}

/// Parse a referrer. Self-referrals (same site as the page) become empty:
/// moving between pages of one site is not a traffic source.
pub fn referrer(raw: &str, max_len: usize, page_host: &str, site: &str) -> Result<Referrer, UrlError> {
    if raw.trim().is_empty() {
        return Ok(Referrer::default());
    }
    let url = parse(raw, max_len)?;
    let host = url.host_str().map(normalize_domain).unwrap_or_default();
    if host == page_host || host == site || host.ends_with(&format!(".{site}")) {
        return Ok(Referrer::default());
    }
    Ok(Referrer { host, path: clip(decode(url.path()), max_len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_url_keeps_host_path_and_campaign_only() {
        let p = page_url(
            "https://WWW.Example.com/blog/%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82?utm_source=news&utm_medium=email&email=a@b.c&token=s3cret&ref=ph#section",
            2000,
            false,
        )
        .expect("valid");
        assert_eq!(p.hostname, "example.com");
        assert_eq!(p.pathname, "/blog/привет");
        assert_eq!(p.campaign.utm_source, "news");
        assert_eq!(p.campaign.utm_medium, "email");
        assert_eq!(p.campaign.ref_param, "ph");
        let all = format!("{p:?}");
        assert!(!all.contains("s3cret") && !all.contains("a@b.c"), "{all}");
    }

    #[test]
    fn hash_mode_keeps_fragment() {
        assert_eq!(page_url("https://a.com/app#/settings", 2000, true).expect("ok").pathname, "/app#/settings");
        assert_eq!(page_url("https://a.com/app#/settings", 2000, false).expect("ok").pathname, "/app");
        assert_eq!(page_url("https://a.com", 2000, false).expect("ok").pathname, "/");
        let reset = page_url("https://a.com/app#/reset?token=s3cret&x=1", 2000, true).expect("ok");
        assert_eq!(reset.pathname, "/app#/reset", "a query inside the route is dropped");
        assert_eq!(page_url("https://a.com/app#?token=s3cret", 2000, true).expect("ok").pathname, "/app");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert_eq!(page_url("data:text/html,hi", 2000, false), Err(UrlError::ForbiddenScheme));
        assert_eq!(page_url(" JavaScript:alert(1)", 2000, false), Err(UrlError::ForbiddenScheme));
        assert_eq!(page_url("/relative/path", 2000, false), Err(UrlError::Malformed));
        assert_eq!(page_url("not a url", 2000, false), Err(UrlError::Malformed));
        let long = format!("https://a.com/{}", "x".repeat(2000));
        assert_eq!(page_url(&long, 2000, false), Err(UrlError::TooLong(2000)));
    }

    #[test]
    fn referrer_drops_query_and_self_referrals() {
        let r = referrer("https://www.google.com/search?q=my+name+and+address", 2000, "example.com", "example.com")
            .expect("ok");
        assert_eq!(r, Referrer { host: "google.com".into(), path: "/search".into() });
        assert_eq!(
            referrer("https://example.com/other", 2000, "example.com", "example.com").expect("ok"),
            Referrer::default()
        );
        assert_eq!(
            referrer("https://blog.example.com/x", 2000, "example.com", "example.com").expect("ok"),
            Referrer::default()
        );
        assert_eq!(referrer("", 2000, "example.com", "example.com").expect("ok"), Referrer::default());
        assert!(referrer("data:x", 2000, "example.com", "example.com").is_err());
    }
}
