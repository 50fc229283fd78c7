//! English and Russian: every label, number, date and duration.
//!
//! The language comes from `?lang=` (kept in every link the page makes, so
//! the choice survives navigation without a cookie), else `Accept-Language`,
//! else English. Numbers follow each language's conventions: `1,234.5` and
//! `1 234,5` (no-break space groups, decimal comma), `45%` and `45 %`.

use crate::stats::Dimension;
use time::{Date, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

/// No-break space: groups digits and binds units in Russian.
pub const NBSP: char = '\u{a0}';

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ru") {
            Some(Lang::Ru)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The best of English and Russian for an `Accept-Language` header
    /// (the rule of the visitors' opt-out page).
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        match crate::ingest::opt_out::language(None, accept_language) {
            crate::ingest::opt_out::Lang::Ru => Lang::Ru,
            _ => Lang::En,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ru,
            Lang::Ru => Lang::En,
        }
    }

    /// Thousands separator and decimal mark.
    fn marks(self) -> (char, char) {
        match self {
            Lang::En => (',', '.'),
            Lang::Ru => (NBSP, ','),
        }
    }

    /// An integer with grouped thousands: `1,234` / `1 234`.
    pub fn int(self, n: u64) -> String {
        group(&n.to_string(), self.marks().0)
    }

    /// A number with at most `places` decimals (trailing zeros dropped):
    /// `1,234.5` / `1 234,5`.
    pub fn num(self, x: f64, places: usize) -> String {
        if !x.is_finite() {
            return "—".into();
        }
        let s = format!("{:.*}", places, x.abs());
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let frac = frac.trim_end_matches('0');
        let (sep, dec) = self.marks();
        let sign = if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') { "−" } else { "" };
        if frac.is_empty() {
            format!("{sign}{}", group(int, sep))
        } else {
            format!("{sign}{}{dec}{frac}", group(int, sep))
        }
    }

    /// A percentage: `45%` / `45 %` (rounded to an integer from 10 up, one
    /// decimal below).
    pub fn percent(self, x: f64) -> String {
        let places = if x.abs() >= 10.0 || x == 0.0 { 0 } else { 1 };
        match self {
            Lang::En => format!("{}%", self.num(x, places)),
            Lang::Ru => format!("{}{NBSP}%", self.num(x, places)),
        }
    }

    /// A signed change in percent for the comparison with the previous period.
    pub fn change(self, pct: f64) -> String {
        let sign = if pct > 0.0 { "+" } else { "" };
        format!("{sign}{}", self.percent(pct.round()))
    }

    /// Short form for chart axes: `1.2k` / `1,2 тыс.`
    pub fn compact(self, n: f64) -> String {
        let (v, unit) = match n {
            n if n >= 1e6 => (n / 1e6, if self == Lang::Ru { "\u{a0}млн" } else { "M" }),
            n if n >= 1e4 => (n / 1e3, if self == Lang::Ru { "\u{a0}тыс." } else { "k" }),
            n => (n, ""),
        };
        format!("{}{unit}", self.num(v, if unit.is_empty() { 0 } else { 1 }))
    }

    /// A duration in seconds: `1m 05s` / `1 мин 05 с`.
    pub fn duration(self, secs: f64) -> String {
        if !secs.is_finite() || secs < 0.0 {
            return "—".into();
        }
        let s = secs.round() as u64;
        let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
        match self {
            Lang::En if h > 0 => format!("{h}h {m:02}m"),
            Lang::En if m > 0 => format!("{m}m {s:02}s"),
            Lang::En => format!("{s}s"),
            Lang::Ru if h > 0 => format!("{h}{NBSP}ч {m:02}{NBSP}мин"),
            Lang::Ru if m > 0 => format!("{m}{NBSP}мин {s:02}{NBSP}с"),
            Lang::Ru => format!("{s}{NBSP}с"),
        }
    }

    fn month_short(self, m: time::Month) -> &'static str {
        const EN: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        const RU: [&str; 12] = ["янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"];
        let i = u8::from(m) as usize - 1;
        match self {
            Lang::En => EN[i],
            Lang::Ru => RU[i],
        }
    }

    fn month_name(self, m: time::Month) -> &'static str {
        const EN: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        const RU: [&str; 12] = [
            "январь",
            "февраль",
            "март",
            "апрель",
            "май",
            "июнь",
            "июль",
            "август",
            "сентябрь",
            "октябрь",
            "ноябрь",
            "декабрь",
        ];
        let i = u8::from(m) as usize - 1;
        match self {
            Lang::En => EN[i],
            Lang::Ru => RU[i],
        }
    }

    /// `Mar 5` / `5 мар`.
    pub fn day(self, d: Date) -> String {
        match self {
            Lang::En => format!("{} {}", self.month_short(d.month()), d.day()),
            Lang::Ru => format!("{}{NBSP}{}", d.day(), self.month_short(d.month())),
        }
    }

    /// `Mar 5, 2025` / `5 мар 2025`.
    pub fn day_year(self, d: Date) -> String {
        match self {
            Lang::En => format!("{}, {}", self.day(d), d.year()),
            Lang::Ru => format!("{}{NBSP}{}", self.day(d), d.year()),
        }
    }

    /// `March 2025` / `март 2025`.
    pub fn month_year(self, d: Date) -> String {
        format!("{} {}", self.month_name(d.month()), d.year())
    }

    /// `Mar 2025` / `мар 2025` (chart axes).
    pub fn month_short_year(self, d: Date) -> String {
        format!("{}{NBSP}{}", self.month_short(d.month()), d.year())
    }

    /// `14:00`.
    pub fn hour(self, t: OffsetDateTime) -> String {
        format!("{:02}:00", t.hour())
    }

    /// Title of a breakdown by `d`.
    pub fn dimension(self, d: Dimension) -> &'static str {
        use Dimension as D;
        let (en, ru) = match d {
            D::Page => ("Top pages", "Популярные страницы"),
            D::EntryPage => ("Entry pages", "Страницы входа"),
            D::ExitPage => ("Exit pages", "Страницы выхода"),
            D::Source => ("Sources", "Источники"),
            D::Channel => ("Channels", "Каналы"),
            D::Referrer => ("Referrers", "Ссылающиеся сайты"),
            D::UtmSource => ("UTM sources", "UTM-источники"),
            D::UtmMedium => ("UTM mediums", "UTM-каналы"),
            D::UtmCampaign => ("UTM campaigns", "UTM-кампании"),
            D::UtmContent => ("UTM contents", "UTM-содержание"),
            D::UtmTerm => ("UTM terms", "UTM-ключевые слова"),
            D::Browser => ("Browsers", "Браузеры"),
            D::BrowserVersion => ("Browser versions", "Версии браузеров"),
            D::Os => ("Operating systems", "Операционные системы"),
            D::OsVersion => ("OS versions", "Версии ОС"),
            D::Device => ("Devices", "Устройства"),
            D::ScreenClass => ("Screen sizes", "Размеры экрана"),
            D::Country => ("Countries", "Страны"),
            D::Region => ("Regions", "Регионы"),
            D::City => ("Cities", "Города"),
            D::Asn => ("Networks (ISP)", "Сети (провайдеры)"),
            D::Event => ("Custom events", "Целевые события"),
            D::Prop => ("Event properties", "Свойства событий"),
            D::Download => ("File downloads", "Скачивания файлов"),
            D::Outbound => ("Outbound links", "Внешние ссылки"),
        };
        self.pick(en, ru)
    }

    /// The singular name of a filter on `d` (filter chips).
    pub fn filter_name(self, d: Dimension) -> &'static str {
        use Dimension as D;
        let (en, ru) = match d {
            D::Page => ("Page", "Страница"),
            D::EntryPage => ("Entry page", "Страница входа"),
            D::ExitPage => ("Exit page", "Страница выхода"),
            D::Source => ("Source", "Источник"),
            D::Channel => ("Channel", "Канал"),
            D::Referrer => ("Referrer", "Ссылающийся сайт"),
            D::UtmSource => ("UTM source", "UTM-источник"),
            D::UtmMedium => ("UTM medium", "UTM-канал"),
            D::UtmCampaign => ("UTM campaign", "UTM-кампания"),
            D::UtmContent => ("UTM content", "UTM-содержание"),
            D::UtmTerm => ("UTM term", "UTM-ключевое слово"),
            D::Browser => ("Browser", "Браузер"),
            D::BrowserVersion => ("Browser version", "Версия браузера"),
            D::Os => ("OS", "ОС"),
            D::OsVersion => ("OS version", "Версия ОС"),
            D::Device => ("Device", "Устройство"),
            D::ScreenClass => ("Screen size", "Размер экрана"),
            D::Country => ("Country", "Страна"),
            D::Region => ("Region", "Регион"),
            D::City => ("City", "Город"),
            D::Asn => ("Network", "Сеть"),
            D::Event => ("Event", "Событие"),
            D::Prop => ("Property", "Свойство"),
            D::Download => ("Download", "Скачивание"),
            D::Outbound => ("Outbound link", "Внешняя ссылка"),
        };
        self.pick(en, ru)
    }

    /// Display form of a value as stored (device and screen class values,
    /// channels, the empty value).
    pub fn value(self, d: Dimension, v: &str) -> Option<&'static str> {
        use Dimension as D;
        let (en, ru) = match (d, v) {
            (D::Source | D::Referrer, "") => ("Direct / none", "Прямые заходы"),
            (_, "") => ("(not set)", "(не задано)"),
            (D::Device | D::ScreenClass, "desktop") => ("Desktop", "Компьютер"),
            (D::Device | D::ScreenClass, "laptop") => ("Laptop", "Ноутбук"),
            (D::Device | D::ScreenClass, "mobile") => ("Mobile", "Телефон"),
            (D::Device | D::ScreenClass, "tablet") => ("Tablet", "Планшет"),
            (D::Device | D::ScreenClass, "other") => ("Other", "Другое"),
            (D::Channel, "Direct") => ("Direct", "Прямые заходы"),
            (D::Channel, "Organic Search") => ("Organic Search", "Поисковые системы"),
            (D::Channel, "Paid Search") => ("Paid Search", "Платный поиск"),
            (D::Channel, "Organic Social") => ("Organic Social", "Социальные сети"),
            (D::Channel, "Paid Social") => ("Paid Social", "Платные соцсети"),
            (D::Channel, "Referral") => ("Referral", "Переходы по ссылкам"),
            (D::Channel, "Email") => ("Email", "Электронная почта"),
            (D::Channel, "Organic Video") => ("Organic Video", "Видео"),
            (D::Channel, "Paid Video") => ("Paid Video", "Платное видео"),
            (D::Channel, "Display") => ("Display", "Медийная реклама"),
            (D::Channel, "Organic Shopping") => ("Organic Shopping", "Маркетплейсы"),
            (D::Channel, "Paid Shopping") => ("Paid Shopping", "Платные маркетплейсы"),
            (D::Channel, "Affiliates") => ("Affiliates", "Партнёры"),
            (D::Channel, "Unassigned") => ("Unassigned", "Не определено"),
            _ => return None,
        };
        Some(self.pick(en, ru))
    }

    pub fn pick(self, en: &'static str, ru: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Ru => ru,
        }
    }
}

fn group(digits: &str, sep: char) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 2);
    let n = digits.len();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

macro_rules! messages {
    ($($id:ident => $en:literal, $ru:literal;)*) => {
        /// Every fixed text of the interface.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($id),* }

        impl Msg {
            pub fn text(self, lang: Lang) -> &'static str {
                match self { $(Msg::$id => lang.pick($en, $ru)),* }
            }

            #[cfg(test)]
            pub const ALL: &'static [Msg] = &[$(Msg::$id),*];
        }
    };
}

messages! {
    SignIn => "Sign in", "Вход";
    SignInTitle => "Sign in to Headcount", "Вход в Headcount";
    Email => "E-mail", "Эл. почта";
    Password => "Password", "Пароль";
    SignInButton => "Sign in", "Войти";
    SignOut => "Sign out", "Выйти";
    BadLogin => "Wrong e-mail or password.", "Неверная почта или пароль.";
    TooManyAttempts => "Too many attempts. Try again in a few minutes.", "Слишком много попыток. Повторите через несколько минут.";
    FormExpired => "The form expired or came from another page. Please try again.", "Форма устарела или отправлена с другой страницы. Попробуйте ещё раз.";
    Sites => "Sites", "Сайты";
    NoSites => "You have access to no site yet.", "У вас пока нет доступа ни к одному сайту.";
    Today => "Today", "Сегодня";
    Yesterday => "Yesterday", "Вчера";
    Last7 => "Last 7 days", "7 дней";
    Last30 => "Last 30 days", "30 дней";
    MonthToDate => "Month to date", "С начала месяца";
    LastMonth => "Last month", "Прошлый месяц";
    Last12Months => "Last 12 months", "12 месяцев";
    Custom => "Custom", "Период";
    From => "From", "С";
    To => "To", "По";
    Apply => "Apply", "Применить";
    UniqueVisitors => "Unique visitors", "Уникальные посетители";
    VisitorDays => "Visitor-days", "Посетитель-дни";
    VisitorDaysHelp => "Visitors are recognised for one day only: the key that makes a visitor's anonymous id is destroyed every night, so the same person on two days counts twice. Over several days this is the sum of each day's unique visitors, not the number of different people.",
        "Посетитель узнаётся только в пределах суток: ключ, из которого строится его анонимный идентификатор, уничтожается каждую ночь, поэтому один человек, зашедший в два разных дня, учитывается дважды. За несколько дней это сумма уникальных посетителей каждого дня, а не число разных людей.";
    Visits => "Visits", "Визиты";
    Pageviews => "Pageviews", "Просмотры";
    ViewsPerVisit => "Views per visit", "Просмотров за визит";
    BounceRate => "Bounce rate", "Отказы";
    VisitDuration => "Visit duration", "Длительность визита";
    LiveVisitors => "current visitors", "сейчас на сайте";
    LiveHelp => "Visitors in the last 5 minutes", "Посетители за последние 5 минут";
    PreviousPeriod => "previous period", "предыдущий период";
    ThisPeriod => "this period", "этот период";
    Visitors => "Visitors", "Посетители";
    Events => "Events", "События";
    Share => "Share", "Доля";
    Other => "(other)", "(прочее)";
    OtherHelp => "Rows with fewer visitors than the privacy threshold, together", "Строки, где посетителей меньше порога приватности, вместе";
    NoData => "No data for this period.", "Нет данных за этот период.";
    Filters => "Filters", "Фильтры";
    RemoveFilter => "Remove filter", "Убрать фильтр";
    ClearFilters => "Clear all", "Сбросить все";
    ExportCsv => "CSV", "CSV";
    ExportZip => "Export all (ZIP)", "Выгрузить всё (ZIP)";
    SharedLinks => "Shared links", "Публичные ссылки";
    SharedLinksHelp => "Read-only links to this dashboard for people without an account. Rows with fewer visitors than the privacy threshold are folded into “(other)”.", "Ссылки только для просмотра этой панели без учётной записи. Строки, где посетителей меньше порога приватности, объединяются в «(прочее)».";
    CreateLink => "Create link", "Создать ссылку";
    Label => "Label", "Подпись";
    OptionalPassword => "Password (optional)", "Пароль (необязательно)";
    Revoke => "Revoke", "Отозвать";
    Created => "Created", "Создана";
    NewLinkCreated => "New link — copy it now, it is shown only once:", "Новая ссылка — скопируйте её сейчас, она показывается один раз:";
    Copy => "Copy", "Копировать";
    NoSharedLinks => "No shared links yet.", "Публичных ссылок пока нет.";
    Protected => "password", "с паролем";
    SharedView => "Shared read-only view", "Общий доступ только для чтения";
    SharePasswordTitle => "This dashboard is protected", "Панель защищена паролем";
    Open => "Open", "Открыть";
    TooFew => "Too few visitors to show with these filters (privacy threshold).", "Слишком мало посетителей, чтобы показать данные с этими фильтрами (порог приватности).";
    Property => "Property", "Свойство";
    Show => "Show", "Показать";
    Back => "Back to sites", "К списку сайтов";
    NotFound => "Not found", "Не найдено";
    NotFoundText => "There is no such page, or you may not see it.", "Такой страницы нет, или у вас нет к ней доступа.";
    Error => "Something went wrong", "Что-то пошло не так";
    ErrorText => "The statistics could not be loaded. Try again in a moment.", "Не удалось загрузить статистику. Попробуйте ещё раз чуть позже.";
    PanelError => "Could not load this panel.", "Не удалось загрузить этот блок.";
    Language => "Язык: русский", "Language: English";
    Chart => "Visitors over time", "Посетители по времени";
    Period => "Period", "Период";
    Privacy => "Headcount counts people without knowing who they are: no cookies, no IP addresses, daily-rotating anonymous ids.", "Headcount считает людей, не зная, кто они: без cookie, без IP-адресов, с анонимными идентификаторами, которые меняются каждый день.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_localised() {
        assert_eq!(Lang::En.int(1_234_567), "1,234,567");
        assert_eq!(Lang::Ru.int(1_234_567), "1\u{a0}234\u{a0}567");
        assert_eq!(Lang::En.int(999), "999");
        assert_eq!(Lang::En.num(1234.5, 1), "1,234.5");
        assert_eq!(Lang::Ru.num(1234.5, 1), "1\u{a0}234,5");
        assert_eq!(Lang::Ru.num(2.0, 1), "2");
        assert_eq!(Lang::En.num(-0.04, 1), "0");
        assert_eq!(Lang::En.percent(45.4), "45%");
        assert_eq!(Lang::Ru.percent(45.4), "45\u{a0}%");
        assert_eq!(Lang::Ru.percent(2.5), "2,5\u{a0}%");
        assert_eq!(Lang::En.change(12.4), "+12%");
        assert_eq!(Lang::En.change(-12.6), "−13%");
        assert_eq!(Lang::En.compact(12_500.0), "12.5k");
        assert_eq!(Lang::Ru.compact(12_500.0), "12,5\u{a0}тыс.");
    }

    #[test]
    fn durations_and_dates() {
        assert_eq!(Lang::En.duration(65.0), "1m 05s");
        assert_eq!(Lang::Ru.duration(65.0), "1\u{a0}мин 05\u{a0}с");
        assert_eq!(Lang::En.duration(3725.0), "1h 02m");
        assert_eq!(Lang::En.duration(7.4), "7s");
        let d = time::macros::date!(2025 - 03 - 05);
        assert_eq!(Lang::En.day(d), "Mar 5");
        assert_eq!(Lang::Ru.day(d), "5\u{a0}мар");
        assert_eq!(Lang::Ru.month_year(d), "март 2025");
    }

    #[test]
    fn language_negotiation() {
        assert_eq!(Lang::negotiate(Some("ru-RU,ru;q=0.9,en;q=0.8")), Lang::Ru);
        assert_eq!(Lang::negotiate(Some("de-DE,en;q=0.5,ru;q=0.4")), Lang::En);
        assert_eq!(Lang::negotiate(Some("de")), Lang::En);
        assert_eq!(Lang::negotiate(None), Lang::En);
        assert_eq!(Lang::parse("RU"), Some(Lang::Ru));
    }

    #[test]
    fn every_message_is_translated() {
        for m in Msg::ALL {
            assert!(!m.text(Lang::En).is_empty() && !m.text(Lang::Ru).is_empty(), "{m:?}");
            if !matches!(m, Msg::ExportCsv) {
                assert_ne!(m.text(Lang::En), m.text(Lang::Ru), "{m:?} is not translated");
            }
        }
    }
}
