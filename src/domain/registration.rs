//! What an applicant sends to register, and the rules it must pass.
//!
//! The form keeps every field as optional text so that one bad field does not hide the
//! others: [`RegistrationForm::parse`] checks them all and returns either a
//! [`Registration`] whose parts can only hold valid values, or every bad field at once.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::identity::{
    CountryCode, Document, DocumentKind, DocumentNumber, Email, Identity, Language, PersonName,
    PhoneNumber,
};
use super::slots::invalid_date;
use super::validation::{Issue, ValidationErrors, Validator};

/// The oldest birth date accepted is this many years before today.
pub const MAX_AGE_YEARS: u32 = 120;
/// A permit may not expire more than this many years after today.
pub const MAX_PERMIT_YEARS_AHEAD: u32 = 10;

/// The identity document as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentForm {
    /// `foreigner_number` (the 10-digit AGDREF number) or `passport`.
    #[cfg_attr(feature = "server", schema(required = true, value_type = DocumentKind))]
    pub kind: Option<String>,
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "7501234567"))]
    pub number: Option<String>,
    /// ISO 3166-1 code of the issuing country (two or three letters).
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "FRA"))]
    pub country: Option<String>,
}

/// A registration request. At the counter, staff may leave out the e-mail address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegistrationForm {
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "El Amrani"))]
    pub family_name: Option<String>,
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "Fatima Zahra"))]
    pub given_names: Option<String>,
    /// `YYYY-MM-DD`.
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "1990-05-17"))]
    pub birth_date: Option<String>,
    /// ISO 3166-1 code (two or three letters).
    #[cfg_attr(feature = "server", schema(required = true, value_type = String, example = "MAR"))]
    pub nationality: Option<String>,
    #[cfg_attr(feature = "server", schema(required = true))]
    pub document: Option<DocumentForm>,
    /// Where the verification code is sent. Required online; optional at the counter.
    #[cfg_attr(feature = "server", schema(value_type = String, example = "fz.elamrani@example.org"))]
    pub email: Option<String>,
    /// International (`+33612345678`) or French national (`06 12 34 56 78`) form.
    #[cfg_attr(feature = "server", schema(example = "+33612345678"))]
    pub phone: Option<String>,
    /// `YYYY-MM-DD`, the expiry of the current permit; `null` for a first application.
    #[cfg_attr(feature = "server", schema(example = "2027-01-20"))]
    pub permit_expires_on: Option<String>,
    /// `fr` (default), `en` or `ar`: the language of mails.
    #[cfg_attr(feature = "server", schema(value_type = Language))]
    pub language: Option<String>,
}

/// How an entry was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum Channel {
    /// By the applicant, online; the e-mail address is verified by a one-time code.
    Online,
    /// By staff at the counter, who checked the person and document in person.
    Counter,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Counter => "counter",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Online, Self::Counter]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

/// A valid registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub identity: Identity,
    pub permit_expires_on: Option<NaiveDate>,
    pub language: Language,
}

/// A calendar date written exactly `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate, Issue> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Issue::required());
    }
    if text.len() != 10 {
        return Err(invalid_date());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| invalid_date())
}

fn limited(text: Option<&str>, max_chars: usize) -> Result<&str, Issue> {
    let text = text.unwrap_or_default();
    if text.chars().count() > max_chars {
        return Err(Issue::too_long(max_chars));
    }
    Ok(text)
}

impl RegistrationForm {
    /// Checks every field; `today` is the registration date in the service's clock.
    pub fn parse(
        &self,
        channel: Channel,
        today: NaiveDate,
    ) -> Result<Registration, ValidationErrors> {
        let mut v = Validator::default();
        let family_name = v.check(
            "family_name",
            PersonName::parse(self.family_name.as_deref().unwrap_or_default()),
        );
        let given_names = v.check(
            "given_names",
            PersonName::parse(self.given_names.as_deref().unwrap_or_default()),
        );
        let birth_date = v.check(
            "birth_date",
            limited(self.birth_date.as_deref(), 10)
                .and_then(parse_date)
                .and_then(|date| check_birth_date(date, today)),
        );
        let nationality = v.check(
            "nationality",
            limited(self.nationality.as_deref(), 3).and_then(CountryCode::parse),
        );
        let document = match &self.document {
            None => {
                v.push("document", Issue::required());
                None
            }
            Some(doc) => {
                let kind = v.check(
                    "document.kind",
                    limited(doc.kind.as_deref(), 32).and_then(DocumentKind::parse),
                );
                let number = doc.number.as_deref().unwrap_or_default();
                let number = match kind {
                    Some(kind) => v.check("document.number", DocumentNumber::parse(kind, number)),
                    None => {
                        // Without a kind the format is unknown; still report what can be said.
                        if number.trim().is_empty() {
                            v.push("document.number", Issue::required());
                        } else if number.chars().count() > DocumentNumber::MAX_CHARS {
                            v.push(
                                "document.number",
                                Issue::too_long(DocumentNumber::MAX_CHARS),
                            );
                        }
                        None
                    }
                };
                let country = v.check(
                    "document.country",
                    limited(doc.country.as_deref(), 3).and_then(CountryCode::parse),
                );
                match (kind, number, country) {
                    (Some(kind), Some(number), Some(country)) => Some(Document {
                        kind,
                        number,
                        country,
                    }),
                    _ => None,
                }
            }
        };
        let email = match (self.email.as_deref().map(str::trim), channel) {
            (None | Some(""), Channel::Counter) => None,
            (email, _) => v.check("email", Email::parse(email.unwrap_or_default())),
        };
        let phone = match self.phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(phone) => v.check("phone", PhoneNumber::parse(phone)),
        };
        let permit_expires_on = match self.permit_expires_on.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(text) => v
                .check(
                    "permit_expires_on",
                    limited(Some(text), 10)
                        .and_then(parse_date)
                        .and_then(|date| check_permit_expiry(date, today)),
                )
                .map(Some),
        };
        let language = v.check(
            "language",
            match self.language.as_deref() {
                None => Ok(Language::default()),
                Some(text) => limited(Some(text), 5).and_then(Language::parse),
            },
        );
        v.finish()?;
        Ok(Registration {
            identity: Identity {
                family_name: family_name.expect("checked"),
                given_names: given_names.expect("checked"),
                birth_date: birth_date.expect("checked"),
                nationality: nationality.expect("checked"),
                document: document.expect("checked"),
                email,
                phone,
            },
            permit_expires_on: permit_expires_on.expect("checked"),
            language: language.expect("checked"),
        })
    }
}

fn check_birth_date(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, Issue> {
    if date > today {
        return Err(Issue::new("in_future", "must not be in the future"));
    }
    let oldest = today
        .checked_sub_months(Months::new(12 * MAX_AGE_YEARS))
        .unwrap_or(NaiveDate::MIN);
    if date < oldest {
        return Err(Issue::new(
            "too_old",
            format!("must be less than {MAX_AGE_YEARS} years ago"),
        ));
    }
    Ok(date)
}

fn check_permit_expiry(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, Issue> {
    let latest = today
        .checked_add_months(Months::new(12 * MAX_PERMIT_YEARS_AHEAD))
        .unwrap_or(NaiveDate::MAX);
    if date > latest {
        return Err(Issue::new(
            "too_far_ahead",
            format!("must be at most {MAX_PERMIT_YEARS_AHEAD} years from today"),
        ));
    }
    // A permit that expired before the applicant was even adult is most likely a typo,
    // but it is still a permit; only absurd years are refused.
    if date.year() < 1900 {
        return Err(invalid_date());
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
    }

    fn valid() -> RegistrationForm {
        serde_json::from_value(serde_json::json!({
            "family_name": "El Amrani", "given_names": "Fatima Zahra", "birth_date": "1990-05-17",
            "nationality": "MAR",
            "document": {"kind": "foreigner_number", "number": "7501234567", "country": "FRA"},
            "email": "fz@example.org", "phone": "06 12 34 56 78", "permit_expires_on": "2027-01-20"
        }))
        .unwrap()
    }

    fn codes(form: &RegistrationForm, channel: Channel) -> Vec<String> {
        match form.parse(channel, today()) {
            Ok(_) => vec![],
            Err(e) => e
                .into_vec()
                .into_iter()
                .map(|e| format!("{}:{}", e.field, e.code))
                .collect(),
        }
    }

    #[test]
    fn parses_a_valid_form() {
        let r = valid().parse(Channel::Online, today()).unwrap();
        assert_eq!(r.language, Language::Fr);
        assert_eq!(r.identity.phone.unwrap().as_str(), "+33612345678");
        assert_eq!(r.permit_expires_on, NaiveDate::from_ymd_opt(2027, 1, 20));
    }

    #[test]
    fn counter_registrations_may_omit_the_email() {
        let mut form = valid();
        form.email = None;
        assert_eq!(codes(&form, Channel::Online), ["email:required"]);
        assert!(codes(&form, Channel::Counter).is_empty());
    }

    #[test]
    fn reports_every_bad_field() {
        let form = RegistrationForm {
            family_name: Some(" ".into()),
            given_names: Some("x".repeat(101)),
            birth_date: Some("2030-01-01".into()),
            nationality: Some("Morocco".into()),
            document: Some(DocumentForm {
                kind: Some("id_card".into()),
                number: None,
                country: Some("F".into()),
            }),
            email: Some("nope".into()),
            phone: Some("123".into()),
            permit_expires_on: Some("2040-01-01".into()),
            language: Some("de".into()),
        };
        assert_eq!(
            codes(&form, Channel::Online),
            [
                "family_name:required",
                "given_names:too_long",
                "birth_date:in_future",
                "nationality:too_long",
                "document.kind:unknown_kind",
                "document.number:required",
                "document.country:invalid_country",
                "email:invalid_email",
                "phone:invalid_phone",
                "permit_expires_on:too_far_ahead",
                "language:unsupported_language",
            ]
        );
    }

    #[test]
    fn date_rules() {
        let with_birth = |d: &str| RegistrationForm {
            birth_date: Some(d.into()),
            ..valid()
        };
        assert_eq!(
            codes(&with_birth("1906-12-04"), Channel::Online),
            ["birth_date:too_old"]
        );
        assert!(codes(&with_birth("1906-12-05"), Channel::Online).is_empty());
        assert_eq!(
            codes(&with_birth("1990-02-30"), Channel::Online),
            ["birth_date:invalid_date"]
        );
        assert_eq!(
            codes(&with_birth("17/05/1990"), Channel::Online),
            ["birth_date:invalid_date"]
        );
        let with_permit = |d: Option<&str>| RegistrationForm {
            permit_expires_on: d.map(Into::into),
            ..valid()
        };
        assert!(codes(&with_permit(None), Channel::Online).is_empty());
        assert!(codes(&with_permit(Some("2020-01-01")), Channel::Online).is_empty());
        assert!(codes(&with_permit(Some("2036-12-05")), Channel::Online).is_empty());
        assert_eq!(
            codes(&with_permit(Some("2036-12-06")), Channel::Online),
            ["permit_expires_on:too_far_ahead"]
        );
    }
}
