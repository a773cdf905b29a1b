//! Languages of the pages and their message catalogues.
//!
//! Every text a page shows comes from `locales/<code>.toml`, embedded in the binary at
//! build time. A catalogue is a TOML document whose sections group keys by page
//! (`[register]`, `title = "..."` is the key `register.title`); `{name}` in a message is
//! replaced by a value given by the page. French is the default language; Arabic is
//! written right to left. A test checks that every catalogue has exactly the same keys,
//! and that every key the templates and handlers use exists.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::domain::identity::Language;

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fr,
    En,
    Ar,
}

impl Lang {
    pub const ALL: [Self; 3] = [Self::Fr, Self::En, Self::Ar];

    pub fn code(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
            Self::Ar => "ar",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code.trim())
    }

    /// `rtl` for Arabic, `ltr` otherwise: the `dir` attribute of the page.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Ar => "rtl",
            Self::Fr | Self::En => "ltr",
        }
    }

    /// The name of the language in itself, for the language switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::Fr => "Français",
            Self::En => "English",
            Self::Ar => "العربية",
        }
    }

    /// The language mails are written in for an applicant reading this language:
    /// every page language has its mails.
    pub fn mail_language(self) -> Language {
        match self {
            Self::Fr => Language::Fr,
            Self::En => Language::En,
            Self::Ar => Language::Ar,
        }
    }

    pub fn catalog(self) -> &'static Catalog {
        static CATALOGS: OnceLock<[Catalog; 3]> = OnceLock::new();
        let catalogs = CATALOGS.get_or_init(|| {
            [
                Catalog::parse(Lang::Fr, FR).expect("locales/fr.toml is valid"),
                Catalog::parse(Lang::En, EN).expect("locales/en.toml is valid"),
                Catalog::parse(Lang::Ar, AR).expect("locales/ar.toml is valid"),
            ]
        });
        match self {
            Self::Fr => &catalogs[0],
            Self::En => &catalogs[1],
            Self::Ar => &catalogs[2],
        }
    }
}

const FR: &str = include_str!("../../../locales/fr.toml");
const EN: &str = include_str!("../../../locales/en.toml");
const AR: &str = include_str!("../../../locales/ar.toml");

/// The messages of one language, by dotted key.
#[derive(Debug)]
pub struct Catalog {
    pub lang: Lang,
    messages: HashMap<String, String>,
}

impl Catalog {
    fn parse(lang: Lang, text: &str) -> Result<Self, String> {
        let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
        let mut messages = HashMap::new();
        flatten("", &table, &mut messages)?;
        Ok(Self { lang, messages })
    }

    /// The message for `key`. A missing key (which the tests rule out) shows the key
    /// itself, so that a page never fails to render over one text.
    pub fn s<'a>(&'a self, key: &'a str) -> &'a str {
        match self.messages.get(key) {
            Some(message) => message,
            None => {
                tracing::warn!(lang = self.lang.code(), key, "missing message");
                key
            }
        }
    }

    /// The message for `key` with `{name}` replaced by `value`.
    pub fn f(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        self.s(key)
            .replace(&format!("{{{name}}}"), &value.to_string())
    }

    /// The message for `key` with two placeholders replaced.
    pub fn f2(
        &self,
        key: &str,
        name1: &str,
        value1: impl std::fmt::Display,
        name2: &str,
        value2: impl std::fmt::Display,
    ) -> String {
        self.s(key)
            .replace(&format!("{{{name1}}}"), &value1.to_string())
            .replace(&format!("{{{name2}}}"), &value2.to_string())
    }

    /// The name of a window state.
    pub fn state(&self, state: &crate::domain::window::WindowState) -> &str {
        self.s(match state {
            crate::domain::window::WindowState::Draft => "state.draft",
            crate::domain::window::WindowState::Open => "state.open",
            crate::domain::window::WindowState::Closed => "state.closed",
            crate::domain::window::WindowState::Drawn => "state.drawn",
            crate::domain::window::WindowState::Cancelled => "state.cancelled",
        })
    }

    /// Whether the catalogue has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.messages.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut HashMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(full, text.clone());
            }
            toml::Value::Table(inner) => flatten(&full, inner, out)?,
            _ => return Err(format!("{full}: messages must be strings")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn keys(lang: Lang) -> BTreeSet<String> {
        lang.catalog().keys().map(str::to_owned).collect()
    }

    #[test]
    fn every_catalogue_has_every_key() {
        let reference = keys(Lang::Fr);
        for lang in Lang::ALL {
            let these = keys(lang);
            let missing: Vec<_> = reference.difference(&these).collect();
            let extra: Vec<_> = these.difference(&reference).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, not in fr {extra:?}",
                lang.code()
            );
        }
    }

    #[test]
    fn no_message_is_empty() {
        for lang in Lang::ALL {
            for key in lang.catalog().keys() {
                assert!(
                    !lang.catalog().s(key).trim().is_empty(),
                    "{}: {key} is empty",
                    lang.code()
                );
            }
        }
    }

    /// Placeholders must be the same in every language, or a value would go missing.
    #[test]
    fn placeholders_agree() {
        fn placeholders(text: &str) -> BTreeSet<String> {
            text.split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
                .collect()
        }
        for key in Lang::Fr.catalog().keys() {
            let expected = placeholders(Lang::Fr.catalog().s(key));
            for lang in [Lang::En, Lang::Ar] {
                assert_eq!(
                    placeholders(lang.catalog().s(key)),
                    expected,
                    "{}: {key}",
                    lang.code()
                );
            }
        }
    }

    /// Every key written in a template or a page handler exists: every string literal
    /// that looks like `section.name` where `section` is a section of the catalogues
    /// (so that `document.number`, an API field path, is not taken for a key).
    #[test]
    fn every_key_used_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["templates", "src/http/pages"] {
            collect(&root.join(dir), &mut files);
        }
        assert!(files.len() > 5, "templates and page sources are found");
        let catalog = Lang::Fr.catalog();
        let sections: BTreeSet<&str> = catalog
            .keys()
            .filter_map(|k| k.split_once('.').map(|(s, _)| s))
            .collect();
        let mut used = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, literal) in text.split('"').enumerate() {
                let looks_like_key = i % 2 == 1
                    && !literal.ends_with(".html")
                    && literal.split_once('.').is_some_and(|(section, name)| {
                        sections.contains(section)
                            && !name.is_empty()
                            && name.bytes().all(|b| {
                                b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || b == b'_'
                                    || b == b'.'
                            })
                    });
                if looks_like_key {
                    used.insert(literal.to_owned());
                }
            }
        }
        assert!(used.len() > 50, "found {} keys", used.len());
        let missing: Vec<_> = used.iter().filter(|k| !catalog.has(k)).collect();
        assert!(missing.is_empty(), "keys used but missing: {missing:?}");
    }

    fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "html" || e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn languages() {
        assert_eq!(Lang::parse("ar"), Some(Lang::Ar));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(Lang::Ar.dir(), "rtl");
        assert_eq!(Lang::default(), Lang::Fr);
    }
}
