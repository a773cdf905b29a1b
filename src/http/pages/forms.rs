//! Refusals shown in a page: field errors next to their field, and messages for the
//! other problems, in the page's language.
//!
//! The domain names each bad field by its path in the API's JSON (`document.number`,
//! `slot_template.opening_hours[1].to`) with a machine code (`required`, `too_long`);
//! here the path becomes the name of the form field it came from, and the code a
//! catalogue key (`field_error.<code>`), so the message is written in every language.

use std::collections::BTreeMap;

use super::i18n::Catalog;
use crate::domain::validation::{FieldError, ValidationErrors};
use crate::http::error::ApiError;

/// Every code the domain gives to a bad field; each has a `field_error.<code>` message.
pub const FIELD_ERROR_CODES: &[&str] = &[
    "required",
    "too_long",
    "invalid_characters",
    "invalid_date",
    "invalid_datetime",
    "invalid_time",
    "invalid_email",
    "invalid_phone",
    "invalid_country",
    "invalid_format",
    "unknown_kind",
    "unsupported_language",
    "in_future",
    "too_old",
    "too_far_ahead",
    "not_after_opening",
    "before_closing",
    "before_draw",
    "before_first_day",
    "conflict",
    "duplicate",
    "duplicate_id",
    "invalid_weekday",
    "no_slots",
    "overlapping",
    "out_of_range",
    "too_many",
    "too_many_slots",
    "unknown_time_zone",
    "invalid_precision",
    "invalid_hex",
    "not_expected",
    "invalid_type",
    "unknown_field",
    "incorrect_code",
    "too_short",
    "unknown_role",
];

/// Bad fields of a submitted form, by form field name, with their message in the
/// page's language.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    messages: BTreeMap<String, String>,
}

impl FieldErrors {
    /// Places each error on a form field: `rename` maps an API path to the form field
    /// that holds it (the first matching prefix wins; unmapped paths keep their name).
    pub fn from_validation(
        errors: &ValidationErrors,
        t: &Catalog,
        rename: &[(&str, &str)],
    ) -> Self {
        let mut out = Self::default();
        for error in &errors.0 {
            let field = rename
                .iter()
                .find(|(path, _)| {
                    error.field == *path
                        || error.field.starts_with(&format!("{path}."))
                        || error.field.starts_with(&format!("{path}["))
                })
                .map_or(error.field.as_str(), |(_, name)| name);
            out.add(field, message(error, t));
        }
        out
    }

    /// Adds a message to a field (after any already there).
    pub fn add(&mut self, field: &str, message: String) {
        self.messages
            .entry(field.to_owned())
            .and_modify(|m| {
                m.push(' ');
                m.push_str(&message);
            })
            .or_insert(message);
    }

    /// Forgets what was said about `field`.
    pub fn remove(&mut self, field: &str) {
        self.messages.remove(field);
    }

    /// The message for `field`, if it is bad.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.messages.get(field).map(String::as_str)
    }

    pub fn has(&self, field: &str) -> bool {
        self.messages.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// The fields in error, for the summary at the top of a form.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }
}

/// The message for one field error: the catalogue's sentence for its code, with the
/// number the domain's English message carries (a length, a limit) put in `{n}`.
fn message(error: &FieldError, t: &Catalog) -> String {
    let key = format!("field_error.{}", error.code);
    let number: String = error
        .message
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())
        .unwrap_or("")
        .to_owned();
    if t.has(&key) {
        t.s(&key).replace("{n}", &number)
    } else {
        t.s("field_error.other").to_owned()
    }
}

/// The catalogue key of a refusal that is not about one field.
pub fn problem_key(error: &ApiError) -> &'static str {
    use crate::domain::identity::DuplicateRule;
    match error {
        ApiError::Duplicate(DuplicateRule::Document) => "problem.duplicate_document",
        ApiError::Duplicate(DuplicateRule::Person) => "problem.duplicate_person",
        ApiError::Duplicate(DuplicateRule::Email) => "problem.duplicate_email",
        ApiError::Duplicate(DuplicateRule::Phone) => "problem.duplicate_phone",
        ApiError::RegistrationClosed(_) => "problem.registration_closed",
        ApiError::WrongState(_) | ApiError::WindowNotReady { .. } => "problem.wrong_state",
        ApiError::EntryState(_) => "problem.entry_state",
        ApiError::CodeIncorrect { .. } => "problem.code_incorrect",
        ApiError::CodeExpired => "problem.code_expired",
        ApiError::CodeExhausted => "problem.code_exhausted",
        ApiError::TooManyRequests { .. } => "problem.too_many_requests",
        ApiError::NotFound(_) => "error.not_found",
        ApiError::Unauthorized(_) | ApiError::Forbidden(_) => "error.forbidden",
        ApiError::Internal(_) | ApiError::Unavailable(_) => "error.internal",
        // Other refusals (new kinds included) by their HTTP meaning.
        other => match other.problem().status {
            409 => "problem.entry_state",
            429 => "problem.too_many_requests",
            _ => "error.bad_form",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::Issue;
    use crate::http::pages::i18n::Lang;

    #[test]
    fn every_code_has_a_message() {
        for lang in Lang::ALL {
            for code in FIELD_ERROR_CODES {
                assert!(
                    lang.catalog().has(&format!("field_error.{code}")),
                    "{}: field_error.{code}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn places_errors_on_form_fields_in_the_page_language() {
        let mut errors = ValidationErrors::default();
        errors.push("document.number", Issue::required());
        errors.push("family_name", Issue::too_long(100));
        errors.push("slot_template.opening_hours[1].to", Issue::required());
        let t = Lang::En.catalog();
        let fields = FieldErrors::from_validation(
            &errors,
            t,
            &[
                ("document.number", "document_number"),
                ("slot_template.opening_hours", "opening_hours"),
            ],
        );
        assert_eq!(
            fields.get("document_number"),
            Some(t.s("field_error.required"))
        );
        assert!(fields.get("family_name").unwrap().contains("100"));
        assert!(fields.has("opening_hours"));
        assert_eq!(fields.len(), 3);
        let fr = Lang::Fr.catalog();
        let fields = FieldErrors::from_validation(&errors, fr, &[]);
        assert_eq!(
            fields.get("document.number"),
            Some(fr.s("field_error.required"))
        );
    }
}
