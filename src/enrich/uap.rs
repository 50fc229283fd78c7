//! The uap-core rules (`regexes.yaml`) evaluated with a small regex engine.
//!
//! # Why not the `ua-parser` crate's extractor
//!
//! `ua-parser` 0.2 (the uap project's Rust port) finds the first matching
//! rule the right way: one Aho-Corasick pass over literal atoms drawn from
//! every rule, then only the few rules whose atoms occur are tried. We keep
//! that part: the atoms and the atom → rule mapping come from its own
//! `regex-filtered` crate ([`regex_filtered::model`], [`regex_filtered::mapper`]).
//!
//! What we replace is the engine behind each rule. `ua-parser` compiles the
//! ~1,200 rules with the `regex` crate's defaults, which gives every rule
//! forward and reverse NFAs, literal prefilters and, for each thread that
//! uses it, lazy-DFA caches of up to 2 MiB. Here, rules run on `regex-lite`
//! (by the `regex` authors: the same syntax without Unicode tables, one
//! PikeVM and nothing else), except the 21 longest, which are alternations
//! of hundreds of names that a PikeVM walks slowly; those keep the `regex`
//! crate's lazy DFA (`Engine` below).
//!
//! Heap, measured with a counting allocator, building the rules and then
//! parsing the 17,660 distinct strings of uap-core's three test files:
//!
//! | engine                 | built   | after, 1 thread | after, 2 threads |
//! |------------------------|--------:|----------------:|-----------------:|
//! | `ua-parser` 0.2.2      | 24.3 MB |         61.5 MB |         100.4 MB |
//! | this module            |  5.9 MB |         15.8 MB |          23.2 MB |
//!
//! The price is CPU on a miss of the [`super::ua`] cache: 40 µs per string
//! on average instead of 15 µs, and 0.76 ms instead of 0.10 ms for the
//! slowest string of the corpus (487 bytes of toolbar and library tokens).
//! Real traffic repeats a few hundred User-Agents, so misses are rare; the
//! memory is held for the life of the process.
//!
//! # Meaning is unchanged
//!
//! `regex-lite`'s `\d`, `\w`, `\s` and `\b` are ASCII-only, which is what the
//! uap rules mean (the `ua-parser` crate rewrites them to ASCII for the same
//! reason), and bounded repetitions of 100 or more (`[^;/]{1,100}`) become
//! unbounded, as in `ua-parser`: the rules only use them as "some".
//! Replacement templates (`$1`, `$2`…) resolve as in uap-core's
//! specification. A test in [`super::ua`] checks every string of uap-core's
//! `test_ua.yaml` and `test_os.yaml` against their expected values, and one
//! compares the device rules with the `ua-parser` crate on every string we
//! have.

use aho_corasick::AhoCorasick;
use regex_filtered::{mapper, model::Model};
use serde::Deserialize;

/// Why the rules could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The YAML does not deserialize into uap rules.
    #[error("uap rules could not be read")]
    Yaml(#[source] serde_yaml::Error),
    /// A rule's regex does not parse.
    #[error("uap rule {index} of {section} does not compile")]
    Regex {
        /// `user_agent_parsers`, `os_parsers` or `device_parsers`.
        section: &'static str,
        /// Position of the rule in its section.
        index: usize,
        /// What the regex engine said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The literal prefilter could not be built.
    #[error("uap prefilter could not be built")]
    Prefilter(#[source] aho_corasick::BuildError),
}

/// The browser a User-Agent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    /// uap family, e.g. `"Chrome"`; may be `"Other"` or empty.
    pub family: String,
    /// Major version, if the rule gives one.
    pub major: Option<String>,
}

/// The operating system a User-Agent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Os {
    /// uap family, e.g. `"Windows"`.
    pub family: String,
    /// Major version.
    pub major: Option<String>,
    /// Minor version.
    pub minor: Option<String>,
}

/// The device a User-Agent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// uap device family, e.g. `"iPhone"`, `"Spider"`.
    pub family: String,
    /// Brand, e.g. `"Samsung"`.
    pub brand: Option<String>,
    /// Model, e.g. `"SM-T510"`.
    pub model: Option<String>,
}

/// The three rule sets of one `regexes.yaml`.
pub struct Rules {
    browser: RuleSet<[Resolve; 2]>,
    os: RuleSet<[Resolve; 3]>,
    device: RuleSet<[Resolve; 3]>,
}

impl Rules {
    /// Compiles a uap-core `regexes.yaml`.
    pub fn from_yaml(yaml: &str) -> Result<Self, RulesError> {
        let file: File = serde_yaml::from_str(yaml).map_err(RulesError::Yaml)?;
        let browser = RuleSet::build("user_agent_parsers", 3, file.user_agent_parsers.into_iter(), |r, groups| {
            let family = match r.family_replacement {
                Some(t) if t.contains("$1") => Resolve::FirstGroupIn(t),
                Some(t) if !t.is_empty() => Resolve::Text(t),
                _ => Resolve::group_or_empty(groups, 1),
            };
            let major = match r.v1_replacement {
                Some(t) if !t.is_empty() => Resolve::Text(t),
                _ => Resolve::group_or_none(groups, 2),
            };
            [family, major]
        })?;
        let os = RuleSet::build("os_parsers", 3, file.os_parsers.into_iter(), |r, groups| {
            let family = Resolve::template(r.os_replacement, groups, 1).unwrap_or(Resolve::Text(String::new()));
            let major = Resolve::template(r.os_v1_replacement, groups, 2).unwrap_or(Resolve::Nothing);
            let minor = Resolve::template(r.os_v2_replacement, groups, 3).unwrap_or(Resolve::Nothing);
            [family, major, minor]
        })?;
        let device = RuleSet::build("device_parsers", 2, file.device_parsers.into_iter(), |r, groups| {
            let family = Resolve::template(r.device_replacement, groups, 1).unwrap_or(Resolve::Text(String::new()));
            // The brand never falls back to a group.
            let brand = Resolve::template(r.brand_replacement, 0, 1).unwrap_or(Resolve::Nothing);
            let model = Resolve::template(r.model_replacement, groups, 1).unwrap_or(Resolve::Nothing);
            [family, brand, model]
        })?;
        Ok(Rules { browser, os, device })
    }

    /// The first browser rule matching `ua`, if any.
    pub fn browser(&self, ua: &str) -> Option<Browser> {
        let (c, [family, major]) = self.browser.first_match(ua)?;
        Some(Browser { family: family.text(&c), major: major.opt(&c) })
    }

    /// The first OS rule matching `ua`, if any.
    pub fn os(&self, ua: &str) -> Option<Os> {
        let (c, [family, major, minor]) = self.os.first_match(ua)?;
        Some(Os { family: family.text(&c), major: major.opt(&c), minor: minor.opt(&c) })
    }

    /// The first device rule matching `ua`, if any.
    pub fn device(&self, ua: &str) -> Option<Device> {
        let (c, [family, brand, model]) = self.device.first_match(ua)?;
        Some(Device { family: family.text(&c), brand: brand.opt(&c), model: model.opt(&c) })
    }
}

/// One section of rules: their regexes, the prefilter that picks which to
/// try, and how each turns its captures into values.
struct RuleSet<R> {
    regexes: Vec<Engine>,
    atoms: AhoCorasick,
    mapper: mapper::Mapper,
    resolve: Vec<R>,
}

impl<R> RuleSet<R> {
    /// Compiles `rules` in order; `describe` gives each rule's resolvers,
    /// knowing how many groups its regex has. Atoms shorter than `min_atom_len` are not used to filter.
    fn build<T>(
        section: &'static str,
        min_atom_len: usize,
        rules: impl Iterator<Item = T>,
        describe: impl Fn(T, usize) -> R,
    ) -> Result<Self, RulesError>
    where
        T: HasRegex,
    {
        let mut regexes = Vec::new();
        let mut resolve = Vec::new();
        let mut atoms = mapper::Builder::new(min_atom_len);
        for (index, rule) in rules.enumerate() {
            let err = |source: Box<dyn std::error::Error + Send + Sync>| RulesError::Regex { section, index, source };
            let (pattern, ignore_case) = (unbounded(rule.regex()), rule.ignore_case());
            let hir = regex_syntax::ParserBuilder::new()
                .case_insensitive(ignore_case)
                .build()
                .parse(&pattern)
                .map_err(|e| err(e.into()))?;
            atoms.push(Model::new(&hir).map_err(|e| err(e.into()))?);
            let regex = Engine::new(&pattern, ignore_case).map_err(err)?;
            let groups = regex.groups();
            resolve.push(describe(rule, groups));
            regexes.push(regex);
        }
        let (mapper, literals) = atoms.build();
        let atoms =
            AhoCorasick::builder().ascii_case_insensitive(true).build(literals).map_err(RulesError::Prefilter)?;
        Ok(RuleSet { regexes, atoms, mapper, resolve })
    }

    /// Captures of the first rule, in file order, that matches `ua`.
    fn first_match<'h>(&self, ua: &'h str) -> Option<(Found<'h>, &R)> {
        let mut candidates =
            self.mapper.atom_to_re(self.atoms.find_overlapping_iter(ua).map(|m| m.pattern().as_usize()));
        candidates.dedup();
        candidates.into_iter().find_map(|i| Some((self.regexes.get(i)?.captures(ua)?, self.resolve.get(i)?)))
    }
}

/// Patterns longer than this many bytes run on the `regex` crate's lazy DFA
/// instead of `regex-lite`'s PikeVM (see [`Engine`]).
const LARGE_PATTERN: usize = 200;

/// Most DFA states one large rule may cache per thread.
const LARGE_DFA_BYTES: usize = 256 * 1024;

/// One compiled rule.
///
/// A PikeVM's cost grows with the number of NFA states alive at once, and
/// uap-core has a handful of rules that are alternations of hundreds of bot
/// and device names; as they hold no required literal, the prefilter cannot
/// skip them. On regex-lite alone the slowest string of uap-core's tests
/// (492 bytes) took 2.5 ms, against 0.1 ms with the `regex` crate. So the 21
/// rules longer than [`LARGE_PATTERN`] run on the `regex` crate — bytes, no
/// Unicode, the same ASCII meaning as regex-lite — whose lazy DFA walks
/// them in one pass; the other ~1,170 stay small.
enum Engine {
    Small(regex_lite::Regex),
    Large(regex::bytes::Regex),
}

impl Engine {
    fn new(pattern: &str, ignore_case: bool) -> Result<Engine, Box<dyn std::error::Error + Send + Sync>> {
        Ok(if pattern.len() > LARGE_PATTERN {
            Engine::Large(
                regex::bytes::RegexBuilder::new(pattern)
                    .unicode(false)
                    .case_insensitive(ignore_case)
                    .dfa_size_limit(LARGE_DFA_BYTES)
                    .build()?,
            )
        } else {
            Engine::Small(regex_lite::RegexBuilder::new(pattern).case_insensitive(ignore_case).build()?)
        })
    }

    /// Number of capture groups, not counting the whole match.
    fn groups(&self) -> usize {
        match self {
            Engine::Small(r) => r.captures_len() - 1,
            Engine::Large(r) => r.captures_len() - 1,
        }
    }

    fn captures<'h>(&self, ua: &'h str) -> Option<Found<'h>> {
        match self {
            Engine::Small(r) => r.captures(ua).map(Found::Small),
            Engine::Large(r) => r.captures(ua.as_bytes()).map(|c| Found::Large(c, ua)),
        }
    }
}

/// A rule's match: its groups and the string they index.
enum Found<'h> {
    Small(regex_lite::Captures<'h>),
    Large(regex::bytes::Captures<'h>, &'h str),
}

impl<'h> Found<'h> {
    /// Group `i`'s text if it took part in the match and is not empty.
    fn group(&self, i: usize) -> Option<&'h str> {
        let text = match self {
            Found::Small(c) => c.get(i).map(|m| m.as_str()),
            // A byte-wise `.` may stop inside a multi-byte character; such a
            // group counts as absent.
            Found::Large(c, ua) => c.get(i).and_then(|m| ua.get(m.range())),
        };
        text.filter(|s| !s.is_empty())
    }

    /// `template` with `$n` / `${n}` replaced by groups.
    fn expand(&self, template: &str, out: &mut String) {
        match self {
            Found::Small(c) => c.expand(template, out),
            Found::Large(c, _) => {
                let mut bytes = Vec::new();
                c.expand(template.as_bytes(), &mut bytes);
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}

/// How one output value is made from a rule's captures (uap-core's
/// specification of `*_replacement`).
enum Resolve {
    /// Always this text.
    Text(String),
    /// This capture group, `None` if it did not take part or is empty.
    Group(usize),
    /// A template with `$1`…`$9`, expanded and trimmed; `None` if empty.
    Template(String),
    /// The browser family's special case: only `$1` is replaced.
    FirstGroupIn(String),
    /// No value.
    Nothing,
}

impl Resolve {
    /// A replacement that may hold `$n` groups; without one, group `index`
    /// if the regex has it; `None` if neither.
    fn template(replacement: Option<String>, groups: usize, index: usize) -> Option<Resolve> {
        match replacement.filter(|t| !t.trim().is_empty()) {
            Some(t) if has_group_reference(&t) => Some(Resolve::Template(t)),
            Some(t) => Some(Resolve::Text(t)),
            None => (groups >= index).then_some(Resolve::Group(index)),
        }
    }

    fn group_or_empty(groups: usize, index: usize) -> Resolve {
        if groups >= index { Resolve::Group(index) } else { Resolve::Text(String::new()) }
    }

    fn group_or_none(groups: usize, index: usize) -> Resolve {
        if groups >= index { Resolve::Group(index) } else { Resolve::Nothing }
    }

    /// The value, empty when there is none.
    fn text(&self, c: &Found<'_>) -> String {
        self.opt(c).unwrap_or_default()
    }

    /// The value, if any.
    fn opt(&self, c: &Found<'_>) -> Option<String> {
        match self {
            Resolve::Text(t) => Some(t.clone()),
            Resolve::Group(i) => c.group(*i).map(str::to_owned),
            Resolve::Template(t) => {
                let mut out = String::new();
                c.expand(t, &mut out);
                let trimmed = out.trim();
                (!trimmed.is_empty()).then(|| trimmed.to_owned())
            }
            Resolve::FirstGroupIn(t) => Some(t.replace("$1", c.group(1).unwrap_or(""))),
            Resolve::Nothing => None,
        }
    }
}

/// Whether `t` refers to a capture group (`$` then a digit).
fn has_group_reference(t: &str) -> bool {
    t.as_bytes().windows(2).any(|w| w[0] == b'$' && w[1].is_ascii_digit())
}

/// `pattern` with `{0,N}` and `{1,N}` for N of three or more digits turned
/// into `*` and `+`: the rules use them to mean "some", and a PikeVM's NFA
/// grows with N.
fn unbounded(pattern: &str) -> String {
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len());
    let (mut i, mut copied, mut escaped, mut class) = (0, 0, false, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'[' => class += 1,
            b']' => class = class.saturating_sub(1),
            b'{' if class == 0 && i > 0 => {
                if let Some((len, min)) = long_repetition(&bytes[i..]) {
                    out.push_str(&pattern[copied..i]);
                    out.push(if min == b'0' { '*' } else { '+' });
                    i += len;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&pattern[copied..]);
    out
}

/// If `s` starts with `{0,NNN}` or `{1,NNN}` (three or more digits), its
/// length and the minimum digit.
fn long_repetition(s: &[u8]) -> Option<(usize, u8)> {
    let min = *s.get(1)?;
    if !matches!(min, b'0' | b'1') || s.get(2) != Some(&b',') {
        return None;
    }
    let digits = s[3..].iter().take_while(|b| b.is_ascii_digit()).count();
    (digits >= 3 && s.get(3 + digits) == Some(&b'}')).then_some((4 + digits, min))
}

/// `regexes.yaml` as uap-core lays it out; fields we do not use are ignored.
#[derive(Deserialize)]
struct File {
    user_agent_parsers: Vec<BrowserRule>,
    os_parsers: Vec<OsRule>,
    device_parsers: Vec<DeviceRule>,
}

#[derive(Deserialize)]
struct BrowserRule {
    regex: String,
    family_replacement: Option<String>,
    v1_replacement: Option<String>,
}

#[derive(Deserialize)]
struct OsRule {
    regex: String,
    os_replacement: Option<String>,
    os_v1_replacement: Option<String>,
    os_v2_replacement: Option<String>,
}

#[derive(Deserialize)]
struct DeviceRule {
    regex: String,
    regex_flag: Option<String>,
    device_replacement: Option<String>,
    brand_replacement: Option<String>,
    model_replacement: Option<String>,
}

/// What [`RuleSet::build`] needs to see of a rule before describing it.
trait HasRegex {
    fn regex(&self) -> &str;
    fn ignore_case(&self) -> bool {
        false
    }
}

impl HasRegex for BrowserRule {
    fn regex(&self) -> &str {
        &self.regex
    }
}

impl HasRegex for OsRule {
    fn regex(&self) -> &str {
        &self.regex
    }
}

impl HasRegex for DeviceRule {
    fn regex(&self) -> &str {
        &self.regex
    }
    fn ignore_case(&self) -> bool {
        self.regex_flag.as_deref() == Some("i")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bounded_repetitions_become_unbounded() {
        assert_eq!(unbounded("; {0,2}(T-(?:07|[^0][0-9])[^;/]{1,100}?)"), "; {0,2}(T-(?:07|[^0][0-9])[^;/]+?)");
        assert_eq!(unbounded("a{0,1000}b{1,100}c{2,100}d{1,99}"), "a*b+c{2,100}d{1,99}");
        // Escaped braces and braces inside classes are literal.
        assert_eq!(unbounded(r"a\{1,100}[{1,100}]"), r"a\{1,100}[{1,100}]");
        assert_eq!(unbounded("{1,100}"), "{1,100}");
    }

    #[test]
    fn replacements_follow_uap_core() {
        let rules = Rules::from_yaml(
            r#"
user_agent_parsers:
  - regex: '(Foo)Bar/(\d+)'
    family_replacement: 'Foo $1'
  - regex: 'Quux/(\d+)'
    family_replacement: 'Quux'
os_parsers:
  - regex: 'Sys (\d+)_(\d+)'
    os_replacement: 'Sys'
    os_v1_replacement: '$2 '
device_parsers:
  - regex: 'phone ([a-z]+)'
    regex_flag: 'i'
    device_replacement: 'Phone $1'
    brand_replacement: 'Acme'
"#,
        )
        .expect("rules");
        assert_eq!(
            rules.browser("x FooBar/12 y"),
            Some(Browser { family: "Foo Foo".into(), major: Some("12".into()) })
        );
        assert_eq!(rules.browser("Quux/7"), Some(Browser { family: "Quux".into(), major: None }));
        assert_eq!(rules.browser("nothing"), None);
        assert_eq!(rules.os("Sys 10_4"), Some(Os { family: "Sys".into(), major: Some("4".into()), minor: None }));
        assert_eq!(
            rules.device("PHONE xy"),
            Some(Device { family: "Phone xy".into(), brand: Some("Acme".into()), model: Some("xy".into()) })
        );
    }

    #[test]
    fn the_first_rule_in_file_order_wins() {
        let rules = Rules::from_yaml(
            "user_agent_parsers:\n  - regex: '(Edge)/(\\d+)'\n  - regex: '(Chrome)/(\\d+)'\nos_parsers: []\ndevice_parsers: []\n",
        )
        .expect("rules");
        let b = rules.browser("Chrome/120 Edge/119").expect("match");
        assert_eq!((b.family.as_str(), b.major.as_deref()), ("Edge", Some("119")));
    }

    #[test]
    fn a_broken_rule_names_its_place() {
        let err = Rules::from_yaml(
            "user_agent_parsers: []\nos_parsers:\n  - regex: 'a'\n  - regex: '(b'\ndevice_parsers: []\n",
        )
        .err()
        .expect("error");
        assert_eq!(err.to_string(), "uap rule 1 of os_parsers does not compile");
    }

    /// The rules as Headcount embeds them.
    static EMBEDDED: std::sync::LazyLock<Rules> = std::sync::LazyLock::new(|| {
        Rules::from_yaml(include_str!("../../data/uap-core/regexes.yaml")).expect("embedded rules compile")
    });

    #[derive(Deserialize)]
    struct Corpus {
        test_cases: Vec<Expected>,
    }

    /// One case of uap-core's `test_ua.yaml` or `test_os.yaml`.
    #[derive(Deserialize)]
    struct Expected {
        user_agent_string: String,
        family: String,
        major: Option<String>,
        minor: Option<String>,
    }

    fn corpus(yaml: &str) -> Vec<Expected> {
        let corpus: Corpus = serde_yaml::from_str(yaml).expect("corpus yaml");
        assert!(corpus.test_cases.len() > 400, "corpus unexpectedly small");
        corpus.test_cases
    }

    /// Every browser case of uap-core's own tests: family and major exactly.
    #[test]
    fn uap_core_browser_cases() {
        let mut wrong = Vec::new();
        for case in corpus(include_str!("../../benches/data/test_ua.yaml")) {
            // uap-core's "no rule matched" is family "Other".
            let got = EMBEDDED.browser(&case.user_agent_string).map_or(("Other".into(), None), |b| (b.family, b.major));
            if got != (case.family, case.major) {
                wrong.push(format!("{:?}: {got:?}", case.user_agent_string));
            }
        }
        assert!(wrong.is_empty(), "{} cases differ:\n{}", wrong.len(), wrong.join("\n"));
    }

    /// Every OS case of uap-core's own tests: family, major and minor exactly.
    #[test]
    fn uap_core_os_cases() {
        let mut wrong = Vec::new();
        for case in corpus(include_str!("../../benches/data/test_os.yaml")) {
            let got = EMBEDDED
                .os(&case.user_agent_string)
                .map_or(("Other".into(), None, None), |o| (o.family, o.major, o.minor));
            if got != (case.family, case.major, case.minor) {
                wrong.push(format!("{:?}: {got:?}", case.user_agent_string));
            }
        }
        assert!(wrong.is_empty(), "{} cases differ:\n{}", wrong.len(), wrong.join("\n"));
    }

    /// The same answers as the `ua-parser` crate, which uses the `regex`
    /// crate for every rule, on every string we have (uap-core's device
    /// expectations are a 3 MB file we do not vendor; the crate passes them).
    #[test]
    fn same_answers_as_the_ua_parser_crate() {
        let yaml = include_str!("../../data/uap-core/regexes.yaml");
        let regexes: ua_parser::Regexes<'_> = serde_yaml::from_str(yaml).expect("regexes");
        let reference = ua_parser::Extractor::try_from(regexes).expect("ua-parser builds");
        let mut uas: Vec<String> = corpus(include_str!("../../benches/data/test_ua.yaml"))
            .into_iter()
            .chain(corpus(include_str!("../../benches/data/test_os.yaml")))
            .map(|c| c.user_agent_string)
            .chain(include_str!("../../benches/data/user_agents.txt").lines().map(str::to_owned))
            .collect();
        uas.sort();
        uas.dedup();
        let mut devices = 0;
        for ua in &uas {
            let (b, o, d) = reference.extract(ua);
            let want_browser = b.map(|b| Browser { family: b.family.into_owned(), major: b.major.map(str::to_owned) });
            let want_os = o.map(|o| Os {
                family: o.os.into_owned(),
                major: o.major.map(|m| m.into_owned()),
                minor: o.minor.map(|m| m.into_owned()),
            });
            let want_device = d.map(|d| Device {
                family: d.device.into_owned(),
                brand: d.brand.map(|m| m.into_owned()),
                model: d.model.map(|m| m.into_owned()),
            });
            devices += usize::from(want_device.is_some());
            assert_eq!(EMBEDDED.browser(ua), want_browser, "browser of {ua:?}");
            assert_eq!(EMBEDDED.os(ua), want_os, "OS of {ua:?}");
            assert_eq!(EMBEDDED.device(ua), want_device, "device of {ua:?}");
        }
        assert!(uas.len() > 1_700 && devices > 1_000, "{} strings, {devices} with a device", uas.len());
    }

    /// The rules that run on the `regex` crate are the long alternations.
    #[test]
    fn only_long_rules_run_on_the_dfa() {
        let large = |set: &[Engine]| set.iter().filter(|e| matches!(e, Engine::Large(_))).count();
        let (b, o, d) =
            (large(&EMBEDDED.browser.regexes), large(&EMBEDDED.os.regexes), large(&EMBEDDED.device.regexes));
        assert!(b + o + d > 0 && b + o + d < 40, "{b} + {o} + {d} large rules");
    }
}
