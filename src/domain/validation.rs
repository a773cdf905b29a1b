//! Collecting every problem with a request, not only the first one.
//!
//! Parsers in this module tree return [`Issue`] (a machine code and a plain English
//! message); [`Validator`] attaches each issue to the field path it came from, so that an
//! applicant who got three fields wrong is told about all three at once.

use serde::Serialize;

/// What is wrong with one value, before we know where the value sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// A stable machine-readable code, such as `required` or `too_long`.
    pub code: &'static str,
    /// A plain English sentence for a person.
    pub message: String,
}

impl Issue {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn required() -> Self {
        Self::new("required", "this field is required")
    }

    pub fn too_long(max_chars: usize) -> Self {
        Self::new(
            "too_long",
            format!("must be at most {max_chars} characters long"),
        )
    }
}

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Where the value sits in the request body, such as `document.number` or `slots[2].counter`.
    #[cfg_attr(feature = "server", schema(example = "document.number"))]
    pub field: String,
    /// Stable machine-readable reason, such as `required`, `too_long`, `invalid_date`.
    #[cfg_attr(feature = "server", schema(example = "too_long"))]
    pub code: String,
    /// The reason in plain English.
    #[cfg_attr(
        feature = "server",
        schema(example = "must be at most 32 characters long")
    )]
    pub message: String,
}

/// Every bad field of a refused request, in the order they were checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("{} invalid field(s)", .0.len())]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn single(field: impl Into<String>, issue: Issue) -> Self {
        let mut errors = Self::default();
        errors.push(field, issue);
        errors
    }

    pub fn push(&mut self, field: impl Into<String>, issue: Issue) {
        self.0.push(FieldError {
            field: field.into(),
            code: issue.code.to_owned(),
            message: issue.message,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

/// Gathers the outcome of many field parsers.
///
/// ```
/// use tirage::domain::validation::{Issue, Validator};
/// let mut v = Validator::default();
/// let a: Option<u32> = v.check("a", Ok(1));
/// let b: Option<u32> = v.check("b", Err(Issue::required()));
/// assert_eq!((a, b), (Some(1), None));
/// assert_eq!(v.finish().unwrap_err().0[0].field, "b");
/// ```
#[derive(Debug, Default)]
pub struct Validator {
    errors: ValidationErrors,
}

impl Validator {
    /// Records the issue under `field` when `result` is an error; returns the value otherwise.
    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, Issue>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(issue) => {
                self.errors.push(field, issue);
                None
            }
        }
    }

    /// Records an issue that is not the outcome of a parser (a rule across fields).
    pub fn push(&mut self, field: impl Into<String>, issue: Issue) {
        self.errors.push(field, issue);
    }

    /// Adds the errors of a nested validation under a path prefix.
    pub fn extend_prefixed(&mut self, prefix: &str, errors: ValidationErrors) {
        for mut error in errors.0 {
            error.field = if error.field.is_empty() {
                prefix.to_owned()
            } else if error.field.starts_with('[') {
                format!("{prefix}{}", error.field)
            } else {
                format!("{prefix}.{}", error.field)
            };
            self.errors.0.push(error);
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else every recorded error.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// Trims `text` and refuses it when empty or longer than `max_chars` characters.
pub fn required_text(text: Option<&str>, max_chars: usize) -> Result<&str, Issue> {
    let text = text.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(Issue::required());
    }
    if text.chars().count() > max_chars {
        return Err(Issue::too_long(max_chars));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error_in_order() {
        let mut v = Validator::default();
        v.check::<()>("family_name", Err(Issue::required()));
        v.check::<()>("email", Err(Issue::new("invalid_email", "bad")));
        let errors = v.finish().unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["family_name", "email"]
        );
    }

    #[test]
    fn prefixes_nested_paths() {
        let mut v = Validator::default();
        v.extend_prefixed(
            "slots",
            ValidationErrors::single("[2].counter", Issue::required()),
        );
        v.extend_prefixed(
            "document",
            ValidationErrors::single("number", Issue::required()),
        );
        let errors = v.finish().unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["slots[2].counter", "document.number"]
        );
    }

    #[test]
    fn required_text_trims_and_limits() {
        assert_eq!(required_text(Some("  a "), 3), Ok("a"));
        assert_eq!(required_text(Some("   "), 3).unwrap_err().code, "required");
        assert_eq!(required_text(None, 3).unwrap_err().code, "required");
        assert_eq!(required_text(Some("abcd"), 3).unwrap_err().code, "too_long");
    }
}
