//! HTML pages, rendered on the server with maud (which escapes every value
//! it interpolates, so page paths, referrers and event names from visitors
//! can never become markup).
//!
//! Every page works without JavaScript: ranges and filters are links, the
//! custom range is a GET form, help texts are `<details>`. The stylesheet
//! and the small script are served by Headcount itself (no CDN), and the
//! Content-Security-Policy allows nothing else.

use super::chart;
use super::countries;
use super::i18n::{Lang, Msg};
use super::params::{View, filter_param, format_date};
use super::source::{PanelSpec, Series, Totals};
use crate::auth::Share;
use crate::stats::{Aggregate, Breakdown, BreakdownRow, DateRange, Dimension, Filter, Period};
use maud::{DOCTYPE, Markup, html};

/// Version tag of the static assets (cache busting).
pub fn asset_version() -> &'static str {
    static V: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut h = blake3::Hasher::new();
        h.update(super::assets::CSS.as_bytes());
        h.update(super::assets::JS.as_bytes());
        h.finalize().to_hex()[..10].to_string()
    });
    &V
}

/// What every page needs to draw its frame.
pub struct Frame<'a> {
    pub lang: Lang,
    pub title: String,
    /// Signed-in operator: shows "sign out".
    pub user: Option<&'a str>,
    /// CSRF token of the session (for the sign-out form).
    pub csrf: Option<&'a str>,
    /// The current page with `lang` switched, for the language link.
    pub other_lang_href: String,
    /// Where the brand links to.
    pub home: String,
}

pub fn page(f: &Frame, body: Markup) -> Markup {
    let v = asset_version();
    html! {
        (DOCTYPE)
        html lang=(f.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="referrer" content="same-origin";
                title { (f.title) " · Headcount" }
                link rel="stylesheet" href=(format!("/assets/dashboard.css?v={v}"));
                link rel="icon" href=(format!("/assets/icon.svg?v={v}")) type="image/svg+xml";
                script defer src=(format!("/assets/dashboard.js?v={v}")) {}
            }
            body {
                header.top {
                    a.brand href=(f.home) { span.logo aria-hidden="true" { "◔" } " Headcount" }
                    nav.tools {
                        a.lang href=(f.other_lang_href) hreflang=(f.lang.other().code()) { (Msg::Language.text(f.lang)) }
                        @if let (Some(user), Some(csrf)) = (f.user, f.csrf) {
                            span.user { (user) }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.link type="submit" { (Msg::SignOut.text(f.lang)) }
                            }
                        }
                    }
                }
                main { (body) }
                footer.foot { p { (Msg::Privacy.text(f.lang)) } }
            }
        }
    }
}

pub fn login(lang: Lang, token: &str, next: &str, error: Option<Msg>, email: &str) -> Markup {
    html! {
        section.card.narrow {
            h1 { (Msg::SignInTitle.text(lang)) }
            @if let Some(e) = error {
                p.error role="alert" { (e.text(lang)) }
            }
            form.stack method="post" action=(format!("/login?lang={}", lang.code())) {
                input type="hidden" name="t" value=(token);
                input type="hidden" name="next" value=(next);
                label { (Msg::Email.text(lang)) input type="email" name="email" value=(email) required autocomplete="username" autofocus; }
                label { (Msg::Password.text(lang)) input type="password" name="password" required autocomplete="current-password"; }
                button.primary type="submit" { (Msg::SignInButton.text(lang)) }
            }
        }
    }
}

pub fn share_password(lang: Lang, action: &str, token: &str, error: Option<Msg>) -> Markup {
    html! {
        section.card.narrow {
            h1 { (Msg::SharePasswordTitle.text(lang)) }
            @if let Some(e) = error {
                p.error role="alert" { (e.text(lang)) }
            }
            form.stack method="post" action=(action) {
                input type="hidden" name="t" value=(token);
                label { (Msg::Password.text(lang)) input type="password" name="password" required autofocus; }
                button.primary type="submit" { (Msg::Open.text(lang)) }
            }
        }
    }
}

pub fn sites(lang: Lang, sites: &[String], view: &View) -> Markup {
    html! {
        section.card.narrow {
            h1 { (Msg::Sites.text(lang)) }
            @if sites.is_empty() {
                p.muted { (Msg::NoSites.text(lang)) }
            }
            ul.sites {
                @for s in sites {
                    li { a href=(view.href(&format!("/{s}"))) { (s) } }
                }
            }
        }
    }
}

pub fn message(lang: Lang, title: Msg, text: Msg, back: &str) -> Markup {
    html! {
        section.card.narrow {
            h1 { (title.text(lang)) }
            p { (text.text(lang)) }
            p { a href=(back) { (Msg::Back.text(lang)) } }
        }
    }
}

/// Everything a dashboard page shows.
pub struct Dash<'a> {
    pub lang: Lang,
    pub site: &'a str,
    /// `/example.com` or `/share/<token>`.
    pub base: &'a str,
    pub view: &'a View,
    pub range: DateRange,
    pub totals: Option<Totals>,
    pub series: Option<Series>,
    pub live: Option<u64>,
    pub panels: Vec<(PanelSpec, Option<Breakdown>)>,
    /// A shared link: read-only, k-threshold applied.
    pub shared: bool,
    pub k: Option<u64>,
    /// Filtered to fewer than k visitors in a shared view: numbers hidden.
    pub suppressed: bool,
    /// Sites the viewer may switch to (operators only).
    pub other_sites: Vec<String>,
}

fn period_label(lang: Lang, p: Period) -> &'static str {
    match p {
        Period::Today => Msg::Today.text(lang),
        Period::Yesterday => Msg::Yesterday.text(lang),
        Period::Last7Days => Msg::Last7.text(lang),
        Period::Last30Days => Msg::Last30.text(lang),
        Period::MonthToDate => Msg::MonthToDate.text(lang),
        Period::LastMonth => Msg::LastMonth.text(lang),
        Period::Last12Months => Msg::Last12Months.text(lang),
        Period::Custom(_) => Msg::Custom.text(lang),
    }
}

fn range_label(lang: Lang, r: DateRange) -> String {
    if r.from == r.to {
        lang.day_year(r.from)
    } else if r.from.year() == r.to.year() {
        format!("{} – {}", lang.day(r.from), lang.day_year(r.to))
    } else {
        format!("{} – {}", lang.day_year(r.from), lang.day_year(r.to))
    }
}

/// The display form of a breakdown value.
pub fn display_value(lang: Lang, d: Dimension, v: &str) -> String {
    if d == Dimension::Country
        && let Some(name) = countries::name(v, lang)
    {
        return name.to_string();
    }
    if let Some(s) = lang.value(d, v) {
        return s.to_string();
    }
    v.to_string()
}

fn filter_chip_value(lang: Lang, f: &Filter) -> String {
    match (&f.dimension, &f.prop) {
        (Dimension::Prop, Some(k)) => format!("{k} = {}", f.value),
        (d, _) => display_value(lang, *d, &f.value),
    }
}

/// Percent change from `prev` to `cur`; `None` when there is no base.
fn change(cur: f64, prev: f64) -> Option<f64> {
    (prev > 0.0).then(|| (cur - prev) / prev * 100.0)
}

struct Metric {
    id: &'static str,
    label: String,
    value: String,
    previous: String,
    change: Option<f64>,
    /// Up is bad (bounce rate).
    inverse: bool,
    help: Option<&'static str>,
}

fn metrics(lang: Lang, t: &Totals) -> Vec<Metric> {
    let (c, p): (&Aggregate, &Aggregate) = (&t.current, &t.previous);
    let visitors_label = if t.visitor_days { Msg::VisitorDays } else { Msg::UniqueVisitors };
    vec![
        Metric {
            id: "visitors",
            label: visitors_label.text(lang).into(),
            value: lang.int(c.visitors),
            previous: lang.int(p.visitors),
            change: change(c.visitors as f64, p.visitors as f64),
            inverse: false,
            help: t.visitor_days.then(|| Msg::VisitorDaysHelp.text(lang)),
        },
        Metric {
            id: "visits",
            label: Msg::Visits.text(lang).into(),
            value: lang.int(c.visits),
            previous: lang.int(p.visits),
            change: change(c.visits as f64, p.visits as f64),
            inverse: false,
            help: None,
        },
        Metric {
            id: "pageviews",
            label: Msg::Pageviews.text(lang).into(),
            value: lang.int(c.pageviews),
            previous: lang.int(p.pageviews),
            change: change(c.pageviews as f64, p.pageviews as f64),
            inverse: false,
            help: None,
        },
        Metric {
            id: "views_per_visit",
            label: Msg::ViewsPerVisit.text(lang).into(),
            value: lang.num(c.views_per_visit, 2),
            previous: lang.num(p.views_per_visit, 2),
            change: change(c.views_per_visit, p.views_per_visit),
            inverse: false,
            help: None,
        },
        Metric {
            id: "bounce_rate",
            label: Msg::BounceRate.text(lang).into(),
            value: lang.percent(c.bounce_rate),
            previous: lang.percent(p.bounce_rate),
            change: change(c.bounce_rate, p.bounce_rate),
            inverse: true,
            help: None,
        },
        Metric {
            id: "visit_duration",
            label: Msg::VisitDuration.text(lang).into(),
            value: lang.duration(c.visit_duration),
            previous: lang.duration(p.visit_duration),
            change: change(c.visit_duration, p.visit_duration),
            inverse: false,
            help: None,
        },
    ]
}

fn periods(d: &Dash) -> Markup {
    let lang = d.lang;
    let presets = [
        Period::Today,
        Period::Yesterday,
        Period::Last7Days,
        Period::Last30Days,
        Period::MonthToDate,
        Period::LastMonth,
        Period::Last12Months,
    ];
    let custom = matches!(d.view.period, Period::Custom(_));
    html! {
        nav.periods aria-label=(Msg::Period.text(lang)) {
            @for p in presets {
                a.period.active[d.view.period == p] href=(d.view.with_period(p).href(d.base)) aria-current=[(d.view.period == p).then_some("page")] { (period_label(lang, p)) }
            }
            details.custom open[custom] {
                summary.period.active[custom] { (Msg::Custom.text(lang)) }
                form.range method="get" action=(d.base) {
                    input type="hidden" name="period" value="custom";
                    @for f in &d.view.filters {
                        input type="hidden" name="f" value=(filter_param(f));
                    }
                    @if let Some(l) = d.view.lang {
                        input type="hidden" name="lang" value=(l.code());
                    }
                    label { (Msg::From.text(lang)) " " input type="date" name="from" value=(format_date(d.range.from)) required; }
                    label { (Msg::To.text(lang)) " " input type="date" name="to" value=(format_date(d.range.to)) required; }
                    button type="submit" { (Msg::Apply.text(lang)) }
                }
            }
        }
    }
}

fn filters(d: &Dash) -> Markup {
    let lang = d.lang;
    html! {
        @if !d.view.filters.is_empty() {
            div.filters aria-label=(Msg::Filters.text(lang)) {
                @for (i, f) in d.view.filters.iter().enumerate() {
                    span.chip {
                        span.dim { (lang.filter_name(f.dimension)) } " "
                        strong { (filter_chip_value(lang, f)) }
                        a.x href=(d.view.without_filter(i).href(d.base)) title=(Msg::RemoveFilter.text(lang)) aria-label=(Msg::RemoveFilter.text(lang)) { "×" }
                    }
                }
                @if d.view.filters.len() > 1 {
                    a.clear href=(d.view.without_filters().href(d.base)) { (Msg::ClearFilters.text(lang)) }
                }
            }
        }
    }
}

fn metric_cards(lang: Lang, t: &Totals) -> Markup {
    html! {
        section.metrics {
            @for m in metrics(lang, t) {
                div.metric id=(format!("m-{}", m.id)) {
                    div.mlabel {
                        (m.label)
                        @if let Some(help) = m.help {
                            details.help {
                                summary aria-label="?" { "?" }
                                p { (help) }
                            }
                        }
                    }
                    div.mvalue data-metric=(m.id) { (m.value) }
                    @if let Some(c) = m.change {
                        @let good = (c > 0.0) != m.inverse;
                        div.mchange.up[c > 0.5 && good].down[c < -0.5 && good].bad[c.abs() > 0.5 && !good] title=(format!("{}: {}", Msg::PreviousPeriod.text(lang), m.previous)) {
                            (if c > 0.5 { "▲ " } else if c < -0.5 { "▼ " } else { "" }) (lang.change(c))
                        }
                    } @else {
                        div.mchange.flat title=(format!("{}: {}", Msg::PreviousPeriod.text(lang), m.previous)) { "—" }
                    }
                }
            }
        }
    }
}

fn panel_title(lang: Lang, spec: &PanelSpec) -> String {
    let declared = match lang {
        Lang::En => spec.title_en.as_deref(),
        Lang::Ru => spec.title_ru.as_deref().or(spec.title_en.as_deref()),
    };
    match (declared, spec.dimension, &spec.prop) {
        (Some(t), _, _) => t.to_string(),
        (None, Dimension::Prop, Some(k)) => format!("{}: {k}", lang.dimension(Dimension::Prop)),
        (None, d, _) => lang.dimension(d).to_string(),
    }
}

fn is_event_panel(d: Dimension) -> bool {
    matches!(d, Dimension::Event | Dimension::Prop | Dimension::Download | Dimension::Outbound)
}

fn row_filter(spec: &PanelSpec, prop: Option<&str>, r: &BreakdownRow) -> Filter {
    Filter { dimension: spec.dimension, value: r.value.clone(), prop: prop.map(str::to_string) }
}

fn panel(d: &Dash, spec: &PanelSpec, b: Option<&Breakdown>) -> Markup {
    let lang = d.lang;
    let prop = spec.prop.as_deref().or(d.view.prop.as_deref());
    let needs_key = spec.dimension == Dimension::Prop && prop.is_none();
    let events = is_event_panel(spec.dimension);
    let max = b
        .map(|b| b.rows.iter().map(|r| r.visitors).chain(b.other.iter().map(|o| o.visitors)).max().unwrap_or(0))
        .unwrap_or(0);
    let csv = {
        let mut v = d.view.clone();
        if spec.dimension == Dimension::Prop && spec.prop.is_none() {
            v.prop = prop.map(str::to_string);
        }
        v.href(&format!("{}/export/{}.csv", d.base, spec.id))
    };
    html! {
        section.card.panel id=(format!("p-{}", spec.id)) data-dimension=(spec.dimension.as_str()) {
            header.phead {
                h2 { (panel_title(lang, spec)) }
                @if !needs_key {
                    a.csv href=(csv) download { (Msg::ExportCsv.text(lang)) }
                }
            }
            @if spec.dimension == Dimension::Prop && spec.prop.is_none() {
                form.propform method="get" action=(d.base) {
                    @if d.view.period != Period::Last30Days {
                        input type="hidden" name="period" value=(d.view.period.as_str());
                    }
                    @if let Period::Custom(r) = d.view.period {
                        input type="hidden" name="from" value=(format_date(r.from));
                        input type="hidden" name="to" value=(format_date(r.to));
                    }
                    @for f in &d.view.filters {
                        input type="hidden" name="f" value=(filter_param(f));
                    }
                    @if let Some(l) = d.view.lang {
                        input type="hidden" name="lang" value=(l.code());
                    }
                    label { (Msg::Property.text(lang)) " " input type="text" name="prop" value=(prop.unwrap_or_default()) list="prop-keys" placeholder="plan"; }
                    datalist id="prop-keys" { option value="url" {} option value="path" {} option value="scroll_depth" {} }
                    button type="submit" { (Msg::Show.text(lang)) }
                }
            }
            @if needs_key {
            } @else if let Some(b) = b {
                @if b.rows.is_empty() && b.other.is_none() {
                    p.empty { (Msg::NoData.text(lang)) }
                } @else {
                    table.rows {
                        thead { tr {
                            th scope="col" { (lang.filter_name(spec.dimension)) }
                            th.num scope="col" { (Msg::Visitors.text(lang)) }
                            @if events { th.num scope="col" { (Msg::Events.text(lang)) } }
                            th.num.pct scope="col" { (Msg::Share.text(lang)) }
                        } }
                        tbody {
                            @for r in &b.rows {
                                @let w = if max == 0 { 0 } else { (r.visitors * 100).div_ceil(max).min(100) };
                                tr {
                                    td.label.(format!("w{w}")) {
                                        a.filter href=(d.view.with_filter(row_filter(spec, prop, r)).href(d.base)) title=(r.value) {
                                            @if spec.dimension == Dimension::Country {
                                                @if let Some(flag) = countries::flag(&r.value) { span.flag aria-hidden="true" { (flag) } " " }
                                            }
                                            (display_value(lang, spec.dimension, &r.value))
                                        }
                                    }
                                    td.num { (lang.int(r.visitors)) }
                                    @if events { td.num { (lang.int(r.events)) } }
                                    td.num.pct { (lang.percent(r.percentage)) }
                                }
                            }
                            @if let Some(o) = &b.other {
                                @let w = if max == 0 { 0 } else { (o.visitors * 100).div_ceil(max).min(100) };
                                tr.other title=(Msg::OtherHelp.text(lang)) {
                                    td.label.(format!("w{w}")) { span { (Msg::Other.text(lang)) } }
                                    td.num { (lang.int(o.visitors)) }
                                    @if events { td.num { (lang.int(o.events)) } }
                                    td.num.pct { (lang.percent(o.percentage)) }
                                }
                            }
                        }
                    }
                }
            } @else {
                p.empty.error { (Msg::PanelError.text(lang)) }
            }
        }
    }
}

pub fn dashboard(d: &Dash) -> Markup {
    let lang = d.lang;
    html! {
        div.bar {
            div.title {
                h1 { (d.site) }
                @if d.shared {
                    span.badge { (Msg::SharedView.text(lang)) }
                }
                @if let Some(n) = d.live {
                    span.live title=(Msg::LiveHelp.text(lang)) { span.pulse aria-hidden="true" {} strong { (lang.int(n)) } " " (Msg::LiveVisitors.text(lang)) }
                }
            }
            (periods(d))
        }
        p.rangelabel { (range_label(lang, d.range)) }
        (filters(d))
        @if d.suppressed {
            section.card { p.empty { (Msg::TooFew.text(lang)) } }
        } @else {
            @match &d.totals {
                Some(t) => (metric_cards(lang, t)),
                None => section.card { p.empty.error { (Msg::ErrorText.text(lang)) } },
            }
            @if let Some(s) = &d.series {
                section.card.chartcard {
                    div.legend {
                        span.key.cur { (Msg::ThisPeriod.text(lang)) }
                        span.key.prev { (Msg::PreviousPeriod.text(lang)) }
                        @if s.visitor_days {
                            span.muted { (Msg::VisitorDays.text(lang)) }
                        }
                    }
                    div.chartwrap { (chart::render(s, lang)) div.tip hidden {} }
                }
            }
            section.panels {
                @for (spec, b) in &d.panels {
                    (panel(d, spec, b.as_ref()))
                }
            }
        }
        div.actions {
            a.button href=(d.view.href(&format!("{}/export.zip", d.base))) download { (Msg::ExportZip.text(lang)) }
            @if !d.shared {
                a.button href=(d.view.href(&format!("{}/shares", d.base))) { (Msg::SharedLinks.text(lang)) }
                @for s in &d.other_sites {
                    a.button.ghost href=(d.view.without_filters().href(&format!("/{s}"))) { (s) }
                }
            }
        }
        @if let Some(k) = d.k {
            p.muted.small { (Msg::OtherHelp.text(lang)) " (k = " (k) ")." }
        }
    }
}

/// The shared-links page of a site.
pub fn shares(lang: Lang, site: &str, csrf: &str, shares: &[Share], created: Option<&str>, view: &View) -> Markup {
    let back = view.href(&format!("/{site}"));
    html! {
        section.card {
            p { a href=(back) { "← " (site) } }
            h1 { (Msg::SharedLinks.text(lang)) }
            p.muted { (Msg::SharedLinksHelp.text(lang)) }
            @if let Some(link) = created {
                div.created {
                    p { (Msg::NewLinkCreated.text(lang)) }
                    div.copyrow {
                        input.copy type="text" readonly value=(link) id="new-link";
                        button.copybtn type="button" data-copy="new-link" hidden { (Msg::Copy.text(lang)) }
                    }
                }
            }
            form.stack.row method="post" action=(format!("/{site}/shares?lang={}", lang.code())) {
                input type="hidden" name="csrf" value=(csrf);
                label { (Msg::Label.text(lang)) input type="text" name="label" maxlength="200"; }
                label { (Msg::OptionalPassword.text(lang)) input type="password" name="password" autocomplete="new-password"; }
                button.primary type="submit" { (Msg::CreateLink.text(lang)) }
            }
            @if shares.is_empty() {
                p.muted { (Msg::NoSharedLinks.text(lang)) }
            } @else {
                table.rows.shares {
                    thead { tr { th { "id" } th { (Msg::Label.text(lang)) } th { (Msg::Created.text(lang)) } th {} th {} } }
                    tbody {
                        @for s in shares {
                            tr {
                                td { code { (s.id) } }
                                td { (s.label) }
                                td { (lang.day_year(s.created_at.date())) }
                                td { @if !s.password_hash.is_empty() { span.badge { (Msg::Protected.text(lang)) } } }
                                td {
                                    form.inline method="post" action=(format!("/{site}/shares/{}/revoke?lang={}", s.id, lang.code())) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.link.danger type="submit" { (Msg::Revoke.text(lang)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
