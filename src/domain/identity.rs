//! Who an applicant is, parsed once at the edge: names, contact, identity document.
//!
//! Each type here can only hold a value that passed its `parse`, so code past the HTTP
//! edge never re-checks. [`fold`] turns names into the comparable form behind the
//! duplicate rules ("one entry per person"), and [`DuplicateKeys`] derives the four keys
//! the database holds UNIQUE per window.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::validation::Issue;

/// Longest family name or given names accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest e-mail address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Folds a name for comparison: compatibility decomposition, accents dropped, lower case,
/// and every run of spaces, hyphens, apostrophes and dots removed, so that
/// `"N'DIAYE-Sèye"`, `"ndiaye seye"` and `"Ndiaye Seye"` fold alike.
///
/// Letters that Unicode does not decompose into a base letter plus accent are mapped
/// by hand (`ß`, `æ`, `œ`, `ø`, `ł`, `đ`, `ı`), so that "Łukasz" matches "Lukasz".
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd() {
        if is_combining_mark(c) || is_name_separator(c) || c.is_whitespace() {
            continue;
        }
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ø' | 'Ø' => out.push('o'),
            'ł' | 'Ł' => out.push('l'),
            'đ' | 'Đ' => out.push('d'),
            'ı' => out.push('i'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

fn is_name_separator(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2013}'
            | '\''
            | '\u{2019}'
            | '\u{2018}'
            | '\u{02BC}'
            | '`'
            | '.'
    )
}

/// Trims, collapses inner white space to one space, and composes (NFC).
fn tidy(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfc()
        .collect()
}

/// A family name or the given names of a person, as they should be printed on the
/// convocation: letters, spaces, hyphens, apostrophes and dots, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(text: &str) -> Result<Self, Issue> {
        let name = tidy(text);
        if name.is_empty() {
            return Err(Issue::required());
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Issue::too_long(MAX_NAME_CHARS));
        }
        let allowed =
            |c: char| c.is_alphabetic() || is_combining_mark(c) || c == ' ' || is_name_separator(c);
        if !name.chars().all(allowed) {
            return Err(Issue::new(
                "invalid_characters",
                "may contain only letters, spaces, hyphens, apostrophes and dots",
            ));
        }
        if !name.chars().any(char::is_alphabetic) {
            return Err(Issue::new("invalid_characters", "must contain a letter"));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folded form used by the duplicate-person rule.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }
}

/// An e-mail address: an ASCII local part and a host name with at least two labels.
/// The domain is kept in lower case; the local part as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, Issue> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Issue::required());
        }
        if text.chars().count() > MAX_EMAIL_CHARS {
            return Err(Issue::too_long(MAX_EMAIL_CHARS));
        }
        let invalid = || {
            Issue::new(
                "invalid_email",
                "must be an e-mail address such as name@example.org",
            )
        };
        let (local, domain) = text.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if !local_ok || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The mailbox behind the address, for the duplicate-e-mail rule: lower case, without
    /// a `+tag` (sub-addressing delivers `ana+2@x.org` to `ana@x.org`), and for Gmail,
    /// which ignores dots in the local part, without dots.
    pub fn mailbox_key(&self) -> String {
        let lower = self.0.to_ascii_lowercase();
        let (local, domain) = lower.rsplit_once('@').expect("parsed address has an @");
        let local = local.split('+').next().unwrap_or(local);
        let local = if matches!(domain, "gmail.com" | "googlemail.com") {
            local.replace('.', "")
        } else {
            local.to_owned()
        };
        let domain = if domain == "googlemail.com" {
            "gmail.com"
        } else {
            domain
        };
        format!("{local}@{domain}")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in international form, `+` then 8 to 15 digits (E.164).
/// French national numbers (`06 12 34 56 78`) are read as `+33612345678`, and a `00`
/// international prefix as `+`; spaces, dots, hyphens and brackets are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(text: &str) -> Result<Self, Issue> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Issue::required());
        }
        if text.chars().count() > 32 {
            return Err(Issue::too_long(32));
        }
        let compact: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\u{a0}'))
            .collect();
        let international = if let Some(rest) = compact.strip_prefix("00") {
            format!("+{rest}")
        } else if compact.len() == 10 && compact.starts_with('0') && !compact.starts_with("00") {
            format!("+33{}", &compact[1..])
        } else {
            compact
        };
        let digits = international.strip_prefix('+').unwrap_or_default();
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(Issue::new(
                "invalid_phone",
                "must be a phone number such as +33 6 12 34 56 78 or 06 12 34 56 78",
            ));
        }
        Ok(Self(international))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A country as an ISO 3166-1 code: two or three letters (`MA`, `MAR`), kept in upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(text: &str) -> Result<Self, Issue> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Issue::required());
        }
        if !(2..=3).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Issue::new(
                "invalid_country",
                "must be an ISO 3166-1 country code of two or three letters, such as MA or MAR",
            ));
        }
        Ok(Self(text.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The identity document an applicant registers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum DocumentKind {
    /// The 10-digit number of a foreign national's French file (AGDREF), printed on every
    /// residence permit and receipt.
    ForeignerNumber,
    /// A passport number, with its issuing country.
    Passport,
}

impl DocumentKind {
    pub fn parse(text: &str) -> Result<Self, Issue> {
        match text.trim() {
            "" => Err(Issue::required()),
            "foreigner_number" => Ok(Self::ForeignerNumber),
            "passport" => Ok(Self::Passport),
            _ => Err(Issue::new(
                "unknown_kind",
                "must be \"foreigner_number\" or \"passport\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForeignerNumber => "foreigner_number",
            Self::Passport => "passport",
        }
    }
}

/// A document number in its canonical form: upper case, without spaces or hyphens.
/// A foreigner number has exactly 10 digits; a passport number 5 to 20 letters or digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentNumber(String);

impl DocumentNumber {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(kind: DocumentKind, text: &str) -> Result<Self, Issue> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Issue::required());
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(Issue::too_long(Self::MAX_CHARS));
        }
        let compact: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match kind {
            DocumentKind::ForeignerNumber => {
                if compact.len() != 10 || !compact.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Issue::new(
                        "invalid_format",
                        "a foreigner number has exactly 10 digits",
                    ));
                }
            }
            DocumentKind::Passport => {
                if !(5..=20).contains(&compact.len())
                    || !compact.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(Issue::new(
                        "invalid_format",
                        "a passport number has 5 to 20 letters or digits",
                    ));
                }
            }
        }
        Ok(Self(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The language mails and pages are written in for an applicant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum Language {
    #[default]
    Fr,
    En,
    /// Modern Standard Arabic.
    Ar,
}

impl Language {
    pub const ALL: [Self; 3] = [Self::Fr, Self::En, Self::Ar];

    pub fn parse(text: &str) -> Result<Self, Issue> {
        match text.trim() {
            "fr" => Ok(Self::Fr),
            "en" => Ok(Self::En),
            "ar" => Ok(Self::Ar),
            _ => Err(Issue::new(
                "unsupported_language",
                "must be \"fr\", \"en\" or \"ar\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
            Self::Ar => "ar",
        }
    }
}

/// The four keys the database keeps UNIQUE within a window: one entry per document,
/// per person, per mailbox and per phone number.
///
/// Each key is a domain-separated SHA-256 of the folded value, written in hex: fixed
/// width for the index, and the same on every database engine. They are not meant to
/// hide anything (the identity is stored next to them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKeys {
    pub document: String,
    pub person: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Which duplicate rule refused a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum DuplicateRule {
    /// The same identity document is already registered in this window.
    Document,
    /// The same person (names and birth date, folded) is already registered.
    Person,
    /// The same mailbox is already registered.
    Email,
    /// The same phone number is already registered.
    Phone,
}

impl DuplicateRule {
    pub const ALL: [Self; 4] = [Self::Document, Self::Person, Self::Email, Self::Phone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Person => "person",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    /// The column holding this rule's key (and the suffix of its unique index name).
    pub fn key_column(self) -> &'static str {
        match self {
            Self::Document => "document_key",
            Self::Person => "person_key",
            Self::Email => "email_key",
            Self::Phone => "phone_key",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            Self::Document => "this identity document is already registered in this window",
            Self::Person => {
                "a person with these names and birth date is already registered in this window"
            }
            Self::Email => "this e-mail address is already used by an entry in this window",
            Self::Phone => "this phone number is already used by an entry in this window",
        }
    }
}

/// A parsed identity document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: DocumentKind,
    pub number: DocumentNumber,
    pub country: CountryCode,
}

/// Everything that identifies an applicant, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub family_name: PersonName,
    pub given_names: PersonName,
    pub birth_date: NaiveDate,
    pub nationality: CountryCode,
    pub document: Document,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
}

impl DuplicateKeys {
    pub fn of(identity: &Identity) -> Self {
        let document = &identity.document;
        // A foreigner number is unique in France whatever the country field says; a
        // passport number only together with its issuing country.
        let document_key = match document.kind {
            DocumentKind::ForeignerNumber => {
                format!("foreigner_number\n{}", document.number.as_str())
            }
            DocumentKind::Passport => format!(
                "passport\n{}\n{}",
                document.country.as_str(),
                document.number.as_str()
            ),
        };
        Self {
            document: key("document", &document_key),
            person: person_key(
                &identity.family_name,
                &identity.given_names,
                identity.birth_date,
            ),
            email: identity
                .email
                .as_ref()
                .map(|e| key("email", &e.mailbox_key())),
            phone: identity.phone.as_ref().map(|p| key("phone", p.as_str())),
        }
    }

    pub fn get(&self, rule: DuplicateRule) -> Option<&str> {
        match rule {
            DuplicateRule::Document => Some(&self.document),
            DuplicateRule::Person => Some(&self.person),
            DuplicateRule::Email => self.email.as_deref(),
            DuplicateRule::Phone => self.phone.as_deref(),
        }
    }
}

/// The duplicate key of a person (folded names and birth date); recomputed when staff
/// correct a name.
pub fn person_key(
    family_name: &PersonName,
    given_names: &PersonName,
    birth_date: NaiveDate,
) -> String {
    let person = format!(
        "{}\n{}\n{}",
        family_name.folded(),
        given_names.folded(),
        birth_date.format("%Y-%m-%d")
    );
    key("person", &person)
}

fn key(domain: &str, value: &str) -> String {
    let mut input = Vec::with_capacity(domain.len() + value.len() + 16);
    input.extend_from_slice(b"tirage-key-v1\n");
    input.extend_from_slice(domain.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(value.as_bytes());
    crate::draw::hex(crate::draw::sha256(&input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_french_english_and_arabic() {
        for language in Language::ALL {
            assert_eq!(Language::parse(language.as_str()).ok(), Some(language));
        }
        assert_eq!(Language::parse(" ar ").ok(), Some(Language::Ar));
        let refused = Language::parse("de").unwrap_err();
        assert_eq!(refused.code, "unsupported_language");
        assert_eq!(refused.message, "must be \"fr\", \"en\" or \"ar\"");
        assert_eq!(serde_json::to_string(&Language::Ar).unwrap(), "\"ar\"");
    }

    #[test]
    fn fold_ignores_case_accents_spaces_hyphens_and_apostrophes() {
        let same = [
            "N'Diaye-Sèye",
            "ndiaye seye",
            "NDIAYE  SEYE",
            "N’diaye Seye",
            "Ndiayé-seye",
        ];
        for name in same {
            assert_eq!(fold(name), "ndiayeseye", "{name}");
        }
        assert_eq!(fold("Łukasz Straße"), "lukaszstrasse");
        assert_eq!(fold("Œuvre Ærø"), "oeuvreaero");
        assert_eq!(fold("ﬁlippo"), "filippo"); // compatibility ligature
        assert_ne!(fold("Ana"), fold("Anna"));
    }

    #[test]
    fn person_name_tidies_and_refuses_digits_and_empty() {
        assert_eq!(
            PersonName::parse("  Jean   Pierre ").unwrap().as_str(),
            "Jean Pierre"
        );
        assert_eq!(
            PersonName::parse("O'Brien-Smith").unwrap().as_str(),
            "O'Brien-Smith"
        );
        assert_eq!(PersonName::parse("").unwrap_err().code, "required");
        assert_eq!(
            PersonName::parse("R2D2").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            PersonName::parse("--").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            PersonName::parse(&"a".repeat(101)).unwrap_err().code,
            "too_long"
        );
        assert!(PersonName::parse("Nguyễn Thị Minh Khai").is_ok());
        assert!(PersonName::parse("محمد").is_ok());
    }

    #[test]
    fn email_parsing() {
        assert_eq!(
            Email::parse(" Ana.Diallo@Example.ORG ").unwrap().as_str(),
            "Ana.Diallo@example.org"
        );
        for bad in [
            "ana",
            "ana@",
            "@x.org",
            "ana@x",
            "ana@@x.org",
            "a b@x.org",
            "ana@x..org",
            ".ana@x.org",
            "ana@-x.org",
            "ana@x.o",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code,
                "invalid_email",
                "{bad}"
            );
        }
        assert_eq!(Email::parse("").unwrap_err().code, "required");
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(Email::parse(&long).unwrap_err().code, "too_long");
    }

    #[test]
    fn mailbox_key_folds_sub_addresses_and_gmail_dots() {
        let key = |s: &str| Email::parse(s).unwrap().mailbox_key();
        assert_eq!(key("Ana+lottery@Example.org"), "ana@example.org");
        assert_eq!(key("a.n.a@googlemail.com"), "ana@gmail.com");
        assert_eq!(key("a.n.a@example.org"), "a.n.a@example.org");
    }

    #[test]
    fn phone_parsing() {
        let p = |s: &str| PhoneNumber::parse(s).map(|p| p.as_str().to_owned());
        assert_eq!(p("06 12 34 56 78").unwrap(), "+33612345678");
        assert_eq!(p("+33 6.12.34.56.78").unwrap(), "+33612345678");
        assert_eq!(p("0033612345678").unwrap(), "+33612345678");
        assert_eq!(p("+212 (6) 12-34-56-78").unwrap(), "+212612345678");
        for bad in ["12345", "+33", "phone", "+0612345678", "+1234567890123456"] {
            assert_eq!(p(bad).unwrap_err().code, "invalid_phone", "{bad}");
        }
    }

    #[test]
    fn document_numbers() {
        use DocumentKind::*;
        assert_eq!(
            DocumentNumber::parse(ForeignerNumber, "75 0123 4567")
                .unwrap()
                .as_str(),
            "7501234567"
        );
        assert_eq!(
            DocumentNumber::parse(ForeignerNumber, "12345")
                .unwrap_err()
                .code,
            "invalid_format"
        );
        assert_eq!(
            DocumentNumber::parse(Passport, "ab-123456")
                .unwrap()
                .as_str(),
            "AB123456"
        );
        assert_eq!(
            DocumentNumber::parse(Passport, "ab#123456")
                .unwrap_err()
                .code,
            "invalid_format"
        );
        assert_eq!(
            DocumentNumber::parse(Passport, &"1".repeat(33))
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            DocumentKind::parse("id_card").unwrap_err().code,
            "unknown_kind"
        );
    }

    #[test]
    fn duplicate_keys_match_folded_identities() {
        let date = NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
        let keys = |family: &str, given: &str, number: &str, email: &str| {
            DuplicateKeys::of(&Identity {
                family_name: PersonName::parse(family).unwrap(),
                given_names: PersonName::parse(given).unwrap(),
                birth_date: date,
                nationality: CountryCode::parse("mar").unwrap(),
                document: Document {
                    kind: DocumentKind::Passport,
                    number: DocumentNumber::parse(DocumentKind::Passport, number).unwrap(),
                    country: CountryCode::parse("mar").unwrap(),
                },
                email: Some(Email::parse(email).unwrap()),
                phone: None,
            })
        };
        let a = keys("El Amrani", "Fatima-Zahra", "AB123456", "fz@example.org");
        let b = keys("EL-AMRANI", "fatima zahra", "ab 123456", "FZ+x@example.org");
        assert_eq!(a, b);
        let c = keys("El Amrani", "Fatima", "AB123457", "f@example.org");
        assert_ne!(a.person, c.person);
        assert_ne!(a.document, c.document);
        assert_eq!(a.document.len(), 64);
    }
}
