//! A visitor's choice not to be counted, and the `/opt-out` page.
//!
//! The policies Headcount serves promise that visitors can refuse. Three
//! ways, none of which needs an identifier:
//!
//! 1. **Browser signals.** A browser with Do-Not-Track or Global Privacy
//!    Control on sends `DNT: 1` / `Sec-GPC: 1` with every request. The
//!    tracker checks the same settings and sends nothing; requests that
//!    arrive anyway (the pixel, other trackers) are dropped by the routes
//!    before anything is recorded — the pixel still answers its GIF — and
//!    counted as `dnt` ([`declines_tracking`]).
//! 2. **The opt-out flag.** `localStorage.headcount_ignore = "true"` on the
//!    *site's* origin stops the tracker. It is the same constant for every
//!    visitor — a switch, not an identifier — and it never leaves the browser.
//! 3. **This page**, `GET /opt-out`, in Russian and English. It is served
//!    from Headcount's origin, which cannot write the site's storage, so it
//!    hands the choice over: its buttons lead back to a page of the site
//!    (`?return=<url>`, which must be on a configured site so the page is
//!    no open redirect) with `#headcount_ignore=true` (or `=false` to undo);
//!    the site's tracker copies that value into the flag. Fragments are
//!    never sent to any server. The page has no script and sets nothing
//!    itself.

use crate::config::Config;
use hyper::HeaderMap;
use hyper::header::{self, HeaderName};

/// Whether the request carries `DNT: 1` or `Sec-GPC: 1`.
pub fn declines_tracking(headers: &HeaderMap) -> bool {
    // Names as constants: a `&str` name is parsed on every lookup.
    const SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");
    [header::DNT, SEC_GPC].iter().any(|h| headers.get(h).is_some_and(|v| v.as_bytes().trim_ascii() == b"1"))
}

/// Languages of the opt-out page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ru") {
            Some(Lang::Ru)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }
}

/// `?lang=ru|en` wins; else the first of Russian and English with the
/// highest `q` in `Accept-Language`; else English.
pub fn language(query_lang: Option<&str>, accept_language: Option<&str>) -> Lang {
    if let Some(l) = query_lang.and_then(Lang::parse) {
        return l;
    }
    let mut best: Option<(f32, Lang)> = None;
    for item in accept_language.unwrap_or_default().split(',') {
        let mut parts = item.split(';').map(str::trim);
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let q = parts.find_map(|p| p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok())).unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// The page a visitor is sent back to: an `http(s)` URL on a configured
/// site, without credentials; its fragment is dropped (the page adds its own).
pub fn return_url(raw: &str, config: &Config) -> Option<url::Url> {
    let mut u = url::Url::parse(raw).ok()?;
    let known = matches!(u.scheme(), "http" | "https")
        && u.username().is_empty()
        && u.password().is_none()
        && u.host_str().is_some_and(|h| config.site(h).is_some());
    u.set_fragment(None);
    known.then_some(u)
}

/// What the page needs to know about the request.
pub struct PageRequest<'a> {
    pub lang: Lang,
    /// Validated return URL, if one was given.
    pub return_to: Option<&'a url::Url>,
    /// The request itself carries DNT or GPC.
    pub browser_declines: bool,
}

struct Text {
    title: &'static str,
    intro: &'static str,
    declines: &'static str,
    opt_out: &'static str,
    opt_in: &'static str,
    handover: &'static str,
    no_return: &'static str,
    by_hand: &'static str,
    other_lang: &'static str,
}

const EN: Text = Text {
    title: "Opt out of visit counting",
    intro: "This website counts visits with Headcount, web analytics that the site's owner runs on their own servers. \
        Headcount sets no cookies and keeps nothing in your browser that could recognise you. Your IP address is never \
        stored: together with your browser's User-Agent it is turned into a keyed hash whose key changes every day and \
        is destroyed after it. Only depersonalized statistics are kept: pages viewed, referring sites, browser, operating \
        system, type of device, country and network provider (looked up from the IP address before it is discarded), \
        files downloaded and links followed to other sites.",
    declines: "Your browser sends a Do Not Track or Global Privacy Control signal, so your visits are not counted: neither \
        the script on the site's pages nor the server records them. There is nothing else to do.",
    opt_out: "Stop counting my visits to {host}",
    opt_in: "Count my visits again",
    handover: "You will be taken back to {host}. Its tracking script then keeps one setting for that site in this browser: \
        <code>headcount_ignore = \"true\"</code> in local storage. It is the same value for everyone, a switch and not an \
        identifier, and it never leaves your browser. It applies to this browser only; clearing the site's data in the \
        browser removes it.",
    no_return: "To opt out on a particular website, open this page from the link in that website's privacy policy.",
    by_hand: "Or open the website, open your browser's developer console there and run:",
    other_lang: "Русский",
};

const RU: Text = Text {
    title: "Отказ от учёта посещений",
    intro: "Этот сайт считает посещения с помощью Headcount — системы веб-аналитики, которую владелец сайта размещает \
        на своих серверах. Headcount не устанавливает cookie и не хранит в вашем браузере ничего, по чему вас можно \
        узнать. Ваш IP-адрес не сохраняется: вместе с User-Agent браузера он превращается в хеш с ключом, который \
        меняется каждые сутки и по их окончании уничтожается. Хранится только обезличенная статистика: просмотренные \
        страницы, сайты, с которых пришли посетители, браузер, операционная система, тип устройства, страна и \
        провайдер (определяются по IP-адресу до его удаления), скачанные файлы и переходы по ссылкам на другие сайты.",
    declines: "Ваш браузер передаёт сигнал «Не отслеживать» (Do Not Track) или Global Privacy Control, поэтому ваши \
        посещения не учитываются: их не записывает ни скрипт на страницах сайта, ни сервер. Больше ничего делать не нужно.",
    opt_out: "Не учитывать мои посещения {host}",
    opt_in: "Снова учитывать мои посещения",
    handover: "Вы вернётесь на {host}. Скрипт статистики сайта сохранит в этом браузере для этого сайта одну настройку: \
        <code>headcount_ignore = \"true\"</code> в локальном хранилище (localStorage). Это одинаковое для всех значение — \
        переключатель, а не идентификатор, — и оно никуда не передаётся. Настройка действует только в этом браузере; \
        очистка данных сайта в браузере её удаляет.",
    no_return: "Чтобы отказаться от учёта на конкретном сайте, откройте эту страницу по ссылке из политики \
        конфиденциальности этого сайта.",
    by_hand: "Или откройте сайт, затем консоль разработчика в браузере, и выполните:",
    other_lang: "English",
};

/// The opt-out page as HTML. No script, no external resources.
pub fn page(req: &PageRequest<'_>) -> String {
    let t = match req.lang {
        Lang::En => &EN,
        Lang::Ru => &RU,
    };
    let other = match req.lang {
        Lang::En => Lang::Ru,
        Lang::Ru => Lang::En,
    };
    let mut switch = form_urlencoded::Serializer::new(String::new());
    switch.append_pair("lang", other.code());
    if let Some(r) = req.return_to {
        switch.append_pair("return", r.as_str());
    }

    let mut body = format!("<p>{}</p>\n", t.intro);
    if req.browser_declines {
        body.push_str(&format!("<p class=\"note\" id=\"signal\">{}</p>\n", t.declines));
    }
    match req.return_to {
        Some(r) => {
            let host = escape(r.host_str().unwrap_or_default());
            let link = |fragment: &str| escape(&format!("{}#{fragment}", r.as_str()));
            body.push_str(&format!(
                "<p><a class=\"button\" id=\"opt-out\" target=\"_top\" href=\"{}\">{}</a>\n\
                 <a class=\"button secondary\" id=\"opt-in\" target=\"_top\" href=\"{}\">{}</a></p>\n<p>{}</p>\n",
                link("headcount_ignore=true"),
                t.opt_out.replace("{host}", &host),
                link("headcount_ignore=false"),
                t.opt_in,
                t.handover.replace("{host}", &host),
            ));
        }
        None => body.push_str(&format!(
            "<p>{}</p>\n<p>{}</p>\n<pre><code>localStorage.headcount_ignore = \"true\"</code></pre>\n",
            t.no_return, t.by_hand
        )),
    }

    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <nav><a hreflang=\"{other}\" lang=\"{other}\" href=\"?{switch}\">{other_name}</a></nav>\n\
         <h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
        lang = req.lang.code(),
        title = t.title,
        other = other.code(),
        switch = escape(&switch.finish()),
        other_name = t.other_lang,
    )
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}\
main{max-width:40rem;margin:2rem auto;padding:0 1rem}nav{text-align:right}\
h1{font-size:1.6rem}.note{background:#e8f4ea;padding:.75rem 1rem;border-radius:.4rem}\
.button{display:inline-block;margin:.25rem .5rem .25rem 0;padding:.6rem 1rem;border-radius:.4rem;\
background:#1f5fbf;color:#fff;text-decoration:none}.secondary{background:#e4e4e4;color:#1a1a1a}\
pre{background:#eee;padding:.5rem;overflow:auto}";

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawConfig, RawSite};

    fn config() -> Config {
        let raw = RawConfig { sites: vec![RawSite { domain: "example.com".into() }], ..RawConfig::default() };
        raw.validate(std::path::Path::new("/tmp")).expect("valid")
    }

    #[test]
    fn language_choice() {
        assert_eq!(language(None, None), Lang::En);
        assert_eq!(language(None, Some("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7")), Lang::Ru);
        assert_eq!(language(None, Some("en-US,en;q=0.9,ru;q=0.8")), Lang::En);
        assert_eq!(language(None, Some("de-DE,de;q=0.9,ru;q=0.5")), Lang::Ru);
        assert_eq!(language(None, Some("fr")), Lang::En);
        assert_eq!(language(None, Some("ru;q=0, en;q=0.1")), Lang::En);
        assert_eq!(language(Some("en"), Some("ru")), Lang::En);
        assert_eq!(language(Some("ru"), None), Lang::Ru);
        assert_eq!(language(Some("xx"), Some("ru")), Lang::Ru);
    }

    #[test]
    fn return_url_must_be_a_configured_site() {
        let c = config();
        let ok = return_url("https://www.example.com/privacy?x=1#top", &c).expect("configured site");
        assert_eq!(ok.as_str(), "https://www.example.com/privacy?x=1");
        for bad in [
            "https://evil.org/",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "/relative",
            "ftp://example.com/",
        ] {
            assert!(return_url(bad, &c).is_none(), "{bad}");
        }
    }

    #[test]
    fn page_hands_the_choice_to_the_site_and_escapes() {
        let c = config();
        let r = return_url("https://example.com/a\"b<c>?q='x'&y=1", &c).expect("ok");
        let html = page(&PageRequest { lang: Lang::Ru, return_to: Some(&r), browser_declines: false });
        assert!(html.contains("lang=\"ru\""));
        assert!(html.contains("#headcount_ignore=true\""), "{html}");
        assert!(html.contains("#headcount_ignore=false\""));
        assert!(html.contains("Не учитывать мои посещения example.com"));
        assert!(!html.contains("<c>") && !html.contains("'x'"), "{html}");
        assert!(!html.contains("<script"));
        assert!(!html.contains("id=\"signal\""));

        let en = page(&PageRequest { lang: Lang::En, return_to: None, browser_declines: true });
        assert!(en.contains("lang=\"en\"") && en.contains("id=\"signal\""));
        assert!(en.contains("localStorage.headcount_ignore"));
        assert!(en.contains("href=\"?lang=ru\""));
    }

    #[test]
    fn browser_signals() {
        let mut h = HeaderMap::new();
        assert!(!declines_tracking(&h));
        h.insert("dnt", "0".parse().expect("hv"));
        assert!(!declines_tracking(&h));
        h.insert("sec-gpc", " 1".parse().expect("hv"));
        assert!(declines_tracking(&h));
        h.clear();
        h.insert("dnt", "1".parse().expect("hv"));
        assert!(declines_tracking(&h));
    }
}
