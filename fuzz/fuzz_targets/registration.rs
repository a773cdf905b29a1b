//! The registration validators take any text and either refuse it with a field error
//! or return a value that parses again to itself (the stored form is stable), without
//! panicking. The whole form is fuzzed as JSON, as the API receives it, and each field
//! validator on its own.
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use tirage::domain::identity::{
    CountryCode, DocumentKind, DocumentNumber, DuplicateKeys, Email, PersonName, PhoneNumber, fold,
};
use tirage::domain::registration::{Channel, RegistrationForm, parse_date};

fuzz_target!(|data: &[u8]| {
    let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    if let Ok(form) = serde_json::from_slice::<RegistrationForm>(data) {
        for channel in [Channel::Online, Channel::Counter] {
            if let Ok(registration) = form.parse(channel, today) {
                let _ = DuplicateKeys::of(&registration.identity);
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = fold(text);
    let _ = parse_date(text);
    if let Ok(name) = PersonName::parse(text) {
        assert_eq!(PersonName::parse(name.as_str()).as_ref(), Ok(&name));
    }
    if let Ok(email) = Email::parse(text) {
        assert_eq!(Email::parse(email.as_str()).as_ref(), Ok(&email));
        let _ = email.mailbox_key();
    }
    if let Ok(phone) = PhoneNumber::parse(text) {
        assert_eq!(PhoneNumber::parse(phone.as_str()).as_ref(), Ok(&phone));
    }
    if let Ok(country) = CountryCode::parse(text) {
        assert_eq!(CountryCode::parse(country.as_str()).as_ref(), Ok(&country));
    }
    for kind in [DocumentKind::ForeignerNumber, DocumentKind::Passport] {
        if let Ok(number) = DocumentNumber::parse(kind, text) {
            assert_eq!(
                DocumentNumber::parse(kind, number.as_str()).as_ref(),
                Ok(&number)
            );
        }
    }
});
